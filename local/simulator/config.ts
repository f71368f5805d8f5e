// Simulator configuration: types, the default two-region setup, validation and loading
// from the environment. Validation uses zod so a typo in a JSON config fails loudly at
// start-up instead of producing a silently different simulator.
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export interface SimDeployment {
  /** Deployment name as it appears in the URL path (`/openai/deployments/{name}/...`). */
  name: string;
  /** Model id reported in responses, e.g. "gpt-4o-mini-2024-07-18". */
  model: string;
  /** Which operation the deployment serves; default 'chat'. */
  kind?: 'chat' | 'embeddings';
  /** Model version as Azure lists the deployment's model (e.g. "1", "2024-07-18"); passed on to SLUICE_ENDPOINTS. */
  modelVersion?: string;
  /** Tokens per minute (sliding 60 s window). */
  tpm: number;
  /** Requests per minute; default 6 per 1,000 TPM (Azure's ratio). */
  rpm?: number;
  /** Maximum prompt + completion tokens per request. */
  contextWindow: number;
  /** Largest accepted max_tokens / max_completion_tokens; absent = no separate cap. */
  maxOutputTokens?: number;
}

export interface SimRegion {
  name: string;
  /** TCP port on 127.0.0.1; 0 or absent = ephemeral. */
  port?: number;
  deployments: SimDeployment[];
}

export interface SimulatorConfig {
  regions: SimRegion[];
  /** Empty/absent: any non-empty api-key or Bearer token is accepted. */
  apiKeys?: string[];
  /** Latency model in milliseconds; default {firstTokenMs: 20, perTokenMs: 0.5}. */
  latency?: { firstTokenMs: number; perTokenMs: number };
  /** Substring in any message that makes the prompt filter fire; default "SLUICE_TRIGGER_CONTENT_FILTER". */
  contentFilterTrigger?: string;
  /** Completion tokens charged when neither max_tokens nor max_completion_tokens is given; default 4096, capped by the context window. */
  defaultMaxTokens?: number;
  /** Admin endpoint port on 127.0.0.1; 0/absent = ephemeral. */
  adminPort?: number;
}

/** Fault injected into one region (admin endpoint or RunningSimulator.setFault). `{}` clears. */
export interface FaultSpec {
  /** '503': answer everything 503; 'refuse': close the listening port (ECONNREFUSED). */
  down?: false | 'refuse' | '503';
  /** Share (0..1) of requests answered with that status, not charged. Shares add up. */
  errorRate?: { '500'?: number; '503'?: number; '429'?: number };
  /** Share (0..1) of requests delayed by slowMs before being handled. */
  slowRate?: number;
  /** Extra delay in ms for slow requests; default 5000. */
  slowMs?: number;
  /** retry-after for injected 429s, in seconds; default 1. */
  retryAfterSeconds?: number;
  /** Streamed answers lose their connection after this many content chunks (a mid-stream failure). */
  cutStreamAfterChunks?: number;
}

export const DEFAULT_LATENCY = { firstTokenMs: 20, perTokenMs: 0.5 } as const;
export const DEFAULT_CONTENT_FILTER_TRIGGER = 'SLUICE_TRIGGER_CONTENT_FILTER';
export const DEFAULT_MAX_TOKENS = 4096;
export const DEFAULT_SLOW_MS = 5000;
export const DEFAULT_INJECTED_RETRY_AFTER_SECONDS = 1;

/** Azure's default ratio: 6 requests per minute for every 1,000 tokens per minute. */
export function defaultRpmForTpm(tpm: number): number {
  return Math.max(1, Math.floor((tpm / 1000) * 6));
}

function defaultDeployments(): SimDeployment[] {
  return [
    {
      name: 'gpt-4o-mini',
      model: 'gpt-4o-mini-2024-07-18',
      kind: 'chat',
      modelVersion: '2024-07-18',
      // Deliberately low so a local burst actually meets a 429.
      tpm: 30000,
      contextWindow: 128000,
      maxOutputTokens: 16384,
    },
    {
      name: 'text-embedding-3-small',
      model: 'text-embedding-3-small',
      kind: 'embeddings',
      modelVersion: '1',
      tpm: 120000,
      contextWindow: 8191,
    },
  ];
}

/** Two regions with ephemeral ports; the CLI assigns fixed ports (see cli.ts). */
export const DEFAULT_SIMULATOR_CONFIG: SimulatorConfig = {
  regions: [
    { name: 'sim-eastus', deployments: defaultDeployments() },
    { name: 'sim-westus', deployments: defaultDeployments() },
  ],
  latency: { ...DEFAULT_LATENCY },
  contentFilterTrigger: DEFAULT_CONTENT_FILTER_TRIGGER,
  defaultMaxTokens: DEFAULT_MAX_TOKENS,
};

const port = z.number().int().min(0).max(65535);
const share = z.number().min(0).max(1);

const deploymentSchema = z.strictObject({
  name: z.string().min(1),
  model: z.string().min(1),
  kind: z.enum(['chat', 'embeddings']).optional(),
  modelVersion: z.string().min(1).optional(),
  tpm: z.number().int().positive(),
  rpm: z.number().int().positive().optional(),
  contextWindow: z.number().int().positive(),
  maxOutputTokens: z.number().int().positive().optional(),
});

const regionSchema = z.strictObject({
  name: z.string().min(1),
  port: port.optional(),
  deployments: z.array(deploymentSchema),
});

const configSchema = z.strictObject({
  regions: z.array(regionSchema).min(1),
  apiKeys: z.array(z.string().min(1)).optional(),
  latency: z.strictObject({ firstTokenMs: z.number().min(0), perTokenMs: z.number().min(0) }).optional(),
  contentFilterTrigger: z.string().min(1).optional(),
  defaultMaxTokens: z.number().int().positive().optional(),
  adminPort: port.optional(),
});

export const faultSpecSchema = z.strictObject({
  down: z.union([z.literal(false), z.literal('refuse'), z.literal('503')]).optional(),
  errorRate: z.strictObject({ '500': share.optional(), '503': share.optional(), '429': share.optional() }).optional(),
  slowRate: share.optional(),
  slowMs: z.number().min(0).optional(),
  retryAfterSeconds: z.number().min(0).optional(),
  cutStreamAfterChunks: z.number().int().min(0).optional(),
});

export const limitsSchema = z.strictObject({
  tpm: z.number().int().positive().optional(),
  rpm: z.number().int().positive().optional(),
});

/** Throws an Error naming the offending field when the config is invalid; checks unique names. */
export function validateSimulatorConfig(input: unknown): SimulatorConfig {
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    throw new Error(`Invalid simulator config: ${z.prettifyError(parsed.error)}`);
  }
  const config: SimulatorConfig = parsed.data;
  const regionNames = new Set<string>();
  for (const region of config.regions) {
    if (regionNames.has(region.name)) throw new Error(`Invalid simulator config: duplicate region "${region.name}"`);
    regionNames.add(region.name);
    const deploymentNames = new Set<string>();
    for (const deployment of region.deployments) {
      if (deploymentNames.has(deployment.name)) {
        throw new Error(`Invalid simulator config: duplicate deployment "${deployment.name}" in region "${region.name}"`);
      }
      deploymentNames.add(deployment.name);
    }
  }
  return config;
}

/**
 * Reads the config from SIMULATOR_CONFIG (a JSON string) or SIMULATOR_CONFIG_FILE (a path to
 * a JSON file), in that order; otherwise returns a copy of DEFAULT_SIMULATOR_CONFIG.
 */
export function loadSimulatorConfig(env: NodeJS.ProcessEnv = process.env): SimulatorConfig {
  const inline = env['SIMULATOR_CONFIG'];
  if (inline !== undefined && inline.trim() !== '') {
    return validateSimulatorConfig(parseJson(inline, 'SIMULATOR_CONFIG'));
  }
  const file = env['SIMULATOR_CONFIG_FILE'];
  if (file !== undefined && file.trim() !== '') {
    return validateSimulatorConfig(parseJson(readFileSync(file, 'utf8'), `SIMULATOR_CONFIG_FILE ${file}`));
  }
  return structuredClone(DEFAULT_SIMULATOR_CONFIG);
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${source} is not valid JSON: ${(error as Error).message}`);
  }
}
