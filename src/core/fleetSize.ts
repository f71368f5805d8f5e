/**
 * How many Function instances the quota can keep busy, and how many messages each should hold. A deployment admits
 * at most TPM ÷ charge jobs a minute, so the calls it can have in flight are bounded by that rate × call latency
 * (Little's law); jobs waiting their turn add a headroom on top. Instances beyond that only hold messages that wait
 * for quota, take a slice of every deployment's pace and add a lease to its budget row, so the fleet's ceiling
 * (Flex Consumption's maximumInstanceCount) follows the quota instead of the queue length.
 *
 * Integer arithmetic only, step for step as infra/main.bicep computes its `fleet*` variables (Bicep divides
 * integers by truncation), so test/infra/fleetSize.test.ts can hold the two to the same figures. docs/deploy.md
 * ("Fleet size follows the quota") documents the formula.
 */

export interface FleetSizing {
  /** Tokens a typical job is charged at admission (prompt + max_tokens). @default 1500 */
  typicalChargeTokens: number;
  /** 95th percentile of a model call's duration, seconds. @default 10 */
  p95LatencySeconds: number;
  /** Messages in flight per job the quota can run at once: jobs held for their turn as well as in a call, percent.
   *  @default 200 */
  headroomPercent: number;
  /** Instances the worker should stay within before each holds more messages (batchSize grows up to the host's
   *  32 instead of the fleet growing). @default 50 */
  workerInstanceTarget: number;
  /** Room for the app's other scaling groups on Flex (HTTP, the submission and batch queues, the timers), which
   *  run on instances of their own. @default 10 */
  otherInstances: number;
  /** A batchSize chosen by hand (infra parameter queueBatchSize); 0: derived. @default 0 */
  batchSize: number;
  /** A maximumInstanceCount chosen by hand (infra parameter maximumInstanceCount); 0: derived. @default 0 */
  maximumInstanceCount: number;
  /** Queue lanes per priority (SLUICE_QUEUE_LANES); 0: one per model, at most MAX_QUEUE_LANES. Each lane × priority
   *  is a worker function that Flex scales on instances of its own. @default 0 */
  queueLanes: number;
}

export const FLEET_SIZING_DEFAULTS: FleetSizing = {
  typicalChargeTokens: 1_500,
  p95LatencySeconds: 10,
  headroomPercent: 200,
  workerInstanceTarget: 50,
  otherInstances: 10,
  queueLanes: 0,
  batchSize: 0,
  maximumInstanceCount: 0,
};

/** Host limits: the Storage Queues extension takes batchSize 1..32; Flex allows up to 1,000 instances. */
export const MAX_BATCH_SIZE = 32;
export const MIN_DERIVED_BATCH_SIZE = 16;
export const MAX_INSTANCES = 1_000;
/** SLUICE_QUEUE_LANES' largest value (src/configSchema.ts). */
export const MAX_QUEUE_LANES = 16;

export interface FleetSize {
  /** Σ over deployments of TPM. */
  quotaTpm: number;
  /** Messages the whole worker fleet should hold at once: ceil(quota jobs/s × p95 latency × headroom). */
  concurrency: number;
  /** host.json extensions.queues.batchSize: 16, or more (up to 32) when 16 would need more than workerInstanceTarget
   *  instances. */
  batchSize: number;
  /** Fetch the next batch once in flight drops to this (host default: batchSize ÷ 2). */
  newBatchThreshold: number;
  /** Messages one instance holds at most: batchSize + newBatchThreshold. */
  perInstanceConcurrency: number;
  /** ceil(concurrency ÷ perInstanceConcurrency). */
  workerInstances: number;
  /** SLUICE_QUEUE_LANES: the lanes chosen, or one per model. */
  queueLanes: number;
  /** Flex maximumInstanceCount: workerInstances + worker functions + otherInstances, within [1, 1000]. */
  maximumInstanceCount: number;
  /** SLUICE_DISPATCH_DEPTH_SECONDS: the dispatcher keeps the jobs queue this many seconds of the quotas' pace deep,
   *  ceil(p95 latency × headroom), so the queue length Flex scales on asks for the instances `concurrency` needs. */
  dispatchDepthSeconds: number;
}

const ceilDiv = (a: number, b: number) => Math.trunc((a + b - 1) / b);

/** The fleet for deployments of these TPMs (integers), serving `models` distinct models. */
export function fleetSize(deploymentTpms: readonly number[], sizing: Partial<FleetSizing> = {}, models = 1): FleetSize {
  const s = { ...FLEET_SIZING_DEFAULTS, ...sizing };
  for (const [k, v] of Object.entries(s)) if (!Number.isInteger(v) || v < 0) throw new RangeError(`fleet sizing: ${k} must be an integer ≥ 0, got ${v}`);
  for (const k of ['typicalChargeTokens', 'workerInstanceTarget'] as const) if (s[k] < 1) throw new RangeError(`fleet sizing: ${k} must be ≥ 1`);
  if (s.batchSize > MAX_BATCH_SIZE) throw new RangeError(`fleet sizing: batchSize must be ≤ ${MAX_BATCH_SIZE}`);
  const quotaTpm = deploymentTpms.reduce((a, b) => a + b, 0);
  // jobs/s = TPM ÷ 60 ÷ charge; × latency × headroom% ÷ 100, rounded up in one integer division.
  const concurrency = ceilDiv(quotaTpm * s.p95LatencySeconds * s.headroomPercent, 60 * s.typicalChargeTokens * 100);
  // perInstance = 1.5 × batchSize, so batchSize ≥ concurrency ÷ (1.5 × target) keeps the worker within the target.
  const derivedBatchSize = Math.min(MAX_BATCH_SIZE, Math.max(MIN_DERIVED_BATCH_SIZE, ceilDiv(concurrency * 2, 3 * s.workerInstanceTarget)));
  const batchSize = s.batchSize > 0 ? s.batchSize : derivedBatchSize;
  const newBatchThreshold = Math.trunc(batchSize / 2);
  const perInstanceConcurrency = batchSize + newBatchThreshold;
  const workerInstances = ceilDiv(concurrency, perInstanceConcurrency);
  const queueLanes = s.queueLanes > 0 ? s.queueLanes : Math.min(MAX_QUEUE_LANES, Math.max(1, models));
  // Each lane × priority is scaled on its own and rounds its instances up: at most one more each than its share.
  const derivedMaximum = Math.min(MAX_INSTANCES, Math.max(1, workerInstances + 2 * queueLanes + s.otherInstances));
  const maximumInstanceCount = s.maximumInstanceCount > 0 ? s.maximumInstanceCount : derivedMaximum;
  // A queue `depth` seconds of the pace deep holds pace × depth messages (in calls and waiting): the same
  // concurrency as above, so Flex's target (queue length ÷ batchSize) asks for about workerInstances.
  const dispatchDepthSeconds = Math.max(1, ceilDiv(s.p95LatencySeconds * s.headroomPercent, 100));
  return { quotaTpm, concurrency, batchSize, newBatchThreshold, perInstanceConcurrency, workerInstances, queueLanes, maximumInstanceCount, dispatchDepthSeconds };
}
