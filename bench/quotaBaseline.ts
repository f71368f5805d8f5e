/**
 * Child process for bench:quota's naive baseline: one "instance" calling the simulator directly with openai-node.
 *   node dist/bench/quotaBaseline.js <requests.json> <index> <of> <mode: sdk|seed> <endpoint> [concurrency]
 * Takes every `of`-th request starting at `index`. mode sdk: openai-node's default retries (maxRetries 2, its own
 * backoff honouring retry-after-ms). mode seed: maxRetries 0 and a hand loop of 5 attempts, exponential backoff from
 * 1 s with full jitter. Prints one JSON line: {ok, failed, lastOkAt, attempts}.
 */
import { readFileSync } from 'node:fs';
import { AzureOpenAI } from 'openai';

interface BenchRequest {
  messages: { role: 'user'; content: string }[];
  max_tokens: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const [file, indexArg, ofArg, mode, endpoint, concArg] = process.argv.slice(2);
  if (!file || !indexArg || !ofArg || (mode !== 'sdk' && mode !== 'seed') || !endpoint) throw new Error('usage: quotaBaseline.js <requests.json> <index> <of> <sdk|seed> <endpoint> [concurrency]');
  const index = Number(indexArg);
  const of = Number(ofArg);
  const concurrency = Number(concArg ?? 8);
  const all = JSON.parse(readFileSync(file, 'utf8')) as BenchRequest[];
  const mine = all.filter((_, i) => i % of === index);
  const client = new AzureOpenAI({
    endpoint,
    apiKey: 'local-simulator-key',
    apiVersion: '2024-10-21',
    deployment: 'gpt-4o-mini',
    maxRetries: mode === 'sdk' ? 2 : 0,
  });
  let ok = 0;
  let failed = 0;
  let lastOkAt = 0;
  let attempts = 0;
  const call = async (req: BenchRequest) => {
    attempts += 1;
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: req.messages, max_tokens: req.max_tokens });
  };
  const one = async (req: BenchRequest): Promise<boolean> => {
    if (mode === 'sdk') return call(req).then(() => true, () => false);
    for (let attempt = 0; attempt < 5; attempt += 1) {
      try {
        await call(req);
        return true;
      } catch {
        if (attempt === 4) return false;
        await sleep(Math.random() * 1000 * 2 ** attempt);
      }
    }
    return false;
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < mine.length) {
        const req = mine[next++]!;
        if (await one(req)) {
          ok += 1;
          lastOkAt = Date.now();
        } else failed += 1;
      }
    }),
  );
  console.log(JSON.stringify({ ok, failed, lastOkAt, attempts }));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
