/**
 * Team queues through the real path (HTTP → team queue → dispatcher → jobs queue → worker → storage): a dozen teams
 * in one queue lane, one of them flooding a small deployment with batch jobs. Every other team's job, interactive or
 * batch, runs while the flood still waits in its own team queue, and the jobs queue the workers drain holds only what the quota can start
 * soon, not the flood.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { QueueClient } from '@azure/storage-queue';
import { startStack, type RunningStack } from '../../local/stack';
import { call, chatJob, eventually } from '../support/api';

/** 2 requests a second: 240 flood jobs take two minutes to run. */
const SIMULATOR = {
  regions: [{ name: 'sim-teams', deployments: [{ name: 'gpt-4o-mini', model: 'gpt-4o-mini-2024-07-18', kind: 'chat' as const, tpm: 6_000, rpm: 120, contextWindow: 128_000, maxOutputTokens: 16_384 }] }],
  latency: { firstTokenMs: 20, perTokenMs: 0 },
};
const FLOOD = 240;
const TEAMS = 12;
/** The dispatcher's depth cap here: 20 s of 2 jobs a second (at least 32). */
const MAX_DEPTH = 40;

let stack: RunningStack;

before(async () => {
  stack = await startStack({ workers: 1, simulator: SIMULATOR, hostJson: { extensions: { queues: { maxPollingInterval: '00:00:00.250' } } } });
});

after(async () => {
  await stack?.stop();
});

async function teamWithKey(id: string): Promise<string> {
  const admin = { key: stack.adminKey! };
  const created = await call(stack.baseUrl, '/v1/admin/teams', { ...admin, json: { id, lane: 0 } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const key = await call(stack.baseUrl, `/v1/admin/teams/${id}/keys`, { ...admin, json: {} });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  return key.body.key as string;
}

async function jobsQueueDepth(): Promise<number> {
  let n = 0;
  for (const name of ['sluice-jobs', 'sluice-jobs-batch']) {
    const props = await new QueueClient(stack.azurite.connectionString, name).getProperties().catch(() => undefined);
    n += props?.approximateMessagesCount ?? 0;
  }
  return n;
}

test("a dozen teams in one lane: one team's flood waits in its own queue, every other team's job runs", async () => {
  const floodKey = await teamWithKey('flood');
  const keys = await Promise.all(Array.from({ length: TEAMS - 1 }, (_, i) => teamWithKey(`team-${i}`)));
  const flood: string[] = [];
  for (let i = 0; i < FLOOD; i += 1) {
    const res = await call(stack.baseUrl, '/v1/jobs', { key: floodKey, json: chatJob(`flood ${i}`, { priority: 'batch' }) });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    flood.push(res.body.id as string);
  }
  const depths: number[] = [];
  const others = await Promise.all(
    keys.map(async (key, i) => {
      const res = await call(stack.baseUrl, '/v1/jobs', { key, json: chatJob(`team ${i}`, { priority: i % 2 === 0 ? 'interactive' : 'batch' }) });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      depths.push(await jobsQueueDepth());
      const id = res.body.id as string;
      return eventually(`team ${i}'s job ${id} to end`, async () => {
        const job = await call(stack.baseUrl, `/v1/jobs/${id}`, { key });
        return job.body.status === 'succeeded' || job.body.status === 'failed' ? job.body : undefined;
      }, 90_000);
    }),
  );
  for (const job of others) assert.equal(job.status, 'succeeded', JSON.stringify(job));
  depths.push(await jobsQueueDepth());
  let floodDone = 0;
  for (const id of flood.slice(-60)) {
    const res = await call(stack.baseUrl, `/v1/jobs/${id}`, { key: floodKey });
    if (res.body.status === 'succeeded' || res.body.status === 'failed') floodDone += 1;
  }
  assert.ok(floodDone < 60, 'the flood was still waiting when every other team had its answer');
  assert.ok(Math.max(...depths) <= MAX_DEPTH + TEAMS, `the jobs queue stayed shallow: ${depths.join(', ')} messages`);
});
