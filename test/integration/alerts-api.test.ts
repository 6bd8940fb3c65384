import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDelivery } from "../../alerts/deliver.js";
import { openOutbox } from "../../alerts/outbox.js";
import { createTargets } from "../../alerts/targets.js";
import { createApp } from "../../api/app.js";
import type { Role, TokenHolder } from "../../config/env.js";
import { AcknowledgeAnswer, AlertDetail, AlertPage } from "../../contract/api/alerts.js";
import { ErrorEnvelope } from "../../contract/api/common.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { createAlertServiceOver } from "../../services/alerts.js";
import { readAlertLog, writeAlertLog } from "../../storage/alert-log.js";
import { createInflux, createPointWriter, ensureSchema } from "../../storage/influx.js";
import { sampleNotice } from "../support/alert-notice.js";
import { closedPort, eventually, startAlertReceiver } from "../support/alert-receiver.js";
import { appRequester, type RequestInit } from "../support/app-request.js";
import { memoryDeviceServices } from "../support/device-services.js";
import { testDatabase } from "../support/influx.js";

const VIEWER = "viewer-token-alerts";
const OPERATOR = "operator-token-alerts";
const TOKENS = new Map<string, Role | TokenHolder>([
  [VIEWER, { role: "viewer", name: "vic" }],
  [OPERATOR, { role: "operator", name: "ana" }],
]);
const SECRET = "receiver-secret-0123456789";
const T0 = Date.UTC(2026, 0, 5, 9);
const MINUTE = 60_000;

const CRITICAL = sampleNotice({ at: new Date(T0).toISOString(), raisedAt: new Date(T0).toISOString() });
const WARNING_ID = "firmware_regression~FQ-Modem 7590~7.57";
const WARNING = sampleNotice({
  alertId: WARNING_ID,
  rule: "firmware-regression",
  kind: "firmware_regression",
  severity: "warning",
  subject: "FQ-Modem 7590 firmware 7.57",
  refs: { model: "FQ-Modem 7590", firmware: "7.57" },
  raisedAt: new Date(T0 + MINUTE).toISOString(),
  at: new Date(T0 + MINUTE).toISOString(),
});
const RESOLVED_ID = "silent_share~FQ-Print Mk3";
const raisedSilent = sampleNotice({
  alertId: RESOLVED_ID,
  rule: "silent-printers",
  kind: "silent_share",
  severity: "warning",
  raisedAt: new Date(T0 - 60 * MINUTE).toISOString(),
  at: new Date(T0 - 60 * MINUTE).toISOString(),
});
const resolvedSilent = {
  ...raisedSilent,
  event: "resolved" as const,
  idempotencyKey: `${RESOLVED_ID}/resolved/2`,
  at: new Date(T0 - 30 * MINUTE).toISOString(),
};

let db: Awaited<ReturnType<typeof testDatabase>>;
let dir: string;
let closeAll: () => Promise<void>;
let app: ReturnType<typeof createApp>;
let clock = T0 + 10 * MINUTE;

const request = (path: string, init?: RequestInit) => appRequester(app, VIEWER)(path, init);

beforeAll(async () => {
  db = await testDatabase("alerts_api");
  const influx = createInflux(db);
  await ensureSchema(influx, db);
  dir = await mkdtemp(join(tmpdir(), "fieldq-alerts-api-"));
  const hook = await startAlertReceiver(SECRET);
  const write = createPointWriter(db);
  // Two alerts go through the real outbox: to a receiver that takes them and to one nobody listens on.
  const outbox = await openOutbox({ dir, logger: silentLogger });
  const delivery = await startDelivery({
    outbox,
    targets: createTargets(
      [
        { name: "webhook", type: "webhook", url: hook.url, secret: SECRET },
        { name: "pager", type: "webhook", url: `http://127.0.0.1:${await closedPort()}/`, secret: SECRET },
      ],
      { publish: async () => {} },
    ),
    log: write,
    logger: silentLogger,
    backoff: { baseMs: 60_000 },
  });
  for (const notice of [CRITICAL, WARNING])
    await outbox.commit({
      state: new Map(),
      deliveries: ["webhook", "pager"].map((target) => ({ target, notice })),
    });
  // A resolved alert, as the log would hold it.
  await writeAlertLog(write, [
    { type: "notice", alertId: RESOLVED_ID, atMs: T0 - 60 * MINUTE, notice: raisedSilent, targets: [] },
    { type: "notice", alertId: RESOLVED_ID, atMs: T0 - 30 * MINUTE, notice: resolvedSilent, targets: [] },
  ]);
  await eventually(async () => {
    const log = await readAlertLog(influx, { types: ["delivery"] });
    // Both to the webhook, and the pager's first try; its second notice waits behind the first.
    return log.length >= 3 ? true : undefined;
  });
  const alerts = createAlertServiceOver(
    {
      read: (filter) => readAlertLog(influx, filter),
      acknowledge: (entry) => writeAlertLog(write, [entry], 7),
    },
    () => clock,
  );
  app = createApp({
    ...memoryDeviceServices(),
    alerts,
    tokens: TOKENS,
    logger: silentLogger,
    metrics: createMetrics(),
  });
  closeAll = async () => {
    await delivery.close();
    await outbox.close();
    await hook.close();
  };
});

afterAll(async () => {
  await closeAll?.();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const list = async (query = "") => {
  const response = await request(`/api/v1/alerts${query}`);
  expect(response.status).toBe(200);
  return AlertPage.parse(await response.json());
};

describe("GET /api/v1/alerts", () => {
  it("lists alerts newest first with their status and the delivery of their latest notice per target", async () => {
    const page = await list();
    expect(page.items.map((a) => [a.id, a.status])).toEqual([
      [WARNING_ID, "open"],
      [CRITICAL.alertId, "open"],
      [RESOLVED_ID, "resolved"],
    ]);
    const critical = page.items[1];
    expect(critical?.latest).toEqual(CRITICAL);
    const byTarget = new Map(critical?.deliveries.map((d) => [d.target, d]));
    expect(byTarget.get("webhook")).toMatchObject({ state: "delivered", attempts: 1, lastStatus: 200 });
    expect(byTarget.get("pager")).toMatchObject({ state: "failing", attempts: 1, lastError: "ECONNREFUSED" });
    expect(byTarget.get("pager")?.nextTry).not.toBeNull();
    const warning = new Map(page.items[0]?.deliveries.map((d) => [d.target, d]));
    expect(warning.get("webhook")?.state).toBe("delivered");
    expect(warning.get("pager")).toMatchObject({ state: "pending", attempts: 0, nextTry: null });
    expect(page.nextOffset).toBeNull();
  });

  it("filters by status, severity and rule, and pages", async () => {
    expect((await list("?status=resolved")).items.map((a) => a.id)).toEqual([RESOLVED_ID]);
    expect((await list("?severity=critical")).items.map((a) => a.id)).toEqual([CRITICAL.alertId]);
    expect((await list("?rule=firmware-regression")).items.map((a) => a.id)).toEqual([WARNING_ID]);
    const first = await list("?limit=2");
    expect(first.items).toHaveLength(2);
    expect(first.nextOffset).toBe(2);
    const second = await list("?limit=2&offset=2");
    expect(second.items.map((a) => a.id)).toEqual([RESOLVED_ID]);
    expect(second.nextOffset).toBeNull();
  });

  it.each([
    ["?status=closed", 400],
    ["?colour=red", 400],
    ["?limit=0", 400],
  ])("refuses %s with %i", async (query, status) => {
    const response = await request(`/api/v1/alerts${query}`);
    expect(response.status).toBe(status);
    ErrorEnvelope.parse(await response.json());
  });

  it("needs a token", async () => {
    expect((await request("/api/v1/alerts", { token: null })).status).toBe(401);
  });
});

describe("GET /api/v1/alerts/{id}", () => {
  it("answers an alert with its notices and attempts, oldest first", async () => {
    const response = await request(`/api/v1/alerts/${encodeURIComponent(CRITICAL.alertId)}`);
    expect(response.status).toBe(200);
    const alert = AlertDetail.parse(await response.json());
    expect(alert.history[0]).toMatchObject({ type: "notice", targets: ["webhook", "pager"] });
    expect(
      alert.history.filter((h) => h.type === "delivery").map((h) => (h.type === "delivery" ? h.target : "")),
    ).toEqual(expect.arrayContaining(["webhook", "pager"]));
  });

  it("answers 404 for an alert nobody raised", async () => {
    const response = await request("/api/v1/alerts/no-such-alert");
    expect(response.status).toBe(404);
    expect(ErrorEnvelope.parse(await response.json()).error.code).toBe("NOT_FOUND");
  });
});

describe("POST /api/v1/alerts/{id}/acknowledge", () => {
  const ack = (id: string, token: string, body?: unknown) =>
    request(`/api/v1/alerts/${encodeURIComponent(id)}/acknowledge`, {
      method: "POST",
      token,
      ...(body === undefined ? {} : { body }),
    });

  it("refuses a viewer, and writes nothing", async () => {
    const before = await readAlertLog(createInflux(db), { types: ["acknowledged"] });
    const response = await ack(CRITICAL.alertId, VIEWER, {});
    expect(response.status).toBe(403);
    expect(await readAlertLog(createInflux(db), { types: ["acknowledged"] })).toEqual(before);
  });

  it("records the operator's name and note; the alert is acknowledged from then on", async () => {
    clock = T0 + 20 * MINUTE;
    const response = await ack(CRITICAL.alertId, OPERATOR, { note: "looking at the nozzle batch" });
    expect(response.status).toBe(200);
    const { alert } = AcknowledgeAnswer.parse(await response.json());
    expect(alert.status).toBe("acknowledged");
    expect(alert.acknowledged).toEqual({
      by: "ana",
      at: new Date(T0 + 20 * MINUTE).toISOString(),
      note: "looking at the nozzle batch",
    });
    const page = await list("?status=acknowledged");
    expect(page.items.map((a) => a.id)).toEqual([CRITICAL.alertId]);
    expect(page.items[0]?.acknowledged?.by).toBe("ana");
  });

  it("takes an acknowledgement without a body", async () => {
    const response = await ack(WARNING_ID, OPERATOR);
    expect(response.status).toBe(200);
    expect(AcknowledgeAnswer.parse(await response.json()).alert.acknowledged?.note).toBeNull();
  });

  it("answers 409 for a resolved alert and 404 for an unknown one", async () => {
    expect((await ack(RESOLVED_ID, OPERATOR, {})).status).toBe(409);
    expect((await ack("no-such-alert", OPERATOR, {})).status).toBe(404);
  });

  it("refuses an unknown body field", async () => {
    expect((await ack(WARNING_ID, OPERATOR, { note: "x", by: "someone else" })).status).toBe(400);
  });
});
