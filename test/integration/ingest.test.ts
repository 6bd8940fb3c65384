import type { MqttClient } from "mqtt";
import { test as base, describe, expect } from "vitest";
import { fingerprintId } from "../../analytics/fingerprint.js";
import {
  commandResultTopic,
  errorsTopic,
  eventTopic,
  faultTopic,
  helloTopic,
  statusTopic,
  telemetryTopic,
} from "../../contract/topics.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const test = base.extend<{ stack: TestStack }>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  stack: async ({}, use) => {
    const stack = await startTestStack("ingest");
    await use(stack);
    await stack.close();
  },
});

const hello = {
  kind: "modem",
  model: "FQ-Modem 7590",
  firmware: "2.3.1",
  hardware: "B",
  serial: "SN-0001",
  region: "eu-west",
  isp: "Telco",
};
const json = (v: unknown) => JSON.stringify(v);

async function publish(client: MqttClient, topic: string, payload: unknown, retain = false) {
  await client.publishAsync(topic, typeof payload === "string" ? payload : json(payload), { qos: 1, retain });
}

/** Collects what the broker tells the device on its errors topic. */
async function listenForErrors(client: MqttClient, deviceId: string) {
  const errors: Array<{ reason: string; message: string; topic: string }> = [];
  client.on("message", (topic, payload) => {
    if (topic === errorsTopic(deviceId)) errors.push(JSON.parse(payload.toString()));
  });
  await client.subscribeAsync(errorsTopic(deviceId), { qos: 0 });
  return errors;
}

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("every message type reaches InfluxDB, tagged from the hello", () => {
  test("stores hello, telemetry (single and buffered), fault, event and status", async ({ stack }) => {
    const device = await stack.connect("modem-0001");
    const now = Date.now();
    await publish(device, helloTopic("modem-0001"), hello, true);
    await publish(device, telemetryTopic("modem-0001"), {
      ts: now - 3000,
      seq: 1,
      metrics: { snr_margin_db: 7.5, online: true },
    });
    await publish(device, telemetryTopic("modem-0001"), [
      { ts: now - 2000, seq: 2, metrics: { snr_margin_db: 7.1 } },
      { ts: now - 1000, seq: 3, metrics: { snr_margin_db: 6.9 } },
    ]);
    await publish(device, faultTopic("modem-0001"), {
      ts: now,
      seq: 4,
      code: "DSL_RESYNC",
      severity: "warning",
      message: "line retrained",
      component: "dsl",
      context: { attempts: 3 },
    });
    await publish(device, eventTopic("modem-0001"), {
      ts: now,
      seq: 5,
      type: "reboot",
      data: { reason: "watchdog" },
    });
    await publish(device, eventTopic("modem-0001"), {
      ts: now,
      seq: 6,
      type: "feedback",
      data: { rating: 8 },
    });
    await publish(device, statusTopic("modem-0001"), { state: "online" });
    await publish(device, commandResultTopic("modem-0001", "cmd-7"), {
      ts: now,
      seq: 7,
      ok: true,
      message: "rebooted",
    });
    await stack.drained();

    const telemetry = await stack.query<{
      snr_margin_db: number;
      model: string;
      firmware: string;
      region: string;
      seq: number;
    }>(
      `SELECT "snr_margin_db", "model", "firmware", "region", "seq" FROM "raw"."telemetry" WHERE "device" = 'modem-0001'`,
    );
    expect(telemetry.map((r) => [r.seq, r.snr_margin_db])).toEqual([
      [1, 7.5],
      [2, 7.1],
      [3, 6.9],
    ]);
    expect(
      telemetry.every((r) => r.model === "FQ-Modem 7590" && r.firmware === "2.3.1" && r.region === "eu-west"),
    ).toBe(true);

    const [fault] = await stack.query<{
      code: string;
      severity: string;
      component: string;
      message: string;
      context: string;
    }>(`SELECT * FROM "long"."fault"`);
    expect(fault).toMatchObject({
      code: "DSL_RESYNC",
      severity: "warning",
      component: "dsl",
      message: "line retrained",
    });
    expect(JSON.parse(fault?.context ?? "{}")).toEqual({ attempts: 3 });

    const events = await stack.query<{ type: string; reason: string | null; rating: number | null }>(
      `SELECT "type", "reason", "rating" FROM "long"."event" ORDER BY time`,
    );
    expect(events.map((e) => [e.type, e.reason, e.rating]).sort()).toEqual([
      ["feedback", null, 8],
      ["reboot", "watchdog", null],
    ]);

    const [device0] = await stack.query<{ serial: string; isp: string; hardware: string }>(
      `SELECT * FROM "long"."device"`,
    );
    expect(device0).toMatchObject({ serial: "SN-0001", isp: "Telco", hardware: "B" });

    const [command] = await stack.query<{ command_id: string; ok: boolean; message: string }>(
      `SELECT * FROM "long"."command"`,
    );
    expect(command).toMatchObject({ command_id: "cmd-7", ok: true, message: "rebooted" });

    const presence = await stack.query<{ state: string; source: string }>(
      `SELECT "state", "source" FROM "long"."presence"`,
    );
    expect(presence.map((p) => `${p.source}:${p.state}`)).toEqual(
      expect.arrayContaining(["broker:online", "device:online"]),
    );
  });

  test("a successful firmware update retags the device's later points", async ({ stack }) => {
    const device = await stack.connect("modem-0002");
    const now = Date.now();
    await publish(device, helloTopic("modem-0002"), hello);
    await publish(device, eventTopic("modem-0002"), {
      ts: now,
      seq: 1,
      type: "firmware_update",
      data: { from: "2.3.1", to: "2.4.0", result: "success" },
    });
    await publish(device, telemetryTopic("modem-0002"), { ts: now + 1, seq: 2, metrics: { uptime_s: 5 } });
    await stack.drained();
    const rows = await stack.query<{ firmware: string }>(
      `SELECT "uptime_s", "firmware" FROM "raw"."telemetry"`,
    );
    expect(rows.map((r) => r.firmware)).toEqual(["2.4.0"]);
  });

  test("records exposure as one activity point per device-hour, by firmware", async ({ stack }) => {
    const device = await stack.connect("modem-0004");
    await publish(device, helloTopic("modem-0004"), hello);
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3 * 3_600_000;
    const samples = [0, 10, 20, 70, 80, 130].map((minute, i) => ({
      ts: hour + minute * 60_000,
      seq: i + 1,
      metrics: { uptime_s: minute * 60 },
    }));
    await publish(device, telemetryTopic("modem-0004"), samples);
    await publish(device, eventTopic("modem-0004"), {
      ts: hour + 140 * 60_000,
      seq: 7,
      type: "firmware_update",
      data: { from: "2.3.1", to: "2.4.0", result: "success" },
    });
    await publish(device, telemetryTopic("modem-0004"), {
      ts: hour + 150 * 60_000,
      seq: 8,
      metrics: { uptime_s: 1 },
    });
    await stack.drained();
    const rows = await stack.query<{ time: Date; firmware: string; hours: number; gap_ms: number | null }>(
      `SELECT "hours", "firmware", "device_id", "gap_ms" FROM "long"."activity" WHERE "device" = 'modem-0004'`,
    );
    // gap_ms: from the last report before the hour to its first (minute 20 → 70, minute 80 → 130, 130 → 140).
    expect(rows.map((r) => [r.time.getTime() - hour, r.firmware, r.hours, r.gap_ms])).toEqual([
      [0, "2.3.1", 1, null],
      [3_600_000, "2.3.1", 1, 50 * 60_000],
      [7_200_000, "2.3.1", 1, 50 * 60_000],
      [7_200_000, "2.4.0", 1, 10 * 60_000],
    ]);
  });

  test("the last will is stored as the device going offline", async ({ stack }) => {
    const device = await stack.connect("modem-0003", {
      will: {
        topic: statusTopic("modem-0003"),
        payload: Buffer.from(json({ state: "offline" })),
        qos: 1,
        retain: true,
      },
    });
    await publish(device, helloTopic("modem-0003"), hello);
    device.stream.destroy();
    const rows = await until(
      async () => {
        await stack.drained();
        return stack.query<{ source: string; state: string }>(
          `SELECT "state", "source" FROM "long"."presence" WHERE "source" = 'will'`,
        );
      },
      (r) => r.length > 0,
    );
    expect(rows).toMatchObject([{ source: "will", state: "offline" }]);
  });
});

describe("issue fingerprints", () => {
  test("faults are tagged with the fingerprint of the configured rules", async ({ stack }) => {
    await stack.restart({ FIELDQ_FINGERPRINT_RULES: "docs/fingerprint-rules.example.json" });
    const device = await stack.connect("modem-0005");
    await publish(device, helloTopic("modem-0005"), hello);
    const now = Date.now();
    await publish(device, faultTopic("modem-0005"), {
      ts: now,
      seq: 1,
      code: "DSL_RESYNC",
      severity: "warning",
    });
    await publish(device, faultTopic("modem-0005"), {
      ts: now,
      seq: 2,
      code: "DSL_RETRAIN",
      severity: "warning",
    });
    await publish(device, faultTopic("modem-0005"), { ts: now, seq: 3, code: "WAN_DOWN", severity: "error" });
    await stack.drained();
    const rows = await stack.query<{ code: string; fingerprint: string; fingerprint_key: string }>(
      `SELECT "code", "fingerprint", "fingerprint_key" FROM "long"."fault" ORDER BY time`,
    );
    expect(rows.map((r) => [r.code, r.fingerprint_key, r.fingerprint])).toEqual([
      [
        "DSL_RESYNC",
        "modem/FQ-Modem 7590/DSL_LINE_UNSTABLE",
        fingerprintId("modem/FQ-Modem 7590/DSL_LINE_UNSTABLE"),
      ],
      [
        "DSL_RETRAIN",
        "modem/FQ-Modem 7590/DSL_LINE_UNSTABLE",
        fingerprintId("modem/FQ-Modem 7590/DSL_LINE_UNSTABLE"),
      ],
      ["WAN_DOWN", "modem/FQ-Modem 7590/WAN_DOWN", fingerprintId("modem/FQ-Modem 7590/WAN_DOWN")],
    ]);
  });

  test("a configured rules file that is missing stops the start with its name", async ({ stack }) => {
    await expect(stack.restart({ FIELDQ_FINGERPRINT_RULES: "no/such/rules.json" })).rejects.toThrow(
      "FIELDQ_FINGERPRINT_RULES: no/such/rules.json does not exist",
    );
    await stack.restart();
  });
});

describe("bad input is refused with a reason and costs nothing else", () => {
  const bad: Array<[string, string, string]> = [
    ["invalid JSON", "{not json", "invalid_json"],
    ["a schema violation", json({ ts: 1, seq: 1, metrics: { snr: "high" } }), "invalid_schema"],
    [
      "an overflowing number (Infinity after parsing)",
      '{"ts":1,"seq":1,"metrics":{"snr":1e999}}',
      "invalid_schema",
    ],
    ["NaN", '{"ts":1,"seq":1,"metrics":{"snr":NaN}}', "invalid_json"],
    ["an unknown field", json({ ts: 1, seq: 1, metrics: { snr: 1 }, extra: true }), "invalid_schema"],
    ["deep nesting", `{"ts":1,"seq":1,"metrics":${"[".repeat(5000)}${"]".repeat(5000)}}`, "invalid_schema"],
    ["a huge payload", json({ ts: 1, seq: 1, metrics: { snr: 1 }, pad: "x".repeat(70_000) }), "too_large"],
  ];

  test.for(bad)(
    "refuses %s and keeps the good messages around it",
    async ([, payload, reason], { stack }) => {
      const device = await stack.connect("modem-0100");
      const errors = await listenForErrors(device, "modem-0100");
      const now = Date.now();
      await publish(device, telemetryTopic("modem-0100"), { ts: now, seq: 1, metrics: { snr_margin_db: 1 } });
      await publish(device, telemetryTopic("modem-0100"), payload);
      await publish(device, telemetryTopic("modem-0100"), {
        ts: now + 1,
        seq: 2,
        metrics: { snr_margin_db: 2 },
      });
      await stack.drained();
      const rows = await stack.query<{ snr_margin_db: number }>(
        `SELECT "snr_margin_db" FROM "raw"."telemetry"`,
      );
      expect(rows.map((r) => r.snr_margin_db)).toEqual([1, 2]);
      const rejections = await stack.query<{ reason: string; device: string; topic: string }>(
        `SELECT "reason", "device", "topic" FROM "long"."rejection"`,
      );
      expect(rejections).toMatchObject([
        { reason, device: "modem-0100", topic: telemetryTopic("modem-0100") },
      ]);
      const told = await until(
        async () => errors,
        (e) => e.length > 0,
      );
      expect(told[0]).toMatchObject({ reason, topic: telemetryTopic("modem-0100") });
      expect(await stack.metrics.messagesRefused.get()).toMatchObject({
        values: [{ labels: { reason }, value: 1 }],
      });
      expect(device.connected).toBe(true);
    },
  );

  test.for([
    ["a comma, an equals sign and a space", "FQ,Modem=7590 x"],
    ["a newline (line-protocol injection)", 'FQ\nfault,device=victim code="X" 1'],
    ["a quote", 'FQ"Modem'],
  ])("refuses a tag value with %s instead of writing it", async ([, model], { stack }) => {
    const device = await stack.connect("modem-0101");
    await publish(device, helloTopic("modem-0101"), { ...hello, model });
    await publish(device, faultTopic("modem-0101"), {
      ts: Date.now(),
      seq: 1,
      code: "A,b=c d",
      severity: "error",
    });
    await publish(device, faultTopic("modem-0101"), {
      ts: Date.now(),
      seq: 2,
      code: "WAN_DOWN",
      severity: "error",
    });
    await stack.drained();
    const faults = await stack.query<{ code: string; model: string }>(
      `SELECT "seq", "code", "model" FROM "long"."fault"`,
    );
    expect(faults).toMatchObject([{ code: "WAN_DOWN", model: "unknown" }]);
    const series = await stack.query<{ key: string }>(`SHOW SERIES`);
    expect(series.map((s) => s.key).filter((k) => k.includes("victim"))).toEqual([]);
    const reasons = await stack.query<{ reason: string }>(`SELECT "reason", "topic" FROM "long"."rejection"`);
    expect(reasons.map((r) => r.reason)).toEqual(["invalid_schema", "invalid_schema"]);
  });

  test("keeps free text with quotes, commas and newlines exactly as sent", async ({ stack }) => {
    const device = await stack.connect("modem-0102");
    const message = 'DNS "8.8.8.8" failed,\nretry=3 \\ done';
    await publish(device, faultTopic("modem-0102"), {
      ts: Date.now(),
      seq: 1,
      code: "DNS_FAILURE",
      severity: "error",
      message,
    });
    await stack.drained();
    const [fault] = await stack.query<{ message: string }>(`SELECT "message" FROM "long"."fault"`);
    expect(fault?.message).toBe(message);
  });

  test("stores a message with a far-off clock at receive time and flags the skew", async ({ stack }) => {
    const device = await stack.connect("modem-0103");
    const future = Date.now() + 365 * 86_400_000;
    await publish(device, telemetryTopic("modem-0103"), { ts: future, seq: 1, metrics: { uptime_s: 1 } });
    await publish(device, telemetryTopic("modem-0103"), { ts: 0, seq: 2, metrics: { uptime_s: 2 } });
    await stack.drained();
    const rows = await stack.query<{
      time: Date;
      clock_skewed: boolean;
      device_ts: number;
      uptime_s: number;
    }>(`SELECT "uptime_s", "clock_skewed", "device_ts" FROM "raw"."telemetry" WHERE time > now() - 1h`);
    expect(rows.map((r) => [r.uptime_s, r.clock_skewed, r.device_ts])).toEqual([
      [1, true, future],
      [2, true, 0],
    ]);
    expect(await stack.metrics.clockSkewed.get()).toMatchObject({ values: [{ value: 2 }] });
  });

  test("a metric sent as a number, then a boolean, then a number is stored each time, with no data-quality record", async ({
    stack,
  }) => {
    const device = await stack.connect("modem-0104");
    const now = Date.now();
    await publish(device, telemetryTopic("modem-0104"), { ts: now, seq: 1, metrics: { link_up: 1 } });
    await stack.drained();
    await publish(device, telemetryTopic("modem-0104"), { ts: now + 1, seq: 2, metrics: { link_up: true } });
    await publish(device, telemetryTopic("modem-0104"), { ts: now + 2, seq: 3, metrics: { link_up: 0 } });
    await stack.drained();
    const rows = await stack.query<{ link_up: number }>(`SELECT "link_up" FROM "raw"."telemetry"`);
    expect(rows.map((r) => r.link_up)).toEqual([1, 1, 0]);
    expect(await stack.query(`SELECT "reason" FROM "long"."rejection"`)).toEqual([]);
  });
});

describe("durability", () => {
  test("InfluxDB down while devices publish: everything arrives once it is back, exactly once", async ({
    stack,
  }) => {
    stack.proxy.down();
    const device = await stack.connect("printer-0001");
    const now = Date.now();
    for (let seq = 1; seq <= 200; seq++) {
      await publish(device, telemetryTopic("printer-0001"), {
        ts: now - 200 + seq,
        seq,
        metrics: { nozzle_temp_c: 200 + (seq % 10) },
      });
    }
    // A redelivery of messages already journaled (the PUBACK was lost, say) must not count twice.
    for (let seq = 1; seq <= 20; seq++) {
      await device.publishAsync(
        telemetryTopic("printer-0001"),
        json({ ts: now - 200 + seq, seq, metrics: { nozzle_temp_c: 200 + (seq % 10) } }),
        { qos: 1, dup: true },
      );
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(stack.stack.journal.backlog.entries).toBeGreaterThanOrEqual(220);
    stack.proxy.up();
    await stack.drained(30_000);
    const [count] = await stack.query<{ count: number }>(
      `SELECT count("nozzle_temp_c") FROM "raw"."telemetry"`,
    );
    expect(count?.count).toBe(200);
    // And again after the first copies are in InfluxDB.
    await publish(device, telemetryTopic("printer-0001"), {
      ts: now - 199,
      seq: 1,
      metrics: { nozzle_temp_c: 999 },
    });
    await stack.drained();
    const [after] = await stack.query<{ count: number; max: number }>(
      `SELECT count("nozzle_temp_c"), max("nozzle_temp_c") FROM "raw"."telemetry"`,
    );
    expect(after).toMatchObject({ count: 200, max: 209 });
  });

  test("a restart replays the journal into InfluxDB", async ({ stack }) => {
    stack.proxy.down();
    const device = await stack.connect("printer-0002");
    await publish(device, helloTopic("printer-0002"), { ...hello, kind: "printer", model: "FQ-Print Mk3" });
    const now = Date.now();
    for (let seq = 1; seq <= 50; seq++) {
      await publish(device, faultTopic("printer-0002"), {
        ts: now + seq,
        seq,
        code: "LAYER_SHIFT",
        severity: "error",
      });
    }
    await device.endAsync();
    await stack.restart();
    expect(stack.stack.journal.backlog.entries).toBeGreaterThanOrEqual(51);
    stack.proxy.up();
    await stack.drained(30_000);
    const rows = await stack.query<{ count: number }>(
      `SELECT count("seq") FROM "long"."fault" WHERE "model" = 'FQ-Print Mk3'`,
    );
    expect(rows[0]?.count).toBe(50);
  });

  test("closing the stack flushes the journal into InfluxDB first", async ({ stack }) => {
    await stack.restart({ FIELDQ_FLUSH_INTERVAL: "1h" });
    const device = await stack.connect("printer-0004");
    const now = Date.now();
    for (let seq = 1; seq <= 5; seq++) {
      await publish(device, faultTopic("printer-0004"), {
        ts: now + seq,
        seq,
        code: "FAN_FAILURE",
        severity: "error",
      });
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(await stack.query(`SELECT "seq" FROM "long"."fault"`)).toEqual([]);
    await stack.restart();
    const rows = await stack.query<{ seq: number }>(`SELECT "seq" FROM "long"."fault"`);
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  test("device metadata survives a restart", async ({ stack }) => {
    const device = await stack.connect("printer-0003");
    await publish(device, helloTopic("printer-0003"), { ...hello, kind: "printer", model: "FQ-Print Mini" });
    await device.endAsync();
    await stack.restart();
    const again = await stack.connect("printer-0003");
    await publish(again, faultTopic("printer-0003"), {
      ts: Date.now(),
      seq: 9,
      code: "NOZZLE_CLOG",
      severity: "error",
    });
    await stack.drained();
    const [fault] = await stack.query<{ model: string; kind: string }>(
      `SELECT "seq", "model", "kind" FROM "long"."fault"`,
    );
    expect(fault).toMatchObject({ model: "FQ-Print Mini", kind: "printer" });
  });

  test("at the journal's bound new messages go unacknowledged and nothing stored is dropped", async ({
    stack,
  }) => {
    await stack.restart({ FIELDQ_JOURNAL_MAX_BYTES: "4000" });
    stack.proxy.down();
    const device = await stack.connect("modem-0200");
    const now = Date.now();
    let acked = 0;
    let refusedAt: number | undefined;
    for (let seq = 1; seq <= 40 && refusedAt === undefined; seq++) {
      const ack = device
        .publishAsync(
          telemetryTopic("modem-0200"),
          json({ ts: now + seq, seq, metrics: { snr_margin_db: seq } }),
          { qos: 1 },
        )
        .then(
          () => true,
          () => false,
        );
      const outcome = await Promise.race([
        ack,
        new Promise<boolean>((r) => setTimeout(() => r(false), 1000)),
      ]);
      if (outcome) acked++;
      else refusedAt = seq;
    }
    expect(refusedAt).toBeDefined();
    expect(acked).toBeGreaterThan(0);
    expect(await stack.metrics.messagesRefused.get()).toMatchObject({
      values: [{ labels: { reason: "journal_full" } }],
    });
    stack.proxy.up();
    await stack.drained(30_000);
    const [count] = await stack.query<{ count: number }>(
      `SELECT count("snr_margin_db") FROM "raw"."telemetry"`,
    );
    expect(count?.count).toBe(acked);
  });
});
