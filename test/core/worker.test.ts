import { test } from 'node:test';
import assert from 'node:assert/strict';
import { processJob, type WorkerDeps } from '../../src/core/worker';
import { FinalModelError, RateLimitedError, UpstreamUnavailableError } from '../../src/core/errors';
import { UnlimitedBudget, type BudgetGate } from '../../src/core/budget/gate';
import type { ModelClient } from '../../src/core/modelClient';
import type { EndpointSettings } from '../../src/core/endpoints';
import { ManualClock, MemoryJobs, newJob } from '../support/fakes';
import { toJobView } from '../../src/core/jobs';

/** How one delivery ended. */
const outcome = async (...args: Parameters<typeof processJob>) => (await processJob(...args)).outcome;

const endpoint = (region: string, priority: number): EndpointSettings => ({
  region, endpoint: `http://${region}.test`, deployment: 'gpt-4o-mini', model: 'gpt-4o-mini', priority, weight: 1, tpm: 1000, rpm: 6, auth: 'key', apiKey: 'k',
});

function setup(model: ModelClient, budget: BudgetGate = new UnlimitedBudget(), endpoints = [endpoint('east', 1), endpoint('west', 2)]) {
  const jobs = new MemoryJobs();
  const clock = new ManualClock();
  const requeued: Array<{ id: string; delayMs: number }> = [];
  const finished: string[] = [];
  const deps: WorkerDeps = {
    jobs, model, budget, endpoints, clock,
    requeue: async (id, delayMs) => void requeued.push({ id, delayMs }),
    settings: { callTimeoutMs: 1000, maxRetryDelayMs: 60_000, holdInProcessMs: 2000, maxTransientFailures: 3 },
    random: () => 0.5,
    onFinished: [async (job) => void finished.push(job.status)],
  };
  const job = newJob();
  jobs.put(job);
  return { deps, jobs, clock, requeued, finished, job };
}

const okBody = { id: 'chatcmpl-1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop' }], usage: { prompt_tokens: 8, completion_tokens: 1, total_tokens: 9 } };

test('a job succeeds, storing the response exactly, the region and usage', async () => {
  const calls: string[] = [];
  const s = setup({ chat: async (t) => (calls.push(t.region), { body: okBody, status: 200, header: () => null }) });
  const result = await processJob(s.deps, s.job.id);
  assert.equal(result.outcome, 'succeeded');
  const stored = s.jobs.peek(s.job.id);
  assert.deepEqual(result.finished, stored, 'the stored end is handed back (the host logs it)');
  assert.equal(stored.status, 'succeeded');
  assert.deepEqual(stored.response, okBody);
  assert.equal(stored.region, 'east');
  assert.equal(stored.attempts, 1);
  assert.equal(stored.claimId, undefined);
  assert.deepEqual(calls, ['east']);
  assert.deepEqual(s.finished, ['succeeded']);
});

test('a queued job of a disabled or stopped team ends failed with the team code and no model call', async () => {
  let calls = 0;
  for (const code of ['team_disabled', 'team_budget_exceeded']) {
    const s = setup({ chat: async () => (calls++, { body: okBody, status: 200, header: () => null }) });
    const asked: string[] = [];
    s.deps.teamLimit = (team) => (asked.push(team), { code, message: `team ${team} may not run work` });
    const result = await processJob(s.deps, s.job.id);
    assert.equal(result.outcome, 'failed');
    const stored = s.jobs.peek(s.job.id);
    assert.deepEqual([stored.status, stored.error?.code], ['failed', code]);
    assert.deepEqual(asked, [s.job.team]);
    assert.deepEqual(s.finished, ['failed'], 'finished hooks run (batch markers, reply_to, usage)');
    assert.deepEqual(s.requeued, [], 'nothing is parked or retried');
  }
  assert.equal(calls, 0);
  const s = setup({ chat: async () => (calls++, { body: okBody, status: 200, header: () => null }) });
  s.deps.teamLimit = () => undefined;
  assert.equal(await outcome(s.deps, s.job.id), 'succeeded', 'a team that may work runs as before');
});

test('a finished job is acknowledged without a second model call', async () => {
  let calls = 0;
  const s = setup({ chat: async () => (calls++, { body: okBody, status: 200, header: () => null }) });
  await outcome(s.deps, s.job.id);
  assert.equal(await outcome(s.deps, s.job.id), 'already-finished');
  assert.equal(calls, 1);
});

test('a replay message runs a job that is still queued, and is dropped (not deferred) once the job has moved on', async () => {
  let calls = 0;
  const model: ModelClient = { chat: async () => (calls++, { body: okBody, status: 200, header: () => null }) };
  const queued = setup(model);
  assert.equal(await outcome(queued.deps, queued.job.id, { replay: true }), 'succeeded', 'a stranded row runs on its replay message');
  assert.equal(calls, 1);

  for (const status of ['running', 'waiting'] as const) {
    const s = setup(model);
    s.jobs.put({ ...s.job, status, claimId: status === 'running' ? 'c1' : undefined, claimUntil: status === 'running' ? s.clock.t + 60_000 : undefined });
    assert.equal(await outcome(s.deps, s.job.id, { replay: true }), 'duplicate', status);
    assert.deepEqual(s.requeued, [], `${status}: nothing re-enqueued`);
    assert.equal(s.jobs.peek(s.job.id).status, status, `${status}: the job is untouched`);
  }
  assert.equal(calls, 1);
});

test('a final 400 fails the job with its code and never fails over', async () => {
  const regions: string[] = [];
  const s = setup({ chat: async (t) => { regions.push(t.region); throw new FinalModelError('content_filter', 'filtered'); } });
  assert.equal(await outcome(s.deps, s.job.id), 'failed');
  assert.deepEqual(s.jobs.peek(s.job.id).error, { code: 'content_filter', message: 'filtered' });
  assert.deepEqual(regions, ['east']);
});

test('a 429 everywhere parks the job as waiting with Retry-After, re-enqueued, no failure', async () => {
  const s = setup({ chat: async () => { throw new RateLimitedError('slow down', 30_000); } });
  assert.equal(await outcome(s.deps, s.job.id), 'waiting');
  const stored = s.jobs.peek(s.job.id);
  assert.equal(stored.status, 'waiting');
  assert.equal(stored.throttles, 2);
  assert.equal(stored.notBefore, s.clock.t + 30_000);
  assert.deepEqual(s.requeued, [{ id: s.job.id, delayMs: 30_000 }]);
  assert.equal(stored.claimId, undefined, 'the claim is released while waiting');
});

test('a 503 on the primary fails over to the secondary in the same delivery', async () => {
  const s = setup({ chat: async (t) => { if (t.region === 'east') throw new UpstreamUnavailableError('upstream_503', 'down'); return { body: okBody, status: 200, header: () => null }; } });
  assert.equal(await outcome(s.deps, s.job.id), 'succeeded');
  const stored = s.jobs.peek(s.job.id);
  assert.equal(stored.region, 'west');
  assert.deepEqual(stored.regionsTried.map((r) => `${r.region}:${r.outcome}`), ['east:upstream_503', 'west:ok']);
});

test('persistent 5xx ends the job failed after the configured number of transient failures', async () => {
  const s = setup({ chat: async () => { throw new UpstreamUnavailableError('upstream_500', 'boom'); } });
  let ended = await outcome(s.deps, s.job.id);
  while (ended === 'waiting') ended = await outcome(s.deps, s.job.id);
  assert.equal(ended, 'failed');
  assert.equal(s.jobs.peek(s.job.id).error?.code, 'upstream_500');
  assert.ok(s.jobs.peek(s.job.id).transientFailures! >= 3);
});

test('no budget: short waits are held in-process, long waits park the job', async () => {
  let asks = 0;
  const budget: BudgetGate = {
    admit: async (_t, _n, _p, now) => (++asks <= 2 ? { granted: false, retryAt: now + 1500, reason: 'tokens' } : { granted: true }),
    observe: async () => {},
  };
  const s = setup({ chat: async () => ({ body: okBody, status: 200, header: () => null }) }, budget, [endpoint('east', 1)]);
  assert.equal(await outcome(s.deps, s.job.id), 'succeeded');
  assert.equal(s.requeued.length, 0);

  const never: BudgetGate = { admit: async (_t, _n, _p, now) => ({ granted: false, retryAt: now + 20_000, reason: 'tokens' }), observe: async () => {} };
  const s2 = setup({ chat: async () => assert.fail('must not call the model without budget') }, never, [endpoint('east', 1)]);
  assert.equal(await outcome(s2.deps, s2.job.id), 'waiting');
  assert.equal(s2.jobs.peek(s2.job.id).notBefore, s2.clock.t + 20_000);
  assert.deepEqual(s2.requeued, [{ id: s2.job.id, delayMs: 20_000 }]);
});

test('a hold longer than a moment shows the job waiting with its estimated start, and running again at the call', async () => {
  const seen: Array<{ status: unknown; start: unknown }> = [];
  let s: ReturnType<typeof setup>;
  let asks = 0;
  const budget: BudgetGate = {
    admit: async (_t, _n, _p, now) => {
      const view = toJobView(s.jobs.peek(s.job.id));
      seen.push({ status: view.status, start: view.estimated_start_at });
      return ++asks === 1 ? { granted: false, retryAt: now + 8_000, reason: 'tokens' } : { granted: true };
    },
    observe: async () => {},
  };
  s = setup(
    {
      chat: async () => {
        const view = toJobView(s.jobs.peek(s.job.id));
        seen.push({ status: view.status, start: view.estimated_start_at });
        return { body: okBody, status: 200, header: () => null };
      },
    },
    budget,
    [endpoint('east', 1)],
  );
  s.deps.settings.holdInProcessMs = 30_000;
  const t0 = s.clock.t;
  assert.equal(await outcome(s.deps, s.job.id), 'succeeded');
  assert.equal(s.requeued.length, 0, 'held, not parked');
  assert.deepEqual(seen, [
    { status: 'running', start: null },
    { status: 'waiting', start: new Date(t0 + 8_000).toISOString() },
    { status: 'running', start: null },
  ]);
  assert.equal(s.jobs.peek(s.job.id).notBefore, undefined);
});

test('shutdown ends a hold: the job is parked with its estimated start', async () => {
  let stopping = false;
  const budget: BudgetGate = { admit: async (_t, _n, _p, now) => ({ granted: false, retryAt: now + 20_000, reason: 'tokens' }), observe: async () => {} };
  const s = setup({ chat: async () => assert.fail('no budget, no call') }, budget, [endpoint('east', 1)]);
  s.deps.settings.holdInProcessMs = 30_000;
  s.deps.stopping = () => stopping;
  const sleep = s.clock.sleep;
  s.clock.sleep = async (ms) => {
    await sleep(ms);
    if (s.clock.t >= 1_700_000_003_000) stopping = true;
  };
  const t0 = s.clock.t;
  assert.equal(await outcome(s.deps, s.job.id), 'waiting');
  assert.ok(s.clock.t - t0 <= 4_000, 'the hold ended within a second of the stop');
  assert.equal(s.jobs.peek(s.job.id).status, 'waiting');
  assert.equal(s.requeued.length, 1);
});

test('a job claimed by a live worker is deferred until the claim runs out; an expired claim is taken over', async () => {
  const s = setup({ chat: async () => ({ body: okBody, status: 200, header: () => null }) });
  s.jobs.put({ ...s.job, status: 'running', claimId: 'other', claimUntil: s.clock.t + 5000 });
  assert.equal(await outcome(s.deps, s.job.id), 'claimed-elsewhere');
  assert.deepEqual(s.requeued, [{ id: s.job.id, delayMs: 6000 }]);
  s.clock.t += 6000;
  assert.equal(await outcome(s.deps, s.job.id), 'succeeded');
});

test('a Retry-After over the cap opens no day-long budget pause (the breaker handles it); a short one is passed on', async () => {
  const pauses: Array<number | undefined> = [];
  const budget: BudgetGate = { admit: async () => ({ granted: true }), observe: async (_t, signal) => void pauses.push(signal.retryAfterMs) };
  let calls = 0;
  const s = setup({ chat: async () => { calls += 1; if (calls === 1) throw new RateLimitedError('daily quota', 86_400_000); if (calls === 2) throw new RateLimitedError('busy', 3_000); return { body: okBody, status: 200, header: () => null }; } }, budget);
  await outcome(s.deps, s.job.id);
  assert.deepEqual(pauses.slice(0, 2), [1_000, 3_000]);
});

test('a report that throws after the model answered never costs a second model call', async () => {
  const hiccup = () => { throw new Error('table hiccup'); };
  const failing: Record<string, (deps: WorkerDeps) => void> = {
    'the breaker report': (deps) => { deps.health = { check: async () => 'closed', report: async (_r, outcome) => { if (outcome.ok) hiccup(); }, retryAt: () => undefined, snapshot: async () => [] }; },
    'the quota observation': (deps) => { deps.budget = { admit: async () => ({ granted: true }), observe: async () => hiccup() }; },
    'the model-call telemetry': (deps) => { deps.onModelCall = hiccup; },
  };
  for (const [what, breakIt] of Object.entries(failing)) {
    const regions: string[] = [];
    const warnings: string[] = [];
    const s = setup({ chat: async (t) => (regions.push(t.region), { body: okBody, status: 200, header: () => null }) });
    breakIt(s.deps);
    s.deps.log = (level, message) => void (level === 'warn' && warnings.push(message));
    const result = await outcome(s.deps, s.job.id);
    assert.deepEqual(regions, ['east'], `${what}: one model call`);
    assert.equal(result, 'succeeded', what);
    const stored = s.jobs.peek(s.job.id);
    assert.equal(stored.status, 'succeeded', what);
    assert.deepEqual(stored.response, okBody, what);
    assert.deepEqual(stored.regionsTried.map((r) => r.outcome), ['ok'], what);
    assert.ok(warnings.some((w) => w.includes('table hiccup')), `${what}: logged as a warning`);
  }
});

test('a result that cannot be saved is thrown for the host to retry, and the retry makes no second model call', async () => {
  let calls = 0;
  const s = setup({ chat: async () => (calls++, { body: okBody, status: 200, header: () => null }) });
  const replace = s.jobs.replace.bind(s.jobs);
  let failNextSave = true;
  s.jobs.replace = async (job, etag) => {
    if (job.status === 'succeeded' && failNextSave) {
      failNextSave = false;
      throw new Error('connection reset while saving');
    }
    return replace(job, etag);
  };
  await assert.rejects(processJob(s.deps, s.job.id), /connection reset while saving/);
  assert.equal(calls, 1, 'the failed save is not taken for an upstream failure');
  assert.equal(s.jobs.peek(s.job.id).status, 'running', 'the claim still holds the job');
  // The host's retry of the message finds the job under this delivery's claim: deferred, not called again.
  assert.equal(await outcome(s.deps, s.job.id, { dequeueCount: 2 }), 'claimed-elsewhere');
  assert.equal(calls, 1);
});

test('a save that meets a brief storage outage is retried in place; a failing finished hook is only a warning', async () => {
  let calls = 0;
  const warnings: string[] = [];
  const s = setup({ chat: async () => (calls++, { body: okBody, status: 200, header: () => null }) });
  const replace = s.jobs.replace.bind(s.jobs);
  let outages = 2;
  s.jobs.replace = async (job, etag) => {
    if (job.status === 'succeeded' && outages > 0) {
      outages -= 1;
      throw new Error('storage unreachable');
    }
    return replace(job, etag);
  };
  s.deps.isStorageOutage = () => true;
  s.deps.onFinished = [async () => { throw new Error('usage table hiccup'); }, ...(s.deps.onFinished ?? [])];
  s.deps.log = (level, message) => void (level === 'warn' && warnings.push(message));
  assert.equal(await outcome(s.deps, s.job.id), 'succeeded');
  assert.equal(calls, 1);
  assert.equal(s.jobs.peek(s.job.id).status, 'succeeded');
  assert.ok(warnings.some((w) => w.includes('usage table hiccup')));
  assert.deepEqual(s.finished, ['succeeded'], 'the other hooks still ran');
});
