/**
 * Model calls in flight at the simulator, which runs in the test process: Node's http diagnostics channels report each
 * request the simulator receives and each response it ends. Import this module before the calls start.
 */
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { eventually } from './api';

const inFlight = new Set<IncomingMessage>();

subscribe('http.server.request.start', (message: unknown) => {
  const { request, response } = message as { request: IncomingMessage; response: ServerResponse };
  if (!request.headers['x-sluice-job-id']) return;
  inFlight.add(request);
  // After the simulator's own 'close' listener has logged the call.
  response.once('close', () => setImmediate(() => inFlight.delete(request)));
});

/**
 * Resolves once no model call is in flight: every call started so far has been answered (or cut) and logged by the
 * simulator. The deadline only fails the test if calls never stop.
 */
export async function modelCallsSettled(timeoutMs = 60_000): Promise<void> {
  await eventually('no model call in flight', async () => inFlight.size === 0, timeoutMs, 50);
}
