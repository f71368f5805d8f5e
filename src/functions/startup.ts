/**
 * Not a function: validates every setting when the app starts, so a bad setting stops the app with a message
 * naming it, instead of surfacing on the first request.
 */
import { app } from '@azure/functions';
import { getConfig } from '../config';

app.hook.appStart(() => {
  getConfig();
});
