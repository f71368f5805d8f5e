/**
 * Each team's month-to-date spend as last read, for the stop-at-budget check at submit. A submit never waits for
 * the read: `peek` answers what is known and, when nothing is known or the value is older than `maxAgeMs`, starts
 * one read in the background. So the stop lags real spend by the rollup's delay (about two minutes) plus up to
 * `maxAgeMs`, and a team's first submits after a process starts are admitted while the first read runs.
 */
export interface TeamSpendOptions {
  /** How long a read value is used before it is read again (in the background), ms. */
  maxAgeMs: number;
  /** @default Date.now */
  now?: () => number;
}

export class TeamSpendCache {
  private readonly known = new Map<string, { usd: number; readAt: number; seq: number }>();
  private readonly reading = new Set<string>();
  private seq = 0;

  /** @param read the team's month-to-date spend, USD, from the rollup */
  constructor(private readonly read: (team: string) => Promise<number>, private readonly opts: TeamSpendOptions) {}

  /** The team's last known spend, USD, or undefined before the first read finishes. Never waits. */
  peek(team: string): number | undefined {
    const hit = this.known.get(team);
    if ((!hit || this.now() - hit.readAt > this.opts.maxAgeMs) && !this.reading.has(team)) {
      this.reading.add(team);
      // A failed read keeps the last value; the next peek tries again.
      this.refresh(team)
        .catch(() => undefined)
        .finally(() => this.reading.delete(team));
    }
    return hit?.usd;
  }

  /** Reads the team's spend now and keeps it (a read that started earlier never overwrites it). */
  async refresh(team: string): Promise<number> {
    const seq = ++this.seq;
    const usd = await this.read(team);
    const hit = this.known.get(team);
    if (!hit || hit.seq < seq) this.known.set(team, { usd, readAt: this.now(), seq });
    return usd;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}
