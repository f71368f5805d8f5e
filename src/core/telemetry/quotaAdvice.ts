/**
 * Quota advice: a deployment that runs above SLUICE_QUOTA_ADVICE_PERCENT of its TPM for SLUICE_QUOTA_ADVICE_MINUTES
 * minutes in a row gets one warning and one event per streak, with a TPM that would bring it back under the line.
 */
import type { WindowAggregate } from './aggregate';
import { EVENTS } from './names';
import { ROLLUP_PARTITIONS } from './partitions';
import type { RollupDeps } from './rollupDeps';
import { applyOnce, type StateValue } from './store';
import { windowIso } from './windows';

export async function adviseQuota(deps: RollupDeps, window: string, agg: WindowAggregate): Promise<void> {
  const limit = deps.settings.quotaAdvicePercent / 100;
  for (const e of deps.endpoints) {
    const use = agg.deployments.get(`${e.region}/${e.deployment}`);
    const utilisation = (use?.tokensCharged ?? 0) / e.tpm;
    let advise: StateValue | undefined;
    await applyOnce(deps.state, ROLLUP_PARTITIONS.quota, encodeURIComponent(`${e.region}/${e.deployment}`), window, (prev) => {
      advise = undefined;
      if (utilisation <= limit) return { streak: 0, sum: 0, peak: 0, advised: false };
      const streak = Number(prev?.streak ?? 0) + 1;
      const sum = Number(prev?.sum ?? 0) + utilisation;
      const peak = Math.max(Number(prev?.peak ?? 0), utilisation);
      const due = streak >= deps.settings.quotaAdviceMinutes && !prev?.advised;
      const next = { streak, sum, peak, advised: Boolean(prev?.advised) || due };
      if (due) advise = next;
      return next;
    });
    if (!advise) continue;
    const streak = Number(advise.streak);
    const peak = Number(advise.peak);
    const suggested = Math.ceil((peak * e.tpm) / limit / 1000) * 1000;
    deps.log('warn', `quota: ${e.region}/${e.deployment} above ${deps.settings.quotaAdvicePercent}% of its ${e.tpm} TPM for ${streak} minutes (peak ${(peak * 100).toFixed(0)}%); consider ${suggested} TPM`);
    deps.sink.event(
      EVENTS.quotaAdvice,
      { window: windowIso(window), region: e.region, deployment: e.deployment, model: e.model, tpm: String(e.tpm), minutes: String(streak), suggested_tpm: String(suggested) },
      { tpm: e.tpm, minutes: streak, avg_utilisation: Number(advise.sum) / streak, peak_utilisation: peak, suggested_tpm: suggested },
    );
  }
}
