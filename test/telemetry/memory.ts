/** In-memory stores for the rollup's pure-logic tests: ETags and server commit times like Table Storage's. */
import { ConflictError, type StateStore, type StateValue, type Versioned, type WriteResult } from '../../src/core/telemetry/store';
import type { TelemetrySink, UsageRowSource } from '../../src/core/telemetry/rollup';
import type { UsageRow, UsageRowStore } from '../../src/core/telemetry/usage';

/** A server clock that ticks 1 µs per write, so commit times are distinct and ordered. */
export class ServerClock {
  constructor(public t = Date.UTC(2026, 10, 23, 19, 0, 0)) {}
  tick(): string {
    this.t += 0.001;
    const ms = Math.floor(this.t);
    const frac = Math.round((this.t - ms) * 10_000);
    return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, (_m, d: string) => `.${d}${String(frac).padStart(4, '0')}Z`);
  }
}

export class MemoryState implements StateStore {
  readonly rows = new Map<string, Versioned>();
  private v = 0;
  constructor(readonly server = new ServerClock()) {}
  private key = (p: string, r: string) => `${p}\u0000${r}`;
  private write(p: string, r: string, value: StateValue): WriteResult {
    const w = { etag: `e${++this.v}`, committedAt: this.server.tick() };
    this.rows.set(this.key(p, r), { value: { ...value }, ...w });
    return w;
  }
  async get(p: string, r: string) {
    const row = this.rows.get(this.key(p, r));
    return row ? { ...row, value: { ...row.value } } : undefined;
  }
  async create(p: string, r: string, value: StateValue) {
    if (this.rows.has(this.key(p, r))) throw new ConflictError(`${p}/${r}`);
    return this.write(p, r, value);
  }
  async replace(p: string, r: string, value: StateValue, etag: string) {
    if (this.rows.get(this.key(p, r))?.etag !== etag) throw new ConflictError(`${p}/${r}`);
    return this.write(p, r, value);
  }
  async upsert(p: string, r: string, value: StateValue) {
    return this.write(p, r, value);
  }
  async *list(from: string, to: string, where: Readonly<Record<string, string>> = {}) {
    const out = [...this.rows.entries()]
      .map(([k, v]) => ({ partition: k.split('\u0000')[0]!, row: k.split('\u0000')[1]!, value: { ...v.value } }))
      .filter((e) => e.partition >= from && e.partition < to && Object.entries(where).every(([name, value]) => e.value[name] === value));
    yield out;
  }
}

export class MemoryUsage implements UsageRowStore, UsageRowSource {
  readonly stored = new Map<string, { row: UsageRow; committedAt: string }>();
  constructor(readonly server: ServerClock) {}
  async insert(row: UsageRow) {
    const k = `${row.window}/${row.jobId}`;
    if (this.stored.has(k)) return { result: 'exists' as const };
    const committedAt = this.server.tick();
    this.stored.set(k, { row: structuredClone(row), committedAt });
    return { result: 'inserted' as const, committedAt };
  }
  async *rows(window: string, cut: string) {
    yield [...this.stored.values()].filter((r) => r.row.window === window && r.committedAt <= cut).map((r) => r.row);
  }
}

export interface Sent {
  kind: 'metric' | 'event';
  name: string;
  value?: number;
  properties: Record<string, string>;
  measurements?: Record<string, number>;
}

export class MemorySink implements TelemetrySink {
  sent: Sent[] = [];
  flushes = 0;
  metric(name: string, value: number, properties: Record<string, string>) {
    this.sent.push({ kind: 'metric', name, value, properties });
  }
  event(name: string, properties: Record<string, string>, measurements?: Record<string, number>) {
    this.sent.push({ kind: 'event', name, properties, measurements });
  }
  async flush() {
    this.flushes += 1;
  }
  metrics(name: string, filter: Record<string, string> = {}) {
    return this.sent.filter((s) => s.kind === 'metric' && s.name === name && Object.entries(filter).every(([k, v]) => s.properties[k] === v));
  }
  events(name: string) {
    return this.sent.filter((s) => s.kind === 'event' && s.name === name);
  }
}
