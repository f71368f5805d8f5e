#!/usr/bin/env node
/**
 * `sluice` — submit and follow batches and jobs on a Sluice deployment.
 *   sluice batch submit prompts.jsonl [--model gpt-4o-mini] [--wait]
 *   sluice batch status|cancel <id>      sluice batch results <id> -o out.jsonl [-e errors.jsonl]
 *   sluice jobs submit --model m --prompt "…"      sluice jobs get <id>
 *   sluice teams list|create <id>|update <id>     sluice keys list|create|revoke <team> [key id]   (admin key)
 *   sluice bootstrap --team <id>                  (first admin key, straight to storage: see README "Teams")
 * Server: --url, else SLUICE_URL, else http://127.0.0.1:7071/api. Key: --api-key, else SLUICE_API_KEY.
 */
import { createReadStream, createWriteStream, mkdtempSync, openAsBlob, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { Command, Option } from 'commander';
import { SingleBar } from 'cli-progress';

const DEFAULT_URL = 'http://127.0.0.1:7071/api';

/** A failure worth a clear one-line message and an exit code, not a stack trace. */
class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

interface Globals {
  url: string;
  apiKey?: string;
}

async function request(g: Globals, path: string, init: RequestInit = {}): Promise<Response> {
  const url = `${g.url.replace(/\/$/, '')}${path}`;
  let res: Response;
  try {
    res = await fetch(url, { ...init, headers: { ...(g.apiKey ? { 'api-key': g.apiKey } : {}), ...(init.headers as Record<string, string>) } });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new CliError(`cannot reach Sluice at ${g.url} (${cause?.code ?? cause?.message ?? (err as Error).message}). Is it running? Set --url or SLUICE_URL.`, 2);
  }
  if (!res.ok) {
    const text = await res.text();
    let message = text;
    try {
      const body = JSON.parse(text) as { error?: { message?: string; code?: string } };
      message = `${body.error?.code ?? 'error'}: ${body.error?.message ?? text}`;
    } catch {
      // not JSON
    }
    const hint = res.status === 401 ? ' (set --api-key or SLUICE_API_KEY)' : '';
    throw new CliError(`${init.method ?? 'GET'} ${path} failed: HTTP ${res.status} ${message}${hint}`);
  }
  return res;
}

async function getJson<T = any>(g: Globals, path: string, init: RequestInit = {}): Promise<T> {
  return (await (await request(g, path, init)).json()) as T;
}

const postJson = (g: Globals, path: string, body: unknown) =>
  getJson(g, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/**
 * Checks the file line by line before uploading (JSON, custom_id present and unique) and, with --model, writes a
 * copy whose every body.model is replaced. Returns the path to upload.
 */
async function prepareFile(path: string, model: string | undefined, tmp: string): Promise<{ path: string; lines: number }> {
  const errors: string[] = [];
  const seen = new Map<string, number>();
  const out = model ? createWriteStream(join(tmp, basename(path))) : undefined;
  let lineNo = 0;
  let requests = 0;
  let input: ReturnType<typeof createInterface>;
  try {
    const stream = createReadStream(path);
    await new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject));
    input = createInterface({ input: stream, crlfDelay: Infinity });
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  for await (const text of input) {
    lineNo += 1;
    if (text.trim() === '') continue;
    requests += 1;
    let line: { custom_id?: unknown; body?: Record<string, unknown> };
    try {
      line = JSON.parse(text);
    } catch (err) {
      errors.push(`line ${lineNo}: not valid JSON (${(err as Error).message})`);
      continue;
    }
    if (typeof line.custom_id !== 'string' || line.custom_id === '') errors.push(`line ${lineNo}: custom_id is missing`);
    else if (seen.has(line.custom_id)) errors.push(`line ${lineNo}: custom_id "${line.custom_id}" already used on line ${seen.get(line.custom_id)}`);
    else seen.set(line.custom_id, lineNo);
    if (!line.body || typeof line.body !== 'object') errors.push(`line ${lineNo}: body is missing`);
    if (out && !out.write(`${JSON.stringify({ ...line, body: { ...line.body, model } })}\n`)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  if (out) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  if (requests === 0) errors.push('the file has no requests');
  if (errors.length) {
    const shown = errors.slice(0, 20).join('\n  ');
    throw new CliError(`${path} is not a valid batch file (${errors.length} problem${errors.length > 1 ? 's' : ''}):\n  ${shown}${errors.length > 20 ? `\n  … and ${errors.length - 20} more` : ''}`);
  }
  return { path: out ? join(tmp, basename(path)) : path, lines: requests };
}

const TERMINAL = new Set(['completed', 'failed', 'expired', 'cancelled']);

function printBatchErrors(batch: any): void {
  for (const e of (batch.errors?.data ?? []).slice(0, 50)) console.error(`  line ${e.line ?? '-'}: ${e.code}: ${e.message}`);
}

/** Polls with a live bar (done / total, completed, failed, rate, ETA) until the batch ends. */
async function follow(g: Globals, id: string, intervalMs: number): Promise<any> {
  const bar = new SingleBar({
    format: ' {bar} {percentage}% | {value}/{total} | ok {completed} failed {failed} | {rate}/s | ETA {eta_formatted} | {status}',
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 5000,
    etaBuffer: 20,
  });
  const started = Date.now();
  let batch = await getJson(g, `/v1/batches/${id}`);
  bar.start(Math.max(1, batch.request_counts.total), 0, { completed: 0, failed: 0, rate: '0.0', status: batch.status });
  for (;;) {
    const { total, completed, failed } = batch.request_counts;
    const done = completed + failed;
    bar.setTotal(Math.max(1, total));
    bar.update(done, { completed, failed, status: batch.status, rate: (done / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(1) });
    if (TERMINAL.has(batch.status)) break;
    await new Promise((r) => setTimeout(r, intervalMs));
    batch = await getJson(g, `/v1/batches/${id}`);
  }
  bar.stop();
  return batch;
}

function summary(batch: any): string {
  const c = batch.request_counts;
  return `${batch.id} ${batch.status}: ${c.completed} completed, ${c.failed} failed of ${c.total}` +
    (batch.output_file_id ? `; output ${batch.output_file_id}` : '') + (batch.error_file_id ? `; errors ${batch.error_file_id}` : '');
}

async function download(g: Globals, fileId: string, to: string): Promise<void> {
  const res = await request(g, `/v1/files/${fileId}/content`);
  await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), createWriteStream(to));
}

export function buildProgram(): Command {
  const program = new Command('sluice').description('Submit and follow batches and jobs on Sluice').showHelpAfterError();
  program.addOption(new Option('--url <url>', 'Sluice API base URL').env('SLUICE_URL').default(DEFAULT_URL));
  program.addOption(new Option('--api-key <key>', 'Sluice API key (never printed)').env('SLUICE_API_KEY'));
  const globals = (): Globals => {
    const o = program.opts<{ url: string; apiKey?: string }>();
    return { url: o.url, ...(o.apiKey ? { apiKey: o.apiKey } : {}) };
  };

  const batch = program.command('batch').description('OpenAI-format batch files');
  batch
    .command('submit <file>')
    .description('check and upload a JSONL batch file, create the batch')
    .option('--model <model>', "override every line's body.model")
    .option('--team <team>', 'metadata.team (cost attribution)')
    .option('--wait', 'follow progress until the batch ends', false)
    .option('--interval <ms>', 'poll interval with --wait', (v) => Number(v), 1000)
    .action(async (file: string, opts: { model?: string; team?: string; wait: boolean; interval: number }) => {
      const g = globals();
      const tmp = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
      try {
        const prepared = await prepareFile(file, opts.model, tmp);
        const form = new FormData();
        form.append('purpose', 'batch');
        form.append('file', await openAsBlob(prepared.path), basename(file)); // streamed from disk
        const uploaded = await getJson(g, '/v1/files', { method: 'POST', body: form });
        const created = await postJson(g, '/v1/batches', {
          input_file_id: uploaded.id,
          endpoint: '/v1/chat/completions',
          completion_window: '24h',
          ...(opts.team ? { metadata: { team: opts.team } } : {}),
        });
        console.log(`uploaded ${uploaded.id} (${prepared.lines} requests); batch ${created.id} ${created.status}`);
        if (!opts.wait) return;
        const end = await follow(g, created.id, opts.interval);
        console.log(summary(end));
        if (end.status === 'failed') {
          printBatchErrors(end);
          throw new CliError('the batch failed validation', 1);
        }
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  batch
    .command('status <id>')
    .option('--wait', 'follow progress until the batch ends', false)
    .action(async (id: string, opts: { wait: boolean }) => {
      const g = globals();
      const b = opts.wait ? await follow(g, id, 1000) : await getJson(g, `/v1/batches/${id}`);
      console.log(summary(b));
      printBatchErrors(b);
    });
  batch.command('cancel <id>').action(async (id: string) => console.log(summary(await postJson(globals(), `/v1/batches/${id}/cancel`, {}))));
  batch
    .command('results <id>')
    .requiredOption('-o, --output <file>', 'where to write the output JSONL')
    .option('-e, --errors <file>', 'where to write the error JSONL')
    .action(async (id: string, opts: { output: string; errors?: string }) => {
      const g = globals();
      const b = await getJson(g, `/v1/batches/${id}`);
      if (!TERMINAL.has(b.status)) throw new CliError(`batch ${id} is ${b.status}; results are available once it ends`);
      if (b.output_file_id) await download(g, b.output_file_id, opts.output);
      else createWriteStream(opts.output).end();
      if (opts.errors && b.error_file_id) await download(g, b.error_file_id, opts.errors);
      console.log(`${summary(b)}\nwrote ${opts.output}${opts.errors && b.error_file_id ? ` and ${opts.errors}` : ''}`);
    });

  const jobs = program.command('jobs').description('single jobs');
  jobs
    .command('submit')
    .requiredOption('--model <model>')
    .requiredOption('--prompt <text>')
    .option('--max-tokens <n>', 'max_tokens', (v) => Number(v))
    .option('--priority <p>', 'interactive or batch', 'interactive')
    .option('--idempotency-key <key>')
    .action(async (opts: { model: string; prompt: string; maxTokens?: number; priority: string; idempotencyKey?: string }) => {
      const body = { request: { model: opts.model, messages: [{ role: 'user', content: opts.prompt }], ...(opts.maxTokens ? { max_tokens: opts.maxTokens } : {}) }, priority: opts.priority };
      const res = await getJson(globals(), '/v1/jobs', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {}) },
        body: JSON.stringify(body),
      });
      console.log(JSON.stringify(res));
    });
  jobs.command('get <id>').action(async (id: string) => console.log(JSON.stringify(await getJson(globals(), `/v1/jobs/${id}`), null, 2)));
  addTeamCommands(program, globals);
  return program;
}

/** Admin commands over /api/v1/admin, and the storage-level bootstrap of the first admin key. */
function addTeamCommands(program: Command, globals: () => Globals): void {
  const print = (v: unknown) => console.log(JSON.stringify(v, null, 2));
  const send = (method: string, path: string, body?: unknown) =>
    getJson(globals(), path, { method, headers: { 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const teamSettings = (o: Record<string, string | undefined>) => ({
    ...(o.weight !== undefined ? { weight: Number(o.weight) } : {}),
    ...(o.maxBacklog !== undefined ? { max_backlog: Number(o.maxBacklog) } : {}),
    ...(o.monthlyBudget !== undefined ? { monthly_budget_usd: Number(o.monthlyBudget) } : {}),
    ...(o.budgetAction !== undefined ? { budget_action: o.budgetAction } : {}),
    ...(o.guaranteedTpm !== undefined ? { guaranteed_tpm: JSON.parse(o.guaranteedTpm) as Record<string, number> } : {}),
  });
  const withTeamOptions = (c: Command) =>
    c
      .option('--weight <w>', 'share of a contended deployment relative to other teams')
      .option('--max-backlog <n>', 'most jobs waiting in the team lane (0 = no team limit)')
      .option('--monthly-budget <usd>', 'monthly spend limit in USD (0 = none)')
      .option('--budget-action <warn|stop>', 'at 100 % of the budget: warn, or stop accepting work')
      .option('--guaranteed-tpm <json>', 'guaranteed TPM per model, e.g. \'{"gpt-4o-mini":20000}\'');
  const teams = program.command('teams').description('manage teams (admin key)');
  teams.command('list').action(async () => print(await getJson(globals(), '/v1/admin/teams')));
  withTeamOptions(teams.command('create <id>')).action(async (id: string, o: Record<string, string>) => print(await send('POST', '/v1/admin/teams', { id, ...teamSettings(o) })));
  withTeamOptions(teams.command('update <id>')).action(async (id: string, o: Record<string, string>) => print(await send('PATCH', `/v1/admin/teams/${id}`, teamSettings(o))));
  const keys = program.command('keys').description("manage a team's API keys (admin key)");
  keys.command('list <team>').action(async (team: string) => print(await getJson(globals(), `/v1/admin/teams/${team}/keys`)));
  keys
    .command('create <team>')
    .option('--name <name>')
    .option('--admin', 'an admin key', false)
    .option('--expires-in <seconds>')
    .action(async (team: string, o: { name?: string; admin: boolean; expiresIn?: string }) =>
      print(await send('POST', `/v1/admin/teams/${team}/keys`, { ...(o.name ? { name: o.name } : {}), role: o.admin ? 'admin' : 'member', ...(o.expiresIn ? { expires_in_s: Number(o.expiresIn) } : {}) })),
    );
  keys.command('revoke <team> <keyId>').action(async (team: string, keyId: string) => print(await send('DELETE', `/v1/admin/teams/${team}/keys/${keyId}`)));
  program
    .command('bootstrap')
    .description('create a team and an admin key directly in the teams table (first admin; needs storage access)')
    .requiredOption('--team <id>', 'team of the admin key, e.g. platform')
    .option('--connection-string <cs>', 'storage connection string (else --account with your Azure identity)')
    .option('--account <name>', 'storage account name (identity-based; Storage Table Data Contributor needed)')
    .option('--table <name>', 'teams table', 'sluiceteams')
    .action(async (o: { team: string; connectionString?: string; account?: string; table: string }) => {
      const { bootstrapAdmin } = await import('./bootstrap.js');
      print(await bootstrapAdmin(o));
    });
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      console.error(`sluice: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(err instanceof CliError ? err.exitCode : 1);
    });
}
