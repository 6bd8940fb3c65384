import type { StorageLimits } from "../config/env.js";
import type { DecodedMessage } from "./decode.js";
import type { IntroducedValue } from "./journal.js";
import type { MessagePoints } from "./to-points.js";

// What one device may add to InfluxDB's indexes. Every metric name is a field key of telemetry and every
// label value a tag value, both indexed for good; InfluxDB refuses new ones past its own limits
// (max-values-per-tag), for all devices alike. So fieldq counts them first: in all, and per device the
// ones it was the first to send. Names and values already known cost nothing.

/** Where a value lands: "metric" for metric names, else the tag key its label becomes. */
export type Dimension = "metric" | (typeof LABEL_TAGS)[number];

/** A value fieldq learned, and the device that sent it first. */
export type Introduced = IntroducedValue & { dimension: Dimension };

/** Tags whose values come from what devices send; other tags take a few fixed values. */
export const LABEL_TAGS = [
  "kind",
  "model",
  "firmware",
  "hardware",
  "region",
  "isp",
  "code",
  "component",
  "type",
  // Derived from kind, model, code and the fingerprint rules: known codes on a new model make new ones.
  "fingerprint",
  // floor(seq / 10^6) (storage/schema.ts): any seq a device picks names a tag value, so it is counted too.
  "seq_hi",
] as const;

/**
 * seq_hi values come with time, not with choice: a lone device whose seq restarts from the clock (in seconds,
 * docs/protocol.md) reaches a new one every 11.6 days, first in its fleet. It gets this many times the
 * per-device budget of labels, which holds such a device for years and still stops one that jumps on purpose.
 */
const SEQ_HI_BUDGET_FACTOR = 10;

function entry<K, V>(map: Map<K, V>, key: K, create: () => V): V {
  const found = map.get(key);
  if (found !== undefined) return found;
  const created = create();
  map.set(key, created);
  return created;
}

const isDimension = (name: string): name is Dimension =>
  name === "metric" || (LABEL_TAGS as readonly string[]).includes(name);

const DEVICE_META_TAGS = ["kind", "model", "firmware", "hardware", "region", "isp"] as const;

export type Admission = { ok: true; introduced: Introduced[] } | { ok: false; message: string };

/** The metric names and label values a message would write, each once. */
/** A module-level function, not a closure per message: the hot path allocates less. */
function addValue(values: Map<Dimension, Set<string>>, dimension: Dimension, value: string | undefined) {
  if (value === undefined) return;
  const set = values.get(dimension);
  if (set === undefined) values.set(dimension, new Set([value]));
  else set.add(value);
}

export function valuesOf(message: DecodedMessage, mapped: MessagePoints): Map<Dimension, Set<string>> {
  const values = new Map<Dimension, Set<string>>();
  if (message.channel === "telemetry") {
    for (const sample of message.body)
      for (const name of Object.keys(sample.metrics)) addValue(values, "metric", name);
  }
  for (const { point } of mapped.records)
    for (const tag of LABEL_TAGS) addValue(values, tag, point.tags[tag]);
  // A hello or a firmware update tags the device's later points with its metadata.
  if (mapped.meta) for (const tag of DEVICE_META_TAGS) addValue(values, tag, mapped.meta[tag]);
  return values;
}

const LIMIT_NAMES = {
  metric: { fleet: "FIELDQ_MAX_METRIC_NAMES", device: "FIELDQ_MAX_DEVICE_METRIC_NAMES" },
  label: { fleet: "FIELDQ_MAX_LABEL_VALUES", device: "FIELDQ_MAX_DEVICE_LABEL_VALUES" },
} as const;

const what = (dimension: Dimension, n: number) =>
  dimension === "metric"
    ? `${n} metric name${n === 1 ? "" : "s"}`
    : `${n} ${dimension} value${n === 1 ? "" : "s"}`;

/**
 * The values fieldq knows, by dimension, and how many each device introduced. Memory stays within the
 * limits: a value is only learned within them, and only a device that introduced one has a count.
 */
export class CardinalityGuard {
  private readonly known = new Map<Dimension, Set<string>>();
  private readonly introducedBy = new Map<Dimension, Map<string, number>>();

  constructor(
    private readonly limits: StorageLimits,
    learned: Iterable<IntroducedValue> = [],
  ) {
    for (const item of learned) if (isDimension(item.dimension)) this.learn(item as Introduced);
  }

  /**
   * Admits a message whose values stay within the limits, and learns its new ones at once (so messages
   * in flight together are counted together); refuses one that would pass a limit, naming it.
   */
  admit(device: string, values: Map<Dimension, Set<string>>): Admission {
    const introduced: Introduced[] = [];
    for (const [dimension, set] of values) {
      const known = this.known.get(dimension);
      const fresh = [...set].filter((value) => !known?.has(value));
      if (fresh.length === 0) continue;
      const refusal = this.check(device, dimension, fresh.length);
      if (refusal !== undefined) return { ok: false, message: refusal };
      for (const value of fresh) introduced.push({ dimension, value, device });
    }
    for (const item of introduced) this.learn(item);
    return { ok: true, introduced };
  }

  /** Unlearns what admit() learned for a message that was not stored after all. */
  forget(introduced: readonly Introduced[]): void {
    for (const { dimension, value, device } of introduced) {
      if (!this.known.get(dimension)?.delete(value)) continue;
      const counts = this.introducedBy.get(dimension);
      const count = counts?.get(device) ?? 0;
      if (count <= 1) counts?.delete(device);
      else counts?.set(device, count - 1);
    }
  }

  /** How many values of a dimension fieldq knows. */
  size(dimension: Dimension): number {
    return this.known.get(dimension)?.size ?? 0;
  }

  private check(device: string, dimension: Dimension, fresh: number): string | undefined {
    const isMetric = dimension === "metric";
    const names = LIMIT_NAMES[isMetric ? "metric" : "label"];
    const fleetMax = isMetric ? this.limits.maxMetricNames : this.limits.maxLabelValues;
    const deviceMax = isMetric
      ? this.limits.maxDeviceMetricNames
      : this.limits.maxDeviceLabelValues * (dimension === "seq_hi" ? SEQ_HI_BUDGET_FACTOR : 1);
    const fleetHas = this.size(dimension);
    if (fleetHas + fresh > fleetMax) {
      return `would add ${what(dimension, fresh)} to the ${fleetHas} known; fieldq keeps at most ${fleetMax} (${names.fleet})`;
    }
    const deviceHas = this.introducedBy.get(dimension)?.get(device) ?? 0;
    if (deviceHas + fresh > deviceMax) {
      return `would add ${what(dimension, fresh)} to the ${deviceHas} this device introduced; a device may introduce at most ${deviceMax} (${names.device})`;
    }
    return undefined;
  }

  private learn({ dimension, value, device }: Introduced): void {
    const known = entry(this.known, dimension, () => new Set<string>());
    if (known.has(value)) return;
    known.add(value);
    const counts = entry(this.introducedBy, dimension, () => new Map<string, number>());
    counts.set(device, (counts.get(device) ?? 0) + 1);
  }
}
