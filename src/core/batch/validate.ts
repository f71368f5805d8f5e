/**
 * One batch input line → the job it becomes, or the error that fails the batch. A line's body passes exactly the
 * checks of a single submit (parseSubmitBody + prepareJob: configured model, messages, max tokens, context window).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ModelSettings } from '../models';
import { ValidationError } from '../errors';
import type { JobRecord } from '../jobs';
import { jobIdFor, parseSubmitBody, prepareJob } from '../submit';
import type { BatchLineError, BatchRecord } from './model';

/** Longest custom_id accepted, characters. */
const MAX_CUSTOM_ID_CHARS = 512;

const lineSchema = z
  .object({
    custom_id: z.string({ error: 'is required: a unique id for this request' }).min(1, 'must not be empty').max(MAX_CUSTOM_ID_CHARS),
    method: z.string({ error: 'is required: "POST"' }),
    url: z.string({ error: 'is required: the batch endpoint' }),
    body: z.record(z.string(), z.unknown(), { error: 'is required: the request body, a JSON object' }),
  })
  .passthrough();

export interface LineContext {
  batchId: string;
  /** The batch's job-id scheme (BatchRecord.jobIds). */
  jobIds?: 2;
  endpoint: string;
  team: string;
  models: Record<string, ModelSettings>;
  now: number;
}

export type LineResult = { ok: true; customId: string; job: JobRecord } | { ok: false; error: BatchLineError };

/** The idempotency key of a batch line: unique per (batch, custom_id). */
export function lineKey(batchId: string, customId: string): string {
  return `${batchId}:${customId}`;
}

/** Lines per job-table partition of a grouped batch: an entity-group transaction holds at most 100 rows. */
export const LINES_PER_PARTITION = 100;

const hex = (text: string, chars: number) => createHash('sha256').update(text).digest('hex').slice(0, chars);

/**
 * The job id of a batch line, deterministic per (team, batch, custom_id, line number), so a resumed fan-out finds its
 * jobs. Grouped batches (jobIds 2): `job_<partition>_<line>`, where the partition is shared by 100 consecutive
 * physical lines, so that their rows are written in one entity-group transaction. Older batches: `job_<32 hex>`.
 */
export function lineJobId(b: Pick<BatchRecord, 'id' | 'team' | 'jobIds'>, customId: string, lineNo: number): string {
  if (b.jobIds !== 2) return jobIdFor(b.team, lineKey(b.id, customId));
  const group = Math.floor((lineNo - 1) / LINES_PER_PARTITION);
  return `job_${hex(`${b.team}\n${b.id}\n${group}`, 16)}_${hex(`${b.team}\n${lineKey(b.id, customId)}`, 24)}`;
}

function fail(line: number, code: string, message: string, param: string | null): LineResult {
  return { ok: false, error: { code, line, message, param } };
}

/** Validates one line and builds its job (priority batch, owned by the batch's team). Never throws. */
export function parseBatchLine(text: string, lineNo: number, ctx: LineContext): LineResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return fail(lineNo, 'invalid_json_line', `This line is not parseable as valid JSON: ${(err as Error).message}`, null);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return fail(lineNo, 'invalid_json_line', 'Each line must be a JSON object', null);
  const parsed = lineSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const param = issue.path.map(String).join('.') || null;
    return fail(lineNo, issue.code === 'invalid_type' && issue.input === undefined ? 'missing_required_parameter' : 'invalid_request', `${param}: ${issue.message}`, param);
  }
  const line = parsed.data;
  if (line.method.toUpperCase() !== 'POST') return fail(lineNo, 'invalid_method', `method: must be "POST", got "${line.method}"`, 'method');
  if (line.url !== ctx.endpoint) {
    return fail(lineNo, 'mismatched_endpoint', `url: "${line.url}" does not match the batch endpoint "${ctx.endpoint}"`, 'url');
  }
  try {
    const body = parseSubmitBody({ request: line.body, priority: 'batch', metadata: { batch_id: ctx.batchId } });
    const job = prepareJob(body, { models: ctx.models, now: ctx.now, team: ctx.team });
    job.id = lineJobId({ id: ctx.batchId, team: ctx.team, jobIds: ctx.jobIds }, line.custom_id, lineNo);
    // The job knows which batch line it serves (output file, completion marker).
    job.batchId = ctx.batchId;
    job.customId = line.custom_id;
    return { ok: true, customId: line.custom_id, job };
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const param = err.param?.replace(/^request\b/, 'body') ?? null;
    return fail(lineNo, err.code, err.message.replace(/^request\./, 'body.'), param);
  }
}

/** Checks a whole file's lines for validity and unique custom_ids; collects at most `maxErrors` errors. */
export class FileValidator {
  readonly errors: BatchLineError[] = [];
  private readonly seen = new Set<string>();
  requests = 0;
  errorCount = 0;

  constructor(private readonly ctx: LineContext, private readonly maxErrors = 1000) {}

  add(text: string, lineNo: number): void {
    this.requests += 1;
    const result = parseBatchLine(text, lineNo, this.ctx);
    if (!result.ok) return this.push(result.error);
    if (this.seen.has(result.customId)) {
      return this.push({ code: 'duplicate_custom_id', line: lineNo, message: `custom_id "${result.customId}" appears more than once; custom_id must be unique within a batch`, param: 'custom_id' });
    }
    this.seen.add(result.customId);
  }

  push(error: BatchLineError): void {
    this.errorCount += 1;
    if (this.errors.length < this.maxErrors) this.errors.push(error);
  }
}
