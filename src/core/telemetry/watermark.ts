/**
 * The watermark: which minute windows are closed, and which one a run is closing. A run claims the next window with
 * an ETag-conditional write; that write's server commit time is the window's cut, and a run that takes over an
 * expired claim keeps the same cut, so every run that closes a window counts the same rows.
 */
import type { RollupDeps } from './rollupDeps';
import { WATERMARK } from './partitions';
import { ConflictError, normalizeCommitTime, type StateStore, type Versioned } from './store';
import type { WindowCuts } from './usage';
import { MINUTE_MS, nextWindow, windowOf, windowStart } from './windows';

/** Closed windows whose cut is remembered, for writers that finish after their window closed. */
const HISTORY_KEPT = 180;

interface Watermark {
  closedThrough: string;
  claimWindow: string;
  claimRun: string;
  leaseUntil: number;
  cut: string;
  /** JSON [[window, cut], ...], newest last. */
  history: string;
}

function readWatermark(v: Versioned | undefined, fallback: string): Watermark {
  return {
    closedThrough: String(v?.value.closedThrough ?? fallback),
    claimWindow: String(v?.value.claimWindow ?? ''),
    claimRun: String(v?.value.claimRun ?? ''),
    leaseUntil: Number(v?.value.leaseUntil ?? 0),
    cut: String(v?.value.cut ?? ''),
    history: String(v?.value.history ?? '[]'),
  };
}

/** A window once `latenessMs` has passed since its end. */
function closable(window: string, now: number, latenessMs: number): boolean {
  return windowStart(window) + MINUTE_MS + latenessMs <= now;
}

/** A window this run holds: count rows committed at or before `cut`, then complete it with `etag`. */
interface Claim {
  window: string;
  cut: string;
  etag: string;
  history: string;
}

type Claimed = { kind: 'claimed'; claim: Claim } | { kind: 'busy' } | { kind: 'none' };

/** Claims the next window to close: none when it is not closable yet, busy when another run holds it. */
export async function claimNextWindow(deps: RollupDeps, runId: string, leaseMs: number): Promise<Claimed> {
  const now = deps.clock.now();
  const stored = await deps.state.get(WATERMARK.partition, WATERMARK.row);
  const wm = readWatermark(stored, windowOf(now - (deps.initialLookbackMs ?? 3_600_000)));
  const target = nextWindow(wm.closedThrough);
  if (!closable(target, now, deps.settings.latenessMs)) return { kind: 'none' };

  // A live claim by another run means it is being closed: leave it.
  if (wm.claimWindow === target && wm.claimRun !== runId && wm.leaseUntil > now) return { kind: 'busy' };
  try {
    if (wm.claimWindow === target) {
      // Taking over a claim that expired: same cut (the commit time of the write that made the claim).
      const cut = wm.cut || stored!.committedAt;
      const { etag } = await deps.state.replace(WATERMARK.partition, WATERMARK.row, { ...wm, claimRun: runId, leaseUntil: now + leaseMs, cut }, stored!.etag);
      deps.log('warn', `rollup: took over the expired claim on window ${target}`);
      return { kind: 'claimed', claim: { window: target, cut, etag, history: wm.history } };
    }
    const claim: Watermark = { ...wm, claimWindow: target, claimRun: runId, leaseUntil: now + leaseMs, cut: '' };
    const written = stored
      ? await deps.state.replace(WATERMARK.partition, WATERMARK.row, { ...claim }, stored.etag)
      : await deps.state.create(WATERMARK.partition, WATERMARK.row, { ...claim });
    const cut = normalizeCommitTime(written.committedAt);
    const { etag } = await deps.state.replace(WATERMARK.partition, WATERMARK.row, { ...claim, cut }, written.etag);
    return { kind: 'claimed', claim: { window: target, cut, etag, history: wm.history } };
  } catch (err) {
    if (err instanceof ConflictError) return { kind: 'busy' };
    throw err;
  }
}

/** Marks the claimed window closed. False when the lease ran out and another run took the window over. */
export async function completeWindow(deps: RollupDeps, claim: Claim): Promise<boolean> {
  const history = (JSON.parse(claim.history) as Array<[string, string]>).concat([[claim.window, claim.cut]]).slice(-HISTORY_KEPT);
  const done: Watermark = { closedThrough: claim.window, claimWindow: '', claimRun: '', leaseUntil: 0, cut: '', history: JSON.stringify(history) };
  try {
    await deps.state.replace(WATERMARK.partition, WATERMARK.row, { ...done }, claim.etag);
    return true;
  } catch (err) {
    if (err instanceof ConflictError) {
      deps.log('warn', `rollup: lost the claim on window ${claim.window} (lease ran out); the run that took it over finishes it`);
      return false;
    }
    throw err;
  }
}

/** Closable windows not closed yet. */
export async function lagWindows(state: StateStore, now: number, latenessMs: number): Promise<number> {
  const wm = readWatermark(await state.get(WATERMARK.partition, WATERMARK.row), windowOf(now));
  const lastClosable = windowOf(now - latenessMs - MINUTE_MS);
  return Math.max(0, Math.round((windowStart(lastClosable) - windowStart(wm.closedThrough)) / MINUTE_MS));
}

/** The cut of a window as the watermark tells it, for slow writers (see recordJobUsage). */
export function watermarkCuts(state: StateStore): WindowCuts {
  return {
    async cutOf(window) {
      const stored = await state.get(WATERMARK.partition, WATERMARK.row);
      if (!stored) return undefined;
      const wm = readWatermark(stored, '');
      if (wm.claimWindow === window) return wm.cut || normalizeCommitTime(stored.committedAt);
      if (window > wm.closedThrough) return undefined;
      const hit = (JSON.parse(wm.history) as Array<[string, string]>).find(([w]) => w === window);
      return hit ? hit[1] : ''; // older than the history: everything is late
    },
  };
}
