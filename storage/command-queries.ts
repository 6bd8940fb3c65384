import type { InfluxDB } from "influx";
import { DAY_MS } from "../contract/time.js";
import type { PointWriter } from "./influx.js";
import { from, type Group, influxql, queryGroups, tagIs, text, writeOrUnavailable } from "./influxql.js";
import { deviceHash, MEASUREMENTS, type Point, pointTimeNs } from "./schema.js";

// Remote commands in InfluxDB (docs/commands.md): the log of what people sent ("long"."command_log": a
// "queued" point per command, a "delivered" point when its device acknowledged it) and the device's own
// answers, which the ingest stores in "long"."command" as the device sent them. Typed rows only.

export type QueuedRow = {
  id: string;
  device: string;
  type: string;
  /** The arguments as JSON text, as they were sent. */
  args: string;
  by: string;
  createdMs: number;
  expiresMs: number;
  batch: string | null;
};
export type DeliveredRow = { id: string; device: string; atMs: number };
/** atMs: when fieldq received the answer (the device's own time is the point's). */
export type AnswerRow = { id: string; device: string; ok: boolean; message: string | null; atMs: number };

/**
 * How far before its sending a device's answer may be stamped: the ingest keeps a device's own time up to
 * FIELDQ_CLOCK_SKEW_PAST (60 days by default) in the past.
 */
export const ANSWER_SKEW_MS = 61 * DAY_MS;

/** Nanoseconds below the millisecond from the command id: two commands of one device in one ms stay apart. */
const nanosOf = (id: string) => deviceHash(id) % 1_000_000;

export function queuedPoint(row: QueuedRow): Point {
  return {
    measurement: MEASUREMENTS.commandLog.name,
    rp: MEASUREMENTS.commandLog.rp,
    tags: { device: row.device, event: "queued" },
    fields: {
      command_id: row.id,
      type: row.type,
      args: row.args,
      by: row.by,
      expires_ms: { int: row.expiresMs },
      batch: row.batch ?? "",
    },
    timeNs: pointTimeNs(row.createdMs, nanosOf(row.id)),
  };
}

/** Written once per delivery; a second PUBACK of the same command lands on its own point (at least once). */
export function deliveredPoint(row: DeliveredRow & { batch: string | null }): Point {
  return {
    measurement: MEASUREMENTS.commandLog.name,
    rp: MEASUREMENTS.commandLog.rp,
    tags: { device: row.device, event: "delivered" },
    fields: { command_id: row.id, batch: row.batch ?? "" },
    timeNs: pointTimeNs(row.atMs, nanosOf(row.id)),
  };
}

export const writeCommandLog = (write: PointWriter, points: readonly Point[]): Promise<void> =>
  writeOrUnavailable(write, points);

const num = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : null);
const rowsOf = (groups: Group[] | undefined) => (groups ?? []).flatMap((g) => g.rows);

function queuedOf(row: Record<string, unknown> & { time: Date }): QueuedRow | undefined {
  const id = text(row.command_id);
  const device = text(row.device);
  const type = text(row.type);
  const expiresMs = num(row.expires_ms);
  if (id === null || device === null || type === null || expiresMs === null) return undefined;
  const batch = text(row.batch);
  return {
    id,
    device,
    type,
    args: text(row.args) ?? "{}",
    by: text(row.by) ?? "unknown",
    createdMs: row.time.getTime(),
    expiresMs,
    batch: batch === null || batch === "" ? null : batch,
  };
}

function deliveredOf(row: Record<string, unknown> & { time: Date }): DeliveredRow | undefined {
  const id = text(row.command_id);
  const device = text(row.device);
  return id === null || device === null ? undefined : { id, device, atMs: row.time.getTime() };
}

function answerOf(row: Record<string, unknown> & { time: Date }): AnswerRow | undefined {
  const id = text(row.command_id);
  const device = text(row.device);
  if (id === null || device === null || typeof row.ok !== "boolean") return undefined;
  // When fieldq received it, as the command's other times are fieldq's: a device's clock may lag.
  const atMs = num(row.received_ms) ?? row.time.getTime();
  return { id, device, ok: row.ok, message: text(row.message), atMs };
}

const collect = <T>(
  rows: Array<Record<string, unknown> & { time: Date }>,
  of: (r: (typeof rows)[number]) => T | undefined,
) => rows.map(of).filter((r): r is T => r !== undefined);

const QUEUED_FIELDS = `"command_id", "device", "type", "args", "by", "expires_ms", "batch"`;
const queued = tagIs("event", "queued");
const delivered = tagIs("event", "delivered");

export type CommandRecords = { queued: QueuedRow[]; delivered: DeliveredRow[]; answers: AnswerRow[] };

/** A device's newest commands (newest first), their deliveries and its answers to them. */
export async function readDeviceCommands(
  influx: InfluxDB,
  device: string,
  limit: number,
): Promise<CommandRecords> {
  const [q] = await queryGroups(influx, [
    `SELECT ${QUEUED_FIELDS} FROM ${from("commandLog")} WHERE ${tagIs("device", device)} AND ${queued} ORDER BY time DESC LIMIT ${Math.trunc(limit)}`,
  ]);
  const commands = collect(rowsOf(q), queuedOf);
  const oldest = commands.at(-1)?.createdMs;
  if (oldest === undefined) return { queued: [], delivered: [], answers: [] };
  const [d, a] = await queryGroups(influx, [
    `SELECT "command_id", "device" FROM ${from("commandLog")} WHERE ${tagIs("device", device)} AND ${delivered} AND time >= ${oldest}ms`,
    `SELECT "command_id", "device", "ok", "message", "received_ms" FROM ${from("command")} WHERE ${tagIs("device", device)} AND time >= ${oldest - ANSWER_SKEW_MS}ms`,
  ]);
  return {
    queued: commands,
    delivered: collect(rowsOf(d), deliveredOf),
    answers: collect(rowsOf(a), answerOf),
  };
}

/** The commands of one batch: every one was queued at the batch's creation time. */
export async function readBatchCommands(
  influx: InfluxDB,
  batch: string,
  createdMs: number,
): Promise<CommandRecords> {
  const isBatch = `${influxql.quoted("batch")} = ${influxql.stringLit(batch)}`;
  const [q, d, a] = await queryGroups(influx, [
    `SELECT ${QUEUED_FIELDS} FROM ${from("commandLog")} WHERE ${queued} AND ${isBatch} AND time >= ${createdMs}ms AND time < ${createdMs + 1}ms`,
    `SELECT "command_id", "device" FROM ${from("commandLog")} WHERE ${delivered} AND ${isBatch} AND time >= ${createdMs}ms`,
    `SELECT "command_id", "device", "ok", "message", "received_ms" FROM ${from("command")} WHERE time >= ${createdMs - ANSWER_SKEW_MS}ms AND "received_ms" >= ${createdMs}`,
  ]);
  const commands = collect(rowsOf(q), queuedOf);
  const ids = new Set(commands.map((c) => c.id));
  return {
    queued: commands,
    delivered: collect(rowsOf(d), deliveredOf).filter((r) => ids.has(r.id)),
    answers: collect(rowsOf(a), answerOf).filter((r) => ids.has(r.id)),
  };
}

/**
 * Commands queued at or after sinceMs, with the deliveries and answers since then: what the dispatcher
 * reads at start and then for what other processes queued. withAnswers: answers are read too (a full read;
 * a command queued a moment ago has none yet).
 */
export async function readRecentCommands(
  influx: InfluxDB,
  sinceMs: number,
  withAnswers: boolean,
): Promise<CommandRecords> {
  const statements = [
    `SELECT ${QUEUED_FIELDS} FROM ${from("commandLog")} WHERE ${queued} AND time >= ${Math.trunc(sinceMs)}ms`,
    `SELECT "command_id", "device" FROM ${from("commandLog")} WHERE ${delivered} AND time >= ${Math.trunc(sinceMs)}ms`,
  ];
  if (withAnswers) {
    statements.push(
      `SELECT "command_id", "device", "ok", "message", "received_ms" FROM ${from("command")} WHERE time >= ${Math.trunc(sinceMs - ANSWER_SKEW_MS)}ms AND "received_ms" >= ${Math.trunc(sinceMs)}`,
    );
  }
  const [q, d, a] = await queryGroups(influx, statements);
  return {
    queued: collect(rowsOf(q), queuedOf),
    delivered: collect(rowsOf(d), deliveredOf),
    answers: collect(rowsOf(a), answerOf),
  };
}
