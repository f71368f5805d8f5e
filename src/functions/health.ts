/**
 * GET /api/v1/health. Anyone (and any member key) gets liveness only, `{"status":"ok"}`: no storage call and no
 * detail, so probes stay cheap and show an anonymous caller nothing about the deployment. An admin key gets the
 * full view: storage reachable, queue depths, configured endpoints with their breakers (never their keys).
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { deploymentRef } from '../core/routing';
import { errorBody, errorResponse, json } from '../runtime/http';
import { getServices, type Services } from '../runtime/services';

export async function health(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    const services = getServices();
    const result = await services.auth.authenticate((name) => request.headers.get(name), Date.now());
    if (!result.ok && result.code !== 'missing_credentials') {
      // Credentials that do not work are said so, as on every other route, rather than quietly served liveness.
      return json(401, errorBody(result.code, result.message), { 'www-authenticate': 'Bearer realm="sluice"' });
    }
    if (!result.ok || result.principal.role !== 'admin') return json(200, { status: 'ok' });
    return await detail(services);
  } catch (err) {
    return errorResponse(err, context);
  }
}

/** The admin view; about ten storage calls (every lane's queue depth, the poison queue, the breaker table). */
async function detail({ config, poisonQueue, health: breakers, laneQueues }: Services): Promise<HttpResponseInit> {
  let storage: { ok: boolean; error?: string } = { ok: true };
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
}

app.http('health', { methods: ['GET'], route: 'v1/health', authLevel: 'anonymous', handler: health });
