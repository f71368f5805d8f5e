/**
 * Timer: one bounded run of the retention sweep (core/retention/sweep.ts), deleting what is past retention (expired
 * jobs with their payload blobs, batches, files, usage rows) and resuming from its cursor on the next run.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { bindingSettings } from '../config';
import { RETENTION_DELETED_METRIC } from '../core/retention/policy';
import { runRetentionSweep } from '../core/retention/sweep';
import { telemetrySink } from '../azure/telemetry';
import { getServices } from '../runtime/services';

export async function retentionSweep(_timer: Timer, context: InvocationContext): Promise<void> {
  const result = await runRetentionSweep(getServices().retention.sweepDeps());
  const d = result.deleted;
  const line =
    `retention sweep: deleted ${d.jobs} job(s), ${d.batches} batch(es) with ${d.batchLines} line row(s), ${d.files} file(s), ` +
    `${d.usageRows} usage row(s); looked at ${result.looked}${result.cursorSaved ? '' : '; another run moved the cursor first'}`;
  const total = d.jobs + d.batches + d.batchLines + d.files + d.usageRows;
  // A routine run is a debug line; one that deleted something is worth one info line.
  if (total > 0) context.info(line);
  else context.debug(line);
  const sink = telemetrySink();
  for (const [kind, n] of Object.entries(d)) if (n > 0) sink.metric(RETENTION_DELETED_METRIC, n, { kind });
}

app.timer('retentionSweep', { schedule: bindingSettings().retentionSweepSchedule, handler: retentionSweep });
