/**
 * Timer: nudges every unfinished batch (one driver message each) so counts are refreshed, expiry is applied,
 * finished batches are finalised and a fan-out whose invocation died resumes once its lease lapses.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import '../core/batch/settings'; // binding default (%SLUICE_BATCH_SWEEP_SCHEDULE%) into process.env
import { getBatchServices } from '../runtime/batchServices';

export async function batchSweep(_timer: Timer, context: InvocationContext): Promise<void> {
  const batch = getBatchServices();
  const active = await batch.batches.listActive();
  await Promise.all(active.map((id) => batch.poke(id)));
  if (active.length) context.info(`batch sweep: nudged ${active.length} unfinished batch(es)`);
}

app.timer('batchSweep', { schedule: '%SLUICE_BATCH_SWEEP_SCHEDULE%', handler: batchSweep });
