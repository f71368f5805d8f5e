/** Storage clients for tests and benchmarks that talk to an Azurite they started, built by src/azure/storage.ts. */
import type { TableClient } from '@azure/data-tables';
import { createTableBudgetStore, type TableBudgetRowStore } from '../../src/azure/budgetTable';
import { storageClients } from '../../src/azure/storage';

/** A table of the account a connection string names (e.g. Azurite's). */
export function tableClientFromConnectionString(connectionString: string, table: string): TableClient {
  return storageClients({ connectionString }).table(table);
}

/** The budget row store on the account a connection string names; its calls count in `storageCounters.budgetTable`. */
export function budgetStoreFromConnectionString(connectionString: string, table: string): TableBudgetRowStore {
  return createTableBudgetStore(storageClients({ connectionString }), table);
}
