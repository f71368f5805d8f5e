/**
 * Timer: nudges every unfinished batch (one driver message each) so counts are refreshed, expiry is applied,
 * finished batches are finalised and a fan-out whose invocation died resumes once its lease lapses.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { bindingSettings } from '../config';
import { getBatchServices } from '../runtime/services';

export async function batchSweep(_timer: Timer, context: InvocationContext): Promise<void> {
  const batch = getBatchServices();
  const active = await batch.batches.listActive();
  await Promise.all(active.map((id) => batch.poke(id)));
  if (active.length) context.debug(`batch sweep: nudged ${active.length} unfinished batch(es)`);
}

app.timer('batchSweep', { schedule: bindingSettings().batchSweepSchedule, handler: batchSweep });
