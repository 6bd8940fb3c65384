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

// "long"."device_cohort": per bucket and cohort (kind, model, firmware, region, as tags), each device's
// tally in that cohort, in parts below PART_CHARS. An entry is
//   device|hours|reboots|rejections|ratings|severity=code=n|severity=code=n…
// with ratings as "rating=n" pairs joined by ";" ("" for none) and one "severity=code=n" per fault code.
// Device ids hold none of ",|=;" (contract/topics.ts) and labels none of ",=|\"", so the entry splits on
// "|" and a fault on "=" whatever else a code holds (":", "/", "(").

/** One device's tally in one cohort; the cohort is the point's tags. */
export type DeviceCohortEntry = Omit<DeviceCohortTally, "kind" | "model" | "firmware" | "region">;
/** A cohort as its tags name it; a missing tag is "". */
export type CohortLabels = Pick<DeviceCohortTally, "kind" | "model" | "firmware" | "region">;

const byDevice = (a: { device: string }, b: { device: string }) =>
  a.device < b.device ? -1 : a.device > b.device ? 1 : 0;

function encodeDeviceCohortEntry(t: DeviceCohortEntry): string {
  const ratings: string[] = [];
  t.ratings.forEach((n, rating) => {
    if (n > 0) ratings.push(`${rating}=${n}`);
  });
  const faults = [...t.faults]
    .filter((f) => f.n > 0)
    .map((f) => ({ ...f, key: `${f.severity}=${f.code}` }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((f) => `|${f.severity}=${f.code}=${f.n}`);
  return `${t.device}|${t.hours}|${t.reboots}|${t.rejections}|${ratings.join(";")}${faults.join("")}`;
}

/** A cohort's device entries, sorted by device, in parts of at most PART_CHARS characters. */
export const encodeDeviceCohorts = (entries: Iterable<DeviceCohortEntry>): string[] =>
  packParts([...entries].sort(byDevice).map(encodeDeviceCohortEntry));

/** What visitDeviceCohorts calls for each entry of a part, in order: entry, then its ratings and faults. */
export type DeviceCohortVisitor = {
  entry(device: string, hours: number, reboots: number, rejections: number): void;
  rating(rating: number, n: number): void;
  /** faultKey: "severity=code" (a code holds no "="); faultOf splits it. */
  fault(faultKey: string, n: number): void;
};

export function faultOf(faultKey: string): { severity: string; code: string } {
  const eq = faultKey.indexOf("=");
  return { severity: faultKey.slice(0, eq), code: faultKey.slice(eq + 1) };
}

/**
 * Reads one part without building an object per entry (a month of 10,000 devices is 300,000 entries);
 * malformed entries are skipped.
 */
export function visitDeviceCohorts(part: string, visitor: DeviceCohortVisitor): void {
  const length = part.length;
  let at = 0;
  while (at < length) {
    let end = part.indexOf(",", at);
    if (end < 0) end = length;
    const entryAt = at;
    at = end + 1;
    const bar1 = part.indexOf("|", entryAt);
    const bar2 = part.indexOf("|", bar1 + 1);
    const bar3 = part.indexOf("|", bar2 + 1);
    const bar4 = part.indexOf("|", bar3 + 1);
    if (bar1 <= entryAt || bar4 < 0 || bar4 > end) continue;
    let ratingsEnd = part.indexOf("|", bar4 + 1);
    if (ratingsEnd < 0 || ratingsEnd > end) ratingsEnd = end;
    visitor.entry(
      part.slice(entryAt, bar1),
      Number(part.slice(bar1 + 1, bar2)),
      Number(part.slice(bar2 + 1, bar3)),
      Number(part.slice(bar3 + 1, bar4)),
    );
    for (let r = bar4 + 1; r < ratingsEnd; ) {
      let semi = part.indexOf(";", r);
      if (semi < 0 || semi > ratingsEnd) semi = ratingsEnd;
      const eq = part.indexOf("=", r);
      if (eq > r && eq < semi) visitor.rating(Number(part.slice(r, eq)), Number(part.slice(eq + 1, semi)));
      r = semi + 1;
    }
    for (let f = ratingsEnd + 1; f < end; ) {
      let bar = part.indexOf("|", f);
      if (bar < 0 || bar > end) bar = end;
      const eq = part.lastIndexOf("=", bar - 1);
      if (eq > f && part.indexOf("=", f) < eq)
        visitor.fault(part.slice(f, eq), Number(part.slice(eq + 1, bar)));
      f = bar + 1;
    }
  }
}

/** The entries of one part; malformed entries are skipped. */
export function decodeDeviceCohorts(part: string): DeviceCohortEntry[] {
  const entries: DeviceCohortEntry[] = [];
  let current: DeviceCohortEntry | undefined;
  visitDeviceCohorts(part, {
    entry(device, hours, reboots, rejections) {
      current = { ...emptyDeviceCohortEntry(device), hours, reboots, rejections };
      entries.push(current);
    },
    rating(rating, n) {
      if (current !== undefined && rating >= 0 && rating < RATINGS) current.ratings[rating] = n;
    },
    fault(faultKey, n) {
      current?.faults.push({ ...faultOf(faultKey), n });
    },
  });
  return entries;
}

/** An empty tally of a device, for adding to. */
export const emptyDeviceCohortEntry = (device: string): DeviceCohortEntry => ({
  device,
  hours: 0,
  reboots: 0,
  rejections: 0,
  ratings: Array.from({ length: RATINGS }, () => 0),
  faults: [],
});

/** Adds a device's tally (of the same cohort) to what `into` holds for it: every count adds up. */
export function addDeviceCohort(into: Map<string, DeviceCohortEntry>, t: DeviceCohortEntry): void {
  let held = into.get(t.device);
  if (held === undefined) {
    held = emptyDeviceCohortEntry(t.device);
    into.set(t.device, held);
  }
  held.hours += t.hours;
  held.reboots += t.reboots;
  held.rejections += t.rejections;
  t.ratings.forEach((n, rating) => {
    if (held !== undefined && rating < RATINGS) held.ratings[rating] = (held.ratings[rating] ?? 0) + n;
  });
  for (const f of t.faults) {
    const same = held.faults.find((g) => g.severity === f.severity && g.code === f.code);
    if (same === undefined) held.faults.push({ ...f });
    else same.n += f.n;
  }
}

/** A cohort's tags on a device_cohort point; empty values are left out (InfluxDB keeps no empty tags). */
export function cohortTags(c: CohortLabels): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const key of COHORT_TAGS) if (c[key] !== "") tags[key] = c[key];
  return tags;
}

export const cohortLabelsOf = (tags: Record<string, string | undefined>): CohortLabels => ({
  kind: tags.kind ?? "",
  model: tags.model ?? "",
  firmware: tags.firmware ?? "",
  region: tags.region ?? "",
});

/** A cohort as one string, the same in the rollup job and the reader. */
export const cohortKey = (c: CohortLabels) => [c.kind, c.model, c.firmware, c.region].join("\u0000");

/** device_cohort points of one span in [fromMs, toMs); storedDeviceCohortParts decodes them. */
export const storedDeviceCohortsStatement = (span: Span, fromMs: number, toMs: number) =>
  `SELECT "entries", "parts" FROM ${from("deviceCohort")} WHERE ${tagIs("span", span)} AND ${timeRange(fromMs, toMs)} ` +
  `GROUP BY "kind", "model", "firmware", "region", "part"`;

/**
 * Each current part of storedDeviceCohortsStatement's answer: its cohort, its bucket's start, its text
 * (decodeDeviceCohorts, visitDeviceCohorts).
 * A part at or beyond the count its cohort's part 0 was written with is left over from a longer encoding
 * and skipped, so a bucket never counts a device twice.
 */
export function* storedDeviceCohortParts(
  groups: readonly Group[],
): Generator<{ cohort: CohortLabels; startMs: number; part: string }> {
  const partsAt = new Map<string, number>();
  for (const group of groups) {
    if (group.tags.part !== "0") continue;
    const key = cohortKey(cohortLabelsOf(group.tags));
    for (const row of group.rows)
      if (typeof row.parts === "number") partsAt.set(`${key}|${row.time.getTime()}`, row.parts);
  }
  for (const group of groups) {
    const cohort = cohortLabelsOf(group.tags);
    const part = Number(group.tags.part ?? "0");
    const key = cohortKey(cohort);
    for (const row of group.rows) {
      const startMs = row.time.getTime();
      const parts = partsAt.get(`${key}|${startMs}`);
      if (parts !== undefined && part >= parts) continue;
      yield { cohort, startMs, part: text(row.entries) ?? "" };
    }
  }
}

/**
 * The rollup format: rollup/ writes it on every rollup_rev point. A bucket whose rev point carries an older
 * one (or none: before device_cohort) lacks measurements the readers expect; rollup/rebuild.ts finds them.
 */
export const ROLLUP_FORMAT = 2;
