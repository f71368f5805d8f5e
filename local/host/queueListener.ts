// Storage Queue trigger, modelled on the Functions queue listener: receive batches with a 10-minute visibility,
// run messages concurrently, delete on success; on failure make the message visible again after
// host.json visibilityTimeout, or move it to `<queue>-poison` once it has been dequeued maxDequeueCount times.
import { setTimeout as sleep } from 'node:timers/promises';
import { QueueServiceClient, type DequeuedMessageItem, type QueueClient } from '@azure/storage-queue';
import type { RegisteredFunction } from './coreShim';
import type { RpcTypedData } from './coreTypes';
import { MIN_POLLING_INTERVAL_MS, type QueueSettings } from './hostJson';
import { invokeFunction } from './invoke';
import type { HostLog } from './logging';

export interface QueueListenerOptions {
  fn: RegisteredFunction;
  bindingName: string;
  /** Resolved queue name (no %SETTING% left). */
  queueName: string;
  connectionString: string;
  settings: QueueSettings;
  log: HostLog;
}

/** Visibility while a message is being processed, seconds (the Functions host uses 10 minutes). */
const PROCESSING_VISIBILITY_S = 600;
/** Renew the processing visibility this often so a long run does not let the message reappear, ms. */
const VISIBILITY_RENEW_MS = (PROCESSING_VISIBILITY_S / 2) * 1000;
const LOG_CATEGORY = 'Host.Triggers.Queue';
/** Repeat a storage error in the log at most this often per listener, ms. */
const ERROR_LOG_INTERVAL_MS = 30_000;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

class MessageDecodeError extends Error {}

export function decodeMessageText(text: string, encoding: QueueSettings['messageEncoding']): string {
  if (encoding === 'none') return text;
  const compact = text.replace(/\s+/g, '');
  if (compact.length % 4 !== 0 || !BASE64.test(compact)) {
    throw new MessageDecodeError('message is not valid base64 (host.json extensions.queues.messageEncoding is "base64")');
  }
  return Buffer.from(compact, 'base64').toString('utf8');
}

function triggerMetadata(message: DequeuedMessageItem, queueText: string): Record<string, RpcTypedData> {
  return {
    QueueTrigger: { string: queueText },
    Id: { string: message.messageId },
    DequeueCount: { int: message.dequeueCount },
    InsertionTime: { string: message.insertedOn.toISOString() },
    ExpirationTime: { string: message.expiresOn.toISOString() },
    NextVisibleTime: { string: message.nextVisibleOn.toISOString() },
    PopReceipt: { string: message.popReceipt },
  };
}

export class QueueListener {
  private readonly queue: QueueClient;
  private readonly poisonQueue: QueueClient;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private poisonQueueReady: Promise<unknown> | undefined;
  private lastErrorLog = 0;

  constructor(private readonly options: QueueListenerOptions) {
    const service = QueueServiceClient.fromConnectionString(options.connectionString);
    this.queue = service.getQueueClient(options.queueName);
    this.poisonQueue = service.getQueueClient(`${options.queueName}-poison`);
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops receiving, then waits for messages already being processed (graceful drain). */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    await Promise.allSettled([...this.inFlight]);
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }

  private logStorageError(what: string, err: unknown): void {
    const now = Date.now();
    if (now - this.lastErrorLog < ERROR_LOG_INTERVAL_MS) return;
    this.lastErrorLog = now;
    this.options.log(LOG_CATEGORY, 'Warning', `[${new Date().toISOString()}] ${this.options.fn.metadata.name} WARN: ${what} on queue '${this.options.queueName}' failed: ${(err as Error).message}`);
  }

  private async run(): Promise<void> {
    const { batchSize, newBatchThreshold, maxPollingIntervalMs } = this.options.settings;
    await this.ensureQueue();
    let idleDelay = MIN_POLLING_INTERVAL_MS;
    while (!this.stopped) {
      if (this.inFlight.size > newBatchThreshold) {
        await Promise.race([...this.inFlight, this.pause(maxPollingIntervalMs)]);
        continue;
      }
      let messages: DequeuedMessageItem[];
      try {
        const response = await this.queue.receiveMessages({ numberOfMessages: batchSize, visibilityTimeout: PROCESSING_VISIBILITY_S });
        messages = response.receivedMessageItems;
      } catch (err) {
        this.logStorageError('receive', err);
        await this.pause(maxPollingIntervalMs);
        // The queue can vanish (an in-memory Azurite restarted, someone deleted it): create it again.
        if ((err as { statusCode?: number }).statusCode === 404) await this.ensureQueue();
        continue;
      }
      if (messages.length > 0) {
        idleDelay = MIN_POLLING_INTERVAL_MS;
        for (const message of messages) this.track(this.process(message));
        continue; // found work: poll again at once (subject to newBatchThreshold)
      }
      // Randomised exponential backoff, as the Functions host does: idle listeners do not poll in step (a host
      // with many queues would otherwise hit storage with all its polls at the same instant).
      await this.pause(idleDelay * (0.5 + Math.random() / 2));
      idleDelay = Math.min(maxPollingIntervalMs, idleDelay * 2);
    }
  }

  /** The Functions host tolerates a missing queue; creating it keeps polling quiet and simple. */
  private async ensureQueue(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.queue.createIfNotExists();
        return;
      } catch (err) {
        this.logStorageError('create', err);
        await this.pause(this.options.settings.maxPollingIntervalMs);
      }
    }
  }

  private track(work: Promise<void>): void {
    const tracked = work.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private async process(message: DequeuedMessageItem): Promise<void> {
    const { fn, bindingName, settings, log, queueName } = this.options;
    let popReceipt = message.popReceipt;
    const renew = setInterval(() => {
      this.queue
        .updateMessage(message.messageId, popReceipt, message.messageText, PROCESSING_VISIBILITY_S)
        .then((r) => (popReceipt = r.popReceipt ?? popReceipt))
        .catch((err: unknown) => this.logStorageError('visibility renewal', err));
    }, VISIBILITY_RENEW_MS);
    let failed = false;
    try {
      const text = decodeMessageText(message.messageText, settings.messageEncoding);
      await invokeFunction(
        fn,
        {
          triggerBindingName: bindingName,
          triggerData: { string: text },
          triggerMetadata: triggerMetadata(message, text),
          reason: `New queue message detected on '${queueName}'.`,
        },
        log,
      );
    } catch (err) {
      failed = true;
      // invokeFunction logs handler errors itself; only a message that never reached the handler needs a line here.
      if (err instanceof MessageDecodeError) {
        log(LOG_CATEGORY, 'Error', `[${new Date().toISOString()}] ${fn.metadata.name} ERROR: message ${message.messageId}: ${err.message}`);
      }
    } finally {
      clearInterval(renew);
    }
    try {
      if (!failed) {
        await this.queue.deleteMessage(message.messageId, popReceipt);
      } else if (message.dequeueCount >= settings.maxDequeueCount) {
        await this.moveToPoison(message, popReceipt);
      } else {
        const visibilityS = Math.ceil(settings.visibilityTimeoutMs / 1000);
        await this.queue.updateMessage(message.messageId, popReceipt, message.messageText, visibilityS);
      }
    } catch (err) {
      // The message reappears when its processing visibility runs out, as in Azure.
      this.logStorageError(failed ? 'release of a failed message' : 'delete', err);
    }
  }

  private async moveToPoison(message: DequeuedMessageItem, popReceipt: string): Promise<void> {
    this.poisonQueueReady ??= this.poisonQueue.createIfNotExists().catch((err: unknown) => {
      this.poisonQueueReady = undefined;
      throw err;
    });
    await this.poisonQueueReady;
    // Same (still encoded) text, so the poison queue's own trigger decodes it the same way.
    await this.poisonQueue.sendMessage(message.messageText);
    await this.queue.deleteMessage(message.messageId, popReceipt);
    this.options.log(
      LOG_CATEGORY,
      'Warning',
      `[${new Date().toISOString()}] ${this.options.fn.metadata.name} WARN: message ${message.messageId} has reached MaxDequeueCount of ${this.options.settings.maxDequeueCount}; moved to '${this.poisonQueue.name}'`,
    );
  }
}
