// HTTP streaming the way the Functions host does it when the app calls app.setup({ enableHttpStream: true }): the
// library reports an `HttpUri` capability (an HTTP server it runs in this process), the host invokes the function
// with the request's headers and route parameters as trigger metadata and, at the same time, forwards the request
// itself to that server tagged with `x-ms-invocation-id`. The library hands the handler that request and writes the
// handler's response back on it, chunk by chunk, and the host relays those chunks to the client as they come. A
// client that disconnects tears the forwarded request down too, which is how the app notices it.
import { Agent, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
// The module object itself (not an import wrapper), so its createServer can be watched while the library starts.
import httpModule = require('node:http');
import { currentProgrammingModel } from './coreShim';
import type { RpcTypedData } from './coreTypes';

let capability: Promise<string | undefined> | undefined;

/**
 * The library's proxy URL when the app enabled HTTP streaming, else undefined. Asked once per process (the library
 * locks its setup and starts its proxy server on the first ask), after the function files are loaded.
 */
export function httpStreamUri(): Promise<string | undefined> {
  capability ??= (async () => {
    const model = currentProgrammingModel();
    if (!model.getCapabilities) return undefined;
    // The library's proxy server would keep the process alive after every host has closed (Azure's worker never
    // exits on its own; a test process must): the server it creates while asked is unref'd.
    const created: Server[] = [];
    const createServer = httpModule.createServer;
    httpModule.createServer = ((...args: Parameters<typeof createServer>) => {
      const server = createServer(...args);
      created.push(server);
      return server;
    }) as typeof createServer;
    let asked: Promise<Record<string, string>>;
    try {
      asked = model.getCapabilities({});
    } finally {
      httpModule.createServer = createServer;
    }
    const capabilities = await asked;
    for (const server of created) server.unref();
    return capabilities.HttpUri || undefined;
  })();
  return capability;
}

/** Headers the host does not pass on: hop-by-hop ones, and the length (the forwarded body sets its own). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'content-length', 'host']);

/** Connections to the proxy, kept alive between requests; one per HTTP server, destroyed when it closes. */
export function proxyAgent(): Agent {
  return new Agent({ keepAlive: true });
}

/** Trigger metadata of a streamed HTTP invocation: headers and query as JSON, each route parameter as a string. */
export function streamTriggerMetadata(headers: Record<string, string>, query: Record<string, string>, params: Record<string, string>): Record<string, RpcTypedData> {
  const metadata: Record<string, RpcTypedData> = { Headers: { json: JSON.stringify(headers) }, Query: { json: JSON.stringify(query) } };
  for (const [name, value] of Object.entries(params)) metadata[name] = { string: value };
  return metadata;
}

export interface ForwardedRequest {
  /** Settles once the response has been relayed to the client (or the client left). Rejects if no response came. */
  done: Promise<void>;
  /** True once the library answered (status and headers are on their way to the client). */
  answered(): boolean;
  /** Tears the forwarded request down (the invocation failed without answering). */
  abort(): void;
}

/**
 * Forwards the client's request to the library's proxy and relays its answer to `res` as it arrives. A client that
 * disconnects first destroys the forwarded request at once.
 */
export function forwardToProxy(uri: string, agent: Agent, invocationId: string, req: IncomingMessage, res: ServerResponse, pathAndQuery: string, body: Buffer): ForwardedRequest {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  headers['content-length'] = String(body.length);
  headers['x-ms-invocation-id'] = invocationId;
  headers['x-forwarded-host'] = req.headers.host ?? '127.0.0.1';
  headers['x-forwarded-proto'] = 'http';
  let answered = false;
  const forwarded = httpRequest(new URL(pathAndQuery, uri), { method: req.method ?? 'GET', headers, agent });
  const done = new Promise<void>((resolve, reject) => {
    forwarded.on('response', (proxied) => {
      answered = true;
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(proxied.headers)) {
        if (value !== undefined && name !== 'x-ms-invocation-id' && (name === 'content-length' || !HOP_BY_HOP.has(name))) out[name] = value;
      }
      res.writeHead(proxied.statusCode ?? 200, out);
      // Each chunk goes out as it arrives: a streamed answer's events reach the client one by one.
      proxied.on('data', (chunk: Buffer) => res.write(chunk));
      proxied.on('end', () => {
        res.end();
        resolve();
      });
      proxied.on('error', () => {
        res.destroy();
        resolve();
      });
      proxied.on('aborted', () => {
        res.destroy();
        resolve();
      });
    });
    forwarded.on('error', (err) => (answered ? resolve() : reject(err)));
  });
  // The client left before the answer was complete: the forwarded request goes too, so the app sees it at once.
  res.on('close', () => {
    if (!res.writableFinished) forwarded.destroy();
  });
  forwarded.end(body);
  done.catch(() => undefined);
  return { done, answered: () => answered, abort: () => forwarded.destroy() };
}
