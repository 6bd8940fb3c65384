import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, expect, it } from "vitest";
import { AlertNoticeBody, AlertPage } from "../../contract/api/alerts.js";
import { closedPort, eventually, startAlertReceiver } from "../support/alert-receiver.js";
import { faultyDevices } from "../support/faulty-devices.js";
import { testDatabase } from "../support/influx.js";
import { TEST_SECRET } from "../support/stack.js";

// The end-to-end case: fieldq as its own process (cli/fieldq.ts start), devices whose faults make a new
// issue, a receiver that refuses until fieldq has been killed with -9 between detection and delivery and
// started again; then the receiver gets the alert, signed, with the same idempotency key as every earlier try.

const WEBHOOK_SECRET = "webhook-secret-kill9-0123456789";
const VIEWER = "viewer-token-kill9";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** fieldq start as a child; its JSON log lines, parsed. */
function startFieldqProcess(env: NodeJS.ProcessEnv) {
  const child = spawn("node", ["--import", "tsx", "cli/fieldq.ts", "start"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout }).on("line", (text) => {
    try {
      lines.push(JSON.parse(text) as Record<string, unknown>);
    } catch {}
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const find = (match: (l: Record<string, unknown>) => boolean) =>
    eventually(() => {
      if (child.exitCode !== null) throw new Error(`fieldq exited ${child.exitCode}: ${stderr}`);
      return lines.find(match);
    }, 30_000);
  return { child, lines, find };
}

async function kill9(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGKILL");
  await once(child, "exit");
}

it("a kill -9 of fieldq between detecting a new issue and delivering its alert still delivers it, once the receiver takes it", async () => {
  const db = await testDatabase("alert_kill9");
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-kill9-"));
  const receiver = await startAlertReceiver(WEBHOOK_SECRET);
  cleanups.push(async () => {
    await receiver.close();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  });
  receiver.answer(() => ({ status: 503 }));
  const mqttPort = await closedPort();
  const env = {
    FIELDQ_INFLUX_URL: db.url,
    FIELDQ_INFLUX_DB: db.database,
    FIELDQ_DEVICE_SECRET: TEST_SECRET,
    FIELDQ_MQTT_HOST: "127.0.0.1",
    FIELDQ_MQTT_PORT: String(mqttPort),
    FIELDQ_HTTP_HOST: "127.0.0.1",
    FIELDQ_HTTP_PORT: "0",
    FIELDQ_API_TOKENS: `viewer:vic:${VIEWER}`,
    FIELDQ_DATA_DIR: dataDir,
    FIELDQ_FLUSH_INTERVAL: "50ms",
    FIELDQ_ROLLUP_INTERVAL: "100ms",
    FIELDQ_ALERT_INTERVAL: "200ms",
    FIELDQ_WEBHOOK_URL: receiver.url,
    FIELDQ_WEBHOOK_SECRET: WEBHOOK_SECRET,
    FIELDQ_LOG_FORMAT: "json",
    FIELDQ_LOG_LEVEL: "info",
  };

  const first = startFieldqProcess(env);
  cleanups.push(() => kill9(first.child));
  await first.find((l) => typeof l.url === "string");
  await faultyDevices(
    mqttPort,
    ["printer-k001", "printer-k002", "printer-k003"],
    { code: "E42", severity: "critical" },
    { firmware: "3.14.0" },
  );
  // Detected and committed: the receiver has refused two tries (so the first one's record is durable).
  await eventually(() => (receiver.received.length >= 2 ? true : undefined), 30_000);
  await kill9(first.child);
  const refused = receiver.received.length;
  expect(receiver.received.every((r) => r.answered === 503)).toBe(true);
  const key = receiver.received[0]?.headers["idempotency-key"];
  expect(key).toMatch(/\/raised\/1$/);

  receiver.answer(() => ({ status: 200 }));
  const second = startFieldqProcess(env);
  cleanups.push(() => kill9(second.child));
  const api = await second.find((l) => typeof l.url === "string");
  await eventually(() => (receiver.received.some((r) => r.answered === 200) ? true : undefined), 30_000);
  const delivered = receiver.received.find((r) => r.answered === 200);
  expect(receiver.received.length).toBeGreaterThan(refused);
  expect(delivered?.signed).toBe(true);
  expect(delivered?.headers["idempotency-key"]).toBe(key);
  const notice = AlertNoticeBody.parse(delivered?.body);
  expect(notice).toMatchObject({
    event: "raised",
    kind: "issue_new",
    severity: "critical",
    refs: { model: "FQ-Print Mk3" },
  });
  // Every try, before and after the kill, was the same notice: same key, same bytes.
  expect(new Set(receiver.received.map((r) => r.headers["idempotency-key"]))).toEqual(new Set([key]));
  expect(new Set(receiver.received.map((r) => r.raw.toString("utf8"))).size).toBe(1);

  // The alerts API shows it delivered to the webhook, after the refused tries.
  const page = await eventually(async () => {
    const response = await fetch(`${String(api.url)}/api/v1/alerts`, {
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    const body = AlertPage.parse(await response.json());
    const webhook = body.items[0]?.deliveries.find((d) => d.target === "webhook");
    return webhook?.state === "delivered" ? body : undefined;
  }, 15_000);
  expect(page.items).toHaveLength(1);
  expect(page.items[0]?.id).toBe(notice.alertId);
  // A try the kill cut off between the receiver's answer and its record is not counted; the others are, and
  // the first refused try was recorded before the second was sent.
  const attempts = page.items[0]?.deliveries.find((d) => d.target === "webhook")?.attempts ?? 0;
  expect(attempts).toBeGreaterThanOrEqual(2);
  expect(attempts).toBeLessThanOrEqual(receiver.received.length);
}, 120_000);
