import type { InfluxDB } from "influx";
import { z } from "zod";
import { AlertNoticeBody, DeliveryOutcome } from "../contract/api/alerts.js";
import type { PointWriter } from "./influx.js";
import { from, queryGroups, tagIs, text, writeOrUnavailable } from "./influxql.js";
import { deviceHash, MEASUREMENTS, type Point, pointTimeNs } from "./schema.js";

// The alert log ("long"."alert_log"): one point per event of an alert: each notice committed, each delivery
// attempt, each acknowledgement. The delivery side writes the first two through its outbox (alerts/deliver.ts),
// so an entry may be written twice: its point's identity comes from the entry itself and lands on itself.

export const AlertLogEntry = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("notice"),
    alertId: z.string(),
    atMs: z.number(),
    notice: AlertNoticeBody,
    /** The targets the notice was committed for. */
    targets: z.array(z.string()),
  }),
  z.object({
    type: z.literal("delivery"),
    alertId: z.string(),
    atMs: z.number(),
    idempotencyKey: z.string(),
    target: z.string(),
    outcome: DeliveryOutcome,
    attempt: z.number().int().min(1),
    status: z.number().int().nullable(),
    error: z.string().nullable(),
    nextTryMs: z.number().nullable(),
  }),
  z.object({
    type: z.literal("acknowledged"),
    alertId: z.string(),
    atMs: z.number(),
    by: z.string(),
    note: z.string().nullable(),
  }),
]);
export type AlertLogEntry = z.infer<typeof AlertLogEntry>;

const NANOS = 1_000_000;

/**
 * An entry's point: tags alert and type (and target for an attempt), the entry as JSON. Its nanoseconds come
 * from the notice's idempotency key (and the attempt's number), so a notice or attempt written twice is one
 * point; an acknowledgement is a person's act and is given its nanoseconds by the caller (1 to 999,999).
 */
export function alertLogPoint(entry: AlertLogEntry, ackNanos = 1): Point {
  const tags: Record<string, string> = { alert: entry.alertId, type: entry.type };
  let nanos: number;
  if (entry.type === "notice") nanos = deviceHash(entry.notice.idempotencyKey) % NANOS;
  else if (entry.type === "delivery") {
    tags.target = entry.target;
    nanos = deviceHash(`${entry.idempotencyKey}#${entry.target}#${entry.attempt}`) % NANOS;
  } else nanos = ackNanos;
  return {
    measurement: MEASUREMENTS.alertLog.name,
    rp: MEASUREMENTS.alertLog.rp,
    tags,
    fields: { entry: JSON.stringify(entry) },
    timeNs: pointTimeNs(entry.atMs, nanos),
  };
}

/** Writes entries; InfluxDB out of reach is StoreUnavailable. */
export const writeAlertLog = (
  write: PointWriter,
  entries: readonly AlertLogEntry[],
  ackNanos?: number,
): Promise<void> =>
  writeOrUnavailable(
    write,
    entries.map((e) => alertLogPoint(e, ackNanos)),
  );

export type AlertLogFilter = { alertIds?: readonly string[]; types?: readonly AlertLogEntry["type"][] };

const anyOf = (tag: string, values: readonly string[]) =>
  `(${values.map((v) => tagIs(tag, v)).join(" OR ")})`;

/** The log in time order, of some alerts and entry types or of all; a point without a valid entry is skipped. */
export async function readAlertLog(influx: InfluxDB, filter: AlertLogFilter = {}): Promise<AlertLogEntry[]> {
  const where: string[] = [];
  if (filter.alertIds !== undefined) {
    if (filter.alertIds.length === 0) return [];
    where.push(anyOf("alert", filter.alertIds));
  }
  if (filter.types !== undefined) {
    if (filter.types.length === 0) return [];
    where.push(anyOf("type", filter.types));
  }
  const clause = where.length === 0 ? "" : ` WHERE ${where.join(" AND ")}`;
  const [groups = []] = await queryGroups(influx, [`SELECT "entry" FROM ${from("alertLog")}${clause}`]);
  const entries: AlertLogEntry[] = [];
  for (const row of groups.flatMap((g) => g.rows)) {
    const json = text(row.entry);
    if (json === null) continue;
    let parsed: ReturnType<typeof AlertLogEntry.safeParse>;
    try {
      parsed = AlertLogEntry.safeParse(JSON.parse(json));
    } catch {
      continue;
    }
    if (parsed.success) entries.push(parsed.data);
  }
  return entries.sort((a, b) => a.atMs - b.atMs);
}
