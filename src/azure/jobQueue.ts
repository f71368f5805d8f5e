/**
 * The jobs queue. Messages carry only the job id (the request lives in the job record), so large prompts never
 * meet the 64 KiB queue message limit. A batch fan-out sends group messages instead (`{ids}`, up to
 * GROUP_MESSAGE_IDS ids), one per 100 lines; the worker that takes one sends one message per id. Text is base64-encoded, matching host.json `messageEncoding: base64`:
 * @azure/storage-queue does not encode for you.
 */
import type { QueueClient } from '@azure/storage-queue';
import { forEachLimit } from '../core/batch/pool';
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

/** Ids one group message carries (~45 bytes each: far under the 64 KiB limit). */
export const GROUP_MESSAGE_IDS = 100;

/** Several jobs' ids; the worker that takes it enqueues each id as its own message. */
export interface GroupMessage {
  ids: string[];
}

const ID_TEXT = /^[A-Za-z0-9_-]{1,128}$/;

export function encodeJobMessage(msg: JobMessage | GroupMessage): string {
  return Buffer.from(JSON.stringify(msg), 'utf8').toString('base64');
}

/** Accepts what the Functions host hands the trigger: parsed JSON, a JSON string, or a bare job id. */
export function parseJobMessage(input: unknown): JobMessage | GroupMessage | undefined {
  if (input && typeof input === 'object' && typeof (input as JobMessage).id === 'string') {
    const m = input as JobMessage;
    return m.replay === true ? { id: m.id, replay: true } : { id: m.id };
  }
  if (input && typeof input === 'object' && Array.isArray((input as GroupMessage).ids)) {
    const ids = (input as GroupMessage).ids;
    return ids.length > 0 && ids.every((id) => typeof id === 'string' && ID_TEXT.test(id)) ? { ids: [...ids] } : undefined;
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
    if (ID_TEXT.test(text)) return { id: text };
  }
  return undefined;
}

/** Sends in flight while a group message is turned into one message per job. */
const GROUP_SENDS_IN_FLIGHT = 16;

/**
 * A batch fan-out's group message becomes one message per id, on the same queue. A failure part-way throws, and the
 * retry re-sends the ids already sent: duplicates are harmless, the worker's claim runs a job once.
 */
export async function expandGroup(ids: readonly string[], send: (id: string) => Promise<void>): Promise<void> {
  await forEachLimit(ids, GROUP_SENDS_IN_FLIGHT, send);
  groupStats.expandedIds += ids.length;
}

/** Ids this process has expanded from group messages (bench:batch reports when every line had its own message). */
export const groupStats = { expandedIds: 0 };

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

  /** Enqueues a job id (or a group), visible after `delayMs` (rounded up to whole seconds, capped at 7 days). */
  async send(msg: JobMessage | GroupMessage, delayMs = 0): Promise<void> {
    await this.ensure();
    const visibilityTimeout = Math.min(MAX_VISIBILITY_S, Math.max(0, Math.ceil(delayMs / 1000)));
    storageCounters.queue += 1;
    await this.queue.sendMessage(encodeJobMessage(msg), { visibilityTimeout, messageTimeToLive: -1 });
  }

  /** Approximate number of messages, for health. */
  async depth(): Promise<number> {
    await this.ensure();
    storageCounters.queue += 1;
    const props = await this.queue.getProperties();
    return props.approximateMessagesCount ?? 0;
  }
}
