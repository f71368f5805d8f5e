import { deployment, runFleet, utilisation } from '../test/budget/fleetSim';
async function main() {
  for (const [tpm, rpm, charge, n] of [[10_000, 6000, 125, 1], [10_000, 6000, 250, 1], [10_000, 6000, 500, 1], [10_000, 6000, 1000, 1], [10_000, 60, 250, 1], [60_000, 360, 1470, 1], [300_000, 1800, 1470, 1], [300_000, 1800, 1470, 4]] as const) {
    const ref = deployment(tpm, rpm);
    const r = await runFleet({ ref, instances: n, concurrency: 24, durationMs: 240_000, seed: 7, charge: (rand) => Math.round(charge * (0.9 + rand() * 0.2)), latency: (rand) => 300 + rand() * 1000, timers: true });
    console.log(tpm, rpm, charge, n, utilisation(r.sends, tpm, r.t0 + 60_000, r.t0 + 240_000).toFixed(3), JSON.stringify(r.store.stats), r.sends.length, r.rejected);
  }
}
main();
