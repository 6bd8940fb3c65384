import { describe, expect, it } from "vitest";
import { createAlertServiceOver, deliveryState, summarize } from "../../services/alerts.js";
import type { AlertLogEntry } from "../../storage/alert-log.js";
import { sampleNotice } from "../support/alert-notice.js";

// How the alert log reads as alerts: the delivery state per target, the status, the acknowledgement, paging.

type Attempt = Extract<AlertLogEntry, { type: "delivery" }>;
type Notice = Extract<AlertLogEntry, { type: "notice" }>;

const T0 = Date.UTC(2026, 0, 5, 9);
const notice = sampleNotice({ at: new Date(T0).toISOString() });

const attempt = (over: Partial<Attempt> & Pick<Attempt, "outcome" | "attempt">): Attempt => ({
  type: "delivery",
  alertId: notice.alertId,
  atMs: T0 + over.attempt * 1000,
  idempotencyKey: notice.idempotencyKey,
  target: "webhook",
  status: null,
  error: null,
  nextTryMs: null,
  ...over,
});

const noticeEntry = (n = notice, targets = ["webhook"]): Notice => ({
  type: "notice",
  alertId: n.alertId,
  atMs: Date.parse(n.at),
  notice: n,
  targets,
});

describe("a notice's delivery to one target", () => {
  it("is pending before any attempt", () => {
    expect(deliveryState("webhook", [])).toMatchObject({ state: "pending", attempts: 0, nextTry: null });
  });

  it("is failing with its last error and next try, then delivered", () => {
    const failed = attempt({
      outcome: "failed",
      attempt: 1,
      status: 503,
      error: "HTTP 503",
      nextTryMs: T0 + 5000,
    });
    expect(deliveryState("webhook", [failed])).toEqual({
      target: "webhook",
      state: "failing",
      attempts: 1,
      lastError: "HTTP 503",
      lastStatus: 503,
      deliveredAt: null,
      nextTry: new Date(T0 + 5000).toISOString(),
    });
    const delivered = attempt({ outcome: "delivered", attempt: 2, status: 200 });
    expect(deliveryState("webhook", [failed, delivered])).toMatchObject({
      state: "delivered",
      attempts: 2,
      deliveredAt: new Date(T0 + 2000).toISOString(),
    });
  });

  it.each([
    ["rejected", "rejected"],
    ["gave_up", "gave_up"],
  ] as const)("is %s when its last attempt was", (outcome, state) => {
    expect(deliveryState("webhook", [attempt({ outcome, attempt: 7, error: "x" })])).toMatchObject({
      state,
      attempts: 7,
      lastError: "x",
    });
  });
});

describe("an alert's status", () => {
  const resolved = sampleNotice({
    event: "resolved",
    sequence: 2,
    at: new Date(T0 + 60_000).toISOString(),
  });
  const ack = (by: string, atMs: number): Extract<AlertLogEntry, { type: "acknowledged" }> => ({
    type: "acknowledged",
    alertId: notice.alertId,
    atMs,
    by,
    note: null,
  });

  it("is open, then acknowledged by the first to acknowledge it, then resolved", () => {
    expect(summarize([noticeEntry()], [], [])?.status).toBe("open");
    const acked = summarize([noticeEntry()], [ack("bo", T0 + 2000), ack("ana", T0 + 1000)], []);
    expect(acked?.status).toBe("acknowledged");
    expect(acked?.acknowledged).toEqual({ by: "ana", at: new Date(T0 + 1000).toISOString(), note: null });
    const done = summarize([noticeEntry(resolved), noticeEntry()], [ack("ana", T0 + 1000)], []);
    expect(done?.status).toBe("resolved");
    expect(done?.latest.event).toBe("resolved");
  });

  it("shows only the latest notice's delivery", () => {
    const old = attempt({ outcome: "delivered", attempt: 1 });
    const summary = summarize([noticeEntry(), noticeEntry(resolved)], [], [old]);
    expect(summary?.deliveries).toEqual([expect.objectContaining({ target: "webhook", state: "pending" })]);
  });
});

describe("the alert service", () => {
  const log: AlertLogEntry[] = [1, 2, 3].map((i) =>
    noticeEntry(
      sampleNotice({
        alertId: `alert-${i}`,
        at: new Date(T0 + i * 1000).toISOString(),
        rule: i === 2 ? "b" : "a",
      }),
    ),
  );
  const service = createAlertServiceOver(
    {
      read: async (f) =>
        log.filter((e) => (f.alertIds?.includes(e.alertId) ?? true) && (f.types?.includes(e.type) ?? true)),
      acknowledge: async (e) => {
        log.push(e);
      },
    },
    () => T0,
  );

  it("lists newest first, filters and pages", async () => {
    expect((await service.list({ limit: 10, offset: 0 })).items.map((a) => a.id)).toEqual([
      "alert-3",
      "alert-2",
      "alert-1",
    ]);
    expect((await service.list({ rule: "b", limit: 10, offset: 0 })).items.map((a) => a.id)).toEqual([
      "alert-2",
    ]);
    const page = await service.list({ limit: 2, offset: 1 });
    expect(page.items.map((a) => a.id)).toEqual(["alert-2", "alert-1"]);
    expect(page.nextOffset).toBeNull();
  });

  it("acknowledges no earlier than the notice, and says who acknowledged what", async () => {
    const result = await service.acknowledge("alert-3", "ana", "on it");
    expect(result.ok && result.value.acknowledged).toEqual({
      by: "ana",
      at: new Date(T0 + 3000).toISOString(),
      note: "on it",
    });
    expect(await service.acknowledgements()).toEqual(
      new Map([["alert-3", { by: "ana", at: new Date(T0 + 3000).toISOString() }]]),
    );
    expect(await service.acknowledge("nope", "ana")).toEqual({ ok: false, error: "NOT_FOUND" });
  });
});
