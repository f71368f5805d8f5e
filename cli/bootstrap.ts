/**
 * `sluice bootstrap`: the first admin key, written straight to the teams table. After that, admins use
 * the HTTP admin API. In Azure an Entra ID app role mapped by SLUICE_ENTRA_ADMINS is the alternative.
 */
import { TableClient } from '@azure/data-tables';
import { DefaultAzureCredential } from '@azure/identity';
import { TeamStore } from '../src/azure/teamTable';
import { ensureTeamWithKey } from '../src/core/teams/admin';
import { toKeyView } from '../src/core/teams/model';
import { laneCount } from '../src/config';

export async function bootstrapAdmin(o: { team: string; connectionString?: string; account?: string; table: string }) {
  let table: TableClient;
  if (o.connectionString) table = TableClient.fromConnectionString(o.connectionString, o.table, { allowInsecureConnection: /127\.0\.0\.1|localhost/.test(o.connectionString) });
  else if (o.account) table = new TableClient(`https://${o.account}.table.core.windows.net`, o.table, new DefaultAzureCredential());
  else throw new Error('give --connection-string or --account');
  const now = Date.now();
  const { team, key, record } = await ensureTeamWithKey(new TeamStore(table), o.team, 'admin', laneCount(), now, 'bootstrap admin key');
  return { team: team.id, ...toKeyView(record, now), key, note: 'Shown once: store it in a secret store now.' };
}
