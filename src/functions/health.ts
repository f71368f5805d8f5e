/** GET /api/v1/health — storage reachable, queue depths, configured endpoints (never their keys). */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { deploymentRef } from '../core/routing';
import { errorResponse, json } from '../runtime/http';
import { getServices } from '../runtime/services';

export async function health(_request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const { config, poisonQueue, health: breakers, laneQueues } = getServices();
    let storage: { ok: boolean; error?: string } = { ok: true };
    // Every queue lane and the poison queue.
    const queues = [...laneQueues().map((l) => l.queue), poisonQueue];
    let depths: Record<string, number | null> = Object.fromEntries(queues.map((q) => [q.name, null]));
    try {
      const values = await Promise.all(queues.map((q) => q.depth()));
      depths = Object.fromEntries(queues.map((q, i) => [q.name, values[i]!]));
    } catch (err) {
      storage = { ok: false, error: (err as Error).message };
    }
    const iso = (t?: number) => (t === undefined ? undefined : new Date(t).toISOString());
    const breakerByKey = new Map((await breakers.snapshot().catch(() => [])).map((b) => [b.key, b]));
    const body = {
      status: storage.ok ? 'ok' : 'degraded',
      time: new Date().toISOString(),
      storage,
      queues: depths,
      endpoints: config.endpoints.map((e) => ({
        region: e.region,
        endpoint: e.endpoint,
        deployment: e.deployment,
        model: e.model,
        priority: e.priority,
        weight: e.weight,
        tpm: e.tpm,
        rpm: e.rpm,
        auth: e.auth,
        breaker: (() => {
          const b = breakerByKey.get(deploymentRef(e).key);
          return b
            ? { state: b.state, lastError: b.lastError ?? null, lastErrorAt: iso(b.lastErrorAt) ?? null, openedAt: iso(b.openedAt) ?? null, until: iso(b.until) ?? null }
            : { state: 'closed' };
        })(),
      })),
      models: config.models,
    };
    return json(storage.ok ? 200 : 503, body);
  } catch (err) {
    return errorResponse(err, context);
  }
}

app.http('health', { methods: ['GET'], route: 'v1/health', authLevel: 'anonymous', handler: health });
