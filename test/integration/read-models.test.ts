import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import mqtt, { type MqttClient } from "mqtt";
import { test as base, describe, expect } from "vitest";
import { deviceKey } from "../../contract/device-key.js";
import { faultTopic, helloTopic, statusTopic, telemetryTopic } from "../../contract/topics.js";
import { deviceStatePoint, unknownMeta } from "../../ingest/to-points.js";
import { silentLogger } from "../../observe/logger.js";
import { startIngestBroker } from "../../stack/start-stack.js";
import { createInflux, createPointWriter, ensureSchema } from "../../storage/influx.js";
import { hashedSlot } from "../../storage/schema.js";
import { testDatabase } from "../support/influx.js";
import { startTestStack, TEST_SECRET, type TestStack, testConfig } from "../support/stack.js";
import { startTcpProxy } from "../support/tcp-proxy.js";

// The read models the ingest keeps (docs/storage.md "Read models"): device_state and fault_list, written
// through the journal like every other point.

const test = base.extend<{ stack: TestStack }>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  stack: async ({}, use) => {
    const stack = await startTestStack("read_models");
    await use(stack);
    await stack.close();
  },
});

const hello = {
  kind: "modem",
  model: "FQ-Modem 7590",
  firmware: "7.57",
  hardware: "B",
  serial: "M7590-0001",
  region: "eu-west",
};

async function publish(client: MqttClient, topic: string, payload: unknown) {
  await client.publishAsync(topic, JSON.stringify(payload), { qos: 1 });
}

type StateRow = Record<string, unknown> & { time: { getNanoTime(): string } };

/** The point's time in ns: the device's slot. */
const slotOf = (row: StateRow) => Number(row.time.getNanoTime());

const states = (stack: Pick<TestStack, "query">) =>
  stack.query<StateRow>(`SELECT * FROM "long"."device_state"`);

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("device_state", () => {
  test("holds a device's hello, last report, presence and first time, one point per device", async ({
    stack,
  }) => {
    const before = Date.now();
    const device = await stack.connect("modem-0001");
    await publish(device, helloTopic("modem-0001"), hello);
    await publish(device, telemetryTopic("modem-0001"), { ts: Date.now(), seq: 1, metrics: { snr: 7.5 } });
    await publish(device, faultTopic("modem-0001"), {
      ts: Date.now(),
      seq: 2,
      code: "DSL_RESYNC",
      severity: "warning",
    });
    // The disconnect is a presence change: written at once, with the last report the ingest holds.
    await device.endAsync();
    const rows = await until(
      async () => {
        await stack.drained();
        return states(stack);
      },
      (r) => r[0]?.presence === "offline",
    );
    expect(rows).toHaveLength(1);
    const [row] = rows as [StateRow];
    expect(slotOf(row)).toBe(hashedSlot(row.device as string));
    expect(row).toMatchObject({
      device: "modem-0001",
      kind: "modem",
      model: "FQ-Modem 7590",
      firmware: "7.57",
      hardware: "B",
      serial: "M7590-0001",
      region: "eu-west",
      presence: "offline",
      presence_source: "broker",
    });
    // The hello did not say: left out (no point of the series has it, so not even a column).
    expect(row.isp ?? null).toBeNull();
    const ms = (field: string) => row[field] as number;
    expect(ms("first_ms")).toBeGreaterThanOrEqual(before);
    // The connect came first, then the hello, telemetry and fault, then the disconnect.
    expect(ms("first_ms")).toBeLessThanOrEqual(ms("last_report_ms"));
    expect(ms("last_report_ms")).toBeLessThanOrEqual(ms("presence_ms"));
    expect(ms("last_seen_ms")).toBe(ms("presence_ms"));
    expect(ms("updated_ms")).toBe(ms("presence_ms"));
  });

  test("keeps every device's slot across a restart, and a new device takes its own", async ({ stack }) => {
    const a = await stack.connect("modem-0001");
    await publish(a, helloTopic("modem-0001"), hello);
    const b = await stack.connect("modem-0002");
    await publish(b, helloTopic("modem-0002"), { ...hello, serial: "M7590-0002" });
    await stack.drained();
    const slots = async () =>
      Object.fromEntries((await states(stack)).map((r) => [r.device as string, slotOf(r)]));
    const first = await slots();
    expect(first).toEqual({
      "modem-0001": hashedSlot("modem-0001"),
      "modem-0002": hashedSlot("modem-0002"),
    });

    await stack.restart();
    const again = await stack.connect("modem-0002");
    await publish(again, telemetryTopic("modem-0002"), { ts: Date.now(), seq: 5, metrics: { snr: 7 } });
    const c = await stack.connect("modem-0003");
    await publish(c, helloTopic("modem-0003"), { ...hello, serial: "M7590-0003" });
    await stack.drained();
    expect(await slots()).toEqual({ ...first, "modem-0003": hashedSlot("modem-0003") });
    // What the restarted ingest had not seen yet is kept from the earlier point.
    const rows = await states(stack);
    expect(rows.find((r) => r.device === "modem-0002")).toMatchObject({ serial: "M7590-0002" });
  });

  test("a rewrite that leaves fields out keeps the stored ones, as the ingest relies on after a restart", async ({
    stack,
  }) => {
    await ensureSchema(stack.influx, stack.db);
    const write = createPointWriter(stack.db);
    const record = { ...unknownMeta(), ...hello, isp: "Telco", slot: 5 };
    const presence = { state: "online" as const, atMs: 1_000, source: "broker" as const };
    await write([
      deviceStatePoint({ deviceId: "modem-0005", record, activity: { presence }, updatedMs: 1_000 }),
    ]);
    await write([
      deviceStatePoint({
        deviceId: "modem-0005",
        record: { ...record, isp: "unknown" },
        activity: { lastReportMs: 2_000 },
        updatedMs: 2_000,
        cleared: ["isp"],
      }),
    ]);
    const rows = await states(stack);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      presence: "online",
      presence_ms: 1_000,
      last_report_ms: 2_000,
      updated_ms: 2_000,
      isp: "unknown",
      serial: "M7590-0001",
    });
  });
});

describe("FIELDQ_DEVICE_STATE_EVERY", () => {
  test.for([
    ["0", true],
    ["1h", false],
  ] as const)("%s: a report right after the first one is stored: %s", async ([every, stored]) => {
    const stack = await startTestStack("read_models_every", { FIELDQ_DEVICE_STATE_EVERY: every });
    try {
      const device = await stack.connect("modem-0001");
      await publish(device, telemetryTopic("modem-0001"), { ts: Date.now(), seq: 1, metrics: { snr: 7 } });
      await new Promise((r) => setTimeout(r, 20));
      const before = Date.now();
      await publish(device, telemetryTopic("modem-0001"), { ts: Date.now(), seq: 2, metrics: { snr: 7 } });
      await stack.drained();
      const [row] = await states(stack);
      expect((row?.last_report_ms as number) >= before).toBe(stored);
    } finally {
      await stack.close();
    }
  });
});

describe("fault_list", () => {
  test("holds every fault again, tagged for the list, with the device as a field", async ({ stack }) => {
    const now = Date.now();
    const a = await stack.connect("modem-0001");
    await publish(a, helloTopic("modem-0001"), hello);
    const b = await stack.connect("modem-0002");
    await publish(b, helloTopic("modem-0002"), { ...hello, serial: "M7590-0002", region: "us-east" });
    // Two devices' faults in one millisecond with the same tags: both are listed.
    const fault = { ts: now, seq: 1, code: "DSL_RESYNC", severity: "warning", message: "line retrained" };
    await publish(a, faultTopic("modem-0001"), { ...fault, component: "dsl", context: { attempts: 3 } });
    await publish(b, faultTopic("modem-0002"), fault);
    await stack.drained();
    const rows = await stack.query<Record<string, unknown>>(
      `SELECT * FROM "long"."fault_list" WHERE "model" = 'FQ-Modem 7590' ORDER BY time DESC`,
    );
    expect(rows.map((r) => r.device).sort()).toEqual(["modem-0001", "modem-0002"]);
    expect(rows.find((r) => r.device === "modem-0001")).toMatchObject({
      kind: "modem",
      firmware: "7.57",
      code: "DSL_RESYNC",
      severity: "warning",
      region: "eu-west",
      component: "dsl",
      message: "line retrained",
      context: '{"attempts":3}',
      seq: 1,
    });
    // Its series are the list's filters only: no device tag.
    const keys = await stack.query<{ tagKey: string }>(`SHOW TAG KEYS FROM "long"."fault_list"`);
    expect(keys.map((k) => k.tagKey).sort()).toEqual(["code", "firmware", "kind", "model", "severity"]);
    // The rollups count the fault measurement alone.
    const [faults] = await stack.query<{ count: number }>(`SELECT count("seq") FROM "long"."fault"`);
    expect(faults?.count).toBe(2);
  });

  test("a redelivered fault is listed once", async ({ stack }) => {
    const a = await stack.connect("modem-0001");
    const fault = { ts: Date.now(), seq: 9, code: "WAN_DOWN", severity: "error" };
    await publish(a, faultTopic("modem-0001"), fault);
    await stack.drained();
    await publish(a, faultTopic("modem-0001"), fault);
    await stack.drained();
    const [listed] = await stack.query<{ count: number }>(`SELECT count("seq") FROM "long"."fault_list"`);
    expect(listed?.count).toBe(1);
  });
});

describe("killed with kill -9", () => {
  test("loses no acknowledged state or fault: the next start writes them from the journal", async () => {
    const db = await testDatabase("read_models_kill");
    const proxy = await startTcpProxy(new URL(db.url));
    const dataDir = await mkdtemp(join(tmpdir(), "fieldq-read-models-"));
    // InfluxDB is unreachable while the first process runs: everything it acknowledges is in its journal.
    proxy.down();
    const child = spawn("node", ["--import", "tsx", "cli/fieldq.ts", "broker"], {
      env: {
        ...process.env,
        FIELDQ_LOG_FORMAT: "json",
        FIELDQ_LOG_LEVEL: "info",
        FIELDQ_DEVICE_SECRET: TEST_SECRET,
        FIELDQ_INFLUX_URL: proxy.url,
        FIELDQ_INFLUX_DB: db.database,
        FIELDQ_MQTT_HOST: "127.0.0.1",
        FIELDQ_MQTT_PORT: "0",
        FIELDQ_DATA_DIR: dataDir,
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const influx = createInflux(db);
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.once("exit", (code) => reject(new Error(`fieldq broker exited with ${code}`)));
        createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (text) => {
          const line = JSON.parse(text) as { port?: unknown };
          if (typeof line.port === "number") resolve(line.port);
        });
      });
      const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: "modem-0001",
        username: "modem-0001",
        password: deviceKey(TEST_SECRET, "modem-0001"),
        protocolVersion: 4,
        reconnectPeriod: 0,
      });
      await publish(device, helloTopic("modem-0001"), hello);
      for (let seq = 1; seq <= 5; seq++)
        await publish(device, faultTopic("modem-0001"), {
          ts: Date.now(),
          seq,
          code: "DSL_RESYNC",
          severity: "warning",
        });
      await publish(device, statusTopic("modem-0001"), { state: "online" });
      child.kill("SIGKILL");
      await once(child, "close");
      await device.endAsync(true);

      proxy.up();
      const config = testConfig({ ...db, url: proxy.url }, dataDir);
      const stack = await startIngestBroker(config, { logger: silentLogger });
      try {
        // Empty until the writer has created the database.
        const query = async <T>(q: string) => [...(await influx.query<T>(q).catch(() => [] as T[]))] as T[];
        const listed = await until(
          () => query<{ count: number }>(`SELECT count("seq") FROM "long"."fault_list"`),
          (r) => r[0]?.count === 5,
        );
        expect(listed[0]?.count).toBe(5);
        const rows = await until(
          () => query<Record<string, unknown>>(`SELECT * FROM "long"."device_state"`),
          (r) => r[0]?.presence_source === "device",
        );
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({
          device: "modem-0001",
          serial: "M7590-0001",
          presence: "online",
          presence_source: "device",
        });
        expect(rows[0]?.last_report_ms).toBe(rows[0]?.presence_ms);
      } finally {
        await stack.close();
      }
    } finally {
      child.kill("SIGKILL");
      await proxy.close();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
