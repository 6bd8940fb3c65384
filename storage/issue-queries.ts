import type { InfluxDB } from "influx";
import { IssueEvent } from "../contract/issue-events.js";
import { UNKNOWN } from "../contract/messages.js";
import { HOUR_MS } from "../contract/time.js";
import type { PointWriter } from "./influx.js";
import { from, type Group, queryGroups, tagIs, text, timeRange, writeOrUnavailable } from "./influxql.js";
import { MEASUREMENTS, type Point, pointTimeNs } from "./schema.js";

// The issues' queries: the event log ("long"."issue_event"), fingerprints, and what settling and the
// device summary read. Typed rows only; the rules are in analytics/, the composition in services/issues.ts
// and rollup/settle-issues.ts.

export type IssueEventRow = { issue: string; event: IssueEvent };

/** One fingerprint, from the "fingerprint" rollup: its first and last occurrence over all time. */
export type FingerprintRow = {
  id: string;
  key: string;
  kind: string;
  model: string;
  firstMs: number;
  lastMs: number;
};

const num = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : 0);
/** A group's tag; a series without it reads as UNKNOWN, as the ingest writes a missing one. */
const tagOf = (g: Group, key: string) => g.tags[key] || UNKNOWN;
const anyOf = (tag: string, values: readonly string[]) =>
  `(${values.map((v) => tagIs(tag, v)).join(" OR ")})`;
const first = async (influx: InfluxDB, statement: string) =>
  (await queryGroups(influx, [statement]))[0] ?? [];

/**
 * An event's point. Its identity is (issue, type, time): a system event is written with nanos 0, so the
 * same event computed by two runners lands on one point; a person's event gets nanos 1 to 999,999, so two
 * requests in one millisecond keep both events.
 */
export function issueEventPoint(issue: string, event: IssueEvent, nanos: number): Point {
  return {
    measurement: MEASUREMENTS.issueEvent.name,
    rp: MEASUREMENTS.issueEvent.rp,
    tags: { issue, type: event.type },
    fields: { event: JSON.stringify(event), actor: event.actor },
    timeNs: pointTimeNs(event.at, nanos),
  };
}

export const appendIssueEvents = (write: PointWriter, points: readonly Point[]): Promise<void> =>
  writeOrUnavailable(write, points);

/** The log in time order, of one issue or of all; points that do not hold a valid event are skipped. */
export async function readIssueEvents(influx: InfluxDB, issue?: string): Promise<IssueEventRow[]> {
  const where = issue === undefined ? "" : ` WHERE ${tagIs("issue", issue)}`;
  const groups = await first(influx, `SELECT "event", "issue" FROM ${from("issueEvent")}${where}`);
  const log: IssueEventRow[] = [];
  for (const row of groups.flatMap((g) => g.rows)) {
    const id = text(row.issue);
    const json = text(row.event);
    if (id === null || json === null) continue;
    let parsed: ReturnType<typeof IssueEvent.safeParse>;
    try {
      parsed = IssueEvent.safeParse(JSON.parse(json));
    } catch {
      continue;
    }
    if (parsed.success) log.push({ issue: id, event: parsed.data });
  }
  return log;
}

/** Every fingerprint ever seen. */
export async function readFingerprints(influx: InfluxDB): Promise<FingerprintRow[]> {
  const groups = await first(
    influx,
    `SELECT "key", "kind", "model", "first_ms", "last_ms" FROM ${from("fingerprint")} GROUP BY "fingerprint"`,
  );
  const rows: FingerprintRow[] = [];
  for (const g of groups) {
    const id = g.tags.fingerprint;
    const row = g.rows[0];
    if (id === undefined || id === "" || row === undefined) continue;
    const firstMs = num(row.first_ms);
    rows.push({
      id,
      key: text(row.key) || id,
      kind: text(row.kind) || UNKNOWN,
      model: text(row.model) || UNKNOWN,
      firstMs,
      lastMs: Math.max(firstMs, num(row.last_ms)),
    });
  }
  return rows;
}

/**
 * The first fault of these fingerprints at or after sinceMs, per firmware. The hour sinceMs falls in is
 * read from the raw faults (its rollup cell may start before sinceMs), the hours after it from issue_1h's
 * first_ms: a few series however many devices fault.
 */
export async function readFirstFaults(
  influx: InfluxDB,
  fingerprints: readonly string[],
  sinceMs: number,
): Promise<Array<{ firmware: string; at: number }>> {
  if (fingerprints.length === 0) return [];
  const edge = Math.floor(sinceMs / HOUR_MS) * HOUR_MS + HOUR_MS;
  const which = anyOf("fingerprint", fingerprints);
  const [raw = [], rolled = []] = await queryGroups(influx, [
    `SELECT first("seq") AS "seq" FROM ${from("fault")} WHERE ${which} AND ${timeRange(sinceMs, edge)} GROUP BY "firmware"`,
    `SELECT min("first_ms") AS "first_ms" FROM ${from("issue1h")} WHERE ${which} AND time >= ${edge}ms GROUP BY "firmware"`,
  ]);
  const found = [
    ...raw.flatMap((g) => g.rows.map((r) => ({ firmware: tagOf(g, "firmware"), at: r.time.getTime() }))),
    ...rolled.flatMap((g) =>
      g.rows
        .filter((r) => typeof r.first_ms === "number")
        .map((r) => ({ firmware: tagOf(g, "firmware"), at: num(r.first_ms) })),
    ),
  ];
  const earliest = new Map<string, number>();
  for (const f of found) earliest.set(f.firmware, Math.min(earliest.get(f.firmware) ?? f.at, f.at));
  return [...earliest].map(([firmware, at]) => ({ firmware, at }));
}

/** Device-hours per UTC hour and firmware of these kind/model pairs, hours starting in [fromMs, toMs). */
export async function readHourlyExposure(
  influx: InfluxDB,
  models: ReadonlyArray<{ kind: string; model: string }>,
  fromMs: number,
  toMs: number,
): Promise<Array<{ hourMs: number; firmware: string; hours: number }>> {
  if (models.length === 0 || fromMs >= toMs) return [];
  const pairs = [...new Map(models.map((m) => [`${m.kind}\u0000${m.model}`, m])).values()];
  const which = `(${pairs.map((m) => `(${tagIs("kind", m.kind)} AND ${tagIs("model", m.model)})`).join(" OR ")})`;
  const groups = await first(
    influx,
    `SELECT sum("hours") AS "hours" FROM ${from("cohort1h")} WHERE ${which} AND ${timeRange(fromMs, toMs)} ` +
      `GROUP BY time(1h), "firmware" fill(none)`,
  );
  return groups.flatMap((g) =>
    g.rows
      .filter((r) => num(r.hours) > 0)
      .map((r) => ({ hourMs: r.time.getTime(), firmware: tagOf(g, "firmware"), hours: num(r.hours) })),
  );
}

/** The fingerprints of every fault the device ever had: only that device's series are read. */
export async function readDeviceFingerprints(influx: InfluxDB, device: string): Promise<string[]> {
  const groups = await first(
    influx,
    `SELECT last("seq") AS "seq" FROM ${from("fault")} WHERE ${tagIs("device", device)} GROUP BY "fingerprint"`,
  );
  return groups.map((g) => g.tags.fingerprint).filter((f): f is string => f !== undefined && f !== "");
}

/** The firmware of the device's latest activity hour, or null when it never reported. */
export async function readDeviceFirmware(influx: InfluxDB, device: string): Promise<string | null> {
  const groups = await first(
    influx,
    `SELECT last("hours") AS "hours", "firmware" FROM ${from("activity")} WHERE ${tagIs("device", device)}`,
  );
  return text(groups[0]?.rows[0]?.firmware);
}
