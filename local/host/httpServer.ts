// The HTTP front end of the local host: routes requests to httpTrigger functions the way the Functions host does
// (routePrefix, route templates, methods, authLevel) and hands them to the worker-style invocation pipeline.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RegisteredFunction } from './coreShim';
import type { RpcHttpCookie, RpcHttpData, RpcInvocationResponse, RpcTypedData } from './coreTypes';
import { randomUUID } from 'node:crypto';
import { forwardToProxy, proxyAgent, streamTriggerMetadata } from './httpStream';
import { invokeFunction, triggerBindingName } from './invoke';
import type { HostLog } from './logging';
import { RouteTable } from './routes';

export interface HttpServerOptions {
  /** 0 = ephemeral. */
  port: number;
  routePrefix: string;
  functions: RegisteredFunction[];
  log: HostLog;
  /** When set, function/admin-level routes need this key (x-functions-key header or ?code=). */
  functionsKey: string | undefined;
  /** Largest accepted request body, bytes. @default 104857600 (100 MB, the Functions limit) */
  maxBodyBytes?: number;
  /** The library's HTTP streaming proxy (httpStream.ts), when the app enabled streaming. @default none: buffered answers */
  streamUri?: string;
}

export interface RunningHttpServer {
  url: string;
  port: number;
  /** Stops accepting requests, waits for in-flight invocations, then closes connections. */
  close(): Promise<void>;
}

export const DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024;

interface HttpRoute {
  fn: RegisteredFunction;
  bindingName: string;
  authLevel: string;
}

class BodyTooLargeError extends Error {}

function jsonError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code } });
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) throw new BodyTooLargeError();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new BodyTooLargeError();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

function toSetCookie(cookie: RpcHttpCookie): string {
  const parts = [`${cookie.name ?? ''}=${cookie.value ?? ''}`];
  if (cookie.domain?.value) parts.push(`Domain=${cookie.domain.value}`);
  if (cookie.path?.value) parts.push(`Path=${cookie.path.value}`);
  const seconds = cookie.expires?.value?.seconds;
  if (seconds !== undefined && seconds !== null) {
    const epochSeconds = typeof seconds === 'number' ? seconds : seconds.toNumber();
    parts.push(`Expires=${new Date(epochSeconds * 1000).toUTCString()}`);
  }
  if (cookie.maxAge?.value !== undefined && cookie.maxAge.value !== null) parts.push(`Max-Age=${cookie.maxAge.value}`);
  if (cookie.secure?.value) parts.push('Secure');
  if (cookie.httpOnly?.value) parts.push('HttpOnly');
  const sameSite = { lax: 'Lax', strict: 'Strict', explicitNone: 'None', none: undefined }[cookie.sameSite ?? 'none'];
  if (sameSite) parts.push(`SameSite=${sameSite}`);
  return parts.join('; ');
}

function bodyBytes(body: RpcTypedData | null | undefined): Buffer {
  if (!body) return Buffer.alloc(0);
  if (body.bytes) return Buffer.from(body.bytes.buffer, body.bytes.byteOffset, body.bytes.byteLength);
  if (body.string !== undefined && body.string !== null) return Buffer.from(body.string, 'utf8');
  if (body.json !== undefined && body.json !== null) return Buffer.from(body.json, 'utf8');
  return Buffer.alloc(0);
}

/** The HTTP output: `$return`, or else the first output binding carrying http data. */
function httpOutput(response: RpcInvocationResponse): RpcHttpData | undefined {
  return response.returnValue?.http ?? response.outputData?.find((o) => o.data?.http)?.data?.http ?? undefined;
}

function writeResponse(res: ServerResponse, http: RpcHttpData | undefined): void {
  if (!http) {
    // A handler that returns nothing answers 204, as the Functions host does for an empty result.
    res.writeHead(204).end();
    return;
  }
  const body = bodyBytes(http.body);
  const headers: Record<string, string | string[]> = { ...(http.headers ?? {}) };
  const cookies = (http.cookies ?? []).map(toSetCookie);
  if (cookies.length) headers['set-cookie'] = cookies;
  headers['content-length'] = String(body.length);
  res.writeHead(Number(http.statusCode ?? 200) || 200, headers);
  res.end(body);
}

function buildRoutes(options: HttpServerOptions): RouteTable<HttpRoute> {
  const table = new RouteTable<HttpRoute>(options.routePrefix);
  for (const fn of options.functions) {
    const bindingName = triggerBindingName(fn);
    const binding = fn.metadata.bindings[bindingName]!;
    if (String(binding.type).toLowerCase() !== 'httptrigger') continue;
    const route = typeof binding.route === 'string' && binding.route !== '' ? binding.route : fn.metadata.name;
    const methods = Array.isArray(binding.methods) ? (binding.methods as string[]) : undefined;
    table.add(route, methods, { fn, bindingName, authLevel: String(binding.authLevel ?? 'function').toLowerCase() });
  }
  return table;
}

export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const routes = buildRoutes(options);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const inFlight = new Set<Promise<void>>();
  const agent = proxyAgent();
  let port = options.port;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? `127.0.0.1:${port}`}`);
    const method = (req.method ?? 'GET').toUpperCase();
    const match = routes.match(method, url.pathname);
    if (match.kind !== 'matched') {
      req.resume();
      if (url.pathname === '/admin/host/status' && method === 'GET') {
        // Readiness probe on the same path as the Functions host.
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify({ state: 'Running' }));
        return;
      }
      if (match.kind === 'methodNotAllowed') {
        return jsonError(res, 405, 'method_not_allowed', `${method} is not allowed on ${url.pathname}`, { allow: match.allowed.join(', ') });
      }
      return jsonError(res, 404, 'not_found', `No function matches ${method} ${url.pathname}`);
    }
    const { fn, bindingName, authLevel } = match.value;
    if (authLevel !== 'anonymous' && options.functionsKey !== undefined) {
      const presented = req.headers['x-functions-key'] ?? url.searchParams.get('code');
      if (presented !== options.functionsKey) {
        req.resume();
        res.writeHead(401, { 'content-length': '0' }).end();
        return;
      }
    }
    let body: Buffer;
    try {
      body = await readBody(req, maxBodyBytes);
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) throw err;
      res.setHeader('connection', 'close');
      return jsonError(res, 413, 'request_too_large', `request body exceeds ${maxBodyBytes} bytes`);
    }
    const query: Record<string, string> = {};
    for (const key of new Set(url.searchParams.keys())) query[key] = url.searchParams.getAll(key).join(',');
    const http: RpcHttpData = {
      method,
      url: url.toString(),
      headers: flattenHeaders(req),
      query,
      params: match.params,
      ...(body.length > 0 ? { body: { bytes: body } } : {}),
    };
    const reason = `This function was programmatically called via the host APIs.`;
    if (options.streamUri) {
      // Streaming: the request and the answer travel through the library's proxy, the invocation carries metadata.
      const invocationId = randomUUID();
      const { body: _buffered, ...metadataOnly } = http;
      const forwarded = forwardToProxy(options.streamUri, agent, invocationId, req, res, `${url.pathname}${url.search}`, body);
      try {
        await invokeFunction(
          fn,
          { triggerBindingName: bindingName, triggerData: { http: metadataOnly }, triggerMetadata: streamTriggerMetadata(http.headers ?? {}, query, match.params), invocationId, reason },
          options.log,
        );
        await forwarded.done;
      } catch {
        // The handler's error is already logged by invokeFunction; the client sees a bare 500 like in Azure.
        if (!forwarded.answered()) {
          forwarded.abort();
          if (!res.headersSent) res.writeHead(500, { 'content-length': '0' }).end();
        }
      }
      return;
    }
    try {
      const { response } = await invokeFunction(fn, { triggerBindingName: bindingName, triggerData: { http }, reason }, options.log);
      writeResponse(res, httpOutput(response));
    } catch {
      // The handler's error is already logged by invokeFunction; the client sees a bare 500 like in Azure.
      if (!res.headersSent) res.writeHead(500, { 'content-length': '0' }).end();
    }
  };

  const server: Server = createServer((req, res) => {
    const done = handle(req, res)
      .catch((err: unknown) => {
        options.log('Host.General', 'Error', `[${new Date().toISOString()}] host ERROR: ${(err as Error).stack ?? String(err)}`);
        if (!res.headersSent) res.writeHead(500, { 'content-length': '0' }).end();
        else res.destroy();
      })
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new Error(`port ${options.port} on 127.0.0.1 is already in use (set FUNCTIONS_HTTP_PORT or --port)`) : err);
    };
    server.once('error', onError);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', onError);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await Promise.allSettled([...inFlight]);
      server.closeAllConnections();
      agent.destroy();
      await closed;
    },
  };
}
