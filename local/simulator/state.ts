// Mutable runtime state shared by the region servers and the admin endpoint: per-deployment
// limiters and counters, per-region faults, and the bounded request log.
import type { FaultSpec, SimDeployment, SimRegion, SimulatorConfig } from './config';
import { defaultRpmForTpm } from './config';
import { SlidingWindowRateLimiter, type WindowSnapshot } from './rateLimiter';

export interface SimDeploymentCounters {
  requests: number;
  status200: number;
  status429: number;
  /** 4xx other than 429. */
  status4xx: number;
  status5xx: number;
  /** Sum of admission estimates (what the rate limiter charged). */
  tokensCharged: number;
  /** Usage actually reported in responses. */
  promptTokens: number;
  completionTokens: number;
  /** Rate-limit windows at the time of the snapshot. */
  windows: WindowSnapshot;
}

/** Counters by region name, then deployment name. */
export type SimCounters = Record<string, Record<string, SimDeploymentCounters>>;

export interface SimRequestRecord {
  /** Epoch ms when the request arrived. */
  at: number;
  region: string;
  /** Deployment named by the request ('' when none could be read); may not exist. */
  deployment: string;
  status: number;
  /** Tokens charged against the rate limit (0 when rejected). */
  charged: number;
  /** From the x-sluice-job-id request header, if present. */
  jobId?: string;
  /** From the x-sluice-instance request header (`<instance>:<pid>` of the calling process), if present. */
  instance?: string;
  requestId: string;
}

/** Outcome of one request, for the counters and the log. */
export interface RequestOutcome {
  at: number;
  status: number;
  charged: number;
  promptTokens: number;
  completionTokens: number;
  jobId?: string;
  requestId: string;
}

const REQUEST_LOG_CAPACITY = 100_000;
// Enough distinct long prompts to make "seen before" caching realistic without unbounded growth.
const SEEN_PROMPT_CAPACITY = 10_000;

type MutableCounters = Omit<SimDeploymentCounters, 'windows'>;

function zeroCounters(): MutableCounters {
  return { requests: 0, status200: 0, status429: 0, status4xx: 0, status5xx: 0, tokensCharged: 0, promptTokens: 0, completionTokens: 0 };
}

export class DeploymentRuntime {
  readonly limiter: SlidingWindowRateLimiter;
  counters: MutableCounters = zeroCounters();
  private readonly seenPrompts = new Set<string>();

  constructor(readonly config: SimDeployment, now: () => number) {
    this.limiter = new SlidingWindowRateLimiter(configuredLimits(config), { now });
  }

  /** Whether this prompt (by hash) was served before; remembers it for next time. */
  checkAndRememberPrompt(promptHash: string): boolean {
    if (this.seenPrompts.has(promptHash)) return true;
    this.seenPrompts.add(promptHash);
    if (this.seenPrompts.size > SEEN_PROMPT_CAPACITY) {
      const oldest = this.seenPrompts.values().next().value;
      if (oldest !== undefined) this.seenPrompts.delete(oldest);
    }
    return false;
  }

  reset(): void {
    this.counters = zeroCounters();
    this.seenPrompts.clear();
    this.limiter.reset();
    this.limiter.setLimits(configuredLimits(this.config));
  }

  snapshot(): SimDeploymentCounters {
    return { ...this.counters, windows: this.limiter.snapshot() };
  }
}

function configuredLimits(config: SimDeployment): { tpm: number; rpm: number } {
  return { tpm: config.tpm, rpm: config.rpm ?? defaultRpmForTpm(config.tpm) };
}

export class RegionRuntime {
  readonly deployments = new Map<string, DeploymentRuntime>();
  fault: FaultSpec = {};

  constructor(readonly config: SimRegion, now: () => number) {
    for (const deployment of config.deployments) {
      this.deployments.set(deployment.name, new DeploymentRuntime(deployment, now));
    }
  }
}

/** Fixed-capacity ring buffer of request records, oldest overwritten first. */
class RequestLog {
  private records: SimRequestRecord[] = [];
  private next = 0;

  constructor(private readonly capacity: number) {}

  add(record: SimRequestRecord): void {
    if (this.records.length < this.capacity) {
      this.records.push(record);
    } else {
      this.records[this.next] = record;
      this.next = (this.next + 1) % this.capacity;
    }
  }

  /** Oldest first; only records with at >= sinceMs when given. */
  list(sinceMs?: number): SimRequestRecord[] {
    const ordered = [...this.records.slice(this.next), ...this.records.slice(0, this.next)];
    return sinceMs === undefined ? ordered : ordered.filter((record) => record.at >= sinceMs);
  }

  clear(): void {
    this.records = [];
    this.next = 0;
  }
}

export class SimulatorState {
  readonly regions = new Map<string, RegionRuntime>();
  private readonly log = new RequestLog(REQUEST_LOG_CAPACITY);

  constructor(readonly config: SimulatorConfig, readonly now: () => number, readonly random: () => number) {
    for (const region of config.regions) this.regions.set(region.name, new RegionRuntime(region, now));
  }

  region(name: string): RegionRuntime {
    const region = this.regions.get(name);
    if (region === undefined) throw new Error(`Unknown simulator region "${name}"`);
    return region;
  }

  deployment(regionName: string, deploymentName: string): DeploymentRuntime {
    const deployment = this.region(regionName).deployments.get(deploymentName);
    if (deployment === undefined) throw new Error(`Unknown deployment "${deploymentName}" in region "${regionName}"`);
    return deployment;
  }

  record(region: RegionRuntime, deploymentName: string, outcome: RequestOutcome): void {
    const deployment = region.deployments.get(deploymentName);
    if (deployment !== undefined) {
      const counters = deployment.counters;
      counters.requests++;
      if (outcome.status >= 200 && outcome.status < 300) counters.status200++;
      else if (outcome.status === 429) counters.status429++;
      else if (outcome.status >= 400 && outcome.status < 500) counters.status4xx++;
      else if (outcome.status >= 500) counters.status5xx++;
      counters.tokensCharged += outcome.charged;
      counters.promptTokens += outcome.promptTokens;
      counters.completionTokens += outcome.completionTokens;
    }
    this.log.add({
      at: outcome.at,
      region: region.config.name,
      deployment: deploymentName,
      status: outcome.status,
      charged: outcome.charged,
      ...(outcome.jobId !== undefined ? { jobId: outcome.jobId } : {}),
      requestId: outcome.requestId,
    });
  }

  counters(): SimCounters {
    const result: SimCounters = {};
    for (const [regionName, region] of this.regions) {
      const perDeployment: Record<string, SimDeploymentCounters> = {};
      for (const [name, deployment] of region.deployments) perDeployment[name] = deployment.snapshot();
      result[regionName] = perDeployment;
    }
    return result;
  }

  requests(sinceMs?: number): SimRequestRecord[] {
    return this.log.list(sinceMs);
  }

  /** Counters, windows, limits and request log back to the configured start; faults are cleared by the caller (they may reopen ports). */
  resetCountersAndWindows(): void {
    for (const region of this.regions.values()) {
      for (const deployment of region.deployments.values()) deployment.reset();
    }
    this.log.clear();
  }
}
