// Admin HTTP endpoint (127.0.0.1 only, JSON) for tests, benchmarks and humans with curl:
//   GET  /_admin/state                                   config, faults, counters
//   GET  /_admin/requests?since=<epochMs>                request log
//   POST /_admin/regions/{region}/fault                  FaultSpec body; {} clears
//   POST /_admin/regions/{region}/deployments/{d}/limits {tpm?, rpm?}
//   POST /_admin/reset                                   counters, windows, limits, faults back to config
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { faultSpecSchema, limitsSchema, type FaultSpec } from './config';
import type { SimRequestRecord } from './state';

/** What the admin endpoint can do; implemented by the running simulator. */
export interface AdminController {
  stateSnapshot(): unknown;
  requests(sinceMs?: number): SimRequestRecord[];
  /** Resolves once a 'refuse' fault has closed (or a cleared one reopened) the port. */
  applyFault(region: string, fault: FaultSpec): Promise<void>;
  setLimits(region: string, deployment: string, limits: { tpm?: number; rpm?: number }): void;
  resetAll(): Promise<void>;
}

class AdminError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const FAULT_PATH = /^\/_admin\/regions\/([^/]+)\/fault\/?$/;
const LIMITS_PATH = /^\/_admin\/regions\/([^/]+)\/deployments\/([^/]+)\/limits\/?$/;

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new AdminError(400, 'Body is not valid JSON');
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) });
  res.end(payload);
}

export class AdminServer {
  private readonly server: Server;
  private assignedPort: number;

  constructor(private readonly controller: AdminController, port: number | undefined) {
    this.assignedPort = port ?? 0;
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  /** http://127.0.0.1:PORT/_admin */
  get url(): string {
    return `http://127.0.0.1:${this.assignedPort}/_admin`;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.assignedPort, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.assignedPort = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      send(res, 200, await this.route(req));
    } catch (error) {
      const status = error instanceof AdminError ? error.status : 500;
      send(res, status, { error: { message: (error as Error).message } });
    }
  }

  private async route(req: IncomingMessage): Promise<unknown> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/_admin/state') return this.controller.stateSnapshot();
    if (req.method === 'GET' && path === '/_admin/requests') {
      const since = url.searchParams.get('since');
      const sinceMs = since === null || since === '' ? undefined : Number(since);
      if (sinceMs !== undefined && !Number.isFinite(sinceMs)) throw new AdminError(400, 'since must be epoch milliseconds');
      return { requests: this.controller.requests(sinceMs) };
    }
    if (req.method !== 'POST') throw new AdminError(404, `No admin route for ${req.method} ${path}`);
    if (path === '/_admin/reset') {
      await this.controller.resetAll();
      return { ok: true };
    }
    const faultMatch = FAULT_PATH.exec(path);
    if (faultMatch !== null) {
      const parsed = faultSpecSchema.safeParse(await readJson(req));
      if (!parsed.success) throw new AdminError(400, `Invalid fault: ${parsed.error.message}`);
      await this.guard(() => this.controller.applyFault(decodeURIComponent(faultMatch[1]!), parsed.data));
      return { ok: true, fault: parsed.data };
    }
    const limitsMatch = LIMITS_PATH.exec(path);
    if (limitsMatch !== null) {
      const parsed = limitsSchema.safeParse(await readJson(req));
      if (!parsed.success) throw new AdminError(400, `Invalid limits: ${parsed.error.message}`);
      await this.guard(async () =>
        this.controller.setLimits(decodeURIComponent(limitsMatch[1]!), decodeURIComponent(limitsMatch[2]!), parsed.data),
      );
      return { ok: true };
    }
    throw new AdminError(404, `No admin route for ${req.method} ${path}`);
  }

  /** Unknown region/deployment errors from the controller become 404s. */
  private async guard(action: () => Promise<void>): Promise<void> {
    try {
      await action();
    } catch (error) {
      if (error instanceof Error && /^Unknown /.test(error.message)) throw new AdminError(404, error.message);
      throw error;
    }
  }
}
