/**
 * The budget row's size and write rate, measured on the entities the store hands the Table client (bench:scale):
 * the JSON of each entity written and of its `leases` property, and successful writes per row per 10 s.
 */
import type { TableClient } from '@azure/data-tables';

export interface RowMeter {
  maxEntityChars: number;
  maxLeasesChars: number;
  /** Successful writes per row key, by 10 s bucket. */
  buckets: Map<string, Map<number, number>>;
}

export function meteredTable(table: TableClient, meter: RowMeter): TableClient {
  const measure = (entity: Record<string, unknown>) => {
    meter.maxEntityChars = Math.max(meter.maxEntityChars, JSON.stringify(entity).length);
    meter.maxLeasesChars = Math.max(meter.maxLeasesChars, String(entity.leases ?? '').length);
  };
  const counted = async <T>(entity: Record<string, unknown>, write: Promise<T>): Promise<T> => {
    const res = await write;
    const byBucket = meter.buckets.get(String(entity.rowKey)) ?? new Map<number, number>();
    meter.buckets.set(String(entity.rowKey), byBucket);
    const bucket = Math.floor(Date.now() / 10_000);
    byBucket.set(bucket, (byBucket.get(bucket) ?? 0) + 1);
    return res;
  };
  return new Proxy(table, {
    get(target, prop, receiver) {
      if (prop === 'createEntity' || prop === 'updateEntity') {
        return (entity: Record<string, unknown>, ...rest: unknown[]) => {
          measure(entity);
          return counted(entity, (target[prop] as (...a: unknown[]) => Promise<unknown>).call(target, entity, ...rest));
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
