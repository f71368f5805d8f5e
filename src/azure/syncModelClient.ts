/**
 * The synchronous API's calls to Azure OpenAI, through the same AzureOpenAI clients as the worker's (identity or key,
 * no SDK retries). Streams come back as the raw response so their bytes pass through untouched; embeddings go as
 * posted, since the SDK's `embeddings.create` would change the encoding the client asked for.
 */
import type { EndpointSettings } from '../core/endpoints';
import type { SyncUpstream, UpstreamAnswer, UpstreamCallOptions, UpstreamStream } from '../core/sync/types';
import { AzureOpenAIModelClient, upstreamError } from './openaiClient';

/** Which instance (process) made a call, for diagnostics on the service side. */
const INSTANCE_ID = `${process.env.WEBSITE_INSTANCE_ID?.slice(0, 12) ?? 'local'}:${process.pid}`;

export class AzureSyncClient extends AzureOpenAIModelClient implements SyncUpstream {
  private requestOptions(opts: UpstreamCallOptions) {
    return { timeout: opts.timeoutMs, signal: opts.signal, headers: { 'x-sluice-request-id': opts.requestId, 'x-sluice-instance': INSTANCE_ID } };
  }

  async complete(target: EndpointSettings, body: Record<string, unknown>, opts: UpstreamCallOptions): Promise<UpstreamAnswer> {
    const client = this.clientFor(target);
    try {
      const { data, response } = await client.chat.completions
        .create({ ...body, model: target.deployment, stream: false } as unknown as Parameters<typeof client.chat.completions.create>[0], this.requestOptions(opts))
        .withResponse();
      return { body: data as unknown as Record<string, unknown>, status: response.status, header: (n) => response.headers.get(n) };
    } catch (err) {
      throw upstreamError(err, target, opts.timeoutMs);
    }
  }

  async stream(target: EndpointSettings, body: Record<string, unknown>, opts: UpstreamCallOptions): Promise<UpstreamStream> {
    const client = this.clientFor(target);
    try {
      const response = await client.chat.completions
        .create({ ...body, model: target.deployment, stream: true } as unknown as Parameters<typeof client.chat.completions.create>[0], this.requestOptions(opts))
        .asResponse();
      if (!response.body) throw new Error('the deployment sent no stream body');
      return { status: response.status, header: (n) => response.headers.get(n), body: response.body as unknown as AsyncIterable<Uint8Array> };
    } catch (err) {
      throw upstreamError(err, target, opts.timeoutMs);
    }
  }

  async embed(target: EndpointSettings, body: Record<string, unknown>, opts: UpstreamCallOptions): Promise<UpstreamAnswer> {
    const client = this.clientFor(target);
    try {
      const { data, response } = await client.post<Record<string, unknown>>('/embeddings', { body: { ...body, model: target.deployment }, ...this.requestOptions(opts) }).withResponse();
      return { body: data, status: response.status, header: (n) => response.headers.get(n) };
    } catch (err) {
      throw upstreamError(err, target, opts.timeoutMs);
    }
  }
}
