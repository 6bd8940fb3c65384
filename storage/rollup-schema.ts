import { SEVERITIES } from "../contract/messages.js";
import { DAY_MS, floorHour, HOUR_MS, type Window } from "../contract/time.js";
import { from, type Group, tagIs, text, timeRange } from "./influxql.js";
import { MEASUREMENTS } from "./schema.js";

// The rollups' storage format (docs/storage.md "Rollups"): what rollup/ writes and storage/rollup-reader.ts
// reads. A set of device ids is stored in a string field of "long"."device_set": sorted, comma-separated
// (device ids never hold a comma: contract/topics.ts), cut into parts that stay well below InfluxDB's
// 64 KB limit for a string field.

/**
 * active, faulty: per cohort (kind, model, firmware, region); fault: per fingerprint; fault_fw and
 * fault_region: per fingerprint and the firmware or region the fault was reported on.
 */
export const SET_KINDS = ["active", "faulty", "fault", "fault_fw", "fault_region"] as const;
export type SetKind = (typeof SET_KINDS)[number];
export const SPANS = ["1h", "1d"] as const;
export type Span = (typeof SPANS)[number];
export const SPAN_MS: Record<Span, number> = { "1h": HOUR_MS, "1d": DAY_MS };

/** Who a set counts; the fields a kind does not use are "". */
export type SetIdentity = {
  set: SetKind;
  kind: string;
  model: string;
  firmware: string;
  region: string;
  fingerprint: string;
};

export const PART_CHARS = 60_000;

/** The set's ids in parts of at most PART_CHARS characters; an empty set has no parts. */
export function encodeIds(ids: Iterable<string>): string[] {
  return packParts([...ids].sort());
}

/** Comma-joined parts of at most PART_CHARS characters, in the order given. */
function packParts(items: readonly string[]): string[] {
  const parts: string[] = [];
  let current: string[] = [];
  let length = 0;
  for (const item of items) {
    if (length + item.length + 1 > PART_CHARS && current.length > 0) {
      parts.push(current.join(","));
      current = [];
      length = 0;
    }
    current.push(item);
    length += item.length + 1;
  }
  if (current.length > 0) parts.push(current.join(","));
  return parts;
}

/** The ids of one part; an empty string holds none. */
export const decodeIds = (part: string): string[] => (part === "" ? [] : part.split(","));

/** A set's identity as one string, the same in the rollup job and in the readers. */
export const identityKey = (s: SetIdentity) =>
  [s.set, s.kind, s.model, s.firmware, s.region, s.fingerprint].join("\u0000");

/** The identity's tags on a device_set point; empty values are left out (InfluxDB keeps no empty tags). */
export function identityTags(s: SetIdentity): Record<string, string> {
  const tags: Record<string, string> = { set: s.set };
  for (const key of ["kind", "model", "firmware", "region", "fingerprint"] as const) {
    if (s[key] !== "") tags[key] = s[key];
  }
  return tags;
}

export function identityOf(tags: Record<string, string | undefined>): SetIdentity | undefined {
  const set = SET_KINDS.find((k) => k === tags.set);
  if (set === undefined) return undefined;
  return {
    set,
    kind: tags.kind ?? "",
    model: tags.model ?? "",
    firmware: tags.firmware ?? "",
    region: tags.region ?? "",
    fingerprint: tags.fingerprint ?? "",
  };
}

/**
 * Reads the stored sets of one span (of these kinds, or all) with buckets starting in [fromMs, toMs);
 * storedParts decodes them.
 */
export const storedSetsStatement = (span: Span, fromMs: number, toMs: number, kinds?: readonly SetKind[]) =>
  `SELECT "ids" FROM ${from("deviceSet")} WHERE ${tagIs("span", span)} AND ${timeRange(fromMs, toMs)}` +
  `${kinds === undefined ? "" : ` AND (${kinds.map((k) => tagIs("set", k)).join(" OR ")})`} ` +
  `GROUP BY "set", "kind", "model", "firmware", "region", "fingerprint", "part"`;

/** Each stored part of storedSetsStatement's answer: its set, its bucket's start and its ids. */
export function* storedParts(
  groups: readonly Group[],
): Generator<{ identity: SetIdentity; startMs: number; ids: string[] }> {
  for (const group of groups) {
    const identity = identityOf(group.tags);
    if (identity === undefined) continue;
    for (const row of group.rows)
      yield { identity, startMs: row.time.getTime(), ids: decodeIds(text(row.ids) ?? "") };
  }
}

export type Bucket = { span: Span; startMs: number };

/**
 * The buckets that cover an hour-aligned window: whole UTC days inside it as days, the hours at its edges
 * as hours.
 */
export function bucketsOf(window: Window): Bucket[] {
  const buckets: Bucket[] = [];
  let t = floorHour(window.fromMs);
  while (t < window.toMs) {
    if (t % DAY_MS === 0 && t + DAY_MS <= window.toMs) {
      buckets.push({ span: "1d", startMs: t });
      t += DAY_MS;
    } else {
      buckets.push({ span: "1h", startMs: t });
      t += HOUR_MS;
    }
  }
  return buckets;
}

/** The raw measurements the rollups are computed from, each with a field all of its points have. */
export const ROLLUP_SOURCES = { activity: "hours", fault: "seq", event: "seq", rejection: "bytes" } as const;
const ROLLED_UP: ReadonlySet<string> = new Set(
  Object.keys(ROLLUP_SOURCES).map((key) => MEASUREMENTS[key as keyof typeof ROLLUP_SOURCES].name),
);

/** The hours (their starts, in ms) whose rollups these points change. */
export function dirtyHoursOf(points: Iterable<{ measurement: string; timeNs: string }>): Set<number> {
  const hours = new Set<number>();
  for (const p of points) {
    if (!ROLLED_UP.has(p.measurement)) continue;
    hours.add(floorHour(Number(BigInt(p.timeNs) / 1_000_000n)));
  }
  return hours;
}

/** Feedback ratings run 0 … RATINGS - 1; cohort_1h has a rating_<n> field for each. */
export const RATINGS = 11;
/** cohort_1h's tags. */
export const COHORT_TAGS = ["kind", "model", "firmware", "region"] as const;
/** issue_1h's tags. */
export const ISSUE_TAGS = [...COHORT_TAGS, "fingerprint", "severity", "code"] as const;

export const faultField = (severity: (typeof SEVERITIES)[number]) => `faults_${severity}` as const;
export const ratingField = (rating: number) => `rating_${rating}`;

/** The cohort_1h fields that add up across hours (devices and faulty are distinct counts: they do not). */
export const COHORT_SUM_FIELDS: readonly string[] = [
  "hours",
  "reboots",
  "rejections",
  ...SEVERITIES.map(faultField),
  ...Array.from({ length: RATINGS }, (_, rating) => ratingField(rating)),
];
/** The select list summing COHORT_SUM_FIELDS, each under its own name. */
export const COHORT_SUMS = COHORT_SUM_FIELDS.map((field) => `sum("${field}") AS "${field}"`).join(", ");

// "long"."issue_devices": per bucket and fingerprint, each device's faults, stored like the device sets:
// "device:n:lastMs:firmware" entries sorted by device, comma-separated, in parts below PART_CHARS (a
// firmware label may hold ":" but never ","; it is the rest of the entry).

/**
 * SEAM (issue 11): one device's exposure and faults in one cohort (kind, model, firmware, region) over a
 * bucket or window: what the device-level comparisons (analytics/device-rates.ts) are computed from.
 */
export type DeviceCohortTally = {
  device: string;
  kind: string;
  model: string;
  firmware: string;
  region: string;
  hours: number;
  reboots: number;
  /** Messages of the device the ingest refused (rejection points). */
  rejections: number;
  /** Feedback ratings given, index = rating (0 … RATINGS − 1). */
  ratings: number[];
  /** Faults by severity and code; codes without faults are left out. */
  faults: Array<{ severity: string; code: string; n: number }>;
};

/** One device's faults of one fingerprint in a bucket or window: how many, and its newest one. */
export type DeviceTally = { device: string; n: number; lastMs: number; firmware: string };

export function encodeTallies(tallies: Iterable<DeviceTally>): string[] {
  return packParts(
    [...tallies]
      .sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0))
      .map((t) => `${t.device}:${t.n}:${t.lastMs}:${t.firmware}`),
  );
}

export function decodeTallies(part: string): DeviceTally[] {
  if (part === "") return [];
  const tallies: DeviceTally[] = [];
  for (const entry of part.split(",")) {
    const [device = "", n, lastMs] = entry.split(":", 3);
    const firmware = entry.slice(device.length + (n ?? "").length + (lastMs ?? "").length + 3);
    if (device === "" || n === undefined || lastMs === undefined) continue;
    tallies.push({ device, n: Number(n), lastMs: Number(lastMs), firmware });
  }
  return tallies;
}

/**
 * Adds a device's tally to what `into` holds for it: counts add up, the newest fault's time and firmware
 * win (the greater firmware on a tie, so the order of adding does not matter).
 */
export function addTally(into: Map<string, DeviceTally>, t: DeviceTally): void {
  const held = into.get(t.device);
  if (held === undefined) {
    into.set(t.device, { ...t });
    return;
  }
  held.n += t.n;
  if (t.lastMs > held.lastMs || (t.lastMs === held.lastMs && t.firmware > held.firmware)) {
    held.lastMs = t.lastMs;
    held.firmware = t.firmware;
  }
}

/** issue_devices points of one span in [fromMs, toMs), of these fingerprints (all when undefined). */
export function storedTalliesStatement(
  span: Span,
  fromMs: number,
  toMs: number,
  fingerprints?: readonly string[],
): string {
  const only =
    fingerprints === undefined
      ? ""
      : ` AND (${fingerprints.map((fp) => tagIs("fingerprint", fp)).join(" OR ")})`;
  return (
    `SELECT "tallies" FROM ${from("issueDevices")} WHERE ${tagIs("span", span)} AND ${timeRange(fromMs, toMs)}` +
    `${only} GROUP BY "fingerprint", "part"`
  );
}

/** Each stored part of storedTalliesStatement's answer: its fingerprint, its bucket's start, its tallies. */
export function* storedTallyParts(
  groups: readonly Group[],
): Generator<{ fingerprint: string; startMs: number; tallies: DeviceTally[] }> {
  for (const group of groups) {
    const fingerprint = group.tags.fingerprint;
    if (fingerprint === undefined || fingerprint === "") continue;
    for (const row of group.rows)
      yield { fingerprint, startMs: row.time.getTime(), tallies: decodeTallies(text(row.tallies) ?? "") };
  }
}
