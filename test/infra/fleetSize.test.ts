/**
 * The fleet-size rule (src/core/fleetSize.ts) and its copy in infra/main.bicep give the same figures: the Bicep
 * `fleet*` variables are evaluated here (integer arithmetic, as Bicep does it) for the deployments
 * infra/main.parameters.json declares and for other quotas, and compared with the TypeScript rule. The parameter
 * defaults, host.json and the table in docs/deploy.md follow the same rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FLEET_SIZING_DEFAULTS, fleetSize, type FleetSizing } from '../../src/core/fleetSize';
import { blockAfter, read } from './infraSource';

interface Region {
  deployments: { capacity: number; model: string }[];
}
const parameters = () => JSON.parse(read('infra/main.parameters.json')) as { parameters: Record<string, { value: unknown }> };
const declared = () => (parameters().parameters.openAiRegions!.value as Region[]).flatMap((r) => r.deployments);
const declaredTpms = () => declared().map((d) => d.capacity * 1000);
const declaredModels = () => new Set(declared().map((d) => d.model)).size;

// ---------------------------------------------------------------------------------------------------------------
// A small evaluator for the Bicep integer expressions the fleet variables use: literals, names, + - * / (integer
// division truncates, as in Bicep), parentheses, min/max, and `a > b ? c : d`.

function evaluate(expr: string, env: Map<string, number>): number {
  const tokens = expr.match(/\d+|[A-Za-z_]\w*|[-+*/(),?:>]/g) ?? [];
  assert.equal(tokens.join(''), expr.replace(/\s+/g, ''), `unsupported syntax in ${expr}`);
  let i = 0;
  const peek = () => tokens[i];
  const take = (want?: string) => {
    const t = tokens[i++];
    if (want !== undefined && t !== want) throw new Error(`expected ${want}, got ${t} in ${expr}`);
    return t!;
  };
  const ternary = (): number => {
    const cond = additive();
    if (peek() !== '>') return cond;
    take('>');
    const right = additive();
    take('?');
    const yes = ternary();
    take(':');
    const no = ternary();
    return cond > right ? yes : no;
  };
  const additive = (): number => {
    let v = term();
    while (peek() === '+' || peek() === '-') v = take() === '+' ? v + term() : v - term();
    return v;
  };
  const term = (): number => {
    let v = factor();
    while (peek() === '*' || peek() === '/') v = take() === '*' ? v * factor() : Math.trunc(v / factor());
    return v;
  };
  const factor = (): number => {
    const t = take();
    if (t === '(') {
      const v = ternary();
      take(')');
      return v;
    }
    if (/^\d+$/.test(t)) return Number(t);
    if (t === 'min' || t === 'max') {
      take('(');
      const args = [ternary()];
      while (peek() === ',') (take(','), args.push(ternary()));
      take(')');
      return t === 'min' ? Math.min(...args) : Math.max(...args);
    }
    const v = env.get(t);
    if (v === undefined) throw new Error(`unknown name ${t} in ${expr}`);
    return v;
  };
  const v = ternary();
  assert.equal(i, tokens.length, `trailing tokens in ${expr}`);
  return v;
}

const main = () => read('infra/main.bicep');

/** `param <name> int = <n>` defaults of main.bicep. */
function intParamDefaults(): Map<string, number> {
  return new Map([...main().matchAll(/^param\s+(\w+)\s+int\s*=\s*(\d+)\s*$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

const PARAM_OF: Record<keyof FleetSizing, string> = {
  typicalChargeTokens: 'fleetTypicalChargeTokens',
  p95LatencySeconds: 'fleetP95LatencySeconds',
  headroomPercent: 'fleetHeadroomPercent',
  workerInstanceTarget: 'fleetWorkerInstanceTarget',
  otherInstances: 'fleetOtherInstances',
  queueLanes: 'queueLanes',
  batchSize: 'queueBatchSize',
  maximumInstanceCount: 'maximumInstanceCount',
};

/** main.bicep's fleet variables, in order, evaluated for a quota, a model count and parameter values (defaults unless given). */
function bicepFleet(quotaTpm: number, models: number, overrides: Partial<FleetSizing> = {}): Map<string, number> {
  const env = intParamDefaults();
  for (const [k, v] of Object.entries(overrides)) env.set(PARAM_OF[k as keyof FleetSizing], v);
  const vars = [...main().matchAll(/^var\s+(fleet\w+)\s*=\s*(.+)$/gm)];
  assert.equal(vars[0]?.[1], 'fleetQuotaTpm', 'the chain starts with the summed quota');
  // The one expression not evaluated here: the sum of capacity × 1,000 over every deployment (as SLUICE_ENDPOINTS' tpm).
  assert.equal(vars[0]![2]!.trim(), 'reduce(flatten(map(openAiRegions, r => map(r.deployments, d => d.capacity * 1000))), 0, (total, tpm) => total + tpm)');
  env.set('fleetQuotaTpm', quotaTpm);
  // And the number of distinct models, taken as given likewise.
  assert.equal(vars[1]?.[1], 'fleetModelCount');
  assert.equal(vars[1]![2]!.trim(), 'length(reduce(flatten(map(openAiRegions, r => map(r.deployments, d => d.model))), [], (models, m) => contains(models, m) ? models : concat(models, [m])))');
  env.set('fleetModelCount', models);
  for (const [, name, expr] of vars.slice(2)) env.set(name!, evaluate(expr!, env));
  return env;
}

test('the fleet for the deployments infra declares: a few instances, host.json batch', () => {
  const fleet = fleetSize(declaredTpms(), {}, declaredModels());
  assert.equal(fleet.quotaTpm, 200_000);
  // 200,000 TPM ÷ 60 ÷ 1,500 = 2.2 jobs/s; × 10 s × 200 % = 45 messages; 24 per instance → 2 worker instances;
  // two models, a lane each: 4 worker functions (2 lanes × 2 priorities), + 10 for the rest.
  // The dispatcher keeps 10 s × 200 % = 20 s of the pace on each lane.
  assert.deepEqual(fleet, { quotaTpm: 200_000, concurrency: 45, batchSize: 16, newBatchThreshold: 8, perInstanceConcurrency: 24, workerInstances: 2, queueLanes: 2, maximumInstanceCount: 16, dispatchDepthSeconds: 20 });
});

test('the rule grows with the quota, fetches more per instance before it adds many, and stays within Flex limits', () => {
  const at = (tpm: number, s: Partial<FleetSizing> = {}) => fleetSize([tpm], s);
  assert.equal(at(5_200_000).concurrency, 1_156);
  assert.equal(at(5_200_000).batchSize, 16);
  assert.equal(at(5_200_000).workerInstances, 49);
  assert.equal(at(10_000_000).batchSize, 30, 'past 50 instances at 16, each instance fetches more');
  assert.equal(at(10_000_000).workerInstances, 50);
  assert.equal(at(20_000_000).batchSize, 32, "the host's largest batch");
  assert.equal(at(20_000_000).workerInstances, 93);
  assert.equal(at(1_000_000_000).batchSize, 32);
  assert.equal(at(1_000_000_000).maximumInstanceCount, 1_000);
  assert.equal(at(1_000, { queueLanes: 1, otherInstances: 0 }).maximumInstanceCount, 3, 'one worker instance, and one more for each of the interactive and batch functions');
  assert.equal(fleetSize([100_000, 100_000], {}, 2).queueLanes, 2, 'a lane per model');
  assert.equal(fleetSize([100_000], {}, 40).queueLanes, 16, 'at most 16');
  assert.equal(fleetSize([100_000], { queueLanes: 3 }, 40).queueLanes, 3, 'lanes chosen are kept');
  let last = 0;
  for (const tpm of [10_000, 100_000, 1_000_000, 3_000_000, 10_000_000, 30_000_000]) {
    const n = at(tpm).maximumInstanceCount;
    assert.ok(n >= last, `non-decreasing at ${tpm}`);
    last = n;
  }
  assert.equal(at(300_000, { batchSize: 8 }).perInstanceConcurrency, 12, 'a chosen batchSize is kept');
  assert.equal(at(300_000, { maximumInstanceCount: 40 }).maximumInstanceCount, 40, 'a chosen maximum is kept');
  assert.throws(() => at(300_000, { typicalChargeTokens: 0 }), RangeError);
  assert.throws(() => at(300_000, { batchSize: 64 }), RangeError);
});

test("main.bicep's fleet parameters default to the rule's defaults, and its variables compute the same fleet", () => {
  const defaults = intParamDefaults();
  for (const [k, param] of Object.entries(PARAM_OF)) assert.equal(defaults.get(param), FLEET_SIZING_DEFAULTS[k as keyof FleetSizing], `param ${param}`);
  const cases: Array<[number[], Partial<FleetSizing>, number]> = [
    [declaredTpms(), {}, declaredModels()],
    [[10_000, 30_000, 60_000, 100_000, 200_000, 300_000, 500_000, 800_000, 1_200_000, 2_000_000], {}, 10],
    [[20_000_000], {}, 1],
    [[1_000_000_000], {}, 30],
    [[1_000], { queueLanes: 1, otherInstances: 0 }, 3],
    [[300_000], { batchSize: 8, p95LatencySeconds: 30, headroomPercent: 300 }, 1],
    [[300_000], { maximumInstanceCount: 40, typicalChargeTokens: 800, workerInstanceTarget: 5 }, 2],
  ];
  for (const [tpms, overrides, models] of cases) {
    const ts = fleetSize(tpms, overrides, models);
    const bicep = bicepFleet(ts.quotaTpm, models, overrides);
    const label = `${tpms.length} deployment(s), ${ts.quotaTpm} TPM, ${JSON.stringify(overrides)}`;
    assert.equal(bicep.get('fleetConcurrency'), ts.concurrency, label);
    assert.equal(bicep.get('fleetBatchSize'), ts.batchSize, label);
    assert.equal(bicep.get('fleetNewBatchThreshold'), ts.newBatchThreshold, label);
    assert.equal(bicep.get('fleetPerInstanceConcurrency'), ts.perInstanceConcurrency, label);
    assert.equal(bicep.get('fleetWorkerInstances'), ts.workerInstances, label);
    assert.equal(bicep.get('fleetQueueLanes'), ts.queueLanes, label);
    assert.equal(bicep.get('fleetMaximumInstanceCount'), ts.maximumInstanceCount, label);
    assert.equal(bicep.get('fleetDispatchDepthSeconds'), ts.dispatchDepthSeconds, label);
  }
});

test('the derived values reach the app: Flex maximum, queue batch app settings, parameters file defaults', () => {
  const bicep = main();
  assert.match(blockAfter(bicep, /^module api 'app\/api\.bicep'\s*=\s*/m), /maximumInstanceCount: fleetMaximumInstanceCount\s+queueBatchSize: fleetBatchSize\s+queueNewBatchThreshold: fleetNewBatchThreshold/);
  assert.match(blockAfter(bicep, /^var sluiceSettings\s*=\s*/m), /SLUICE_DISPATCH_DEPTH_SECONDS: string\(fleetDispatchDepthSeconds\)/);
  assert.match(blockAfter(bicep, /^var sluiceSettings\s*=\s*/m), /SLUICE_QUEUE_LANES: string\(fleetQueueLanes\)/);
  const platform = blockAfter(read('infra/app/api.bicep'), /^var platformSettings\s*=\s*/m);
  assert.match(platform, /AzureFunctionsJobHost__extensions__queues__batchSize: string\(queueBatchSize\)/);
  assert.match(platform, /AzureFunctionsJobHost__extensions__queues__newBatchThreshold: string\(queueNewBatchThreshold\)/);
  const p = parameters().parameters;
  // 0 = derived in main.bicep: the maximum follows openAiRegions whenever the quota changes.
  assert.equal(p.maximumInstanceCount?.value, '${SLUICE_MAX_INSTANCES=0}');
  assert.equal(p.queueBatchSize?.value, '${SLUICE_QUEUE_BATCH_SIZE=0}');
  // Local runs (host.json) fetch as Azure will for the declared deployments.
  const queues = (JSON.parse(read('host.json')) as { extensions: { queues: { batchSize: number; newBatchThreshold: number } } }).extensions.queues;
  const fleet = fleetSize(declaredTpms());
  assert.equal(queues.batchSize, fleet.batchSize);
  assert.equal(queues.newBatchThreshold, fleet.newBatchThreshold);
});

test("docs/deploy.md's fleet-size table is the rule's output", () => {
  const doc = read('docs/deploy.md');
  const section = doc.slice(doc.indexOf('## Fleet size follows the quota'));
  const rows = [...section.matchAll(/^\| ([\d,]+) \| ([\d,]+) \| (\d+) \| (\d+) \| (\d+) \|$/gm)];
  assert.ok(rows.length >= 5, 'a table of quotas');
  const num = (s: string) => Number(s.replace(/,/g, ''));
  for (const [, tpm, concurrency, batch, workers, max] of rows) {
    const f = fleetSize([num(tpm!)]);
    assert.deepEqual([num(concurrency!), num(batch!), num(workers!), num(max!)], [f.concurrency, f.batchSize, f.workerInstances, f.maximumInstanceCount], `row ${tpm}`);
  }
});
