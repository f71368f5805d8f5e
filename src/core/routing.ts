/**
 * Which deployments may serve a logical model, in the order to try them: lowest priority number first; within a
 * priority group, a weighted random order so traffic spreads by weight.
 */
import type { EndpointSettings } from './endpoints';
import type { DeploymentRef } from './budget/gate';

export function deploymentRef(e: EndpointSettings): DeploymentRef {
  return { key: `${e.endpoint.replace(/\/+$/, '')}|${e.deployment}`, region: e.region, deployment: e.deployment, tpm: e.tpm, rpm: e.rpm };
}

/** Endpoints serving `model`, ordered for trying. `random` is injectable for tests. */
export function candidatesFor(model: string, endpoints: readonly EndpointSettings[], random = Math.random): EndpointSettings[] {
  const groups = new Map<number, EndpointSettings[]>();
  for (const e of endpoints) {
    if (e.model !== model) continue;
    const group = groups.get(e.priority) ?? [];
    group.push(e);
    groups.set(e.priority, group);
  }
  const ordered: EndpointSettings[] = [];
  for (const priority of [...groups.keys()].sort((a, b) => a - b)) {
    ordered.push(...weightedOrder(groups.get(priority)!, random));
  }
  return ordered;
}

/** Weighted sampling without replacement (Efraimidis–Spirakis keys). */
function weightedOrder(group: EndpointSettings[], random: () => number): EndpointSettings[] {
  if (group.length < 2) return group;
  return group
    .map((e) => ({ e, key: Math.pow(random(), 1 / e.weight) }))
    .sort((a, b) => b.key - a.key)
    .map((x) => x.e);
}
