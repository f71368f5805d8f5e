/** What the worker needs from Azure OpenAI: one chat call against one deployment. */
import type { EndpointSettings } from './endpoints';

export interface ModelCallResult {
  /** The chat.completion object exactly as the endpoint returned it. */
  body: Record<string, unknown>;
  status: number;
  header(name: string): string | null;
}

export interface ModelCallOptions {
  jobId: string;
  attempt: number;
  /** Per-call timeout, ms. */
  timeoutMs: number;
}

export interface ModelClient {
  /** Sends one chat-completions request. Throws a SluiceError (core/errors.ts) for any non-2xx or transport failure. */
  chat(target: EndpointSettings, body: Record<string, unknown>, opts: ModelCallOptions): Promise<ModelCallResult>;
}
