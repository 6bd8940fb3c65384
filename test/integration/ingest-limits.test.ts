import type { MqttClient } from "mqtt";
import { test as base, describe, expect, onTestFinished } from "vitest";
import { createApp } from "../../api/app.js";
import type { Role } from "../../config/env.js";
import { TelemetrySeries } from "../../contract/api/devices.js";
import { errorsTopic, faultTopic, helloTopic, telemetryTopic } from "../../contract/topics.js";
import { silentLogger } from "../../observe/logger.js";
import { createMetrics } from "../../observe/metrics.js";
import { createInfluxDeviceServices } from "../../services/devices.js";
import { startTestStack, type TestStack } from "../support/stack.js";

// The ingest boundary against the real broker and InfluxDB: what one device sends must not cost another
// device its data. Each story has a "bad" device and a "good" one beside it.

/** Devices here publish quickly on purpose; the broker's fair share is tested elsewhere. */
const QUICK = { FIELDQ_DEVICE_RATE: "10000", FIELDQ_DEVICE_BURST: "10000" };

const test = base.extend<{ stack: TestStack }>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  stack: async ({}, use) => {
    const stack = await startTestStack("ingest_limits", {
      ...QUICK,
      FIELDQ_MAX_DEVICE_LABEL_VALUES: "5",
      FIELDQ_MAX_POINT_BYTES: "8000",
    });
    await use(stack);
    await stack.close();
  },
});

type DeviceError = { reason: string; message: string; topic: string };

const hello = (firmware: string) => ({
  kind: "modem",
  model: "FQ-Modem 7590",
  firmware,
  hardware: "B",
  serial: "SN-1",
  region: "eu-west",
  isp: "Telco",
});

async function publish(client: MqttClient, topic: string, payload: unknown) {
  const body = Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
  await client.publishAsync(topic, body, { qos: 1 });
}

/** Connects a device that collects what the broker tells it on its errors topic. */
async function device(stack: TestStack, id: string) {
  const client = await stack.connect(id);
  const errors: DeviceError[] = [];
  client.on("message", (topic, payload) => {
    if (topic === errorsTopic(id)) errors.push(JSON.parse(payload.toString()));
  });
  await client.subscribeAsync(errorsTopic(id), { qos: 0 });
  return { client, errors };
}

/** Waits until `count` errors arrived (they follow the PUBACK closely but not in lockstep). */
async function errorsOf(errors: DeviceError[], count: number): Promise<DeviceError[]> {
  const deadline = Date.now() + 10_000;
  while (errors.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return errors;
}

const tagValues = async (stack: TestStack, measurement: string, key: string) =>
  (await stack.query<{ value: string }>(`SHOW TAG VALUES FROM ${measurement} WITH KEY = "${key}"`))
    .map((r) => r.value)
    .sort();

describe("names that cannot collide", () => {
  test("refuses a metric named device, and another device's telemetry is still served by the API", async ({
    stack,
  }) => {
    const now = Date.now();
    const bad = await device(stack, "modem-0666");
    const good = await device(stack, "modem-0001");
    await publish(good.client, telemetryTopic("modem-0001"), {
      ts: now - 1000,
      seq: 1,
      metrics: { snr_margin_db: 7.5 },
    });
    await publish(bad.client, telemetryTopic("modem-0666"), {
      ts: now - 1000,
      seq: 1,
      metrics: { device: 1 },
    });
    await publish(bad.client, telemetryTopic("modem-0666"), { ts: now - 900, seq: 2, metrics: { type: 1 } });
    await stack.drained();

    expect(await errorsOf(bad.errors, 2)).toEqual([
      expect.objectContaining({ reason: "invalid_schema", message: "metrics.device: is a reserved name" }),
      expect.objectContaining({ reason: "invalid_schema", message: "metrics.type: is a reserved name" }),
    ]);
    const services = createInfluxDeviceServices(stack.influx);
    onTestFinished(() => services.close());
    const app = createApp({
      devices: services.devices,
      faults: services.faults,
      tokens: new Map<string, Role>([["viewer-token-1", "viewer"]]),
      logger: silentLogger,
      metrics: createMetrics(),
    });
    const from = new Date(now - 60_000).toISOString();
    const to = new Date(now + 60_000).toISOString();
    const response = await app.request(
      `/api/v1/devices/modem-0001/telemetry?metric=snr_margin_db&fn=last&from=${from}&to=${to}&every=1h`,
      { headers: { authorization: "Bearer viewer-token-1" } },
    );
    expect(response.status).toBe(200);
    const series = TelemetrySeries.parse(await response.json());
    expect(series.points.map((p) => p.value).filter((v) => v !== null)).toEqual([7.5]);
  });
});

describe("cardinality under control", () => {
  test("refuses a device cycling firmware labels past its cap, while another device's new label and telemetry go through", async ({
    stack,
  }) => {
    const now = Date.now();
    const cycler = await device(stack, "modem-0100");
    for (let n = 0; n < 9; n++) await publish(cycler.client, helloTopic("modem-0100"), hello(`cycle-${n}`));
    const steady = await device(stack, "modem-0200");
    await publish(steady.client, helloTopic("modem-0200"), hello("3.0.0"));
    await publish(steady.client, telemetryTopic("modem-0200"), {
      ts: now,
      seq: 1,
      metrics: { snr_margin_db: 6 },
    });
    await stack.drained();

    const refused = await errorsOf(cycler.errors, 4);
    expect(refused).toHaveLength(4);
    for (const error of refused) {
      expect(error).toMatchObject({ reason: "over_limit", topic: helloTopic("modem-0100") });
      expect(error.message).toContain("FIELDQ_MAX_DEVICE_LABEL_VALUES");
    }
    expect(await tagValues(stack, `"long"."device"`, "firmware")).toEqual([
      "3.0.0",
      "cycle-0",
      "cycle-1",
      "cycle-2",
      "cycle-3",
      "cycle-4",
    ]);
    const telemetry = await stack.query<{ firmware: string; snr_margin_db: number }>(
      `SELECT "firmware", "snr_margin_db" FROM "raw"."telemetry" WHERE "device" = 'modem-0200'`,
    );
    expect(telemetry).toMatchObject([{ firmware: "3.0.0", snr_margin_db: 6 }]);
    expect(steady.errors).toEqual([]);
    expect(await stack.metrics.messagesRefused.get()).toMatchObject({
      values: [{ labels: { reason: "over_limit" }, value: 4 }],
    });
  });

  test("refuses a device sending 100 × 200 new metric names past its cap, and another device's metrics are stored", async ({
    stack,
  }) => {
    const now = Date.now();
    const flooder = await device(stack, "modem-0300");
    const first = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`m0_${i}`, i]));
    await publish(flooder.client, telemetryTopic("modem-0300"), { ts: now, seq: 0, metrics: first });
    // The other 99 at once: their refusals share the journal's syncs.
    await Promise.all(
      Array.from({ length: 99 }, (_, n) => {
        const metrics = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`m${n + 1}_${i}`, i]));
        return publish(flooder.client, telemetryTopic("modem-0300"), { ts: now, seq: n + 1, metrics });
      }),
    );
    const steady = await device(stack, "modem-0400");
    await publish(steady.client, telemetryTopic("modem-0400"), {
      ts: now,
      seq: 1,
      metrics: { snr_margin_db: 6, crc_errors: 2 },
    });
    await stack.drained();

    // The default cap of 300 new names per device: the first message's 200 fit, the second's would not.
    const refused = await errorsOf(flooder.errors, 99);
    expect(refused).toHaveLength(99);
    expect(refused[0]).toMatchObject({ reason: "over_limit" });
    expect(refused[0]?.message).toContain("FIELDQ_MAX_DEVICE_METRIC_NAMES");
    const fields = await stack.query<{ fieldKey: string }>(`SHOW FIELD KEYS FROM "raw"."telemetry"`);
    const names = fields.map((f) => f.fieldKey).filter((k) => /^m\d+_\d+$/.test(k));
    expect(names).toHaveLength(200);
    const stored = await stack.query<{ snr_margin_db: number; crc_errors: number }>(
      `SELECT "snr_margin_db", "crc_errors" FROM "raw"."telemetry" WHERE "device" = 'modem-0400'`,
    );
    expect(stored).toMatchObject([{ snr_margin_db: 6, crc_errors: 2 }]);
    expect(steady.errors).toEqual([]);
  });

  test("remembers what each device introduced across a restart", async ({ stack }) => {
    const now = Date.now();
    const cycler = await device(stack, "modem-0500");
    for (let n = 0; n < 5; n++) await publish(cycler.client, helloTopic("modem-0500"), hello(`before-${n}`));
    await stack.drained();
    expect(cycler.errors).toEqual([]);

    await stack.restart();
    const again = await device(stack, "modem-0500");
    await publish(again.client, helloTopic("modem-0500"), hello("after-0"));
    await publish(again.client, helloTopic("modem-0500"), hello("before-2"));
    await publish(again.client, telemetryTopic("modem-0500"), {
      ts: now,
      seq: 1,
      metrics: { snr_margin_db: 1 },
    });
    const other = await device(stack, "modem-0600");
    await publish(other.client, helloTopic("modem-0600"), hello("after-1"));
    await stack.drained();

    expect(await errorsOf(again.errors, 1)).toEqual([
      expect.objectContaining({ reason: "over_limit", topic: helloTopic("modem-0500") }),
    ]);
    expect(other.errors).toEqual([]);
    const telemetry = await stack.query<{ firmware: string }>(
      `SELECT "firmware", "snr_margin_db" FROM "raw"."telemetry" WHERE "device" = 'modem-0500'`,
    );
    expect(telemetry).toMatchObject([{ firmware: "before-2" }]);
  });
});

describe("the size of a stored point", () => {
  test("refuses a message whose point would be over FIELDQ_MAX_POINT_BYTES as too_large before it is journaled", async ({
    stack,
  }) => {
    const now = Date.now();
    const bad = await device(stack, "modem-0700");
    // 7 KB of payload, within the contract, but every quote of the context is escaped twice when stored.
    const context = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`c${i}`, '"'.repeat(200)]));
    const fault = { ts: now, seq: 1, code: "X", severity: "info", message: "quotes" };
    await publish(bad.client, faultTopic("modem-0700"), { ...fault, context });
    await publish(bad.client, faultTopic("modem-0700"), { ...fault, seq: 2, message: "fine" });
    await stack.drained();

    const [refusal] = await errorsOf(bad.errors, 1);
    expect(refusal).toMatchObject({ reason: "too_large", topic: faultTopic("modem-0700") });
    expect(refusal?.message).toMatch(
      /^its fault point would be \d+ bytes of line protocol, over the limit of 8000 \(FIELDQ_MAX_POINT_BYTES\)$/,
    );
    const faults = await stack.query<{ message: string }>(`SELECT "message" FROM "long"."fault"`);
    expect(faults.map((f) => f.message)).toEqual(["fine"]);
    // Its fault_list copy is as large: the message is refused once, and neither point is stored.
    const listed = await stack.query<{ message: string }>(`SELECT "message" FROM "long"."fault_list"`);
    expect(listed.map((f) => f.message)).toEqual(["fine"]);
    const refused = await stack.query<{ reason: string }>(
      `SELECT "reason", "bytes" FROM "long"."rejection" WHERE "device" = 'modem-0700'`,
    );
    expect(refused.map((r) => r.reason)).toEqual(["too_large"]);
  });
});

describe("validation at the boundary, through the real broker", () => {
  test("refuses invalid UTF-8 inside a string and a __proto__ key by name, and keeps the good messages", async ({
    stack,
  }) => {
    const now = Date.now();
    const bad = await device(stack, "modem-0800");
    const serial = JSON.stringify(hello("1.0")).split("SN-1");
    await publish(
      bad.client,
      helloTopic("modem-0800"),
      Buffer.concat([Buffer.from(serial[0] ?? ""), Buffer.from([0x53, 0xff]), Buffer.from(serial[1] ?? "")]),
    );
    await publish(
      bad.client,
      telemetryTopic("modem-0800"),
      Buffer.from(`{"ts":${now},"seq":1,"metrics":{"__proto__":1,"snr_margin_db":2}}`),
    );
    await publish(bad.client, telemetryTopic("modem-0800"), {
      ts: now,
      seq: 2,
      metrics: { snr_margin_db: 3 },
    });
    await stack.drained();

    expect(await errorsOf(bad.errors, 2)).toEqual([
      expect.objectContaining({
        reason: "invalid_json",
        message: "payload is not JSON: it is not valid UTF-8",
      }),
      expect.objectContaining({
        reason: "invalid_schema",
        message: 'metrics.__proto__: "__proto__" is not an allowed key',
      }),
    ]);
    expect(await stack.query(`SELECT * FROM "long"."device"`)).toEqual([]);
    const stored = await stack.query<{ snr_margin_db: number; seq: number }>(
      `SELECT "snr_margin_db", "seq" FROM "raw"."telemetry"`,
    );
    expect(stored).toMatchObject([{ snr_margin_db: 3, seq: 2 }]);
  });
});
