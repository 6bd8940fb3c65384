import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startDelivery } from "../../alerts/deliver.js";
import { openOutbox } from "../../alerts/outbox.js";
import { createTargets, defaultTargets } from "../../alerts/targets.js";
import type { TargetSpec } from "../../alerts/types.js";
import { startBroker } from "../../broker/start-broker.js";
import { AlertNoticeBody } from "../../contract/api/alerts.js";
import { alertTopic } from "../../contract/topics.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { type AlertLogEntry, readAlertLog } from "../../storage/alert-log.js";
import {
  createInflux,
  createPointWriter,
  ensureSchema,
  PointsRefused,
  type PointWriter,
} from "../../storage/influx.js";
import { sampleNotice } from "../support/alert-notice.js";
import { closedPort, eventually, startAlertReceiver } from "../support/alert-receiver.js";
import { testDatabase } from "../support/influx.js";
import { SMALL_BROKER_LIMITS, TEST_SECRET } from "../support/stack.js";

const SECRET = "receiver-secret-0123456789";
const FAST = { baseMs: 50, maxMs: 200 };

type Db = Awaited<ReturnType<typeof testDatabase>>;

let db: Db;
let dir: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  db = await testDatabase("alert_delivery");
  await ensureSchema(createInflux(db), db);
  dir = await mkdtemp(join(tmpdir(), "fieldq-outbox-"));
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

async function outboxWith(
  specs: TargetSpec[],
  options: {
    attemptTimeoutMs?: number;
    backoff?: { baseMs: number; maxMs: number; giveUpAfterMs?: number };
    log?: PointWriter;
  } = {},
) {
  const outbox = await openOutbox<{ open: boolean }>({ dir, logger: silentLogger });
  const delivery = await startDelivery({
    outbox,
    targets: createTargets(specs, { publish: async () => {} }),
    log: createPointWriter(db),
    logger: silentLogger,
    backoff: FAST,
    ...options,
  });
  cleanups.push(async () => {
    await delivery.close();
    await outbox.close();
  });
  return { outbox, delivery };
}

async function receiver() {
  const r = await startAlertReceiver(SECRET);
  cleanups.push(() => r.close());
  return r;
}

const webhook = (name: string, url: string): TargetSpec => ({ name, type: "webhook", url, secret: SECRET });
const logOf = (alertId: string) => readAlertLog(createInflux(db), { alertIds: [alertId] });
const deliveriesIn = (log: AlertLogEntry[]) =>
  log.flatMap((e) => (e.type === "delivery" ? [`${e.target}:${e.outcome}:${e.attempt}`] : []));

describe("alert delivery", () => {
  it("delivers a committed notice, signed, with its idempotency key, and logs the notice and the attempt", async () => {
    const hook = await receiver();
    const { outbox } = await outboxWith([webhook("webhook", hook.url)]);
    const notice = sampleNotice();
    await outbox.commit({
      state: new Map([["issue_new~3f2a91c0", { open: true }]]),
      deliveries: [{ target: "webhook", notice }],
    });
    const [got] = await eventually(() => (hook.received.length > 0 ? hook.received : undefined));
    expect(got?.signed).toBe(true);
    expect(got?.headers["idempotency-key"]).toBe(notice.idempotencyKey);
    expect(got?.headers["x-fieldq-event"]).toBe("raised");
    expect(AlertNoticeBody.parse(got?.body)).toEqual(notice);
    expect(await outbox.state()).toEqual(new Map([["issue_new~3f2a91c0", { open: true }]]));
    const log = await eventually(async () => {
      const entries = await logOf(notice.alertId);
      return entries.length >= 2 ? entries : undefined;
    });
    expect(log.map((e) => e.type).sort()).toEqual(["delivery", "notice"]);
    expect(log.find((e) => e.type === "notice")).toMatchObject({ notice, targets: ["webhook"] });
    expect(deliveriesIn(log)).toEqual(["webhook:delivered:1"]);
    await new Promise((r) => setTimeout(r, 200));
    expect(hook.received).toHaveLength(1);
    expect(await outbox.queued()).toEqual([]);
  });

  it("retries a receiver that fails until it recovers, then stops", async () => {
    const hook = await receiver();
    hook.answer((n) => (n < 2 ? { status: 503 } : { status: 200 }));
    const { outbox } = await outboxWith([webhook("webhook", hook.url)]);
    const notice = sampleNotice();
    await outbox.commit({ state: new Map(), deliveries: [{ target: "webhook", notice }] });
    const log = await eventually(async () => {
      const entries = await logOf(notice.alertId);
      return deliveriesIn(entries).includes("webhook:delivered:3") ? entries : undefined;
    });
    expect(deliveriesIn(log)).toEqual(["webhook:failed:1", "webhook:failed:2", "webhook:delivered:3"]);
    expect(hook.received.map((r) => r.answered)).toEqual([503, 503, 200]);
    expect(new Set(hook.received.map((r) => r.headers["idempotency-key"]))).toEqual(
      new Set([notice.idempotencyKey]),
    );
    expect(hook.received.every((r) => r.signed)).toBe(true);
    const failed = log.find((e) => e.type === "delivery" && e.outcome === "failed");
    expect(failed).toMatchObject({ status: 503, error: "HTTP 503" });
    await new Promise((r) => setTimeout(r, 300));
    expect(hook.received).toHaveLength(3);
  });

  it("does not retry a notice its receiver refuses for good", async () => {
    const hook = await receiver();
    hook.answer(() => ({ status: 400 }));
    const { outbox } = await outboxWith([webhook("webhook", hook.url)]);
    const notice = sampleNotice();
    await outbox.commit({ state: new Map(), deliveries: [{ target: "webhook", notice }] });
    const log = await eventually(async () => {
      const entries = await logOf(notice.alertId);
      return entries.some((e) => e.type === "delivery") ? entries : undefined;
    });
    expect(deliveriesIn(log)).toEqual(["webhook:rejected:1"]);
    await new Promise((r) => setTimeout(r, 300));
    expect(hook.received).toHaveLength(1);
    expect(await outbox.queued()).toEqual([]);
  });

  it("gives up on a receiver still failing when the deadline has passed, logs it, and sends the next notice", async () => {
    const hook = await receiver();
    const doomed = sampleNotice({ sequence: 1 });
    const next = sampleNotice({ sequence: 2, event: "repeated" });
    hook.answer((_, headers) =>
      headers["idempotency-key"] === doomed.idempotencyKey ? { status: 500 } : { status: 200 },
    );
    const { outbox } = await outboxWith([webhook("webhook", hook.url)], {
      backoff: { baseMs: 100, maxMs: 100, giveUpAfterMs: 250 },
    });
    await outbox.commit({ state: new Map(), deliveries: [{ target: "webhook", notice: doomed }] });
    await outbox.commit({ state: new Map(), deliveries: [{ target: "webhook", notice: next }] });
    const log = await eventually(async () => {
      const entries = await logOf(doomed.alertId);
      return deliveriesIn(entries).some((d) => d.endsWith(":delivered:1")) ? entries : undefined;
    });
    const ofDoomed = log.flatMap((e) =>
      e.type === "delivery" && e.idempotencyKey === doomed.idempotencyKey ? [e.outcome] : [],
    );
    expect(ofDoomed.at(-1)).toBe("gave_up");
    expect(ofDoomed.slice(0, -1).every((o) => o === "failed")).toBe(true);
    expect(hook.received.at(-1)?.headers["idempotency-key"]).toBe(next.idempotencyKey);
    // The delivered notice's log entry leaves the queue just after the log holds it (CI once caught it between).
    await eventually(async () => ((await outbox.queued()).length === 0 ? true : undefined));
    expect(await outbox.queued()).toEqual([]);
  });

  it("drops an alert-log entry InfluxDB refuses for good, and logs the rest", async () => {
    const hook = await receiver();
    const influxWrite = createPointWriter(db);
    // InfluxDB's answer to a point it will never take (a field type conflict): the others of the request are
    // written, the request answers 400.
    const refusing: PointWriter = async (points) => {
      await influxWrite(points.filter((p) => p.tags.alert !== "poison" || p.tags.type !== "notice"));
      if (points.some((p) => p.tags.alert === "poison" && p.tags.type === "notice"))
        throw new PointsRefused(400, '{"error":"partial write: field type conflict dropped=1"}');
    };
    const { outbox } = await outboxWith([webhook("webhook", hook.url)], { log: refusing });
    const poison = sampleNotice({ alertId: "poison" });
    const good = sampleNotice();
    await outbox.commit({
      state: new Map(),
      deliveries: [poison, good].map((notice) => ({ target: "webhook", notice })),
    });
    await eventually(async () => ((await outbox.queued()).length === 0 ? true : undefined));
    const log = await logOf(good.alertId);
    expect(log.map((e) => e.type).sort()).toEqual(["delivery", "notice"]);
    expect((await logOf("poison")).map((e) => e.type)).toEqual(["delivery"]);
    expect(hook.received).toHaveLength(2);
  });

  it("a dead and a hanging receiver delay nobody else; each target gets its notices in commit order", async () => {
    const live = await receiver();
    const hanging = await receiver();
    hanging.answer(() => "hang");
    const refused = `http://127.0.0.1:${await closedPort()}/hook`;
    const { outbox } = await outboxWith(
      [webhook("dead", refused), webhook("hanging", hanging.url), webhook("live", live.url)],
      { attemptTimeoutMs: 10_000 },
    );
    const notices = [1, 2, 3].map((sequence) => sampleNotice({ sequence }));
    const started = Date.now();
    for (const notice of notices) {
      await outbox.commit({
        state: new Map(),
        deliveries: ["dead", "hanging", "live"].map((target) => ({ target, notice })),
      });
    }
    await eventually(() => (live.received.length === 3 ? true : undefined), 5_000);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(live.received.map((r) => r.headers["idempotency-key"])).toEqual(
      notices.map((n) => n.idempotencyKey),
    );
    // The hanging receiver holds its first notice; the others wait behind it in its own lane only.
    expect(hanging.received.map((r) => r.headers["idempotency-key"])).toEqual([notices[0]?.idempotencyKey]);
    const log = await eventually(async () => {
      const entries = await logOf(notices[0]?.alertId ?? "");
      return entries.some((e) => e.type === "delivery" && e.target === "dead") ? entries : undefined;
    });
    const dead = log.find((e) => e.type === "delivery" && e.target === "dead");
    expect(dead).toMatchObject({ outcome: "failed", error: "ECONNREFUSED" });
  });

  it("delivers after a kill -9 of the process holding the outbox between commit and delivery", async () => {
    const hook = await receiver();
    hook.answer(() => "hang");
    const child = spawn("node", ["--import", "tsx", "test/support/alert-outbox-child.ts"], {
      env: {
        ...process.env,
        ALERT_OUTBOX_DIR: dir,
        ALERT_RECEIVER_URL: hook.url,
        ALERT_SECRET: SECRET,
        // The child's alert log cannot be written: its entries must survive the kill in the outbox.
        ALERT_INFLUX_URL: `http://127.0.0.1:${await closedPort()}`,
        ALERT_INFLUX_DB: db.database,
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    cleanups.push(async () => child.kill("SIGKILL"));
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    await eventually(
      () => (out.includes("committed") && hook.received.length === 1 ? true : undefined),
      20_000,
    );
    const first = hook.received[0];
    expect(first?.signed).toBe(true);
    child.kill("SIGKILL");
    await once(child, "exit");

    hook.answer(() => ({ status: 200 }));
    const { outbox } = await outboxWith([webhook("webhook", hook.url)]);
    expect(await outbox.state()).toEqual(new Map([["issue_new~3f2a91c0", { open: true }]]));
    await eventually(() => (hook.received.length === 2 ? true : undefined));
    const again = hook.received[1];
    expect(again?.signed).toBe(true);
    expect(again?.headers["idempotency-key"]).toBe(first?.headers["idempotency-key"]);
    expect(again?.raw.equals(first?.raw ?? Buffer.alloc(0))).toBe(true);
    const notice = sampleNotice();
    const log = await eventually(async () => {
      const entries = await logOf(notice.alertId);
      return entries.some((e) => e.type === "delivery") && entries.some((e) => e.type === "notice")
        ? entries
        : undefined;
    });
    expect(log.filter((e) => e.type === "notice")).toHaveLength(1);
    expect(deliveriesIn(log)).toEqual(["webhook:delivered:1"]);
  });

  it("publishes on fieldq/alerts/{severity}/{rule} of the real broker, where the alert account receives it", async () => {
    const account = { username: "alerts:ops", password: "alert-password-0123456789" };
    const broker = await startBroker({
      listen: { host: "127.0.0.1", port: 0 },
      limits: SMALL_BROKER_LIMITS,
      deviceSecret: TEST_SECRET,
      maxPayloadBytes: 64 * 1024,
      logger: silentLogger,
      metrics: createMetrics(),
      receive: async () => ({ kind: "accepted" }),
      presence: async () => {},
      alertSubscriber: account,
    });
    cleanups.push(() => broker.close());
    const service = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, {
      clientId: "alerts:pager",
      ...account,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    cleanups.push(() => service.endAsync(true));
    const got: Array<{ topic: string; payload: string }> = [];
    service.on("message", (topic, payload) => got.push({ topic, payload: payload.toString("utf8") }));
    await service.subscribeAsync("fieldq/alerts/critical/#", { qos: 1 });

    const specs = defaultTargets({
      enabled: true,
      rulesFile: undefined,
      intervalMs: 30_000,
      webhook: undefined,
      mqtt: account,
      publicUrl: undefined,
    });
    expect(specs).toEqual([{ name: "mqtt", type: "mqtt", topic: "fieldq/alerts" }]);
    const outbox = await openOutbox({ dir, logger: silentLogger });
    const delivery = await startDelivery({
      outbox,
      targets: createTargets(specs, broker),
      log: createPointWriter(db),
      logger: silentLogger,
      backoff: FAST,
    });
    cleanups.push(async () => {
      await delivery.close();
      await outbox.close();
    });
    const critical = sampleNotice();
    const warning = sampleNotice({ alertId: "other", severity: "warning" });
    await outbox.commit({
      state: new Map(),
      deliveries: [critical, warning].map((notice) => ({ target: "mqtt", notice })),
    });
    const log = await eventually(async () => {
      const entries = await logOf(warning.alertId);
      return entries.some((e) => e.type === "delivery") ? entries : undefined;
    });
    expect(deliveriesIn(log)).toEqual(["mqtt:delivered:1"]);
    await eventually(() => (got.length > 0 ? true : undefined));
    // The warning went to its own topic, which this subscriber did not ask for.
    expect(got).toEqual([
      { topic: alertTopic("critical", critical.rule), payload: JSON.stringify(critical) },
    ]);
  });
});
