/** Shared helpers for the reliability tests: fast simulator, job rows, worker exits, model calls, log counting. */
import type { ChildProcess } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { TableClient } from '@azure/data-tables';
import { DEFAULT_SIMULATOR_CONFIG, type SimulatorConfig } from '../../local/simulator';
import type { RunningStack } from '../../local/stack';

/** No artificial latency and room for every test job, so only the injected faults shape the run. */
export const fastSim: SimulatorConfig = {
  ...DEFAULT_SIMULATOR_CONFIG,
  latency: { firstTokenMs: 0, perTokenMs: 0 },
  regions: DEFAULT_SIMULATOR_CONFIG.regions.map((r) => ({
    ...r,
    port: 0,
    deployments: r.deployments.map((d) => ({ ...d, tpm: 1_000_000, rpm: 60_000 })),
  })),
  adminPort: 0,
};

/** Short polling so a visible message is picked up within a quarter second. */
export const fastQueues = { extensions: { queues: { maxPollingInterval: '00:00:00.250', visibilityTimeout: '00:00:01' } } };

/** The job's row as the worker wrote it (status and claim are not all in the API view). */
export async function jobRow(stack: RunningStack, id: string): Promise<{ status: string; claimUntil?: number; completedAt?: number }> {
  const table = TableClient.fromConnectionString(stack.connectionString, stack.env.SLUICE_JOBS_TABLE ?? 'sluicejobs', { allowInsecureConnection: true });
  const e = await table.getEntity<Record<string, unknown>>(id, '');
  return {
    status: String(e.status),
    claimUntil: typeof e.claimUntil === 'number' && e.claimUntil > 0 ? e.claimUntil : undefined,
    completedAt: typeof e.completedAt === 'number' ? e.completedAt : undefined,
  };
}

/**
 * Resolves with the signal (or exit code) once the process has exited; fails after `deadlineMs`, a deadline that only
 * fails the test if the process never exits.
 */
export function exited(child: ChildProcess, deadlineMs = 60_000): Promise<string> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(String(child.signalCode ?? child.exitCode));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} did not exit within ${deadlineMs} ms`)), deadlineMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(String(signal ?? code));
    });
  });
}

/**
 * Resolves when the simulator (it runs in this process) receives a model call for `jobId`: the moment the call is in
 * flight. Node's http diagnostics channel reports each request as it arrives, before the simulator handles it. The
 * deadline only fails the test if no call comes.
 */
export function modelCallArrives(jobId: string, deadlineMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe('http.server.request.start', onStart);
      reject(new Error(`no model call for ${jobId} within ${deadlineMs} ms`));
    }, deadlineMs);
    const onStart = (message: unknown) => {
      const request = (message as { request: IncomingMessage }).request;
      if (request.headers['x-sluice-job-id'] !== jobId) return;
      clearTimeout(timer);
      unsubscribe('http.server.request.start', onStart);
      resolve();
    };
    subscribe('http.server.request.start', onStart);
  });
}

/** Starts one worker process with extra environment (e.g. the test-only crash fault). */
export function startWorkerWith(stack: RunningStack, env: Record<string, string>): ChildProcess {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return stack.startWorker();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Worker deliveries that ended the job (the finished-job line `[job=<id>] succeeded|failed team=...`), across every process. */
export function endings(stack: RunningStack, id: string): string[] {
  return stack.logs().filter((l) => l.includes(`[job=${id}] succeeded `) || l.includes(`[job=${id}] failed `));
}

/** Model calls the simulator answered for a job, by status. */
export function callsOf(stack: RunningStack, id: string): { ok: number; all: number; statuses: number[] } {
  const calls = stack.sim!.requests().filter((r) => r.jobId === id);
  return { ok: calls.filter((r) => r.status === 200).length, all: calls.length, statuses: calls.map((r) => r.status) };
}
