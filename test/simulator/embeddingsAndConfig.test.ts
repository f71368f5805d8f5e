// Embeddings endpoint, config loading, CLI ports and the CLI process itself.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { countTokens } from 'gpt-tokenizer/model/gpt-4o';
import { countTokens as countEmbeddingTokens } from 'gpt-tokenizer/model/text-embedding-3-small';
import { withCliPorts } from '../../local/simulator/cli';
import { DEFAULT_SIMULATOR_CONFIG, loadSimulatorConfig, startSimulator, type RunningSimulator } from '../../local/simulator/index';
import { generateTokenPieces } from '../../local/simulator/tokens';
import { API_VERSION, postJson, testConfig } from './helpers';

describe('embeddings over HTTP', () => {
  let simulator: RunningSimulator;
  let baseUrl: string;
  before(async () => {
    simulator = await startSimulator(testConfig());
    baseUrl = simulator.regions[0]!.baseUrl;
  });
  after(() => simulator.close());

  const embeddingsUrl = () => `${baseUrl}/openai/deployments/emb/embeddings?api-version=${API_VERSION}`;

  it('returns one deterministic unit vector per input and charges the input tokens', async () => {
    const input = ['quota for team a', 'quota for team b'];
    const first = await postJson(embeddingsUrl(), { input });
    assert.equal(first.status, 200);
    assert.equal(first.body.object, 'list');
    assert.equal(first.body.model, 'text-embedding-3-small');
    assert.deepEqual(first.body.data.map((item: { index: number; object: string }) => [item.index, item.object]), [[0, 'embedding'], [1, 'embedding']]);
    const vector: number[] = first.body.data[0].embedding;
    assert.equal(vector.length, 1536);
    assert.ok(Math.abs(Math.hypot(...vector) - 1) < 1e-9);
    const expectedTokens = countEmbeddingTokens(input[0]!) + countEmbeddingTokens(input[1]!);
    assert.deepEqual(first.body.usage, { prompt_tokens: expectedTokens, total_tokens: expectedTokens });
    assert.equal(simulator.requests().at(-1)!.charged, expectedTokens);
    const second = await postJson(embeddingsUrl(), { input });
    assert.deepEqual(second.body.data[0].embedding, vector);
  });

  it('accepts token arrays, dimensions, and the v1 path', async () => {
    const response = await postJson(`${baseUrl}/openai/v1/embeddings`, { model: 'emb', input: [1, 2, 3, 4], dimensions: 256 });
    assert.equal(response.status, 200);
    assert.equal(response.body.data.length, 1);
    assert.equal(response.body.data[0].embedding.length, 256);
    assert.equal(response.body.usage.prompt_tokens, 4);
    const arrays = await postJson(embeddingsUrl(), { input: [[1, 2, 3], [4, 5]] });
    assert.equal(arrays.status, 200);
    assert.equal(arrays.body.data.length, 2);
    assert.deepEqual(arrays.body.usage, { prompt_tokens: 5, total_tokens: 5 });
  });

  it('counts text in cl100k_base tokens, as Azure charges embeddings models', async () => {
    // A text whose o200k and cl100k counts differ, so counting with the chat tokenizer would fail here.
    const text = 'Ünïcödé 数据 流过 队列 🚀🚀 quota';
    assert.notEqual(countTokens(text), countEmbeddingTokens(text));
    const response = await postJson(embeddingsUrl(), { input: text });
    assert.equal(response.body.usage.prompt_tokens, countEmbeddingTokens(text));
  });

  it('refuses empty items and more than 2,048 items', async () => {
    for (const input of ['', ['a', ''], [[]], Array.from({ length: 2049 }, () => 'a')]) {
      const response = await postJson(embeddingsUrl(), { input });
      assert.equal(response.status, 400, JSON.stringify(input).slice(0, 40));
      assert.equal(response.body.error.param, 'input');
    }
  });

  it('answers 400 for missing input and for chat deployments', async () => {
    const missing = await postJson(embeddingsUrl(), {});
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.param, 'input');
    const wrongKind = await postJson(`${baseUrl}/openai/deployments/chat/embeddings?api-version=${API_VERSION}`, { input: 'x' });
    assert.equal(wrongKind.status, 400);
    assert.equal(wrongKind.body.error.code, 'OperationNotSupported');
  });
});

describe('config and CLI', () => {
  it('generates text of exactly the requested number of o200k tokens', () => {
    for (let seed = 0; seed < 200; seed++) {
      const tokenCount = (seed % 60) + 1;
      assert.equal(countTokens(generateTokenPieces(seed, tokenCount).join('')), tokenCount);
    }
  });

  it('loads config from SIMULATOR_CONFIG, SIMULATOR_CONFIG_FILE, or the default', () => {
    const config = testConfig();
    assert.deepEqual(loadSimulatorConfig({ SIMULATOR_CONFIG: JSON.stringify(config) }), config);
    const file = join(mkdtempSync(join(tmpdir(), 'sim-config-')), 'config.json');
    writeFileSync(file, JSON.stringify(config));
    assert.deepEqual(loadSimulatorConfig({ SIMULATOR_CONFIG_FILE: file }), config);
    assert.deepEqual(loadSimulatorConfig({}), DEFAULT_SIMULATOR_CONFIG);
    assert.throws(() => loadSimulatorConfig({ SIMULATOR_CONFIG: '{"regions": [{"name": "x"}]}' }), /Invalid simulator config/);
    assert.throws(() => loadSimulatorConfig({ SIMULATOR_CONFIG: '{nope' }), /not valid JSON/);
  });

  it('default config: two regions with a chat and an embeddings deployment each', async () => {
    assert.deepEqual(DEFAULT_SIMULATOR_CONFIG.regions.map((region) => region.name), ['sim-eastus', 'sim-westus']);
    const simulator = await startSimulator();
    try {
      assert.equal(simulator.regions.length, 2);
      assert.notEqual(simulator.regions[0]!.port, simulator.regions[1]!.port);
      const counters = simulator.counters();
      assert.deepEqual(Object.keys(counters['sim-westus']!), ['gpt-4o-mini', 'text-embedding-3-small']);
      assert.equal(counters['sim-eastus']!['gpt-4o-mini']!.windows.rpm, 180);
    } finally {
      await simulator.close();
    }
  });

  it('CLI ports: admin on the base port, regions after it; SIMULATOR_BASE_PORT overrides, 0 = ephemeral', () => {
    const fixed = withCliPorts(DEFAULT_SIMULATOR_CONFIG, {});
    assert.equal(fixed.adminPort, 8400);
    assert.deepEqual(fixed.regions.map((region) => region.port), [8401, 8402]);
    const moved = withCliPorts(DEFAULT_SIMULATOR_CONFIG, { SIMULATOR_BASE_PORT: '9500' });
    assert.deepEqual([moved.adminPort, ...moved.regions.map((region) => region.port)], [9500, 9501, 9502]);
    const ephemeral = withCliPorts(DEFAULT_SIMULATOR_CONFIG, { SIMULATOR_BASE_PORT: '0' });
    assert.equal(ephemeral.adminPort, undefined);
    assert.throws(() => withCliPorts(DEFAULT_SIMULATOR_CONFIG, { SIMULATOR_BASE_PORT: 'abc' }));
  });

  it('CLI prints URLs and exits cleanly on SIGTERM', async () => {
    // Runs the compiled cli.js next to this compiled test, or the .ts source through tsx.
    const compiled = __filename.endsWith('.js');
    const args = compiled ? [join(__dirname, '../../local/simulator/cli.js')] : ['--import', 'tsx', join(__dirname, '../../local/simulator/cli.ts')];
    const child = spawn(process.execPath, args, { env: { ...process.env, SIMULATOR_BASE_PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const check = setInterval(() => {
        if (output.includes('admin:')) {
          clearInterval(check);
          resolve();
        }
      }, 20);
      void exited.then(() => {
        clearInterval(check);
        reject(new Error(`CLI exited early:\n${output}`));
      });
    });
    assert.match(output, /sim-eastus: http:\/\/127\.0\.0\.1:\d+/);
    assert.match(output, /gpt-4o-mini/);
    assert.match(output, /admin: http:\/\/127\.0\.0\.1:\d+\/_admin/);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
