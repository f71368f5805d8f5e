/** Bounded parallelism over a (possibly streamed) sequence, without reading ahead more than `limit` items. */

/** Runs `fn` on every item with at most `limit` in flight; rejects with the first error after in-flight calls settle. */
export async function forEachLimit<T>(items: AsyncIterable<T> | Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  for await (const item of items as AsyncIterable<T>) {
    if (failure) break;
    const p: Promise<void> = fn(item).then(
      () => void inFlight.delete(p),
      (error: unknown) => {
        inFlight.delete(p);
        failure ??= { error };
      },
    );
    inFlight.add(p);
    if (inFlight.size >= limit) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure) throw failure.error;
}

/** Maps in order with bounded parallelism, `window` items at a time (ordered output, bounded memory). */
export async function* mapOrdered<T, R>(items: AsyncIterable<T>, window: number, fn: (item: T) => Promise<R>): AsyncGenerator<R> {
  let batch: T[] = [];
  for await (const item of items) {
    batch.push(item);
    if (batch.length >= window) {
      yield* await Promise.all(batch.map(fn));
      batch = [];
    }
  }
  if (batch.length) yield* await Promise.all(batch.map(fn));
}
