// Config values with defaults applied, and the small timing helpers of the latency model.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEFAULT_CONTENT_FILTER_TRIGGER,
  DEFAULT_LATENCY,
  DEFAULT_MAX_TOKENS,
  type SimulatorConfig,
} from './config';

export interface SimulatorSettings {
  latency: { firstTokenMs: number; perTokenMs: number };
  contentFilterTrigger: string;
  /** Completion tokens charged when a request names no max tokens (further capped by the context left). */
  defaultMaxTokens: number;
  /** Empty = any non-empty key accepted. */
  apiKeys: ReadonlySet<string>;
}

export function resolveSettings(config: SimulatorConfig): SimulatorSettings {
  return {
    latency: config.latency ?? { ...DEFAULT_LATENCY },
    contentFilterTrigger: config.contentFilterTrigger ?? DEFAULT_CONTENT_FILTER_TRIGGER,
    defaultMaxTokens: config.defaultMaxTokens ?? DEFAULT_MAX_TOKENS,
    apiKeys: new Set(config.apiKeys ?? []),
  };
}

/**
 * Waits until performance.now() reaches `targetMs`. Waits under 1 ms are skipped because timers
 * cannot be shorter; the schedule stays exact on average since targets are absolute.
 */
export async function delayUntil(targetMs: number): Promise<void> {
  const waitMs = targetMs - performance.now();
  if (waitMs >= 1) await sleep(waitMs);
}

export { sleep };
