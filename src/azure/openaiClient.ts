/**
 * Azure OpenAI through the official `openai` package's AzureOpenAI client. `maxRetries: 0`: Sluice owns retries,
 * because the SDK would sleep for whatever Retry-After says, even a day. Managed identity by default
 * (DefaultAzureCredential + getBearerTokenProvider); an api key only where an endpoint is configured with one.
 */
import { AzureOpenAI, APIConnectionTimeoutError, APIError } from 'openai';
import { DefaultAzureCredential, getBearerTokenProvider } from '@azure/identity';
import type { EndpointSettings } from '../core/endpoints';
import { errorFromResponse, retryAfterFromHeaders, SluiceError, UpstreamUnavailableError } from '../core/errors';
import type { ModelCallOptions, ModelCallResult, ModelClient } from '../core/modelClient';

/** Which instance (process) made a call, for diagnostics on the service side: Azure's instance id, else the pid. */
const INSTANCE_ID = `${process.env.WEBSITE_INSTANCE_ID?.slice(0, 12) ?? 'local'}:${process.pid}`;

const COGNITIVE_SERVICES_SCOPE = 'https://cognitiveservices.azure.com/.default';

export class AzureOpenAIModelClient implements ModelClient {
  private readonly clients = new Map<string, AzureOpenAI>();
  private tokenProvider: (() => Promise<string>) | undefined;

  constructor(private readonly apiVersion: string, private readonly managedIdentityClientId?: string) {}

  protected clientFor(target: EndpointSettings): AzureOpenAI {
    const key = `${target.endpoint}|${target.deployment}`;
    let client = this.clients.get(key);
    if (!client) {
      const common = { endpoint: target.endpoint, deployment: target.deployment, apiVersion: this.apiVersion, maxRetries: 0 };
      if (target.auth === 'key') {
        client = new AzureOpenAI({ ...common, apiKey: target.apiKey });
      } else {
        this.tokenProvider ??= getBearerTokenProvider(
          new DefaultAzureCredential(this.managedIdentityClientId ? { managedIdentityClientId: this.managedIdentityClientId } : {}),
          COGNITIVE_SERVICES_SCOPE,
        );
        client = new AzureOpenAI({ ...common, azureADTokenProvider: this.tokenProvider });
      }
      this.clients.set(key, client);
    }
    return client;
  }

  async chat(target: EndpointSettings, body: Record<string, unknown>, opts: ModelCallOptions): Promise<ModelCallResult> {
    const client = this.clientFor(target);
    try {
      const { data, response } = await client.chat.completions
        .create({ ...body, model: target.deployment, stream: false } as unknown as Parameters<typeof client.chat.completions.create>[0], {
          timeout: opts.timeoutMs,
          headers: { 'x-sluice-job-id': opts.jobId, 'x-sluice-attempt': String(opts.attempt), 'x-sluice-instance': INSTANCE_ID },
        })
        .withResponse();
      return { body: data as unknown as Record<string, unknown>, status: response.status, header: (n) => response.headers.get(n) };
    } catch (err) {
      throw upstreamError(err, target, opts.timeoutMs);
    }
  }
}

/** What the SDK threw, as a SluiceError: timeouts and transport failures are retryable, statuses go through errorFromResponse. */
export function upstreamError(err: unknown, target: EndpointSettings, timeoutMs: number): SluiceError {
  if (err instanceof APIConnectionTimeoutError) {
    return new UpstreamUnavailableError('timeout', `no answer from ${target.region} within ${timeoutMs} ms`, 504);
  }
  if (err instanceof APIError && err.status) {
    const headers = err.headers;
    const retryAfter = retryAfterFromHeaders((n) => headers?.get(n));
    const mapped = errorFromResponse(err.status, { error: err.error }, retryAfter);
    (mapped as { headers?: Headers }).headers = headers;
    return mapped;
  }
  const message = err instanceof Error ? err.message : String(err);
  return new UpstreamUnavailableError('connection_failed', `could not reach ${target.region}: ${message}`, 503);
}
