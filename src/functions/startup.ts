/**
 * Not a function: app lifecycle hooks. At start, every setting is validated, so a bad setting stops the app with a
 * message naming it instead of surfacing on the first request. At shutdown, budget leases this instance still holds
 * are given back, so the fleet does not wait for them to expire.
 */
import { app } from '@azure/functions';
import { getConfig } from '../config';
import { builtServices } from '../runtime/services';

app.hook.appStart(() => {
  getConfig();
});

app.hook.appTerminate(async () => {
  await builtServices()?.budget.close?.();
});
