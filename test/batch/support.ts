/** Helpers for the batch integration tests: a stack with fast sweeps and a generous simulator, JSONL builders. */
import { authHeaders, startStack, type RunningStack, type StackOptions } from '../../local/stack';
import type { SimulatorConfig } from '../../local/simulator/index';
import { call, eventually } from '../support/api';
import { lineJobId } from '../../src/core/batch/validate';

/** One region, zero latency, quota far above what the tests use. */
export function fastSimulator(tpm = 5_000_000): SimulatorConfig {
  return {
    regions: [{ name: 'sim-test', deployments: [{ name: 'gpt-4o-mini', model: 'gpt-4o-mini-2024-07-18', tpm, rpm: Math.max(1000, tpm / 100), contextWindow: 128_000, maxOutputTokens: 16_384 }] }],
    latency: { firstTokenMs: 0, perTokenMs: 0 },
  };
}

export async function startBatchStack(opts: StackOptions = {}): Promise<RunningStack> {
  return startStack({
    simulator: fastSimulator(),
    ...opts,
    env: { SLUICE_BATCH_SWEEP_SCHEDULE: '*/1 * * * * *', SLUICE_BATCH_LEASE_S: '5', ...opts.env },
    hostJson: { extensions: { queues: { maxPollingInterval: '00:00:00.200', visibilityTimeout: '00:00:00.500', batchSize: 32, newBatchThreshold: 16 } } },
  });
}

export interface LineSpec {
  custom_id?: string;
  content?: string;
  body?: Record<string, unknown>;
  [key: string]: unknown;
}

/**
 * The job id of a line of a batch made by these helpers: custom_id `<prefix>-<i>` sits on line i + 1 (no blank lines).
 * `team` is the uploader's team (the stack's default key: "default").
 */
export function lineJobIdOf(batchId: string, customId: string, team = 'default'): string {
  const i = Number(/-(\d+)$/.exec(customId)?.[1]);
  if (!Number.isInteger(i)) throw new Error(`custom_id ${customId} does not end in -<line index>`);
  return lineJobId({ id: batchId, team, jobIds: 2 }, customId, i + 1);
}

/** A JSONL line for /v1/chat/completions. */
export function batchLine(i: number, over: Partial<LineSpec> = {}): string {
  const { content, body, ...rest } = over;
  return JSON.stringify({
    custom_id: `req-${i}`,
    method: 'POST',
    url: '/v1/chat/completions',
    body: body ?? { model: 'gpt-4o-mini', messages: [{ role: 'user', content: content ?? `Say hello number ${i}` }], max_tokens: 16 },
    ...rest,
  });
}

export function jsonl(lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

export async function uploadText(baseUrl: string, text: string, filename = 'input.jsonl', purpose = 'batch') {
  const form = new FormData();
  form.append('purpose', purpose);
  form.append('file', new Blob([text], { type: 'application/jsonl' }), filename);
  return call(baseUrl, '/v1/files', { method: 'POST', body: form });
}

export async function createBatch(baseUrl: string, inputFileId: string, metadata?: Record<string, string>) {
  return call(baseUrl, '/v1/batches', { json: { input_file_id: inputFileId, endpoint: '/v1/chat/completions', completion_window: '24h', ...(metadata ? { metadata } : {}) } });
}

/** Waits for one of `statuses` and returns the batch view. */
export async function waitForBatch(baseUrl: string, id: string, statuses: string[], timeoutMs = 60_000) {
  return eventually(
    `batch ${id} to reach ${statuses.join('|')}`,
    async () => {
      const res = await call(baseUrl, `/v1/batches/${id}`);
      return res.status === 200 && statuses.includes(res.body.status) ? res.body : undefined;
    },
    timeoutMs,
  );
}

export async function fileText(baseUrl: string, id: string): Promise<string> {
  const res = await fetch(`${baseUrl}/v1/files/${id}/content`, { headers: authHeaders(baseUrl) });
  if (res.status !== 200) throw new Error(`content of ${id}: HTTP ${res.status}`);
  return res.text();
}

export function parseJsonl(text: string): any[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

/** Model calls the simulator answered (status 200 by default; null = any status), by Sluice job id. */
export function simCallsByJob(stack: RunningStack, status: number | null = 200): Map<string, number> {
  const calls = new Map<string, number>();
  for (const r of stack.sim?.requests() ?? []) if (r.jobId && (status === null || r.status === status)) calls.set(r.jobId, (calls.get(r.jobId) ?? 0) + 1);
  return calls;
}
