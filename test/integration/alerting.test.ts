import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { startAlerting } from "../../alerts/start-alerting.js";
import type { AlertNotice } from "../../alerts/types.js";
import { IssueDetail } from "../../contract/api/issues.js";
import { helloTopic, telemetryTopic } from "../../contract/topics.js";
import { silentLogger } from "../../observe/logger.js";
import { createReadServices } from "../../services/read-services.js";
import { startFieldq } from "../../stack/start-stack.js";
import { createInflux, createPointWriter } from "../../storage/influx.js";
import { startAlertReceiver } from "../support/alert-receiver.js";
import { faultyDevices, printerHello } from "../support/faulty-devices.js";
import { testDatabase } from "../support/influx.js";
import { startTestStack, testConfig } from "../support/stack.js";

// Alerts through the real stack: devices publish faults over MQTT, the ingest and the rollup runner make an
// issue of them in InfluxDB, the engine finds it and the webhook receiver gets the signed notice.

const WEBHOOK_SECRET = "webhook-secret-0123456789";
const MINUTE = 60_000;

const noticesOf = (received: Array<{ body: unknown }>) => received.map((r) => r.body as AlertNotice);

describe("alerting", () => {
  test("a new issue on 3 devices sends one signed notice to the webhook; one on 2 devices sends none", async () => {
    const db = await testDatabase("alerting_new");
    const dataDir = await mkdtemp(join(tmpdir(), "fieldq-alerting-"));
    const receiver = await startAlertReceiver(WEBHOOK_SECRET);
    const config = testConfig(db, dataDir, {
      FIELDQ_WEBHOOK_URL: receiver.url,
      FIELDQ_WEBHOOK_SECRET: WEBHOOK_SECRET,
      FIELDQ_ALERT_INTERVAL: "200ms",
    });
    const stack = await startFieldq(config, { logger: silentLogger }, { broker: true, api: false });
    try {
      const port = stack.mqttPort ?? 0;
      await faultyDevices(port, ["printer-0001", "printer-0002", "printer-0003"], { code: "E42" });
      await faultyDevices(port, ["printer-0004", "printer-0005"], { code: "E77" });
      await expect
        .poll(() => noticesOf(receiver.received).length, { timeout: 20_000, interval: 100 })
        .toBeGreaterThan(0);
      // A few more evaluations: still one notice (one alert per state change, repeats only after 4 h).
      await new Promise((r) => setTimeout(r, 1_500));
      const notices = noticesOf(receiver.received);
      expect(notices).toHaveLength(1);
      const [notice] = notices;
      expect(receiver.received[0]?.signed).toBe(true);
      expect(receiver.received[0]?.headers["idempotency-key"]).toBe(notice?.idempotencyKey);
      expect(notice).toMatchObject({
        event: "raised",
        rule: "new-issue",
        kind: "issue_new",
        severity: "warning",
        level: 0,
        levelName: "default",
        acknowledged: null,
        refs: { model: "FQ-Print Mk3" },
        detail: { affectedDevices: 3, worstSeverity: "error", key: "printer/FQ-Print Mk3/E42" },
      });
      expect(notice?.idempotencyKey).toBe(`${notice?.alertId}/raised/1`);
    } finally {
      await stack.close();
      await receiver.close();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test("a broker with FIELDQ_ALERTING=false judges and sends nothing (one of several brokers runs alerting)", async () => {
    const db = await testDatabase("alerting_off");
    const dataDir = await mkdtemp(join(tmpdir(), "fieldq-alerting-off-"));
    const receiver = await startAlertReceiver(WEBHOOK_SECRET);
    const config = testConfig(db, dataDir, {
      FIELDQ_WEBHOOK_URL: receiver.url,
      FIELDQ_WEBHOOK_SECRET: WEBHOOK_SECRET,
      FIELDQ_ALERT_INTERVAL: "200ms",
      FIELDQ_ALERTING: "false",
    });
    expect(config.alerts.enabled).toBe(false);
    const stack = await startFieldq(config, { logger: silentLogger }, { broker: true, api: false });
    try {
      await faultyDevices(stack.mqttPort ?? 0, ["printer-0001", "printer-0002", "printer-0003"], {
        code: "E42",
      });
      // The same faults raise an alert within a second or two where alerting runs (the first test).
      await new Promise((r) => setTimeout(r, 3_000));
      expect(receiver.received).toEqual([]);
      await expect(access(join(dataDir, "outbox"))).rejects.toThrow(/ENOENT/);
    } finally {
      await stack.close();
      await receiver.close();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test("an unacknowledged issue alert escalates on a fake clock, the issue shows it, and acknowledging stops it", async () => {
    const stack = await startTestStack("alerting_escalation");
    const receiver = await startAlertReceiver(WEBHOOK_SECRET);
    const rulesFile = join(stack.config.ingest.dataDir, "alert-rules.yaml");
    await writeFile(
      rulesFile,
      [
        "targets:",
        "  - name: oncall",
        "    type: webhook",
        `    url: ${receiver.url}`,
        `    secret: ${WEBHOOK_SECRET}`,
        "escalation:",
        "  - { name: team, after: 1h, targets: [oncall] }",
        "  - { name: lead, after: 1h, targets: [oncall] }",
        "  - { name: management, targets: [oncall] }",
        "rules:",
        "  - { name: new-issue, when: issue_new, minSeverity: error, minDevices: 3, repeat: 0 }",
        "",
      ].join("\n"),
    );
    const influx = createInflux(stack.db);
    const read = createReadServices(influx, { write: createPointWriter(stack.db), logger: silentLogger });
    let offset = 0;
    const alerting = await startAlerting({
      config: { ...stack.config.alerts, rulesFile, intervalMs: 3_600_000 },
      dataDir: join(stack.config.ingest.dataDir, "alerting"),
      read,
      broker: stack.stack.broker,
      logger: silentLogger,
      now: () => Date.now() + offset,
    });
    try {
      await faultyDevices(
        stack.stack.mqttPort,
        ["printer-0101", "printer-0102", "printer-0103"],
        { code: "P9" },
        { model: "FQ-Print S" },
      );
      let notices: AlertNotice[] = [];
      await expect
        .poll(
          async () => {
            await alerting.evaluate();
            notices = noticesOf(receiver.received);
            return notices.length;
          },
          { timeout: 20_000, interval: 200 },
        )
        .toBe(1);
      const raised = notices[0] as AlertNotice;
      expect(raised).toMatchObject({ event: "raised", level: 0, levelName: "team" });
      const issueId = raised.refs.issue ?? "";

      offset = 59 * MINUTE;
      await alerting.evaluate();
      await new Promise((r) => setTimeout(r, 300));
      expect(noticesOf(receiver.received)).toHaveLength(1);

      offset = 61 * MINUTE;
      await alerting.evaluate();
      await expect.poll(() => receiver.received.length, { timeout: 10_000, interval: 50 }).toBe(2);
      const escalated = noticesOf(receiver.received)[1];
      expect(escalated).toMatchObject({
        alertId: raised.alertId,
        event: "escalated",
        level: 1,
        levelName: "lead",
        idempotencyKey: `${raised.alertId}/escalated/2`,
      });
      expect(receiver.received[1]?.signed).toBe(true);

      // An API process on the same InfluxDB serves the issue's impact and escalation, and its page shows both.
      const api = await startFieldq(stack.config, { logger: silentLogger }, { broker: false, api: true });
      const issuePath = `/api/v1/issues/${encodeURIComponent(issueId)}`;
      const served = async () => {
        const response = await fetch(`${api.apiUrl}${issuePath}`, {
          headers: { authorization: "Bearer viewer-token-1" },
        });
        expect(response.status).toBe(200);
        return IssueDetail.parse(await response.json());
      };
      try {
        // The alert log is written by delivery's own lane: the alert's status shows once it has been.
        await expect.poll(async () => (await served()).escalation?.status, { timeout: 10_000 }).toBe("open");
        const before = await served();
        expect(before.escalation).toEqual({
          alertId: raised.alertId,
          rule: "new-issue",
          level: 1,
          levelName: "lead",
          since: escalated?.at,
          status: "open",
          acknowledged: null,
        });
        // error (9) × 3 devices × 3/3 of the active fleet × an age factor just above 1.
        expect(before.impact).toMatchObject({ severityWeight: 9, affectedDevices: 3, fleetShare: 1 });
        expect(before.impact.score).toBeGreaterThanOrEqual(27);
        expect(before.impact.score).toBeLessThan(28);
        const page = await fetch(`${api.apiUrl}/issues/${encodeURIComponent(issueId)}`, {
          headers: { cookie: "fieldq_session=viewer-token-1" },
        });
        const html = await page.text();
        expect(page.status).toBe(200);
        expect(html).toContain("level 1: lead");
        expect(html).toContain("not acknowledged");
        expect(html).toContain("Escalated to level 1 (lead)");
        expect(html).toContain(before.impact.score.toFixed(1));

        const ack = await fetch(
          `${api.apiUrl}/api/v1/alerts/${encodeURIComponent(raised.alertId)}/acknowledge`,
          {
            method: "POST",
            headers: { authorization: "Bearer operator-token-1", "content-type": "application/json" },
            body: JSON.stringify({}),
          },
        );
        expect(ack.status).toBe(200);

        // Unacknowledged, it would reach "management" an hour after "lead"; acknowledged, nothing more is sent.
        for (const hours of [3, 5, 9]) {
          offset = hours * 60 * MINUTE;
          await alerting.evaluate();
        }
        await new Promise((r) => setTimeout(r, 300));
        expect(noticesOf(receiver.received).map((n) => n.event)).toEqual(["raised", "escalated"]);
        const after = await served();
        expect(after.escalation).toMatchObject({
          level: 1,
          status: "acknowledged",
          acknowledged: { by: "operator" },
        });
        expect(after.history.filter((h) => h.event.type === "escalated").map((h) => h.event)).toEqual([
          {
            type: "escalated",
            level: 1,
            levelName: "lead",
            alertId: raised.alertId,
            rule: "new-issue",
            at: Date.parse(escalated?.at ?? ""),
            actor: "system",
          },
        ]);
      } finally {
        await api.close();
      }
    } finally {
      await alerting.close();
      read.close();
      await receiver.close();
      await stack.close();
    }
  });

  test("a model whose devices all went silent raises one silent-share alert, and resolves when they report", async () => {
    const stack = await startTestStack("alerting_silent");
    const receiver = await startAlertReceiver(WEBHOOK_SECRET);
    const rulesFile = join(stack.config.ingest.dataDir, "alert-rules.json");
    await writeFile(
      rulesFile,
      JSON.stringify({
        targets: [{ name: "ops", type: "webhook", url: receiver.url, secret: WEBHOOK_SECRET }],
        escalation: [{ name: "ops", targets: ["ops"] }],
        rules: [{ name: "silent", when: "silent_share", minShare: 0.5, minDevices: 3, hold: 0 }],
      }),
    );
    let offset = 0;
    const now = () => Date.now() + offset;
    const influx = createInflux(stack.db);
    const read = createReadServices(influx, {
      write: createPointWriter(stack.db),
      logger: silentLogger,
      now,
    });
    const alerting = await startAlerting({
      config: { ...stack.config.alerts, rulesFile, intervalMs: 3_600_000 },
      dataDir: join(stack.config.ingest.dataDir, "alerting"),
      read,
      broker: stack.stack.broker,
      logger: silentLogger,
      now,
    });
    const ids = ["router-0001", "router-0002", "router-0003", "router-0004"];
    let seq = 0;
    const report = async () => {
      for (const id of ids) {
        const client = await stack.connect(id);
        await client.publishAsync(
          helloTopic(id),
          JSON.stringify(printerHello(id, { model: "FQ-Route 9", kind: "router" })),
          {
            qos: 1,
            retain: true,
          },
        );
        await client.publishAsync(
          telemetryTopic(id),
          JSON.stringify({ ts: Date.now(), seq: ++seq, metrics: { rssi: -60 } }),
          {
            qos: 1,
          },
        );
        await client.endAsync();
      }
    };
    try {
      await report();
      const seen = async () =>
        (await read.devices.silence({ fromMs: now() - 86_400_000, toMs: now() })).byModel.find(
          (m) => m.model === "FQ-Route 9",
        );
      await expect.poll(async () => (await seen())?.seen, { timeout: 20_000, interval: 200 }).toBe(4);
      await alerting.evaluate();
      expect(receiver.received).toHaveLength(0);

      // Four hours on, nothing has come from them: past 3 × the default hour, every one is silent.
      offset = 4 * 60 * MINUTE;
      expect(await seen()).toMatchObject({ seen: 4, silent: 4 });
      await alerting.evaluate();
      await alerting.evaluate();
      await expect.poll(() => receiver.received.length, { timeout: 10_000, interval: 50 }).toBe(1);
      const [raised] = noticesOf(receiver.received);
      expect(raised).toMatchObject({
        event: "raised",
        rule: "silent",
        kind: "silent_share",
        severity: "warning",
        refs: { model: "FQ-Route 9" },
        detail: { seen: 4, silent: 4, rate: 1 },
      });

      // They report again (on the shifted clock, an hour later): the condition clears and, with no hold, resolves.
      offset = 0;
      await report();
      await expect.poll(async () => (await seen())?.silent, { timeout: 20_000, interval: 200 }).toBe(0);
      await alerting.evaluate();
      await expect.poll(() => receiver.received.length, { timeout: 10_000, interval: 50 }).toBe(2);
      expect(noticesOf(receiver.received)[1]).toMatchObject({
        alertId: raised?.alertId,
        event: "resolved",
        idempotencyKey: `${raised?.alertId}/resolved/2`,
      });
    } finally {
      await alerting.close();
      read.close();
      await receiver.close();
      await stack.close();
    }
  });
});
