/**
 * Queue lanes. A Storage Queue is one FIFO line: a team's 50,000-line backlog would sit in front of every
 * other team's next job. So the jobs queue is split: each team travels in one of `lanes` lanes (assigned at team
 * creation, least-used first), and each lane has an interactive and a batch queue. The Functions host polls every
 * queue on its own, so another team's first job is received within a poll interval whatever sits in front of it
 * elsewhere; the fair-share gate (src/core/fairshare/) then decides who is admitted to the deployment.
 *
 * Lane 0's interactive queue keeps the configured name (`SLUICE_JOBS_QUEUE`, "sluice-jobs"), so a single-lane
 * deployment has the queue it always had.
 */
import type { JobPriority } from '../jobs';

export interface Lane {
  lane: number;
  priority: JobPriority;
}

/** Suffix added to the jobs queue name for a lane: "", "-batch", "-l2", "-l2-batch". */
export function laneSuffix({ lane, priority }: Lane): string {
  return `${lane > 0 ? `-l${lane}` : ''}${priority === 'batch' ? '-batch' : ''}`;
}

/** Every lane, interactive first. `count` 0 is the plain FIFO layout: one queue for every team and priority. */
export function allLanes(count: number): Lane[] {
  if (count === 0) return [{ lane: 0, priority: 'interactive' }];
  const lanes: Lane[] = [];
  for (const priority of ['interactive', 'batch'] as const) for (let lane = 0; lane < count; lane += 1) lanes.push({ lane, priority });
  return lanes;
}

/** The lane a team's job of this priority travels in (teams assigned a lane beyond the count wrap around). */
export function laneOf(teamLane: number, priority: JobPriority, count: number): Lane {
  return count === 0 ? { lane: 0, priority: 'interactive' } : { lane: teamLane % count, priority };
}

/**
 * With the dispatcher, lanes follow models rather than teams (the team queues keep teams apart already): a model's
 * jobs travel in the lane of its place among the configured models in name order, wrapping around past `count`.
 * With a lane per model, each model's deployments are served by worker functions of their own, which Flex scales on
 * their own instances by that lane's queue length, so only instances that hold a seat on its budget see its jobs
 * (docs/design/dispatch.md, "Lanes"). A model the configuration does not name travels in lane 0.
 */
export function modelLanes(models: Iterable<string>, count: number): (model: string) => number {
  const sorted = [...new Set(models)].sort();
  const lanes = new Map(sorted.map((m, i) => [m, count > 0 ? i % count : 0]));
  return (model) => lanes.get(model) ?? 0;
}
