/**
 * Settings of the Files/Batches API, the batch driver and the submission queue, read and validated once.
 *
 * Queue names used in trigger bindings (`%SLUICE_SUBMIT_QUEUE%`, `%SLUICE_BATCH_QUEUE%`) and the sweep schedule must
 * be app settings for the host to resolve them, so importing this module sets their defaults into process.env when
 * absent (the local host resolves bindings after loading the function files). Infra should set them explicitly.
 * Part of the config: src/config.ts loadConfig() reads these too, so a bad value stops the app at start-up.
 */
import { z } from 'zod';
import { ConfigError } from '../../configError';

type Env = Record<string, string | undefined>;

const queueName = z.string().regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, 'is not a valid queue/container name');
const tableName = z.string().regex(/^[A-Za-z][A-Za-z0-9]{2,62}$/, 'is not a valid table name');
const posInt = z.coerce.number().int().positive();

/** Setting name → [schema, default]. Defaults are strings, as app settings are. */
const SETTINGS = {
  /** Blob container of uploaded and produced files. @default "sluice-files" */
  SLUICE_FILES_CONTAINER: [queueName, 'sluice-files'],
  /** Table of batches, their line-completion markers and indexes. @default "sluicebatches" */
  SLUICE_BATCHES_TABLE: [tableName, 'sluicebatches'],
  /** Queue driving batches (validate, fan out, stop, finalise). @default "sluice-batches" */
  SLUICE_BATCH_QUEUE: [queueName, 'sluice-batches'],
  /** Queue producers submit jobs to. @default "sluice-submit" */
  SLUICE_SUBMIT_QUEUE: [queueName, 'sluice-submit'],
  /** Where unusable submissions go, with the reason. @default "sluice-submit-deadletter" */
  SLUICE_SUBMIT_DEADLETTER_QUEUE: [queueName, 'sluice-submit-deadletter'],
  /** Largest uploaded file, bytes. @default 209715200 (200 MB, as OpenAI) */
  SLUICE_MAX_FILE_BYTES: [posInt, String(200 * 1024 * 1024)],
  /** Most lines (requests) in a batch input file. @default 50000 (as OpenAI) */
  SLUICE_MAX_FILE_LINES: [posInt, '50000'],
  /** Actual completion window of a batch, seconds; "24h" is what clients send. @default 86400 */
  SLUICE_BATCH_COMPLETION_WINDOW_S: [posInt, '86400'],
  /** Lines fanned out per driver invocation (a checkpoint follows each chunk). @default 2500 */
  SLUICE_BATCH_FANOUT_CHUNK: [posInt, '2500'],
  /** Parallel storage calls while fanning out, stopping and finalising. @default 64 */
  SLUICE_BATCH_CONCURRENCY: [posInt, '64'],
  /** How long a driver invocation owns a batch, seconds; a crashed owner's batch resumes after this. @default 60 */
  SLUICE_BATCH_LEASE_S: [posInt, '60'],
  /** NCRONTAB schedule of the sweep that refreshes counts, expires and finalises batches. @default every 5 s */
  SLUICE_BATCH_SWEEP_SCHEDULE: [z.string().min(1), '*/5 * * * * *'],
} as const;

type Key = keyof typeof SETTINGS;

/** Names whose defaults are exported to process.env at import time (binding expressions need them). */
const BINDING_SETTINGS: Key[] = ['SLUICE_SUBMIT_QUEUE', 'SLUICE_BATCH_QUEUE', 'SLUICE_BATCH_SWEEP_SCHEDULE'];
for (const name of BINDING_SETTINGS) {
  if (!process.env[name]?.trim()) process.env[name] = SETTINGS[name][1];
}

export interface BatchSettings {
  filesContainer: string;
  batchesTable: string;
  batchQueue: string;
  submitQueue: string;
  submitDeadLetterQueue: string;
  /** bytes */
  maxFileBytes: number;
  maxFileLines: number;
  /** seconds */
  completionWindowS: number;
  fanoutChunk: number;
  concurrency: number;
  /** seconds */
  leaseS: number;
  sweepSchedule: string;
}

function read<K extends Key>(env: Env, name: K): z.output<(typeof SETTINGS)[K][0]> {
  const [schema, fallback] = SETTINGS[name];
  const raw = env[name]?.trim() || fallback;
  const parsed = (schema as z.ZodType).safeParse(raw);
  if (!parsed.success) throw new ConfigError(name, `"${raw}" ${parsed.error.issues[0]?.message ?? 'is invalid'}`);
  return parsed.data as z.output<(typeof SETTINGS)[K][0]>;
}

/** Reads and validates the batch settings; throws ConfigError naming the bad setting. */
export function loadBatchSettings(env: Env = process.env): BatchSettings {
  return {
    filesContainer: read(env, 'SLUICE_FILES_CONTAINER'),
    batchesTable: read(env, 'SLUICE_BATCHES_TABLE'),
    batchQueue: read(env, 'SLUICE_BATCH_QUEUE'),
    submitQueue: read(env, 'SLUICE_SUBMIT_QUEUE'),
    submitDeadLetterQueue: read(env, 'SLUICE_SUBMIT_DEADLETTER_QUEUE'),
    maxFileBytes: read(env, 'SLUICE_MAX_FILE_BYTES'),
    maxFileLines: read(env, 'SLUICE_MAX_FILE_LINES'),
    completionWindowS: read(env, 'SLUICE_BATCH_COMPLETION_WINDOW_S'),
    fanoutChunk: read(env, 'SLUICE_BATCH_FANOUT_CHUNK'),
    concurrency: read(env, 'SLUICE_BATCH_CONCURRENCY'),
    leaseS: read(env, 'SLUICE_BATCH_LEASE_S'),
    sweepSchedule: read(env, 'SLUICE_BATCH_SWEEP_SCHEDULE'),
  };
}

/** Every setting with its default, for docs and infra. */
export const BATCH_SETTING_DEFAULTS: Readonly<Record<Key, string>> = Object.fromEntries(
  Object.entries(SETTINGS).map(([k, [, d]]) => [k, d]),
) as Record<Key, string>;
