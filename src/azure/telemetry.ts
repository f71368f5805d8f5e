/**
 * Application Insights for Sluice (applicationinsights 3.x, OpenTelemetry underneath): the rollup's metrics and
 * events, and one dependency per Azure OpenAI call. Without APPLICATIONINSIGHTS_CONNECTION_STRING nothing is sent, so
 * local runs and tests need no ingestion endpoint.
 */
import { TelemetryClient } from 'applicationinsights';
import { MODEL_CALL_DEPENDENCY } from '../core/telemetry/names';
import type { TelemetrySink } from '../core/telemetry/rollupDeps';

/** Sends to Application Insights. Each metric is recorded once per series per window, so valueSum is the value. */
export class AppInsightsSink implements TelemetrySink {
  readonly client: TelemetryClient;

  constructor(connectionString: string) {
    // Own providers: does not touch a global OpenTelemetry setup the host may have.
    this.client = new TelemetryClient(connectionString, { useGlobalProviders: false });
  }

  metric(name: string, value: number, properties: Record<string, string>): void {
    this.client.trackMetric({ name, value, properties });
  }

  event(name: string, properties: Record<string, string>, measurements?: Record<string, number>): void {
    this.client.trackEvent({ name, properties, measurements });
  }

  async flush(): Promise<void> {
    await this.client.flush();
  }

  async shutdown(): Promise<void> {
    await this.client.shutdown();
  }
}

/**
 * No ingestion configured (local runs, tests): nothing is sent, and nothing is printed either. What a person must
 * see (budget thresholds, quota advice, unpriced models) the rollup also logs as warnings.
 */
class UnsentSink implements TelemetrySink {
  metric(): void {}
  event(): void {}
  async flush(): Promise<void> {}
}

let shared: TelemetrySink | undefined;

/** The process-wide sink: Application Insights when the connection string is set, else one that sends nothing. */
export function telemetrySink(env: Record<string, string | undefined> = process.env): TelemetrySink {
  if (!shared) {
    const conn = env.APPLICATIONINSIGHTS_CONNECTION_STRING?.trim();
    shared = conn ? new AppInsightsSink(conn) : new UnsentSink();
  }
  return shared;
}

interface ModelCall {
  jobId: string;
  attempt: number;
  region: string;
  deployment: string;
  /** Logical model. */
  model?: string;
  /** Endpoint URL (its host becomes the dependency target). */
  endpoint?: string;
  /** Epoch ms the call started. @default now − durationMs */
  startedAt?: number;
  durationMs: number;
  /** HTTP status, 0 when no response arrived. */
  status: number;
  success: boolean;
  /** Stable error code or "ok". */
  outcome?: string;
}

/**
 * One Azure OpenAI call as an Application Insights dependency (type HTTP, name "POST /openai/deployments/<deployment>/
 * chat/completions", target = the endpoint host, resultCode = HTTP status) carrying job_id, attempt, region and deployment. No-op without a
 * connection string.
 */
export function trackModelCall(call: ModelCall, sink: TelemetrySink = telemetrySink()): void {
  if (!(sink instanceof AppInsightsSink)) return;
  let target = `${call.region}/${call.deployment}`;
  try {
    if (call.endpoint) target = new URL(call.endpoint).host;
  } catch {
    /* keep region/deployment */
  }
  sink.client.trackDependency({
    name: `${MODEL_CALL_DEPENDENCY}${call.deployment}/chat/completions`,
    // HTTP type so resultCode carries the status (the SDK drops it for other types); data is the call's URL.
    dependencyTypeName: 'HTTP',
    target,
    data: `${call.endpoint ? call.endpoint.replace(/\/$/, '') : `https://${target}`}/openai/deployments/${call.deployment}/chat/completions`,
    duration: call.durationMs,
    resultCode: String(call.status),
    success: call.success,
    time: new Date(call.startedAt ?? Date.now() - call.durationMs),
    properties: {
      // With an HTTP method the exporter records it as an HTTP dependency: resultCode = status, name = "POST <path>".
      'http.method': 'POST',
      job_id: call.jobId,
      attempt: String(call.attempt),
      region: call.region,
      deployment: call.deployment,
      ...(call.model ? { model: call.model } : {}),
      ...(call.outcome ? { outcome: call.outcome } : {}),
    },
  });
}
