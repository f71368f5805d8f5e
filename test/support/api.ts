/** Helpers for integration tests that talk to the running app over real HTTP. */
import assert from 'node:assert/strict';
import { stackKeys } from '../../local/stack';

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/**
 * One request to the app. Sends the stack's default member key unless the call sets `api-key` or
 * `authorization` itself, or passes `key: null` to send no credentials, or `key: '<another key>'`.
 */
export async function call<T = any>(baseUrl: string, path: string, init: RequestInit & { json?: unknown; key?: string | null } = {}): Promise<ApiResponse<T>> {
  const { json, key, ...rest } = init;
  const given = (rest.headers ?? {}) as Record<string, string>;
  const explicit = Object.keys(given).some((h) => /^(api-key|authorization)$/i.test(h));
  const useKey = key === undefined ? stackKeys.get(baseUrl) : key;
  const res = await fetch(`${baseUrl}${path}`, {
    ...rest,
    ...(json !== undefined ? { body: JSON.stringify(json), method: rest.method ?? 'POST' } : {}),
    headers: { ...(json !== undefined ? { 'content-type': 'application/json' } : {}), ...(!explicit && useKey ? { 'api-key': useKey } : {}), ...given },
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON; keep the text
  }
  return { status: res.status, headers: res.headers, body: body as T };
}

export function chatJob(content: string, extra: Record<string, unknown> = {}) {
  return { request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 20 }, ...extra };
}

/** Polls until `check` returns a value, or fails after `timeoutMs` (a deadline, not a timing assertion). */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits until the job reaches one of `statuses` and returns its view. */
export async function waitForJob(baseUrl: string, id: string, statuses: string[] = ['succeeded', 'failed'], timeoutMs = 60_000) {
  return eventually(`job ${id} to reach ${statuses.join('|')}`, async () => {
    const res = await call(baseUrl, `/v1/jobs/${id}`);
    return res.status === 200 && statuses.includes(res.body.status) ? res.body : undefined;
  }, timeoutMs);
}
