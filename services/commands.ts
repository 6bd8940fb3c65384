import { randomBytes } from "node:crypto";
import { type CommandLogEntry, commandStatus, countStatuses } from "../analytics/command-status.js";
import type { BatchView, BulkCommandAnswer, CommandView } from "../contract/api/commands.js";
import type { CommandType } from "../contract/messages.js";
import { err, ok, type Result } from "../contract/result.js";
import { HOUR_MS, iso } from "../contract/time.js";
import {
  type AnswerRow,
  type CommandRecords,
  type DeliveredRow,
  deliveredPoint,
  type QueuedRow,
  queuedPoint,
  readBatchCommands,
  readDeviceCommands,
  readRecentCommands,
  writeCommandLog,
} from "../storage/command-queries.js";
import type { Point } from "../storage/schema.js";
import type { ServiceBag } from "./bag.js";

// Remote commands (docs/commands.md): queue one for a device or one per device of a cohort, list them with
// their status, and give the dispatcher (commands/dispatch.ts) what waits to be sent and where to record a
// delivery. The log lives in InfluxDB, so any API process may queue and the broker's process sends.

export type CommandArgs = Record<string, string | number | boolean>;

/** A command waiting for its device, as the dispatcher sends it. */
export type PendingCommand = {
  id: string;
  device: string;
  type: CommandType;
  args: CommandArgs;
  createdMs: number;
  expiresMs: number;
  batch: string | null;
};

export type NewCommand = { type: CommandType; args?: CommandArgs | undefined; ttlMs?: number | undefined };

export interface CommandService {
  /** Queues a command for a device the directory knows. */
  send(device: string, command: NewCommand, by: string): Promise<Result<CommandView, "unknown_device">>;
  /** Queues one command per device of the model (and firmware), as the directory has them now. */
  bulk(
    cohort: { model: string; firmware?: string | undefined },
    command: NewCommand,
    by: string,
  ): Promise<BulkCommandAnswer>;
  /** A device's newest commands with their status; undefined for a device the directory does not know. */
  forDevice(device: string, limit: number): Promise<CommandView[] | undefined>;
  /** A batch's commands with their status; undefined when none was queued under this id. */
  batch(batch: string): Promise<BatchView | undefined>;
  /**
   * Commands still waiting (queued, neither delivered nor answered, not expired). Without sinceMs every
   * command that may still wait; with it, those queued since then (the dispatcher's cheap poll).
   */
  pending(sinceMs?: number): Promise<PendingCommand[]>;
  /** Records that the device acknowledged (PUBACK) the command. */
  markDelivered(command: PendingCommand, atMs: number): Promise<void>;
  /** Called with the commands queued in this process as soon as they are stored. */
  onQueued(listener: (commands: PendingCommand[]) => void): () => void;
}

/** Where the log is read and written; unit tests pass rows of their own. */
export type CommandStore = {
  write(points: readonly Point[]): Promise<void>;
  device(device: string, limit: number): Promise<CommandRecords>;
  batch(batch: string, createdMs: number): Promise<CommandRecords>;
  recent(sinceMs: number, withAnswers: boolean): Promise<CommandRecords>;
};

export type CommandServiceOptions = {
  /** How long a command waits for its device unless it says otherwise (FIELDQ_COMMAND_TTL). */
  ttlMs?: number;
  /** The longest a command may wait: how far back the dispatcher's full read looks. */
  maxTtlMs?: number;
  store?: CommandStore;
};

const DEFAULTS = { ttlMs: 24 * HOUR_MS, maxTtlMs: 7 * 24 * HOUR_MS };
/** Points per write: a bulk command to a large cohort is written in slices. */
const WRITE_SLICE = 5_000;

const newId = (prefix: "c" | "b", ms: number) =>
  `${prefix}${ms.toString(36)}-${randomBytes(6).toString("hex")}`;

/** A batch id carries its creation time: every command of the batch was queued at that millisecond. */
export function batchCreatedMs(batch: string): number | undefined {
  const match = /^b([0-9a-z]{1,12})-/.exec(batch);
  if (match?.[1] === undefined) return undefined;
  const ms = Number.parseInt(match[1], 36);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

function parseArgs(json: string): CommandArgs {
  try {
    const value: unknown = JSON.parse(json);
    if (value === null || typeof value !== "object" || Array.isArray(value)) return {};
    const args: CommandArgs = {};
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") args[k] = v;
    }
    return args;
  } catch {
    return {};
  }
}

const asPending = (row: QueuedRow): PendingCommand => ({
  id: row.id,
  device: row.device,
  type: row.type as CommandType,
  args: parseArgs(row.args),
  createdMs: row.createdMs,
  expiresMs: row.expiresMs,
  batch: row.batch,
});

/** Each queued command with its first delivery and its first answer. */
function joined(records: CommandRecords) {
  const deliveries = new Map<string, DeliveredRow>();
  for (const d of records.delivered) {
    const seen = deliveries.get(d.id);
    if (seen === undefined || d.atMs < seen.atMs) deliveries.set(d.id, d);
  }
  const answers = new Map<string, AnswerRow>();
  for (const a of records.answers) if (!answers.has(a.id)) answers.set(a.id, a);
  return records.queued.map((row) => {
    const delivered = deliveries.get(row.id);
    const answer = answers.get(row.id);
    const log: CommandLogEntry = {
      createdMs: row.createdMs,
      expiresMs: row.expiresMs,
      deliveredMs: delivered?.atMs ?? null,
    };
    return { row, log, answer };
  });
}

/**
 * When the device had the command: its PUBACK, or its answer where that came first (a device may publish the
 * answer before the PUBACK leaves it; the answer proves the delivery).
 */
function deliveredAt(pubackMs: number | null, answerMs: number | undefined): string | null {
  const times = [pubackMs, answerMs].filter((t): t is number => t !== null && t !== undefined);
  return times.length === 0 ? null : iso(Math.min(...times));
}

function viewOf(j: ReturnType<typeof joined>[number], nowMs: number): CommandView {
  const { row, log, answer } = j;
  return {
    id: row.id,
    device: row.device,
    type: row.type as CommandType,
    args: parseArgs(row.args),
    status: commandStatus(log, answer, nowMs),
    by: row.by,
    createdAt: iso(row.createdMs),
    deliveredAt: deliveredAt(log.deliveredMs, answer?.atMs),
    answeredAt: answer === undefined ? null : iso(answer.atMs),
    expiresAt: iso(row.expiresMs),
    result: answer === undefined ? null : { ok: answer.ok, message: answer.message },
    batch: row.batch,
  };
}

export function createCommandService(bag: ServiceBag, options: CommandServiceOptions = {}): CommandService {
  const o = Object.assign({}, DEFAULTS, options);
  const store: CommandStore = options.store ?? {
    write: (points) => writeCommandLog(bag.write, points),
    device: (device, limit) => readDeviceCommands(bag.influx, device, limit),
    batch: (batch, createdMs) => readBatchCommands(bag.influx, batch, createdMs),
    recent: (sinceMs, withAnswers) => readRecentCommands(bag.influx, sinceMs, withAnswers),
  };
  const listeners = new Set<(commands: PendingCommand[]) => void>();
  const ttlOf = (command: NewCommand) => Math.min(command.ttlMs ?? o.ttlMs, o.maxTtlMs);

  const rowFor = (device: string, command: NewCommand, by: string, createdMs: number, batch: string | null) =>
    ({
      id: newId("c", createdMs),
      device,
      type: command.type,
      args: JSON.stringify(command.args ?? {}),
      by,
      createdMs,
      expiresMs: createdMs + ttlOf(command),
      batch,
    }) satisfies QueuedRow;

  async function queue(rows: QueuedRow[]) {
    for (let i = 0; i < rows.length; i += WRITE_SLICE) {
      await store.write(rows.slice(i, i + WRITE_SLICE).map(queuedPoint));
    }
    const pending = rows.map(asPending);
    for (const listener of listeners) listener(pending);
  }

  return {
    async send(device, command, by) {
      if ((await bag.directory.lookup(device)) === undefined) return err("unknown_device");
      const row = rowFor(device, command, by, bag.now(), null);
      await queue([row]);
      return ok(viewOf({ row, log: { ...row, deliveredMs: null }, answer: undefined }, bag.now()));
    },

    async bulk(cohort, command, by) {
      const devices = await bag.directory.list({ model: cohort.model, firmware: cohort.firmware });
      const createdMs = bag.now();
      const batch = newId("b", createdMs);
      const rows = devices.map((d) => rowFor(d.id, command, by, createdMs, batch));
      await queue(rows);
      return { batch, count: rows.length, type: command.type, expiresAt: iso(createdMs + ttlOf(command)) };
    },

    async forDevice(device, limit) {
      if ((await bag.directory.lookup(device)) === undefined) return undefined;
      const now = bag.now();
      return joined(await store.device(device, limit))
        .sort((a, b) => b.row.createdMs - a.row.createdMs)
        .map((j) => viewOf(j, now));
    },

    async batch(batch) {
      const createdMs = batchCreatedMs(batch);
      if (createdMs === undefined) return undefined;
      const records = await store.batch(batch, createdMs);
      if (records.queued.length === 0) return undefined;
      const now = bag.now();
      const items = joined(records)
        .map((j) => viewOf(j, now))
        .sort((a, b) => a.device.localeCompare(b.device));
      return { batch, counts: countStatuses(items.map((i) => i.status)), items };
    },

    async pending(sinceMs) {
      const now = bag.now();
      const full = sinceMs === undefined;
      const records = await store.recent(full ? now - o.maxTtlMs : sinceMs, full);
      return joined(records)
        .filter((j) => commandStatus(j.log, j.answer, now) === "queued")
        .map((j) => asPending(j.row));
    },

    async markDelivered(command, atMs) {
      await store.write([
        deliveredPoint({ id: command.id, device: command.device, atMs, batch: command.batch }),
      ]);
    },

    onQueued(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
