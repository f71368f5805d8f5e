// Timer trigger: NCRONTAB schedules ("{second} {minute} {hour} {day} {month} {day-of-week}", 5-field cron also
// accepted) or a TimeSpan interval ("hh:mm:ss"). A run never overlaps the previous one: the next occurrence is
// computed after the handler finishes, as in the Functions host. Times are UTC unless WEBSITE_TIME_ZONE is set.
import { setTimeout as sleep } from 'node:timers/promises';
import { CronExpressionParser } from 'cron-parser';
import type { RegisteredFunction } from './coreShim';
import { parseDuration } from './hostJson';
import { invokeFunction } from './invoke';
import type { HostLog } from './logging';

export interface TimerListenerOptions {
  fn: RegisteredFunction;
  bindingName: string;
  /** Resolved schedule (no %SETTING% left). */
  schedule: string;
  runOnStartup: boolean;
  log: HostLog;
  /** IANA zone for cron schedules. @default process.env.WEBSITE_TIME_ZONE ?? 'UTC' */
  timeZone?: string;
}

/** A fire later than this after its scheduled time is reported as IsPastDue, ms. */
const PAST_DUE_TOLERANCE_MS = 1000;
/** setTimeout's limit; longer waits are taken in steps. */
const MAX_TIMEOUT_MS = 2_147_483_647;

export type NextOccurrence = (after: Date) => Date;

/** Parses a schedule into a "next occurrence strictly after" function; throws with the schedule in the message. */
export function parseSchedule(schedule: string, timeZone = process.env.WEBSITE_TIME_ZONE ?? 'UTC'): NextOccurrence {
  const trimmed = schedule.trim();
  if (/^(\d+\.)?\d{1,2}:\d{1,2}:\d{1,2}$/.test(trimmed)) {
    const intervalMs = parseDuration(trimmed, 'schedule');
    if (intervalMs <= 0) throw new Error(`timer schedule "${schedule}": interval must be positive`);
    return (after) => new Date(after.getTime() + intervalMs);
  }
  const fields = trimmed.split(/\s+/).length;
  if (fields !== 5 && fields !== 6) throw new Error(`timer schedule "${schedule}": expected 6 NCRONTAB fields`);
  try {
    CronExpressionParser.parse(trimmed, { tz: timeZone, strict: false });
  } catch (err) {
    throw new Error(`timer schedule "${schedule}": ${(err as Error).message}`);
  }
  return (after) => CronExpressionParser.parse(trimmed, { currentDate: after, tz: timeZone }).next().toDate();
}

export class TimerListener {
  private readonly next: NextOccurrence;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private lastFired: Date | undefined;

  constructor(private readonly options: TimerListenerOptions) {
    this.next = parseSchedule(options.schedule, options.timeZone);
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Cancels the wait for the next occurrence and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    if (this.options.runOnStartup) await this.fire(new Date());
    while (!this.stopping.signal.aborted) {
      const due = this.next(new Date());
      while (!this.stopping.signal.aborted && Date.now() < due.getTime()) {
        const wait = Math.min(MAX_TIMEOUT_MS, due.getTime() - Date.now());
        await sleep(wait, undefined, { signal: this.stopping.signal }).catch(() => undefined);
      }
      if (this.stopping.signal.aborted) break;
      await this.fire(due);
    }
  }

  private async fire(scheduled: Date): Promise<void> {
    const now = new Date();
    const timerInfo = {
      Schedule: { AdjustForDST: true },
      ScheduleStatus: {
        Last: (this.lastFired ?? scheduled).toISOString(),
        Next: this.next(now).toISOString(),
        LastUpdated: now.toISOString(),
      },
      IsPastDue: now.getTime() - scheduled.getTime() > PAST_DUE_TOLERANCE_MS,
    };
    this.lastFired = scheduled;
    try {
      await invokeFunction(
        this.options.fn,
        { triggerBindingName: this.options.bindingName, triggerData: { json: JSON.stringify(timerInfo) }, reason: `Timer fired at ${now.toISOString()}` },
        this.options.log,
      );
    } catch {
      // Logged by invokeFunction; a failed run does not stop the schedule.
    }
  }
}
