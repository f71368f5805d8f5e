/**
 * Relaying a chat-completions stream: each Server-Sent Event goes to the client as soon as it has arrived whole,
 * while the relay keeps the tally the usage row needs (tokens, finish reason, model version, time to first token).
 * The deployment is always asked for the usage chunk; the client gets it only if it asked. A stream that breaks
 * after the first byte ends with an error event in OpenAI's shape and no `[DONE]`: nothing is retried.
 */
import { countTokens } from 'gpt-tokenizer/model/gpt-4o';

export interface StreamTally {
  /** How the relay ended: the deployment finished, the client left, or the deployment's stream broke. */
  outcome: 'completed' | 'abandoned' | 'upstream_error';
  /** From the usage chunk when it arrived. */
  usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } };
  /** Completion tokens: the usage chunk's, else counted from the content received. */
  completionTokens: number;
  finishReason: string;
  /** The chunks' `model` (the deployment's model version). */
  modelVersion: string;
  /** Epoch ms the first chunk with a choice reached the client. */
  firstTokenAt?: number;
  /** The error event's message, for an upstream_error. */
  error?: string;
}

interface RelayOptions {
  includeUsage: boolean;
  now(): number;
  /** True once the client is gone (the upstream read then fails with an abort). */
  aborted(): boolean;
  /** Called once, when the relay ends however it ends; the relay's end waits for it. Must not throw. */
  onEnd(tally: StreamTally): Promise<void> | void;
}

const encoder = new TextEncoder();

interface ChunkChoice {
  index?: number;
  delta?: { content?: unknown; refusal?: unknown; tool_calls?: Array<{ function?: { arguments?: unknown } }> };
  finish_reason?: unknown;
}

/**
 * The client's side of the stream, from the deployment's bytes. Pull it to the end or `return()` it; either way
 * `onEnd` runs once with the tally.
 */
export async function* relayStream(upstream: AsyncIterable<Uint8Array>, opts: RelayOptions): AsyncGenerator<Uint8Array, void, undefined> {
  const decoder = new TextDecoder();
  const texts = new Map<number, string>();
  const reasons = new Set<string>();
  let usage: StreamTally['usage'];
  let modelVersion = '';
  let firstTokenAt: number | undefined;
  let outcome: StreamTally['outcome'] = 'abandoned';
  let error: string | undefined;
  let pending = '';
  let done = false;

  /** The event to forward (or undefined to drop it), after taking its facts into the tally. */
  const take = (event: string): string | undefined => {
    const data = event
      .split('\n')
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).trimStart())
      .join('\n');
    if (data === '[DONE]') {
      done = true;
      return event;
    }
    if (data === '') return event;
    let chunk: { model?: unknown; choices?: ChunkChoice[]; usage?: StreamTally['usage'] | null; error?: { message?: unknown } };
    try {
      chunk = JSON.parse(data);
    } catch {
      return event;
    }
    if (chunk.error) error = String(chunk.error.message ?? 'upstream error');
    if (typeof chunk.model === 'string' && chunk.model !== '') modelVersion = chunk.model;
    const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
    for (const choice of choices) {
      const i = typeof choice.index === 'number' ? choice.index : 0;
      const d = choice.delta ?? {};
      let piece = typeof d.content === 'string' ? d.content : '';
      if (typeof d.refusal === 'string') piece += d.refusal;
      for (const call of d.tool_calls ?? []) if (typeof call.function?.arguments === 'string') piece += call.function.arguments;
      if (piece) texts.set(i, (texts.get(i) ?? '') + piece);
      if (typeof choice.finish_reason === 'string') reasons.add(choice.finish_reason);
    }
    if (choices.length > 0) firstTokenAt ??= opts.now();
    if (chunk.usage) {
      usage = chunk.usage;
      // The usage chunk carries no choices: drop it unless the client asked for it.
      if (choices.length === 0 && !opts.includeUsage) return undefined;
    }
    return event;
  };

  try {
    for await (const bytes of upstream) {
      pending += decoder.decode(bytes, { stream: true }).replace(/\r\n/g, '\n');
      let cut: number;
      let out = '';
      while ((cut = pending.indexOf('\n\n')) >= 0) {
        const event = pending.slice(0, cut);
        pending = pending.slice(cut + 2);
        const forward = take(event);
        if (forward !== undefined) out += `${forward}\n\n`;
      }
      if (out) yield encoder.encode(out);
    }
    if (pending.trim() !== '') {
      const forward = take(pending);
      if (forward !== undefined) yield encoder.encode(`${forward}\n\n`);
    }
    outcome = done ? 'completed' : 'upstream_error';
    if (!done && !error) {
      error = 'the deployment ended the stream before it was complete';
      yield errorEvent(error);
    }
  } catch (err) {
    if (opts.aborted()) {
      outcome = 'abandoned';
    } else {
      outcome = 'upstream_error';
      error = `the deployment's stream broke: ${(err as Error)?.message ?? err}`;
      yield errorEvent(error);
    }
  } finally {
    // Reached on completion, on a break, and when the consumer returns early (the client left).
    if (outcome === 'abandoned' && done) outcome = 'completed';
    const counted = [...texts.values()].reduce((sum, text) => sum + countTokens(text), 0);
    const completionTokens = outcome === 'completed' && typeof usage?.completion_tokens === 'number' ? usage.completion_tokens : Math.max(counted, usage?.completion_tokens ?? 0);
    await opts.onEnd({
      outcome,
      ...(usage ? { usage } : {}),
      completionTokens,
      finishReason: [...reasons].join(','),
      modelVersion,
      ...(firstTokenAt !== undefined ? { firstTokenAt } : {}),
      ...(error !== undefined ? { error } : {}),
    });
  }
}

/** An error event as OpenAI sends one mid-stream; the official clients raise it as an APIError. */
export function errorEvent(message: string, code = 'upstream_stream_error'): Uint8Array {
  return encoder.encode(`data: ${JSON.stringify({ error: { message, type: 'server_error', param: null, code } })}\n\n`);
}
