import { mkdir } from "node:fs/promises";
import { ClassicLevel } from "classic-level";
import type { Logger } from "../observe/logger.js";
import type { AlertLogEntry } from "../storage/alert-log.js";
import type { AlertNotice, AlertOutbox, Delivery } from "./types.js";

// The alert outbox: a LevelDB in <dataDir>/outbox holding the engine's state per condition key and the queue
// of deliveries. The engine's commit is one fsynced batch of both; each notice committed also queues its
// alert-log entry (the log is a target of its own), so a kill -9 at any point loses neither a delivery nor a
// log entry. alerts/deliver.ts drains the queue and settles each item in one batch with its attempt's log entry.

/** The alert log's reserved target name: its items are log entries, not notices. */
export const LOG_TARGET = "log";

export type QueuedItem =
  | { kind: "notice"; target: string; notice: AlertNotice }
  | { kind: "log"; entry: AlertLogEntry };

/** A queued item with its bookkeeping; key orders the queue (commit order). */
export type Queued = {
  key: string;
  item: QueuedItem;
  queuedAtMs: number;
  /** Attempts made so far, and when the next may be made. */
  attempts: number;
  nextAtMs: number;
  lastError: string | null;
};

export const targetOf = (q: Queued) => (q.item.kind === "log" ? LOG_TARGET : q.item.target);

export type Outbox<State> = AlertOutbox<State> & {
  /** Everything queued, in commit order. */
  queued(): Promise<Queued[]>;
  /** Called with the items each write queued, once they are durable. */
  onQueued(listener: (items: readonly Queued[]) => void): () => void;
  /** An attempt's end: the item done (delivered or given up) or rescheduled, and log entries queued, in one write. */
  settle(change: { done?: readonly string[]; retry?: Queued; log?: readonly AlertLogEntry[] }): Promise<void>;
  close(): Promise<void>;
};

const KEY_WIDTH = 16;
const toKey = (n: number) => n.toString(16).padStart(KEY_WIDTH, "0");

export async function openOutbox<State = unknown>(options: {
  dir: string;
  logger: Logger;
  now?: () => number;
}): Promise<Outbox<State>> {
  const now = options.now ?? Date.now;
  await mkdir(options.dir, { recursive: true });
  const db = new ClassicLevel<string, string>(options.dir);
  await db.open();
  const states = db.sublevel<string, string>("s", {});
  const queue = db.sublevel<string, string>("q", {});
  let next = 0;
  let backlog = 0;
  for await (const key of queue.keys()) {
    next = Number.parseInt(key, 16) + 1;
    backlog += 1;
  }
  if (backlog > 0) options.logger.info({ queued: backlog }, "alert outbox resumes its queue");
  const listeners = new Set<(items: readonly Queued[]) => void>();

  const fresh = (item: QueuedItem, at: number): Queued => {
    const key = toKey(next);
    next += 1;
    return { key, item, queuedAtMs: at, attempts: 0, nextAtMs: at, lastError: null };
  };
  const put = (q: Queued) => ({
    type: "put" as const,
    sublevel: queue,
    key: q.key,
    value: JSON.stringify(q),
  });
  const tell = (items: Queued[]) => {
    if (items.length === 0) return;
    for (const listener of listeners) listener(items);
  };

  return {
    async state() {
      const map = new Map<string, State>();
      for await (const [key, value] of states.iterator()) map.set(key, JSON.parse(value) as State);
      return map;
    },

    async commit(change: { state: ReadonlyMap<string, State | null>; deliveries: readonly Delivery[] }) {
      const at = now();
      const items: Queued[] = [];
      const notices = new Map<string, { notice: AlertNotice; targets: string[] }>();
      for (const delivery of change.deliveries) {
        const key = delivery.notice.idempotencyKey;
        const seen = notices.get(key) ?? { notice: delivery.notice, targets: [] };
        notices.set(key, seen);
        if (delivery.target === LOG_TARGET) continue;
        seen.targets.push(delivery.target);
        items.push(fresh({ kind: "notice", target: delivery.target, notice: delivery.notice }, at));
      }
      for (const { notice, targets } of notices.values()) {
        const decided = Date.parse(notice.at);
        const entry: AlertLogEntry = {
          type: "notice",
          alertId: notice.alertId,
          atMs: Number.isFinite(decided) ? decided : at,
          notice,
          targets,
        };
        items.push(fresh({ kind: "log", entry }, at));
      }
      const stateOps = [...change.state].map(([key, value]) =>
        value === null
          ? { type: "del" as const, sublevel: states, key }
          : { type: "put" as const, sublevel: states, key, value: JSON.stringify(value) },
      );
      await db.batch([...stateOps, ...items.map(put)], { sync: true });
      tell(items);
    },

    async queued() {
      const all: Queued[] = [];
      for await (const value of queue.values()) all.push(JSON.parse(value) as Queued);
      return all;
    },

    onQueued(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async settle(change) {
      const at = now();
      const logged = (change.log ?? []).map((entry) => fresh({ kind: "log", entry }, at));
      await db.batch(
        [
          ...(change.done ?? []).map((key) => ({ type: "del" as const, sublevel: queue, key })),
          ...(change.retry === undefined ? [] : [put(change.retry)]),
          ...logged.map(put),
        ],
        { sync: true },
      );
      tell(logged);
    },

    async close() {
      listeners.clear();
      await db.close();
    },
  };
}
