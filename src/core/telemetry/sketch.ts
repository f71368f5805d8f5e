/**
 * Latency distributions as DDSketches (relative accuracy 1 %): mergeable, so hour and day rollups are built from
 * minute rollups without reading job rows again. Serialized as protobuf (base64) plus count/sum/min/max, which the
 * protobuf form does not keep.
 */
import { DDSketch } from '@datadog/sketches-js';

/** Relative accuracy of every stored sketch: a reported quantile is within 1 % of a value at that rank. */
export const SKETCH_RELATIVE_ACCURACY = 0.01;

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
}

export class LatencySketch {
  private sketch = new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;

  add(value: number | null | undefined): void {
    if (value === null || value === undefined || !Number.isFinite(value) || value < 0) return;
    this.sketch.accept(value);
    this.count += 1;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }

  merge(other: LatencySketch): void {
    if (other.count === 0) return;
    this.sketch.merge(other.sketch);
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  /** null when empty. Clamped to the exact min/max, which the sketch alone does not know after deserialization. */
  quantile(q: number): number | null {
    if (this.count === 0) return null;
    return Math.min(this.max, Math.max(this.min, this.sketch.getValueAtQuantile(q)));
  }

  percentiles(): Percentiles | null {
    if (this.count === 0) return null;
    return { p50: this.quantile(0.5)!, p95: this.quantile(0.95)!, p99: this.quantile(0.99)! };
  }

  serialize(): string {
    if (this.count === 0) return '';
    const proto = Buffer.from(this.sketch.toProto()).toString('base64');
    return JSON.stringify({ n: this.count, s: this.sum, lo: this.min, hi: this.max, p: proto });
  }

  static deserialize(text: string | undefined): LatencySketch {
    const out = new LatencySketch();
    if (!text) return out;
    const o = JSON.parse(text) as { n: number; s: number; lo: number; hi: number; p: string };
    out.sketch = DDSketch.fromProto(Buffer.from(o.p, 'base64'));
    out.count = o.n;
    out.sum = o.s;
    out.min = o.lo;
    out.max = o.hi;
    return out;
  }
}
