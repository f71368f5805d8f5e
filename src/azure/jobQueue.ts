/**
 * The jobs queue. Messages carry only the job id (the request lives in the job record), so large prompts never
 * meet the 64 KiB queue message limit. Text is base64-encoded, matching host.json `messageEncoding: base64`:
 * @azure/storage-queue does not encode for you.
 */
import type { QueueClient } from '@azure/storage-queue';
import { storageCounters } from './storage';

/** Longest visibility delay a Storage Queue accepts: 7 days, in seconds. */
const MAX_VISIBILITY_S = 7 * 24 * 3600;

export interface JobMessage {
  id: string;
  /**
   * Sent by an idempotent replay of a job still `queued` (its first message may never have gone out). It runs the job
   * only if the job is still queued; otherwise another message already has it and this one is dropped.
   */
  replay?: true;
}

export function encodeJobMessage(msg: JobMessage): string {
  return Buffer.from(JSON.stringify(msg), 'utf8').toString('base64');
}

/** Accepts what the Functions host hands the trigger: parsed JSON, a JSON string, or a bare job id. */
export function parseJobMessage(input: unknown): JobMessage | undefined {
  if (input && typeof input === 'object' && typeof (input as JobMessage).id === 'string') {
    const m = input as JobMessage;
    return m.replay === true ? { id: m.id, replay: true } : { id: m.id };
  }
  if (typeof input === 'string') {
    const text = input.trim();
    if (text.startsWith('{')) {
      try {
        return parseJobMessage(JSON.parse(text));
      } catch {
        return undefined;
      }
    }
    if (/^[A-Za-z0-9_-]{1,128}$/.test(text)) return { id: text };
  }
  return undefined;
}

export class JobQueue {
  private ready: Promise<unknown> | undefined;

  constructor(private readonly queue: QueueClient) {}

  get name(): string {
    return this.queue.name;
  }

  ensure(): Promise<unknown> {
    this.ready ??= (storageCounters.queue++, this.queue.createIfNotExists()).catch((err) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  /** Enqueues a job id, visible after `delayMs` (rounded up to whole seconds, capped at 7 days). */
  async send(msg: JobMessage, delayMs = 0): Promise<void> {
    await this.ensure();
    const visibilityTimeout = Math.min(MAX_VISIBILITY_S, Math.max(0, Math.ceil(delayMs / 1000)));
    storageCounters.queue += 1;
    await this.queue.sendMessage(encodeJobMessage(msg), { visibilityTimeout, messageTimeToLive: -1 });
  }

  private cachedDepth: { value: number; at: number } | undefined;
  private refreshingDepth: Promise<number> | undefined;

  /**
   * Queue depth, re-read at most once per `maxAgeMs` per process (backpressure checks it on every submit). Only the
   * first call waits for storage: once a value is known, a stale one is answered at once and refreshed in the
   * background, so no submit pays for the read (issue 4: p99).
   */
  async recentDepth(maxAgeMs: number, now = Date.now()): Promise<number> {
    if (this.cachedDepth && now - this.cachedDepth.at <= maxAgeMs) return this.cachedDepth.value;
    this.refreshingDepth ??= this.depth()
      .then((value) => {
        this.cachedDepth = { value, at: Date.now() };
        return value;
      })
      .finally(() => {
        this.refreshingDepth = undefined;
      });
    if (this.cachedDepth) {
      this.refreshingDepth.catch(() => undefined); // a failed refresh keeps the last value; the next call retries
      return this.cachedDepth.value;
    }
    return this.refreshingDepth;
  }

  /** Approximate number of messages, for health and backpressure. */
  async depth(): Promise<number> {
    await this.ensure();
    storageCounters.queue += 1;
    const props = await this.queue.getProperties();
    return props.approximateMessagesCount ?? 0;
  }
}
