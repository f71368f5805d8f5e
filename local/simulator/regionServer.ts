// One HTTP server per simulated region (127.0.0.1 only): routing, auth, injected faults, and
// the ability to really stop listening (down: 'refuse') and reopen on the same port.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  deploymentNotFound,
  internalServerError,
  invalidRequest,
  missingApiVersion,
  operationNotSupported,
  rateLimited,
  resourceNotFound,
  serviceUnavailable,
  unauthorized,
  type AzureError,
  type AzureOperation,
} from './azureShapes';
import { handleChatCompletion } from './chat';
import { DEFAULT_INJECTED_RETRY_AFTER_SECONDS, DEFAULT_SLOW_MS, type FaultSpec } from './config';
import { handleEmbeddings } from './embeddings';
import { Exchange } from './exchange';
import { sleep, type SimulatorSettings } from './settings';
import type { RegionRuntime, SimulatorState } from './state';

type Operation = 'chat' | 'embeddings';

interface Route {
  operation: Operation;
  /** Deployment from the URL; undefined on /openai/v1/ paths, where the body's `model` names it. */
  deploymentFromPath: string | undefined;
}

const DEPLOYMENT_PATH = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)\/?$/;
const V1_PATH = /^\/openai\/v1\/(chat\/completions|embeddings)\/?$/;
const MAX_BODY_BYTES = 64 * 1024 * 1024;

function matchRoute(method: string | undefined, pathname: string): Route | undefined {
  if (method !== 'POST') return undefined;
  const deploymentMatch = DEPLOYMENT_PATH.exec(pathname);
  if (deploymentMatch !== null) {
    return { operation: deploymentMatch[2] === 'embeddings' ? 'embeddings' : 'chat', deploymentFromPath: decodeURIComponent(deploymentMatch[1]!) };
  }
  const v1Match = V1_PATH.exec(pathname);
  if (v1Match !== null) return { operation: v1Match[1] === 'embeddings' ? 'embeddings' : 'chat', deploymentFromPath: undefined };
  return undefined;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function presentedKey(req: IncomingMessage): string | undefined {
  const apiKey = req.headers['api-key'];
  if (typeof apiKey === 'string' && apiKey.trim() !== '') return apiKey.trim();
  const bearer = /^Bearer\s+(\S.*)$/i.exec(req.headers.authorization ?? '');
  return bearer?.[1]?.trim();
}

/** Draws at most one injected error for this request, by the fault's shares. */
function injectedError(fault: FaultSpec, random: () => number, operation: AzureOperation, apiVersion: string): AzureError | undefined {
  const rates = fault.errorRate;
  if (rates === undefined) return undefined;
  const draw = random();
  let threshold = rates['500'] ?? 0;
  if (draw < threshold) return internalServerError();
  threshold += rates['503'] ?? 0;
  if (draw < threshold) return serviceUnavailable();
  threshold += rates['429'] ?? 0;
  if (draw < threshold) {
    const seconds = fault.retryAfterSeconds ?? DEFAULT_INJECTED_RETRY_AFTER_SECONDS;
    return rateLimited(operation, apiVersion, 'requests', seconds * 1000);
  }
  return undefined;
}

export class RegionServer {
  private readonly server: Server;
  private assignedPort: number;
  private listening = false;
  // Serialises refuse/reopen/close so concurrent fault changes cannot interleave.
  private transition: Promise<void> = Promise.resolve();

  constructor(
    private readonly state: SimulatorState,
    private readonly region: RegionRuntime,
    private readonly settings: SimulatorSettings,
  ) {
    this.assignedPort = region.config.port ?? 0;
    this.server = createServer((req, res) => void this.handle(req, res));
    // Long streams must not be cut by Node's default request timeout.
    this.server.requestTimeout = 0;
  }

  get name(): string {
    return this.region.config.name;
  }

  get port(): number {
    return this.assignedPort;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.assignedPort}`;
  }

  /** Starts listening (first call: on the configured port, or an ephemeral one). */
  start(): Promise<void> {
    return this.enqueue(() => this.listen());
  }

  /** Closes the listener and drops open connections so clients see ECONNREFUSED. */
  refuse(): Promise<void> {
    return this.enqueue(() => this.stopListening());
  }

  /** Reopens on the same port after refuse(); no-op when already listening. */
  reopen(): Promise<void> {
    return this.enqueue(() => this.listen());
  }

  close(): Promise<void> {
    return this.refuse();
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.transition.then(step);
    this.transition = next.catch(() => undefined);
    return next;
  }

  private async listen(): Promise<void> {
    if (this.listening) return;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.assignedPort, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.assignedPort = (this.server.address() as AddressInfo).port;
    this.listening = true;
  }

  private async stopListening(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const exchange = new Exchange(this.state, this.region, req, res);
    try {
      await this.route(exchange);
    } catch (error) {
      console.error(`[simulator ${this.name}] request failed:`, error);
      exchange.sendError(internalServerError());
    }
  }

  private async route(exchange: Exchange): Promise<void> {
    const { req } = exchange;
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const route = matchRoute(req.method, url.pathname);
    const rawBody = await readBody(req);
    if (route === undefined) return exchange.sendError(resourceNotFound());
    const body = parseJsonObject(rawBody);
    const deploymentName = route.deploymentFromPath ?? (typeof body?.['model'] === 'string' ? body['model'] : undefined);
    if (deploymentName !== undefined) exchange.setDeployment(deploymentName);
    const apiVersionParam = url.searchParams.get('api-version');
    const apiVersion = apiVersionParam ?? 'v1';
    const operation: AzureOperation = route.operation === 'chat' ? 'ChatCompletions_Create' : 'Embeddings_Create';

    // Faults model the region itself failing, so they come before any request validation.
    const fault = this.region.fault;
    if (fault.down === '503') return exchange.sendError(serviceUnavailable());
    if (fault.slowRate !== undefined && fault.slowRate > 0 && this.state.random() < fault.slowRate) {
      await sleep(fault.slowMs ?? DEFAULT_SLOW_MS);
    }
    const injected = injectedError(fault, this.state.random, operation, apiVersion);
    if (injected !== undefined) return exchange.sendError(injected);

    if (route.deploymentFromPath !== undefined && (apiVersionParam === null || apiVersionParam === '')) {
      return exchange.sendError(missingApiVersion());
    }
    const key = presentedKey(req);
    if (key === undefined || (this.settings.apiKeys.size > 0 && !this.settings.apiKeys.has(key))) {
      return exchange.sendError(unauthorized());
    }
    if (body === undefined) {
      return exchange.sendError(
        invalidRequest(
          "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
          null,
        ),
      );
    }
    if (deploymentName === undefined) return exchange.sendError(invalidRequest("'model' is a required property", 'model'));
    const deployment = exchange.deployment;
    if (deployment === undefined) return exchange.sendError(deploymentNotFound());
    const kind = deployment.config.kind ?? 'chat';
    if (kind !== route.operation) {
      return exchange.sendError(operationNotSupported(route.operation === 'chat' ? 'chatCompletion' : 'embeddings', deployment.config.model));
    }
    if (route.operation === 'chat') return handleChatCompletion(exchange, body, apiVersion, this.settings);
    return handleEmbeddings(exchange, body, apiVersion, this.settings);
  }
}
