import type { InfluxDB } from "influx";
import { SEVERITIES, UNKNOWN } from "../contract/messages.js";
import { DAY_MS, floorDay, floorHour, HOUR_MS } from "../contract/time.js";
import type { PointWriter } from "../storage/influx.js";
import { from, queryGroups, type Row, tagIs, text, timeRange } from "../storage/influxql.js";
import {
  addDeviceCohort,
  addTally,
  COHORT_SUMS,
  COHORT_TAGS,
  type CohortLabels,
  cohortKey,
  cohortLabelsOf,
  cohortTags,
  type DeviceCohortEntry,
  type DeviceTally,
  decodeDeviceCohorts,
  emptyDeviceCohortEntry,
  encodeDeviceCohorts,
  encodeIds,
  encodeTallies,
  faultField,
  ISSUE_TAGS,
  identityKey,
  identityTags,
  RATINGS,
  ROLLUP_FORMAT,
  ratingField,
  type SetIdentity,
  type Span,
  storedDeviceCohortParts,
  storedDeviceCohortsStatement,
  storedParts,
  storedSetsStatement,
  storedTalliesStatement,
  storedTallyParts,
} from "../storage/rollup-schema.js";
import { type FieldValue, MEASUREMENTS, type Point, pointTimeNs } from "../storage/schema.js";

// Rollups: what the API's analytics read instead of the raw points. An hour is recomputed from its raw
// points as a whole, so doing it again is harmless and late data (a device flushing its buffer days later)
// is counted once its hour is recomputed. Raw points are never removed from an hour, so a recomputed hour
// only ever gains series: no stale rollup point outlives a recompute. docs/storage.md describes the
// measurements.

export type RollupResult = { hours: number; days: number; points: number };

export interface Rollups {
  /** Recomputes these hours (any ms inside them) from the raw points, then the days they fall in. */
  recompute(
    hours: Iterable<number>,
    onProgress?: (done: number, total: number) => void,
  ): Promise<RollupResult>;
}

type Cohort = {
  tags: Record<string, string>;
  hours: number;
  devices: Set<string>;
  faults: Record<string, number>;
  faulty: Set<string>;
  reboots: number;
  rejections: number;
  ratings: number[];
};

type IssueCell = {
  tags: Record<string, string>;
  n: number;
  devices: Set<string>;
  firstMs: number;
  lastMs: number;
};
type FingerprintMeta = { key: string; kind: string; model: string; firstMs: number; lastMs: number };

/** An hour's (or day's) device sets by identity key. */
type Sets = Map<string, { identity: SetIdentity; ids: Set<string> }>;
/** An hour's (or day's) per-device tallies by fingerprint, then device. */
type Tallies = Map<string, Map<string, DeviceTally>>;
/** An hour's (or day's) per-device tallies by cohort key, then device. */
type DeviceCohorts = Map<string, { cohort: CohortLabels; byDevice: Map<string, DeviceCohortEntry> }>;
/** What a day's rollups are made of, per hour. */
type HourParts = { sets: Sets; tallies: Tallies; cohorts: DeviceCohorts };

const tagsOf = (row: Row, keys: readonly string[]) => {
  const tags: Record<string, string> = {};
  for (const key of keys) {
    const value = text(row[key]);
    if (value !== null && value !== "") tags[key] = value;
  }
  return tags;
};
const keyOf = (tags: Record<string, string>, keys: readonly string[]) =>
  keys.map((k) => tags[k] ?? "").join("\u0000");
const int = (n: number): FieldValue => ({ int: Math.round(n) });

function tallyOf(tallies: Tallies, fingerprint: string): Map<string, DeviceTally> {
  let byDevice = tallies.get(fingerprint);
  if (byDevice === undefined) {
    byDevice = new Map();
    tallies.set(fingerprint, byDevice);
  }
  return byDevice;
}

function deviceCohortOf(cohorts: DeviceCohorts, cohort: CohortLabels): Map<string, DeviceCohortEntry> {
  const key = cohortKey(cohort);
  let entry = cohorts.get(key);
  if (entry === undefined) {
    entry = { cohort, byDevice: new Map() };
    cohorts.set(key, entry);
  }
  return entry.byDevice;
}

/** A device's tally in a cohort, created empty. */
function deviceEntry(cohorts: DeviceCohorts, cohort: CohortLabels, device: string): DeviceCohortEntry {
  const byDevice = deviceCohortOf(cohorts, cohort);
  let entry = byDevice.get(device);
  if (entry === undefined) {
    entry = emptyDeviceCohortEntry(device);
    byDevice.set(device, entry);
  }
  return entry;
}

function addTo(sets: Sets, identity: SetIdentity, id: string) {
  const key = identityKey(identity);
  const entry = sets.get(key) ?? { identity, ids: new Set<string>() };
  entry.ids.add(id);
  sets.set(key, entry);
}

export type RollupOptions = {
  /** Hour sets kept in memory for the next day rollup (the current day is recomputed often). */
  cachedHours?: number;
};

export function createRollups(influx: InfluxDB, write: PointWriter, options: RollupOptions = {}): Rollups {
  const cachedHours = options.cachedHours ?? 48;
  const hourParts = new Map<number, HourParts>();
  let revision = 0;
  /** Grows with every bucket written, across restarts (milliseconds × 1000 + a counter). */
  const nextRevision = () => {
    revision = Math.max(revision + 1, Date.now() * 1000);
    return revision;
  };

  const point = (
    key: keyof typeof MEASUREMENTS,
    tags: Record<string, string>,
    fields: Record<string, FieldValue>,
    timeMs: number,
  ): Point => ({
    measurement: MEASUREMENTS[key].name,
    rp: MEASUREMENTS[key].rp,
    tags,
    fields,
    timeNs: pointTimeNs(timeMs, 0),
  });

  const setPoints = (span: Span, startMs: number, sets: Sets): Point[] =>
    [...sets.values()].flatMap(({ identity, ids }) =>
      encodeIds(ids).map((part, i) =>
        point("deviceSet", { span, ...identityTags(identity), part: String(i) }, { ids: part }, startMs),
      ),
    );

  const tallyPoints = (span: Span, startMs: number, tallies: Tallies): Point[] =>
    [...tallies].flatMap(([fingerprint, byDevice]) =>
      encodeTallies(byDevice.values()).map((part, i) =>
        point("issueDevices", { span, fingerprint, part: String(i) }, { tallies: part }, startMs),
      ),
    );

  // parts: how many parts this write has, so a reader skips a part left over from a longer encoding.
  const deviceCohortPoints = (span: Span, startMs: number, cohorts: DeviceCohorts): Point[] =>
    [...cohorts.values()].flatMap(({ cohort, byDevice }) => {
      const parts = encodeDeviceCohorts(byDevice.values());
      return parts.map((part, i) =>
        point(
          "deviceCohort",
          { span, ...cohortTags(cohort), part: String(i) },
          { entries: part, parts: int(parts.length) },
          startMs,
        ),
      );
    });

  const revPoint = (span: Span, startMs: number) =>
    point("rollupRev", { span }, { rev: int(nextRevision()), format: int(ROLLUP_FORMAT) }, startMs);

  /** One hour from its raw points: cohort and issue cells, device sets, and fingerprint extremes. */
  async function computeHour(hourMs: number, fingerprints: Map<string, FingerprintMeta>) {
    const range = timeRange(hourMs, hourMs + HOUR_MS);
    const cohortCols = COHORT_TAGS.map((t) => `"${t}"`).join(", ");
    const [activity = [], faults = [], events = [], rejections = []] = await queryGroups(influx, [
      `SELECT "device_id", "hours", ${cohortCols} FROM ${from("activity")} WHERE ${range}`,
      `SELECT "device_id", "fingerprint_key", ${ISSUE_TAGS.map((t) => `"${t}"`).join(", ")} FROM ${from("fault")} WHERE ${range}`,
      `SELECT "seq", "rating", "type", "device", ${cohortCols} FROM ${from("event")} WHERE ${range} AND (${tagIs("type", "reboot")} OR ${tagIs("type", "feedback")})`,
      `SELECT "bytes", "device", ${cohortCols} FROM ${from("rejection")} WHERE ${range}`,
    ]);
    const cohorts = new Map<string, Cohort>();
    const cohort = (row: Row) => {
      const tags = tagsOf(row, COHORT_TAGS);
      const key = keyOf(tags, COHORT_TAGS);
      let c = cohorts.get(key);
      if (c === undefined) {
        c = {
          tags,
          hours: 0,
          devices: new Set(),
          faults: Object.fromEntries(SEVERITIES.map((s) => [s, 0])),
          faulty: new Set(),
          reboots: 0,
          rejections: 0,
          ratings: Array.from({ length: RATINGS }, () => 0),
        };
        cohorts.set(key, c);
      }
      return c;
    };
    const sets: Sets = new Map();
    const tallies: Tallies = new Map();
    const deviceCohorts: DeviceCohorts = new Map();
    /** The row's device's tally in the row's cohort; undefined for a row without a device. */
    const entryOf = (row: Row, device: string | null) =>
      device === null || device === ""
        ? undefined
        : deviceEntry(deviceCohorts, cohortLabelsOf(tagsOf(row, COHORT_TAGS)), device);
    const cohortIdentity = (set: "active" | "faulty", tags: Record<string, string>): SetIdentity => ({
      set,
      kind: tags.kind ?? "",
      model: tags.model ?? "",
      firmware: tags.firmware ?? "",
      region: tags.region ?? "",
      fingerprint: "",
    });

    for (const row of activity.flatMap((g) => g.rows)) {
      const c = cohort(row);
      const hours = typeof row.hours === "number" ? row.hours : 0;
      c.hours += hours;
      const device = text(row.device_id);
      if (device === null) continue;
      const entry = entryOf(row, device);
      if (entry !== undefined) entry.hours += hours;
      c.devices.add(device);
      addTo(sets, cohortIdentity("active", c.tags), device);
    }
    const issues = new Map<string, IssueCell>();
    for (const row of faults.flatMap((g) => g.rows)) {
      const c = cohort(row);
      const severity = text(row.severity) ?? "";
      if (severity in c.faults) c.faults[severity] = (c.faults[severity] ?? 0) + 1;
      const device = text(row.device_id);
      const at = row.time.getTime();
      const tags = tagsOf(row, ISSUE_TAGS);
      const key = keyOf(tags, ISSUE_TAGS);
      const cell = issues.get(key) ?? { tags, n: 0, devices: new Set(), firstMs: at, lastMs: at };
      issues.set(key, cell);
      cell.n += 1;
      cell.firstMs = Math.min(cell.firstMs, at);
      cell.lastMs = Math.max(cell.lastMs, at);
      const id = tags.fingerprint;
      if (id !== undefined) {
        const known = fingerprints.get(id);
        if (known === undefined || at < known.firstMs) {
          fingerprints.set(id, {
            key: text(row.fingerprint_key) ?? id,
            kind: tags.kind ?? "",
            model: tags.model ?? "",
            firstMs: at,
            lastMs: Math.max(at, known?.lastMs ?? at),
          });
        } else if (at > known.lastMs) known.lastMs = at;
      }
      if (device === null) continue;
      const entry = entryOf(row, device);
      if (entry !== undefined) {
        const code = tags.code ?? "";
        const same = entry.faults.find((f) => f.severity === severity && f.code === code);
        if (same === undefined) entry.faults.push({ severity, code, n: 1 });
        else same.n += 1;
      }
      c.faulty.add(device);
      cell.devices.add(device);
      addTo(sets, cohortIdentity("faulty", c.tags), device);
      if (id !== undefined) {
        const none = { kind: "", model: "", firmware: "", region: "", fingerprint: id };
        const firmware = tags.firmware ?? UNKNOWN;
        addTo(sets, { ...none, set: "fault" }, device);
        addTo(sets, { ...none, set: "fault_fw", firmware }, device);
        addTo(sets, { ...none, set: "fault_region", region: tags.region ?? UNKNOWN }, device);
        addTally(tallyOf(tallies, id), { device, n: 1, lastMs: at, firmware });
      }
    }
    for (const row of events.flatMap((g) => g.rows)) {
      const c = cohort(row);
      const entry = entryOf(row, text(row.device));
      if (row.type === "reboot") {
        c.reboots += 1;
        if (entry !== undefined) entry.reboots += 1;
      } else if (
        typeof row.rating === "number" &&
        Number.isInteger(row.rating) &&
        row.rating >= 0 &&
        row.rating < RATINGS
      ) {
        c.ratings[row.rating] = (c.ratings[row.rating] ?? 0) + 1;
        if (entry !== undefined) entry.ratings[row.rating] = (entry.ratings[row.rating] ?? 0) + 1;
      }
    }
    for (const row of rejections.flatMap((g) => g.rows)) {
      cohort(row).rejections += 1;
      const entry = entryOf(row, text(row.device));
      if (entry !== undefined) entry.rejections += 1;
    }

    const points: Point[] = [];
    for (const c of cohorts.values()) {
      const fields: Record<string, FieldValue> = {
        hours: int(c.hours),
        devices: int(c.devices.size),
        faulty: int(c.faulty.size),
        reboots: int(c.reboots),
        rejections: int(c.rejections),
      };
      for (const s of SEVERITIES) fields[faultField(s)] = int(c.faults[s] ?? 0);
      c.ratings.forEach((n, rating) => {
        fields[ratingField(rating)] = int(n);
      });
      points.push(point("cohort1h", c.tags, fields, hourMs));
    }
    for (const cell of issues.values()) {
      points.push(
        point(
          "issue1h",
          cell.tags,
          {
            n: int(cell.n),
            devices: int(cell.devices.size),
            first_ms: int(cell.firstMs),
            last_ms: int(cell.lastMs),
          },
          hourMs,
        ),
      );
    }
    points.push(
      ...setPoints("1h", hourMs, sets),
      ...tallyPoints("1h", hourMs, tallies),
      ...deviceCohortPoints("1h", hourMs, deviceCohorts),
    );
    return { points, parts: { sets, tallies, cohorts: deviceCohorts } };
  }

  /** The hours' device sets and tallies in [startMs, startMs + lengthMs) as stored. */
  async function readHours(startMs: number, lengthMs: number): Promise<Map<number, HourParts>> {
    const toMs = startMs + lengthMs;
    const [sets = [], tallies = [], cohorts = []] = await queryGroups(influx, [
      storedSetsStatement("1h", startMs, toMs),
      storedTalliesStatement("1h", startMs, toMs),
      storedDeviceCohortsStatement("1h", startMs, toMs),
    ]);
    const result = new Map<number, HourParts>();
    const partsAt = (at: number) => {
      const parts = result.get(at) ?? { sets: new Map(), tallies: new Map(), cohorts: new Map() };
      result.set(at, parts);
      return parts;
    };
    for (const { identity, startMs: at, ids } of storedParts(sets)) {
      const hour = partsAt(at).sets;
      for (const id of ids) addTo(hour, identity, id);
    }
    for (const { fingerprint, startMs: at, tallies: stored } of storedTallyParts(tallies)) {
      const byDevice = tallyOf(partsAt(at).tallies, fingerprint);
      // A part left over from a longer encoding repeats a device with an older tally: keep the larger.
      for (const t of stored) {
        const held = byDevice.get(t.device);
        if (held === undefined || t.n > held.n || (t.n === held.n && t.lastMs > held.lastMs))
          byDevice.set(t.device, t);
      }
    }
    for (const { cohort, startMs: at, part } of storedDeviceCohortParts(cohorts)) {
      const byDevice = deviceCohortOf(partsAt(at).cohorts, cohort);
      for (const entry of decodeDeviceCohorts(part)) addDeviceCohort(byDevice, entry);
    }
    return result;
  }

  async function readFingerprints(): Promise<Map<string, FingerprintMeta>> {
    const [found = []] = await queryGroups(influx, [
      `SELECT "key", "kind", "model", "first_ms", "last_ms" FROM ${from("fingerprint")} GROUP BY "fingerprint"`,
    ]);
    const result = new Map<string, FingerprintMeta>();
    for (const group of found) {
      const row = group.rows[0];
      const id = group.tags.fingerprint;
      if (row === undefined || id === undefined || id === "") continue;
      result.set(id, {
        key: text(row.key) ?? id,
        kind: text(row.kind) ?? "",
        model: text(row.model) ?? "",
        firstMs: typeof row.first_ms === "number" ? row.first_ms : 0,
        lastMs: typeof row.last_ms === "number" ? row.last_ms : 0,
      });
    }
    return result;
  }

  const remember = (hourMs: number, parts: HourParts) => {
    hourParts.delete(hourMs);
    hourParts.set(hourMs, parts);
    while (hourParts.size > cachedHours) {
      const oldest = hourParts.keys().next().value;
      if (oldest === undefined) break;
      hourParts.delete(oldest);
    }
  };

  return {
    async recompute(input, onProgress) {
      const hours = [...new Set([...input].map(floorHour))].sort((a, b) => a - b);
      const byDay = new Map<number, number[]>();
      for (const hour of hours) {
        const day = floorDay(hour);
        byDay.set(day, [...(byDay.get(day) ?? []), hour]);
      }
      const stored = await readFingerprints();
      const fingerprints = new Map([...stored].map(([id, m]) => [id, { ...m }]));
      let written = 0;
      let done = 0;
      const flush = async (points: Point[]) => {
        for (let i = 0; i < points.length; i += 5_000) await write(points.slice(i, i + 5_000));
        written += points.length;
      };
      for (const [day, dirty] of byDay) {
        for (const hour of dirty) {
          const { points, parts } = await computeHour(hour, fingerprints);
          // The revision goes last, so a reader never takes a new revision for sets not yet written.
          await flush([...points, revPoint("1h", hour)]);
          remember(hour, parts);
          onProgress?.(++done, hours.length);
        }
        const daySets: Sets = new Map();
        const dayTallies: Tallies = new Map();
        const dayCohorts: DeviceCohorts = new Map();
        let missing = false;
        for (let hour = day; hour < day + DAY_MS; hour += HOUR_MS) missing ||= !hourParts.has(hour);
        const read = missing ? await readHours(day, DAY_MS) : new Map<number, HourParts>();
        for (let hour = day; hour < day + DAY_MS; hour += HOUR_MS) {
          const parts = hourParts.get(hour) ?? read.get(hour);
          if (parts === undefined) continue;
          for (const { identity, ids } of parts.sets.values()) {
            for (const id of ids) addTo(daySets, identity, id);
          }
          for (const [fingerprint, byDevice] of parts.tallies) {
            const into = tallyOf(dayTallies, fingerprint);
            for (const t of byDevice.values()) addTally(into, t);
          }
          for (const { cohort, byDevice } of parts.cohorts.values()) {
            const into = deviceCohortOf(dayCohorts, cohort);
            for (const entry of byDevice.values()) addDeviceCohort(into, entry);
          }
        }
        // The day's sums, from its hours as stored (InfluxDB adds them up where they are).
        const dayRange = timeRange(day, day + DAY_MS);
        await queryGroups(influx, [
          `SELECT ${COHORT_SUMS} INTO ${from("cohort1d")} FROM ${from("cohort1h")} WHERE ${dayRange} GROUP BY time(1d), *`,
          `SELECT sum("n") AS "n", min("first_ms") AS "first_ms", max("last_ms") AS "last_ms" INTO ${from("issue1d")} FROM ${from("issue1h")} WHERE ${dayRange} GROUP BY time(1d), *`,
        ]);
        await flush([
          ...setPoints("1d", day, daySets),
          ...tallyPoints("1d", day, dayTallies),
          ...deviceCohortPoints("1d", day, dayCohorts),
          revPoint("1d", day),
        ]);
      }
      const changed = [...fingerprints].filter(([id, m]) => {
        const before = stored.get(id);
        return before === undefined || before.firstMs !== m.firstMs || before.lastMs !== m.lastMs;
      });
      await flush(
        changed.map(([id, m]) =>
          point(
            "fingerprint",
            { fingerprint: id },
            { key: m.key, kind: m.kind, model: m.model, first_ms: int(m.firstMs), last_ms: int(m.lastMs) },
            0,
          ),
        ),
      );
      return { hours: hours.length, days: byDay.size, points: written };
    },
  };
}
