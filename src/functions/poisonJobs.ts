/**
 * Queue trigger on the jobs poison queue: a message the worker crashed on maxDequeueCount times ends here.
 * Its job is marked failed with a reason a user can read, so nothing is left `running` forever. A group message
 * (batch fan-out) ends here only when sending its ids failed: none of its jobs ran, so they are sent again instead.
 */
import { app, type InvocationContext } from '@azure/functions';
import { markPoisoned } from '../core/poison';
import { expandGroup, parseJobMessage } from '../azure/jobQueue';
import { contextLogger } from '../runtime/http';
import { getServices } from '../runtime/services';
import { allLanes, laneSuffix, type Lane } from '../core/teams/lanes';
import { bindingSettings } from '../config';

export async function poisonJobs(message: unknown, context: InvocationContext, lane?: Lane): Promise<void> {
  const parsed = parseJobMessage(message);
  if (!parsed) {
    context.error(`unreadable poison message: ${JSON.stringify(message).slice(0, 200)}`);
    return;
  }
  const services = getServices();
  if ('ids' in parsed) {
    const { requeue } = services.workerDeps(contextLogger(context), lane);
    await expandGroup(parsed.ids, (id) => requeue(id, 0));
    context.warn(`poisoned group message: its ${parsed.ids.length} jobs were sent again one by one`);
    return;
  }
  await markPoisoned(services.jobs, parsed.id, Date.now(), contextLogger(context));
}

// One per queue lane: the host moves a message to "<its queue>-poison".
const bindings = bindingSettings();
for (const lane of allLanes(bindings.lanes)) {
  const suffix = laneSuffix(lane);
  app.storageQueue(`poisonJobs${suffix.replace(/-/g, '_')}`, { queueName: `${bindings.jobsQueue}${suffix}-poison`, connection: 'AzureWebJobsStorage', handler: (message, context) => poisonJobs(message, context, lane) });
}
