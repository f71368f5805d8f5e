// Shared by the stack tests: submit a job through the real HTTP API and wait for it to finish.
import { authHeaders } from '../../local/stack';
const DEADLINE_MS = 30_000;

export const HELLO_JOB = { request: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 50 } };

export async function submit(baseUrl: string, body: unknown = HELLO_JOB): Promise<{ status: number; id: string }> {
  const res = await fetch(`${baseUrl}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', ...authHeaders(baseUrl) }, body: JSON.stringify(body) });
  const json = (await res.json()) as { id: string };
  return { status: res.status, id: json.id };
}

export async function waitForFinalStatus(baseUrl: string, id: string, logs: () => string[]): Promise<{ status: string; region?: string }> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const job = (await (await fetch(`${baseUrl}/v1/jobs/${id}`, { headers: authHeaders(baseUrl) })).json()) as { status: string; region?: string };
    if (job.status !== 'queued' && job.status !== 'running') return job;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.status}\n${logs().slice(-40).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
