import { readFile } from "node:fs/promises";
import type { MqttClient } from "mqtt";
import { test as base, describe, expect, onTestFinished } from "vitest";
import { faultTopic, telemetryTopic } from "../../contract/topics.js";
import { setAsideFile } from "../../ingest/writer.js";
import { createInfluxDeviceServices } from "../../services/devices.js";
import { startTestStack, type TestStack } from "../support/stack.js";

// Issue 9: nothing one device sends may make another device's acknowledged data unstorable, or hide it.

/** A fair share generous enough that 1,500 messages arrive at once: fairness is not what is tested here. */
const FAIR_SHARE = { FIELDQ_DEVICE_RATE: "100000", FIELDQ_DEVICE_BURST: "100000" };

const test = base.extend<{ stack: TestStack }>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  stack: async ({}, use) => {
    const stack = await startTestStack("integrity", {
      ...FAIR_SHARE,
      // Shorter than the clock-skew bound, so a trusted device time can lie beyond it (see set-aside below).
      FIELDQ_RAW_RETENTION: "1d",
    });
    await use(stack);
    await stack.close();
  },
});

async function publish(client: MqttClient, topic: string, payload: unknown) {
  await client.publishAsync(topic, JSON.stringify(payload), { qos: 1 });
}

const setAside = async (stack: TestStack) => (await stack.metrics.pointsSetAside.get()).values;

/** Every stored value of one metric, oldest first, with its device. */
async function stored(stack: TestStack, metric: string) {
  const rows = await stack.query<{ device: string; value: unknown }>(
    `SELECT "${metric}" AS "value", "device" FROM "raw"."telemetry" ORDER BY time`,
  );
  return rows.map((r) => [r.device, r.value]);
}

describe("a metric's stored type is fixed by fieldq, not by the first device of a shard", () => {
  test.for<[string, Array<number | boolean>, Array<number | boolean>]>([
    ["boolean then number", [true], [7.5, 8, -1]],
    ["number then boolean", [7.5, 8], [true, false]],
    ["integer-looking then fractional", [5, 6], [5.5, 1e-7, 1e21]],
    ["fractional then integer-looking", [0.5], [5, 0, -3]],
  ])("%s, from two devices: every acknowledged sample is stored", async ([, first, second], { stack }) => {
    const a = await stack.connect("modem-0001");
    const b = await stack.connect("modem-0002");
    const ts = Date.now() - 60_000;
    for (const [i, value] of first.entries())
      await publish(a, telemetryTopic("modem-0001"), {
        ts: ts + i,
        seq: i,
        metrics: { snr_margin_db: value },
      });
    await stack.drained();
    for (const [i, value] of second.entries())
      await publish(b, telemetryTopic("modem-0002"), {
        ts: ts + 100 + i,
        seq: i,
        metrics: { snr_margin_db: value },
      });
    await stack.drained();
    const asStored = (v: number | boolean) => (v === true ? 1 : v === false ? 0 : v);
    expect(await stored(stack, "snr_margin_db")).toEqual([
      ...first.map((v) => ["modem-0001", asStored(v)]),
      ...second.map((v) => ["modem-0002", asStored(v)]),
    ]);
    expect(await setAside(stack)).toEqual([]);
  });

  test("booleans and numbers of one metric within one telemetry batch are all stored", async ({ stack }) => {
    const device = await stack.connect("modem-0003");
    const ts = Date.now() - 60_000;
    const values = [true, 3.5, false, 7, true];
    await publish(
      device,
      telemetryTopic("modem-0003"),
      values.map((v, i) => ({ ts: ts + i, seq: 10 + i, metrics: { wan_up: v } })),
    );
    await stack.drained();
    expect(await stored(stack, "wan_up")).toEqual([1, 3.5, 0, 7, 1].map((v) => ["modem-0003", v]));
    expect(await setAside(stack)).toEqual([]);
  });
});

/** A fault as large as the contract allows, nearly all of it quotes: about 35 KB of line protocol. */
function quoteFault(seq: number, ts: number) {
  const quotes = (n: number) => '"'.repeat(n);
  const context = Object.fromEntries(
    Array.from({ length: 32 }, (_, i) => [`k${String(i).padStart(2, "0")}_${"x".repeat(60)}`, quotes(256)]),
  );
  return { ts, seq, code: "QUOTES", severity: "error", message: quotes(1024), context };
}

describe("the writer can never wedge", () => {
  test("1,500 faults full of quotes from one device (beyond InfluxDB's 25 MB body limit together) and another device's telemetry are all stored", {
    timeout: 180_000,
  }, async () => {
    // A flush interval of an hour holds everything in the journal until the restart below, so the writer
    // meets it all as one backlog, as after an outage.
    const stack = await startTestStack("wedge", { ...FAIR_SHARE, FIELDQ_FLUSH_INTERVAL: "1h" });
    try {
      const noisy = await stack.connect("printer-0666");
      const ts = Date.now() - 3_600_000;
      expect(JSON.stringify(quoteFault(1, ts)).length).toBeGreaterThan(18_000);
      const sends: Array<Promise<unknown>> = [];
      for (let seq = 1; seq <= 1500; seq++)
        sends.push(publish(noisy, faultTopic("printer-0666"), quoteFault(seq, ts + seq)));
      await Promise.all(sends);
      const quiet = await stack.connect("modem-0004");
      for (let seq = 1; seq <= 20; seq++)
        await publish(quiet, telemetryTopic("modem-0004"), {
          ts: ts + seq,
          seq,
          metrics: { snr_margin_db: seq },
        });
      await stack.restart({ FIELDQ_FLUSH_INTERVAL: "50ms" });
      await stack.drained(150_000);

      const [faults] = await stack.query<{ n: number }>(
        `SELECT count("seq") AS "n" FROM "long"."fault" WHERE "device"::tag = 'printer-0666'`,
      );
      expect(faults?.n).toBe(1500);
      expect((await stored(stack, "snr_margin_db")).length).toBe(20);
      expect(await setAside(stack)).toEqual([]);
    } finally {
      await stack.close();
    }
  });
});

describe("a point InfluxDB refuses after its PUBACK", () => {
  test("is set aside (counted, in its policy's file, recorded as storage_refused) and the rest is stored", async ({
    stack,
  }) => {
    const device = await stack.connect("modem-0010");
    const now = Date.now();
    // A trusted device time (within the 60-day skew bound) beyond the 1-day raw retention: InfluxDB answers
    // 400 for this one point alone.
    const old = now - 2 * 86_400_000;
    await publish(device, telemetryTopic("modem-0010"), [
      { ts: now - 2, seq: 1, metrics: { v: 1 } },
      { ts: old, seq: 2, metrics: { v: 2 } },
      { ts: now - 1, seq: 3, metrics: { v: 3 } },
    ]);
    await stack.drained();
    expect((await stored(stack, "v")).map(([, v]) => v)).toEqual([1, 3]);
    expect(await setAside(stack)).toMatchObject([{ value: 1, labels: { reason: "refused" } }]);
    const file = await readFile(setAsideFile(stack.config.ingest.dataDir, "raw"), "utf8");
    expect(file).toMatch(/^# set-aside \S+ reason=refused\ntelemetry,device=modem-0010,.* v=2,seq=2i,.*\n$/);
    const rejections = await stack.query<{ reason: string; topic: string; detail: string }>(
      `SELECT "reason", "topic", "detail" FROM "long"."rejection"`,
    );
    expect(rejections).toMatchObject([{ reason: "storage_refused", topic: "telemetry" }]);
    expect(rejections[0]?.detail).toContain("retention");
  });
});

describe("a point's identity holds the message's whole seq", () => {
  const big = 1_000_007;

  test("seqs 7 and 1,000,007 at the same millisecond, as two messages, are both stored", async ({
    stack,
  }) => {
    const device = await stack.connect("modem-0005");
    const ts = Date.now() - 60_000;
    await publish(device, telemetryTopic("modem-0005"), { ts, seq: 7, metrics: { v: 7 } });
    await publish(device, telemetryTopic("modem-0005"), { ts, seq: big, metrics: { v: big } });
    await publish(device, faultTopic("modem-0005"), { ts, seq: 8, code: "A", severity: "info" });
    await publish(device, faultTopic("modem-0005"), { ts, seq: big + 1, code: "A", severity: "info" });
    await stack.drained();
    expect((await stored(stack, "v")).map(([, v]) => v).sort()).toEqual([7, big].sort());
    const faults = await stack.query<{ seq: number }>(`SELECT "seq" FROM "long"."fault"`);
    expect(faults.map((f) => f.seq).sort((x, y) => x - y)).toEqual([8, big + 1]);
  });

  test("seqs 7 and 1,000,007 at the same millisecond, within one batch, are both stored", async ({
    stack,
  }) => {
    const device = await stack.connect("modem-0006");
    const ts = Date.now() - 60_000;
    await publish(device, telemetryTopic("modem-0006"), [
      { ts, seq: 7, metrics: { v: 7 } },
      { ts, seq: big, metrics: { v: big } },
    ]);
    await stack.drained();
    expect((await stored(stack, "v")).map(([, v]) => v).sort()).toEqual([7, big].sort());
  });

  test("samples stamped at receive time because the clock was off keep the whole seq too", async ({
    stack,
  }) => {
    const device = await stack.connect("modem-0007");
    // ts 0 is beyond the past skew bound: both samples are stamped with the message's one receive time.
    await publish(device, telemetryTopic("modem-0007"), [
      { ts: 0, seq: 7, metrics: { v: 7 } },
      { ts: 0, seq: big, metrics: { v: big } },
    ]);
    await stack.drained();
    expect((await stored(stack, "v")).map(([, v]) => v).sort()).toEqual([7, big].sort());
  });
});

describe("a stored field named like a tag hides nothing", () => {
  test("a telemetry field named device (old data, before the contract reserved it) leaves the device's telemetry and summary readable", async ({
    stack,
  }) => {
    const device = await stack.connect("modem-0008");
    const ts = Date.now() - 60_000;
    await publish(device, telemetryTopic("modem-0008"), { ts, seq: 1, metrics: { snr_margin_db: 7.5 } });
    await stack.drained();
    // Written around the contract, as a version that did not reserve tag keys could have stored it.
    const response = await fetch(
      `${stack.db.url}/write?${new URLSearchParams({ db: stack.db.database, rp: "raw", precision: "ms" })}`,
      { method: "POST", body: `telemetry,device=modem-0009 device=1 ${ts}` },
    );
    expect(response.status).toBe(204);

    const services = createInfluxDeviceServices(stack.influx);
    onTestFinished(() => services.close());
    const store = services.devices;
    const series = await store.telemetry({
      device: "modem-0008",
      metric: "snr_margin_db",
      fn: "last",
      fromMs: ts - 1000,
      toMs: ts + 1000,
      everyMs: 2000,
    });
    expect(series).toMatchObject({ ok: true, value: { points: [{ value: 7.5 }] } });
    const summary = await store.deviceSummary("modem-0008");
    expect(summary?.metrics.values).toEqual({ snr_margin_db: 7.5 });
    expect(summary?.lastReport).not.toBeNull();
  });
});
