/**
 * Timer: a dispatcher run. It takes the dispatch lease and releases jobs from the team queues into the jobs queue
 * while work waits (core/dispatch/loop.ts), for up to RUN_MS, then gives the lease back; the next tick of the
 * schedule (every 5 s by default) starts the next run, on this instance or another. Another run holding the lease
 * makes this one return at once. With dispatch off (SLUICE_DISPATCH=false) it does nothing.
 */
import { randomUUID } from 'node:crypto';
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { bindingSettings } from '../config';
import { runDispatch } from '../core/dispatch/loop';
import { getServices, isStopping } from '../runtime/services';

/** Longest run, ms: well within host.json's functionTimeout (10 min), so a run is never cut off mid-tick. */
const RUN_MS = 4 * 60_000;
/** One owner id per process: a run that overlaps this process's previous one renews rather than waits. */
const OWNER = `${process.env.WEBSITE_INSTANCE_ID ?? 'local'}-${process.pid}-${randomUUID().slice(0, 8)}`;
let running = false;

export async function dispatcher(_timer: Timer, context: InvocationContext): Promise<void> {
  const { dispatch } = getServices();
  if (!dispatch.dispatcher || !dispatch.lease || running) return;
  running = true;
  try {
    dispatch.dispatcher.resync();
    const r = await runDispatch({
      dispatcher: dispatch.dispatcher,
      lease: dispatch.lease,
      owner: OWNER,
      now: Date.now,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      runMs: RUN_MS,
      stopping: isStopping,
      onError: (err) => context.warn(`dispatch: ${(err as Error).message}`),
    });
    if (r.released > 0) context.info(`dispatcher: released ${r.released} job(s) in ${r.ticks} tick(s)`);
    else context.debug(r.ran ? `dispatcher: nothing waiting (${r.ticks} tick(s))` : 'dispatcher: another run holds the lease');
  } finally {
    running = false;
  }
}

app.timer('dispatcher', { schedule: bindingSettings().dispatchSchedule, handler: dispatcher });
