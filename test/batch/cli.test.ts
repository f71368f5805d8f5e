// The `sluice` CLI as a child process against the local app.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningStack } from '../../local/stack';
import { batchLine, jsonl, parseJsonl, startBatchStack } from './support';

const CLI = resolve(__dirname, '..', '..', 'cli', 'sluice.js');
let stack: RunningStack;
const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-test-'));

before(async () => {
  stack = await startBatchStack();
});

after(async () => {
  await stack?.stop();
});

function sluice(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, SLUICE_URL: stack.baseUrl, SLUICE_API_KEY: stack.apiKey!, ...env }, timeout: 90_000 }, (err, stdout, stderr) => {
      resolveRun({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('batch submit --wait --model shows progress, then results -o writes the output', async () => {
  const input = join(dir, 'prompts.jsonl');
  writeFileSync(input, jsonl(Array.from({ length: 12 }, (_, i) => batchLine(i, { body: { model: 'placeholder', messages: [{ role: 'user', content: `hi ${i}` }], max_tokens: 8 } }))));
  const run = await sluice(['batch', 'submit', input, '--model', 'gpt-4o-mini', '--wait', '--interval', '300']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /batch (batch_\w+) validating/);
  assert.match(run.stderr, /12\/12 \| ok 12 failed 0/, 'the progress bar (stderr)');
  assert.match(run.stdout, /completed: 12 completed, 0 failed of 12/);
  const id = /batch (batch_\w+) validating/.exec(run.stdout)![1]!;

  const status = await sluice(['batch', 'status', id]);
  assert.match(status.stdout, new RegExp(`${id} completed`));
  const out = join(dir, 'out.jsonl');
  const results = await sluice(['batch', 'results', id, '-o', out]);
  assert.equal(results.code, 0, results.stderr);
  const lines = parseJsonl(readFileSync(out, 'utf8'));
  assert.equal(lines.length, 12);
  assert.ok(lines.every((l) => l.response.status_code === 200));
});

test('an invalid file is refused before upload, naming the lines', async () => {
  const input = join(dir, 'bad.jsonl');
  writeFileSync(input, [batchLine(1), '{oops', batchLine(1), batchLine(4, { custom_id: undefined })].join('\n'));
  const run = await sluice(['batch', 'submit', input]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /line 2: not valid JSON/);
  assert.match(run.stderr, /line 3: custom_id "req-1" already used on line 1/);
  assert.match(run.stderr, /line 4: custom_id is missing/);
});

test('server-side validation failures are printed with line numbers', async () => {
  const input = join(dir, 'model.jsonl');
  writeFileSync(input, jsonl([batchLine(1), batchLine(2, { body: { model: 'gpt-4o-mini', messages: [] } })]));
  const run = await sluice(['batch', 'submit', input, '--wait', '--interval', '300']);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /line 2: invalid_request: body\.messages/);
});

test('jobs submit and get; an unreachable server is a clear error', async () => {
  const submitted = await sluice(['jobs', 'submit', '--model', 'gpt-4o-mini', '--prompt', 'hello', '--max-tokens', '8']);
  assert.equal(submitted.code, 0, submitted.stderr);
  const { id } = JSON.parse(submitted.stdout);
  const got = await sluice(['jobs', 'get', id]);
  assert.equal(JSON.parse(got.stdout).id, id);
  const down = await sluice(['batch', 'status', 'batch_x', '--url', 'http://127.0.0.1:65530/api']);
  assert.equal(down.code, 2);
  assert.match(down.stderr, /cannot reach Sluice at http:\/\/127\.0\.0\.1:65530\/api \(ECONNREFUSED\)/);
});
