/** An in-memory TeamRepository for unit tests: counts key reads and records every key write. */
import type { ApiKeyRecord, Team, TeamRepository } from '../../src/core/teams/model';

export class MemoryTeams implements TeamRepository {
  teams = new Map<string, Team>();
  keys = new Map<string, ApiKeyRecord>();
  keyReads = 0;
  /** Every key write, in order: an insert or a replace. */
  keyWrites: Array<{ op: 'create' | 'put'; id: string }> = [];
  /** How many coming createKey calls find their id taken (as if another key held it). */
  collideNext = 0;

  async getTeam(id: string) {
    return this.teams.get(id);
  }
  async listTeams() {
    return [...this.teams.values()];
  }
  async createTeam(team: Team) {
    if (this.teams.has(team.id)) return false;
    this.teams.set(team.id, team);
    return true;
  }
  async putTeam(team: Team) {
    this.teams.set(team.id, team);
  }
  async getKey(id: string) {
    this.keyReads += 1;
    return this.keys.get(id);
  }
  async listKeys(team: string) {
    return [...this.keys.values()].filter((k) => k.team === team);
  }
  async createKey(key: ApiKeyRecord) {
    this.keyWrites.push({ op: 'create', id: key.id });
    if (this.collideNext > 0) {
      this.collideNext -= 1;
      return false;
    }
    if (this.keys.has(key.id)) return false;
    this.keys.set(key.id, key);
    return true;
  }
  async putKey(key: ApiKeyRecord) {
    this.keyWrites.push({ op: 'put', id: key.id });
    this.keys.set(key.id, key);
  }
}
