/**
 * Noticing that the client of a streamed answer went away. With HTTP streaming on, the Functions host forwards each
 * request to an HTTP server the @azure/functions library runs in this process, tagged with the invocation id, and the
 * library gives the handler no signal when that connection drops. Node's `http.server.request.start` diagnostics
 * channel sees every request any server in the process receives, so the proxied response of an invocation can be
 * watched here: when it closes before it finished, the client is gone (the host tears the proxied request down with
 * it; so does the local host, local/host/httpStream.ts).
 */
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';

const INVOCATION_HEADER = 'x-ms-invocation-id';
const proxied = new Map<string, ServerResponse>();
let watching = false;

/** Starts watching proxied requests; idempotent. Must run before the first request arrives. */
export function watchProxiedRequests(): void {
  if (watching) return;
  watching = true;
  subscribe('http.server.request.start', (message) => {
    const { request, response } = message as { request: IncomingMessage; response: ServerResponse };
    const id = request.headers[INVOCATION_HEADER];
    if (typeof id !== 'string') return;
    proxied.set(id, response);
    response.once('close', () => {
      if (proxied.get(id) === response) proxied.delete(id);
    });
  });
}

/**
 * Aborts when the proxied response of this invocation closes before it was finished. Never aborts for an invocation
 * that was not proxied (HTTP streaming off).
 */
export function clientGone(invocationId: string): AbortSignal {
  const controller = new AbortController();
  const response = proxied.get(invocationId);
  if (!response) return controller.signal;
  if (response.destroyed && !response.writableFinished) controller.abort();
  else response.once('close', () => !response.writableFinished && controller.abort());
  return controller.signal;
}
