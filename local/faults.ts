/**
 * Crash injection for the crash tests (test/reliability/crash.test.ts, docs/reliability.md); never part of the
 * deployed app. The local stack preloads this module (`node --require`) into a worker process it starts with
 * SLUICE_FAULT_CRASH_AT set: with SLUICE_FAULT_CRASH_AT=before-call|after-call and
 * SLUICE_FAULT_CRASH_JOB=<job id or prefix>, the worker kills itself with SIGKILL at that point of that job, as a
 * recycled instance would die.
 */
import { setWorkerFaultPoint } from '../src/runtime/services';

const at = process.env.SLUICE_FAULT_CRASH_AT;
const prefix = process.env.SLUICE_FAULT_CRASH_JOB ?? '';
if (at) {
  setWorkerFaultPoint((point, jobId) => {
    if (point !== at || !jobId.startsWith(prefix)) return;
    console.error(`[job=${jobId}] SLUICE_FAULT_CRASH_AT=${at}: killing this process (SIGKILL)`);
    process.kill(process.pid, 'SIGKILL');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000); // never run past the crash point
  });
}
