import type { CommandStatus } from "../contract/api/commands.js";

// What a command's record says about it now: a pure rule over its log, the device's answer and the clock.

export type CommandLogEntry = {
  /** When it was queued, fieldq's clock. */
  createdMs: number;
  expiresMs: number;
  /** When the device's PUBACK arrived, if it did. */
  deliveredMs: number | null;
};

export type CommandAnswer = { ok: boolean; message: string | null; atMs: number };

/**
 * An answer decides (a device can only answer what reached it, even when its PUBACK was lost); then a
 * delivery; a command neither delivered nor answered by its expiry has expired; otherwise it waits.
 */
export function commandStatus(
  log: CommandLogEntry,
  answer: CommandAnswer | undefined,
  nowMs: number,
): CommandStatus {
  if (answer !== undefined) return answer.ok ? "succeeded" : "failed";
  if (log.deliveredMs !== null) return "delivered";
  if (nowMs >= log.expiresMs) return "expired";
  return "queued";
}

/** Whether the dispatcher should still send it: waiting, and not past its expiry. */
export const isPending = (log: CommandLogEntry, answer: CommandAnswer | undefined, nowMs: number) =>
  commandStatus(log, answer, nowMs) === "queued";

/** The statuses of many commands, counted; every status present, zero when none. */
export function countStatuses(statuses: readonly CommandStatus[]): Record<CommandStatus, number> {
  const counts: Record<CommandStatus, number> = {
    queued: 0,
    delivered: 0,
    succeeded: 0,
    failed: 0,
    expired: 0,
  };
  for (const status of statuses) counts[status] += 1;
  return counts;
}

/** A delivery window: the earliest time the next send may start at `rate` per second, one after another. */
export const nextSendAt = (lastSentMs: number | undefined, rate: number) =>
  lastSentMs === undefined ? Number.NEGATIVE_INFINITY : lastSentMs + 1000 / rate;
