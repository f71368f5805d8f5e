/**
 * What a bench needs to drive a running stack as its users do: POST with a short retry on 429/503, teams with keys
 * through the admin API, and the job records read back from the jobs table (the source of every timing figure).
 */
import { TableClient } from '@azure/data-tables';
import type { RunningStack } from '../local/stack';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** POST JSON with `key`; a 429 or 503 is tried again (up to 5 times, 500 ms apart), anything else ≥ 300 throws. */
export async function post(stack: RunningStack, key: string, path: string, body: unknown): Promise<any> {
  for (let attempt = 0; ; attempt += 1) {
    const res = await fetch(`${stack.baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'api-key': key }, body: JSON.stringify(body) });
    if (res.status < 300) return res.json();
    if (attempt >= 5 || (res.status !== 503 && res.status !== 429)) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    await sleep(500);
  }
}

/** Creates team `id` with `weight` through the admin API and returns a member key of it. */
export async function createTeamWithKey(stack: RunningStack, id: string, weight: number): Promise<string> {
  await post(stack, stack.adminKey!, '/v1/admin/teams', { id, weight });
  return (await post(stack, stack.adminKey!, `/v1/admin/teams/${id}/keys`, {})).key as string;
}

/** A job as the bench sees it: times in epoch ms; `start` is when its successful model call started (NaN if none). */
export interface JobRow {
  team: string;
  priority: string;
  status: string;
  batchId?: string;
  createdAt: number;
  start: number;
  /** Tokens charged at admission: prompt + max_tokens, as Azure counts them against TPM. */
  charge: number;
}

/** Every job record of the stack's jobs table (batch lines included), the fields the benches read. */
export async function readJobRows(stack: RunningStack, table = 'sluicejobs'): Promise<JobRow[]> {
  const client = TableClient.fromConnectionString(stack.connectionString, table, { allowInsecureConnection: true });
  const rows: JobRow[] = [];
  const select = ['team', 'priority', 'status', 'batchId', 'createdAt', 'completedAt', 'latencyMs', 'promptTokens', 'maxOutputTokens'];
  for await (const e of client.listEntities<Record<string, unknown>>({ queryOptions: { select } })) {
    const completedAt = Number(e.completedAt ?? NaN);
    rows.push({
      team: String(e.team),
      priority: String(e.priority),
      status: String(e.status),
      ...(typeof e.batchId === 'string' ? { batchId: e.batchId } : {}),
      createdAt: Number(e.createdAt),
      start: e.status === 'succeeded' ? completedAt - Number(e.latencyMs ?? 0) : NaN,
      charge: Number(e.promptTokens ?? 0) + Number(e.maxOutputTokens ?? 0),
    });
  }
  return rows;
}
