/**
 * Teams and API keys in one table: partition "team" holds one row per team, partition "key" one row per
 * key (by key id, so a request is checked with one point read). Keys are stored as hashes only.
 */
import type { TableClient } from '@azure/data-tables';
import type { ApiKeyRecord, Team, TeamCacheSetting, TeamRepository } from '../core/teams/model';
import { readRow, tableCreator, writeRowIfUnchanged } from './conditionalRows';

const TEAMS = 'team';
const KEYS = 'key';

interface TeamRow {
  name: string;
  weight: number;
  guaranteedTpmJson: string;
  maxBacklog: number;
  monthlyBudgetUsd: number;
  budgetAction: string;
  lane: number;
  disabled: boolean;
  /** TeamCacheSetting as JSON; absent = off. */
  cacheJson?: string;
  createdAt: number;
  updatedAt: number;
}

interface KeyRow {
  team: string;
  role: string;
  hash: string;
  name: string;
  createdAt: number;
  expiresAt?: number;
  revokedAt?: number;
}

export class TeamStore implements TeamRepository {
  private readonly ensureTable: () => Promise<void>;

  constructor(private readonly table: TableClient) {
    this.ensureTable = tableCreator(table);
  }

  async getTeam(id: string): Promise<Team | undefined> {
    await this.ensureTable();
    const row = await readRow<TeamRow>(this.table, TEAMS, id);
    return row ? teamFromRow(id, row) : undefined;
  }

  async listTeams(): Promise<Team[]> {
    await this.ensureTable();
    const teams: Team[] = [];
    for await (const row of this.table.listEntities<TeamRow>({ queryOptions: { filter: `PartitionKey eq '${TEAMS}'` } })) {
      teams.push(teamFromRow(row.rowKey!, row));
    }
    return teams;
  }

  async createTeam(team: Team): Promise<boolean> {
    await this.ensureTable();
    return (await writeRowIfUnchanged(this.table, { partitionKey: TEAMS, rowKey: team.id, ...teamToRow(team) }, undefined)) !== undefined;
  }

  async putTeam(team: Team): Promise<void> {
    await this.ensureTable();
    await this.table.upsertEntity({ partitionKey: TEAMS, rowKey: team.id, ...teamToRow(team) }, 'Replace');
  }

  async getKey(id: string): Promise<ApiKeyRecord | undefined> {
    await this.ensureTable();
    const row = await readRow<KeyRow>(this.table, KEYS, id);
    return row ? keyFromRow(id, row) : undefined;
  }

  async listKeys(team: string): Promise<ApiKeyRecord[]> {
    await this.ensureTable();
    const keys: ApiKeyRecord[] = [];
    const filter = `PartitionKey eq '${KEYS}' and team eq '${team.replace(/'/g, "''")}'`;
    for await (const row of this.table.listEntities<KeyRow>({ queryOptions: { filter } })) keys.push(keyFromRow(row.rowKey!, row));
    return keys.sort((a, b) => a.createdAt - b.createdAt);
  }

  async createKey(key: ApiKeyRecord): Promise<boolean> {
    await this.ensureTable();
    return (await writeRowIfUnchanged(this.table, { partitionKey: KEYS, rowKey: key.id, ...keyToRow(key) }, undefined)) !== undefined;
  }

  async putKey(key: ApiKeyRecord): Promise<void> {
    await this.ensureTable();
    await this.table.upsertEntity({ partitionKey: KEYS, rowKey: key.id, ...keyToRow(key) }, 'Replace');
  }
}

function teamToRow(t: Team): TeamRow {
  return {
    name: t.name,
    weight: t.weight,
    guaranteedTpmJson: JSON.stringify(t.guaranteedTpm),
    maxBacklog: t.maxBacklog,
    monthlyBudgetUsd: t.monthlyBudgetUsd,
    budgetAction: t.budgetAction,
    lane: t.lane,
    disabled: t.disabled,
    ...(t.cache ? { cacheJson: JSON.stringify(t.cache) } : {}),
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
  };
}

function teamFromRow(id: string, r: TeamRow): Team {
  return {
    id,
    name: r.name,
    weight: Number(r.weight),
    guaranteedTpm: JSON.parse(r.guaranteedTpmJson || '{}') as Record<string, number>,
    maxBacklog: Number(r.maxBacklog ?? 0),
    monthlyBudgetUsd: Number(r.monthlyBudgetUsd ?? 0),
    budgetAction: r.budgetAction === 'stop' ? 'stop' : 'warn',
    lane: Number(r.lane ?? 0),
    disabled: Boolean(r.disabled),
    ...(r.cacheJson ? { cache: JSON.parse(r.cacheJson) as TeamCacheSetting } : {}),
    createdAt: Number(r.createdAt),
    updatedAt: Number(r.updatedAt),
  };
}

function keyToRow(key: ApiKeyRecord): KeyRow {
  const row: KeyRow = { team: key.team, role: key.role, hash: key.hash, name: key.name, createdAt: key.createdAt };
  if (key.expiresAt !== undefined) row.expiresAt = key.expiresAt;
  if (key.revokedAt !== undefined) row.revokedAt = key.revokedAt;
  return row;
}

function keyFromRow(id: string, r: KeyRow): ApiKeyRecord {
  return {
    id,
    team: r.team,
    role: r.role === 'admin' ? 'admin' : 'member',
    hash: r.hash,
    name: r.name,
    createdAt: Number(r.createdAt),
    ...(r.expiresAt !== undefined && r.expiresAt !== null ? { expiresAt: Number(r.expiresAt) } : {}),
    ...(r.revokedAt !== undefined && r.revokedAt !== null ? { revokedAt: Number(r.revokedAt) } : {}),
  };
}
