import { randomInt } from "node:crypto";
import type {
  AlertDetail,
  AlertHistoryEntry,
  AlertNoticeBody,
  AlertStatus,
  AlertSummary,
  TargetDelivery,
} from "../contract/api/alerts.js";
import { err, ok, type Result } from "../contract/result.js";
import { iso } from "../contract/time.js";
import {
  type AlertLogEntry,
  type AlertLogFilter,
  readAlertLog,
  writeAlertLog,
} from "../storage/alert-log.js";
import type { ServiceBag } from "./bag.js";

// Alerts as their log tells them (storage/alert-log.ts): each alert's latest notice, status, acknowledgement
// and the delivery of its latest notice per target; one alert's whole history; acknowledging. The delivery
// side (alerts/deliver.ts) writes notices and attempts; this service writes only acknowledgements.

export type AlertFilter = {
  status?: AlertStatus | undefined;
  severity?: string | undefined;
  rule?: string | undefined;
  limit: number;
  offset: number;
};

export type AlertListPage = {
  items: AlertSummary[];
  limit: number;
  offset: number;
  nextOffset: number | null;
};

export type AcknowledgeRefusal = "NOT_FOUND" | "RESOLVED";

export interface AlertService {
  list(filter: AlertFilter): Promise<AlertListPage>;
  get(alertId: string): Promise<AlertDetail | undefined>;
  acknowledge(
    alertId: string,
    by: string,
    note?: string | null,
  ): Promise<Result<AlertSummary, AcknowledgeRefusal>>;
  /** Who acknowledged each alert first, and when: the engine stops repeating and escalating those. */
  acknowledgements(): Promise<Map<string, { by: string; at: string }>>;
}

/** The service's storage: the log's reads and its one write (acknowledgements), so unit tests pass rows. */
export type AlertLogStore = {
  read(filter: AlertLogFilter): Promise<AlertLogEntry[]>;
  acknowledge(entry: Extract<AlertLogEntry, { type: "acknowledged" }>): Promise<void>;
};

/** Past this many alerts on a page, their attempts are read in one query for all rather than by id. */
const IDS_PER_QUERY = 50;

type Notice = Extract<AlertLogEntry, { type: "notice" }>;
type Attempt = Extract<AlertLogEntry, { type: "delivery" }>;
type Ack = Extract<AlertLogEntry, { type: "acknowledged" }>;

/** The delivery of one notice to one target, from its attempts in time order. */
export function deliveryState(target: string, attempts: readonly Attempt[]): TargetDelivery {
  const last = attempts.at(-1);
  const base = {
    target,
    attempts: last?.attempt ?? 0,
    lastError: last?.error ?? null,
    lastStatus: last?.status ?? null,
    deliveredAt: null,
    nextTry: null,
  };
  if (last === undefined) return { ...base, state: "pending" };
  switch (last.outcome) {
    case "delivered":
      return { ...base, state: "delivered", deliveredAt: iso(last.atMs) };
    case "failed":
      return { ...base, state: "failing", nextTry: last.nextTryMs === null ? null : iso(last.nextTryMs) };
    case "rejected":
      return { ...base, state: "rejected" };
    case "gave_up":
      return { ...base, state: "gave_up" };
  }
}

/** One alert from its notices (at least one), acknowledgements and the latest notice's attempts. */
export function summarize(notices: readonly Notice[], acks: readonly Ack[], attempts: readonly Attempt[]) {
  const sorted = [...notices].sort((a, b) => a.atMs - b.atMs);
  const latestEntry = sorted.at(-1);
  if (latestEntry === undefined) return undefined;
  const latest: AlertNoticeBody = latestEntry.notice;
  const firstAck = [...acks].sort((a, b) => a.atMs - b.atMs)[0];
  const acknowledged =
    firstAck !== undefined
      ? { by: firstAck.by, at: iso(firstAck.atMs), note: firstAck.note }
      : latest.acknowledged === null
        ? null
        : { ...latest.acknowledged, note: null };
  const status: AlertStatus =
    latest.event === "resolved" ? "resolved" : acknowledged !== null ? "acknowledged" : "open";
  const ofLatest = attempts
    .filter((a) => a.idempotencyKey === latest.idempotencyKey)
    .sort((a, b) => a.atMs - b.atMs || a.attempt - b.attempt);
  const summary: AlertSummary = {
    id: latest.alertId,
    status,
    rule: latest.rule,
    kind: latest.kind,
    severity: latest.severity,
    subject: latest.subject,
    refs: latest.refs,
    title: latest.title,
    level: latest.level,
    levelName: latest.levelName,
    raisedAt: latest.raisedAt,
    updatedAt: latest.at,
    acknowledged,
    latest,
    deliveries: latestEntry.targets.map((target) =>
      deliveryState(
        target,
        ofLatest.filter((a) => a.target === target),
      ),
    ),
  };
  return summary;
}

const byAlert = <E extends AlertLogEntry>(entries: readonly E[]) => {
  const map = new Map<string, E[]>();
  for (const e of entries) {
    const list = map.get(e.alertId);
    if (list === undefined) map.set(e.alertId, [e]);
    else list.push(e);
  }
  return map;
};

function historyEntry(e: AlertLogEntry): AlertHistoryEntry {
  switch (e.type) {
    case "notice":
      return { type: "notice", at: iso(e.atMs), notice: e.notice, targets: e.targets };
    case "delivery":
      return {
        type: "delivery",
        at: iso(e.atMs),
        idempotencyKey: e.idempotencyKey,
        target: e.target,
        outcome: e.outcome,
        attempt: e.attempt,
        status: e.status,
        error: e.error,
        nextTry: e.nextTryMs === null ? null : iso(e.nextTryMs),
      };
    case "acknowledged":
      return { type: "acknowledged", at: iso(e.atMs), by: e.by, note: e.note };
  }
}

export function createAlertServiceOver(store: AlertLogStore, now: () => number): AlertService {
  async function one(alertId: string) {
    const log = await store.read({ alertIds: [alertId] });
    const notices = log.filter((e): e is Notice => e.type === "notice");
    const acks = log.filter((e): e is Ack => e.type === "acknowledged");
    const attempts = log.filter((e): e is Attempt => e.type === "delivery");
    const summary = summarize(notices, acks, attempts);
    return summary === undefined ? undefined : { summary, log };
  }

  return {
    async list(filter) {
      const heads = await store.read({ types: ["notice", "acknowledged"] });
      const notices = byAlert(heads.filter((e): e is Notice => e.type === "notice"));
      const acks = byAlert(heads.filter((e): e is Ack => e.type === "acknowledged"));
      const matching = [...notices.entries()]
        .flatMap(([id, list]) => {
          const summary = summarize(list, acks.get(id) ?? [], []);
          return summary === undefined ? [] : [summary];
        })
        .filter(
          (a) =>
            (filter.status === undefined || a.status === filter.status) &&
            (filter.severity === undefined || a.severity === filter.severity) &&
            (filter.rule === undefined || a.rule === filter.rule),
        )
        .sort((a, b) =>
          a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : a.id < b.id ? -1 : 1,
        );
      const page = matching.slice(filter.offset, filter.offset + filter.limit);
      const ids = page.map((a) => a.id);
      const attempts = byAlert(
        (
          await store.read(
            ids.length > IDS_PER_QUERY ? { types: ["delivery"] } : { alertIds: ids, types: ["delivery"] },
          )
        ).filter((e): e is Attempt => e.type === "delivery"),
      );
      const items = page.flatMap((a) => {
        const full = summarize(notices.get(a.id) ?? [], acks.get(a.id) ?? [], attempts.get(a.id) ?? []);
        return full === undefined ? [] : [full];
      });
      const end = filter.offset + page.length;
      return {
        items,
        limit: filter.limit,
        offset: filter.offset,
        nextOffset: end < matching.length ? end : null,
      };
    },

    async get(alertId) {
      const found = await one(alertId);
      if (found === undefined) return undefined;
      return { ...found.summary, history: found.log.map(historyEntry) };
    },

    async acknowledge(alertId, by, note = null) {
      const found = await one(alertId);
      if (found === undefined) return err("NOT_FOUND" as const);
      if (found.summary.status === "resolved") return err("RESOLVED" as const);
      // Never before the notice it acknowledges (delivery attempts run on the delivering process's clock).
      const latestAt = Math.max(...found.log.flatMap((e) => (e.type === "notice" ? [e.atMs] : [])));
      const entry: Ack = {
        type: "acknowledged",
        alertId,
        atMs: Math.max(now(), latestAt),
        by,
        note: note === "" ? null : note,
      };
      await store.acknowledge(entry);
      const acks = found.log.filter((e): e is Ack => e.type === "acknowledged");
      const notices = found.log.filter((e): e is Notice => e.type === "notice");
      const attempts = found.log.filter((e): e is Attempt => e.type === "delivery");
      const summary = summarize(notices, [...acks, entry], attempts);
      return summary === undefined ? err("NOT_FOUND" as const) : ok(summary);
    },

    async acknowledgements() {
      const acks = await store.read({ types: ["acknowledged"] });
      const first = new Map<string, { by: string; at: string }>();
      for (const e of acks) {
        if (e.type !== "acknowledged" || first.has(e.alertId)) continue;
        first.set(e.alertId, { by: e.by, at: iso(e.atMs) });
      }
      return first;
    },
  };
}

export function createAlertService(bag: ServiceBag): AlertService {
  return createAlertServiceOver(
    {
      read: (filter) => readAlertLog(bag.influx, filter),
      // A person's act: nanoseconds 1 to 999,999, so two acknowledgements in one millisecond stay two points.
      acknowledge: (entry) => writeAlertLog(bag.write, [entry], randomInt(1, 1_000_000)),
    },
    bag.now,
  );
}
