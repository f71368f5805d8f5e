/** Fakes for pure-logic tests only: an in-memory job repository with ETags, and a manual clock. */
import { StaleJobError, type JobRecord, type JobRepository } from '../../src/core/jobs';
import type { Clock } from '../../src/core/worker';

export class MemoryJobs implements JobRepository {
  private readonly rows = new Map<string, { job: JobRecord; etag: string }>();
  private version = 0;
  writes = 0;

  put(job: JobRecord): void {
    this.rows.set(job.id, { job: structuredClone(job), etag: `v${++this.version}` });
  }
  async get(id: string) {
    const row = this.rows.get(id);
    return row ? { job: structuredClone(row.job), etag: row.etag } : undefined;
  }
  async replace(job: JobRecord, etag: string): Promise<string> {
    const row = this.rows.get(job.id);
    if (!row || row.etag !== etag) throw new StaleJobError(job.id);
    this.writes += 1;
    this.put(job);
    return this.rows.get(job.id)!.etag;
  }
  peek(id: string): JobRecord {
    return structuredClone(this.rows.get(id)!.job);
  }
}

export class ManualClock implements Clock {
  constructor(public t = 1_700_000_000_000) {}
  now = () => this.t;
  sleep = async (ms: number) => {
    this.t += ms;
  };
}

export function newJob(overrides: Partial<JobRecord> = {}): JobRecord {
  return {
    id: 'job_00000000000000000000000000000001',
    status: 'queued',
    priority: 'interactive',
    model: 'gpt-4o-mini',
    request: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 },
    metadata: {},
    team: 'default',
    createdAt: 1_700_000_000_000,
    attempts: 0,
    promptTokens: 8,
    maxOutputTokens: 10,
    regionsTried: [],
    throttles: 0,
    ...overrides,
  };
}
