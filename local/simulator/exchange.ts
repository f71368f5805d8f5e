// One HTTP request/response on a region server: Azure-like headers on every answer, and exactly
// one record in the counters and request log per request (even when the client hangs up).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AzureError } from './azureShapes';
import type { AdmissionState } from './rateLimiter';
import type { DeploymentRuntime, RegionRuntime, SimulatorState } from './state';

/** Logged status for a request whose client disconnected before any answer (nginx convention). */
export const CLIENT_CLOSED_STATUS = 499;

export class Exchange {
  readonly requestId = randomUUID();
  readonly arrivedAt: number;
  readonly jobId: string | undefined;
  readonly instance: string | undefined;
  deploymentName = '';
  deployment: DeploymentRuntime | undefined;
  /** Limiter state after this request's admission decision, for the x-ratelimit-* headers. */
  admission: AdmissionState | undefined;
  charged = 0;
  promptTokens = 0;
  completionTokens = 0;
  private recorded = false;

  constructor(
    private readonly state: SimulatorState,
    readonly region: RegionRuntime,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {
    this.arrivedAt = state.now();
    const jobHeader = req.headers['x-sluice-job-id'];
    this.jobId = typeof jobHeader === 'string' && jobHeader !== '' ? jobHeader : undefined;
    const instanceHeader = req.headers['x-sluice-instance'];
    this.instance = typeof instanceHeader === 'string' && instanceHeader !== '' ? instanceHeader : undefined;
    res.on('close', () => this.record(res.headersSent ? res.statusCode : CLIENT_CLOSED_STATUS));
  }

  /** Names the deployment the request addresses (it may not exist). */
  setDeployment(name: string): void {
    this.deploymentName = name;
    this.deployment = this.region.deployments.get(name);
  }

  /** True once the client hung up (or a 'refuse' fault dropped the connection). */
  get clientGone(): boolean {
    return this.res.destroyed;
  }

  sendError(error: AzureError): void {
    this.sendJson(error.status, error.body, error.headers);
  }

  sendJson(status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
    if (this.res.headersSent || this.res.destroyed) return;
    const payload = JSON.stringify(body);
    this.res.writeHead(status, {
      ...this.headers(),
      ...extraHeaders,
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(payload)),
    });
    // Record before the bytes leave so a client that reads counters right after sees this request.
    this.record(status);
    this.res.end(payload);
  }

  beginStream(): void {
    this.res.writeHead(200, {
      ...this.headers(),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
    });
  }

  writeEvent(data: unknown): void {
    if (!this.res.destroyed) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  endStream(): void {
    this.record(200);
    if (!this.res.destroyed) this.res.end('data: [DONE]\n\n');
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = {
      'x-request-id': this.requestId,
      'apim-request-id': this.requestId,
      'x-ms-region': this.region.config.name,
    };
    if (this.deployment !== undefined) {
      const limits = this.deployment.limiter.getLimits();
      const remaining = this.admission ?? this.deployment.limiter.peek();
      headers['x-ms-deployment-name'] = this.deployment.config.name;
      headers['x-ratelimit-limit-tokens'] = String(limits.tpm);
      headers['x-ratelimit-limit-requests'] = String(limits.rpm);
      headers['x-ratelimit-remaining-tokens'] = String(remaining.remainingTokens);
      headers['x-ratelimit-remaining-requests'] = String(remaining.remainingRequests);
    }
    return headers;
  }

  private record(status: number): void {
    if (this.recorded) return;
    this.recorded = true;
    this.state.record(this.region, this.deploymentName, {
      at: this.arrivedAt,
      status,
      charged: this.charged,
      promptTokens: this.promptTokens,
      completionTokens: this.completionTokens,
      ...(this.jobId !== undefined ? { jobId: this.jobId } : {}),
      ...(this.instance !== undefined ? { instance: this.instance } : {}),
      requestId: this.requestId,
    });
  }
}
