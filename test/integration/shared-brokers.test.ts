import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { openSharedState } from "../../broker/shared-state.js";
import type { CommandList, CommandView } from "../../contract/api/commands.js";
import {
  alertTopic,
  commandFilter,
  commandTopic,
  helloTopic,
  parseDeviceTopic,
  statusTopic,
  telemetryTopic,
} from "../../contract/topics.js";
import { silentLogger } from "../../observe/logger.js";
import {
  type FieldqHandle,
  type IngestBrokerHandle,
  startFieldq,
  startIngestBroker,
} from "../../stack/start-stack.js";
import { testDatabase } from "../support/influx.js";
import { type RedisServer, redisCommandCalls, redisCommands, startRedis } from "../support/redis.js";
import { deviceOptions, testConfig } from "../support/stack.js";

// Two fieldq brokers, each with its own data folder and journal, sharing aedes's state through one Debian
// redis-server (FIELDQ_REDIS_URL): publishes are routed between them, and a persistent session (subscriptions
// and the messages queued for it) lives in Redis, not in the broker the device was on.

const ALERT_USERNAME = "alerts:ops";
const ALERT_PASSWORD = "alert-password-0123456789";

const clients = new Set<mqtt.MqttClient>();

async function connectDevice(port: number, deviceId: string, options: mqtt.IClientOptions = {}) {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, deviceOptions(deviceId, options));
  clients.add(client);
  return client;
}

/** Commands the client gets, by command id, in order. */
function commandsOf(client: mqtt.MqttClient) {
  const got: Array<{ commandId: string; payload: string }> = [];
  client.on("message", (topic, payload) => {
    const parsed = parseDeviceTopic(topic);
    if (parsed?.channel === "cmd") got.push({ commandId: parsed.commandId, payload: payload.toString() });
  });
  return got;
}

/** Connects with clean false, listening for commands before the CONNACK: queued ones come right after it. */
async function resumeSession(port: number, deviceId: string) {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, deviceOptions(deviceId, { clean: false }));
  clients.add(client);
  const got = commandsOf(client);
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once("connect", (packet) => resolve(packet.sessionPresent));
    client.once("error", reject);
  });
  return { client, sessionPresent, got };
}

const closeClients = () => Promise.all([...clients].map((c) => c.endAsync(true).catch(() => {})));

describe("two brokers over one Redis", () => {
  let redis: RedisServer;
  let db: Awaited<ReturnType<typeof testDatabase>>;
  const dirs: string[] = [];
  const brokers: IngestBrokerHandle[] = [];
  /** Starts broker `index` (0 or 1) on its own data folder, again on the same one after a stop. */
  let start: (index: 0 | 1) => Promise<IngestBrokerHandle>;
  const port = (index: 0 | 1) => brokers[index]?.mqttPort ?? 0;

  beforeAll(async () => {
    redis = await startRedis();
    db = await testDatabase("shared_brokers");
    dirs.push(
      await mkdtemp(join(tmpdir(), "fieldq-shared-1-")),
      await mkdtemp(join(tmpdir(), "fieldq-shared-2-")),
    );
    start = async (index) => {
      const config = testConfig(db, dirs[index] ?? "", {
        FIELDQ_REDIS_URL: redis.url,
        FIELDQ_ALERT_MQTT_USERNAME: ALERT_USERNAME,
        FIELDQ_ALERT_MQTT_PASSWORD: ALERT_PASSWORD,
      });
      const broker = await startIngestBroker(config, { logger: silentLogger });
      brokers[index] = broker;
      return broker;
    };
    await start(0);
    await start(1);
  }, 60_000);

  afterAll(async () => {
    await closeClients();
    for (const broker of brokers) await broker?.close();
    await db?.drop();
    await redis?.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test("a command published through one broker reaches the device connected to the other", async () => {
    const device = await connectDevice(port(0), "modem-route-1");
    const got = commandsOf(device);
    await device.subscribeAsync(commandFilter("modem-route-1"), { qos: 1 });
    // The subscription reached the other broker through Redis: its publish is routed to the first.
    await brokers[1]?.broker.publish(commandTopic("modem-route-1", "c-route-1"), '{"type":"reboot","ts":1}');
    await expect.poll(() => got.map((c) => c.commandId), { timeout: 10_000 }).toEqual(["c-route-1"]);
    expect(got[0]?.payload).toBe('{"type":"reboot","ts":1}');
    // Only the broker holding the connection sends it commands (dispatch runs per broker).
    expect(brokers[0]?.broker.isSubscribed("modem-route-1")).toBe(true);
    expect(brokers[1]?.broker.isSubscribed("modem-route-1")).toBe(false);
  }, 30_000);

  test("an alert published through one broker reaches the alert subscriber on the other", async () => {
    const pager = await mqtt.connectAsync(`mqtt://127.0.0.1:${port(1)}`, {
      clientId: "alerts:pager-shared",
      username: ALERT_USERNAME,
      password: ALERT_PASSWORD,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.add(pager);
    const got: string[] = [];
    pager.on("message", (topic) => got.push(topic));
    await pager.subscribeAsync("fieldq/alerts/#", { qos: 1 });
    await brokers[0]?.broker.publish(alertTopic("critical", "shared-rule"), '{"rule":"shared-rule"}');
    await expect.poll(() => got, { timeout: 10_000 }).toEqual([alertTopic("critical", "shared-rule")]);
  }, 30_000);

  test("what a device publishes stays in its broker's process: no Redis command per message", async () => {
    const id = "modem-uplink-local";
    const device = await connectDevice(port(0), id);
    const before = await redisCommands(redis.port);
    for (let seq = 1; seq <= 50; seq++) {
      const telemetry = { ts: Date.now(), seq, metrics: { snr_margin_db: 7 } };
      await device.publishAsync(telemetryTopic(id), JSON.stringify(telemetry), { qos: 1 });
    }
    // Nobody may subscribe to a device's uplink (broker/acl.ts); aedes's heartbeats may add one or two.
    expect((await redisCommands(redis.port)) - before).toBeLessThan(10);
  }, 30_000);

  test("a device's SUBSCRIBE scans no retained messages in Redis", async () => {
    const scans = await redisCommandCalls(redis.port, "hscan");
    const id = "modem-subscribe-scan";
    const device = await connectDevice(port(0), id);
    await device.subscribeAsync([commandFilter(id)], { qos: 1 });
    // aedes asks for the retained messages after the SUBACK; an echo through the broker comes after that.
    const got = commandsOf(device);
    await brokers[0]?.broker.publish(commandTopic(id, "c-after-subscribe"), "{}");
    await expect.poll(() => got.length, { timeout: 10_000 }).toBe(1);
    expect(await redisCommandCalls(redis.port, "hscan")).toBe(scans);
  }, 30_000);

  test("a persistent session moves to the other broker with its subscription and what was queued while away", async () => {
    const id = "modem-session-move";
    const first = await connectDevice(port(0), id, { clean: false });
    await first.subscribeAsync(commandFilter(id), { qos: 1 });
    await first.endAsync();
    // Queued in Redis for the session while the device is away, published through the broker it was not on.
    await brokers[1]?.broker.publish(commandTopic(id, "c-away-1"), '{"type":"reboot","ts":2}');

    const { sessionPresent, got } = await resumeSession(port(1), id);
    expect(sessionPresent).toBe(true);
    await expect.poll(() => got.map((c) => c.commandId), { timeout: 10_000 }).toEqual(["c-away-1"]);
    // No SUBSCRIBE on this connection: the broker read the session's command subscription from Redis.
    await expect.poll(() => brokers[1]?.broker.isSubscribed(id), { timeout: 10_000 }).toBe(true);
    expect(brokers[0]?.broker.isSubscribed(id)).toBe(false);
  }, 30_000);

  test("a persistent session outlives its broker's restart, and gets what was published while it was down", async () => {
    const id = "modem-session-restart";
    const first = await connectDevice(port(0), id, { clean: false });
    await first.subscribeAsync(commandFilter(id), { qos: 1 });
    const dropped = new Promise<void>((resolve) => first.once("close", () => resolve()));
    await brokers[0]?.close();
    await dropped;
    await brokers[1]?.broker.publish(commandTopic(id, "c-down-1"), '{"type":"reboot","ts":3}');
    await start(0);

    const { sessionPresent, got } = await resumeSession(port(0), id);
    expect(sessionPresent).toBe(true);
    await expect.poll(() => got.map((c) => c.commandId), { timeout: 10_000 }).toEqual(["c-down-1"]);
    await expect.poll(() => brokers[0]?.broker.isSubscribed(id), { timeout: 10_000 }).toBe(true);
  }, 30_000);

  test("a device that moves to the other broker is left online there, not offline by the one it left", async () => {
    const id = "modem-presence-move";
    const will = {
      topic: statusTopic(id),
      payload: Buffer.from('{"state":"offline"}'),
      qos: 1 as const,
      retain: false,
    };
    const first = await connectDevice(port(0), id, { will });
    const taken = new Promise<void>((resolve) => first.once("close", () => resolve()));
    clients.delete(first);
    await connectDevice(port(1), id);
    // The first broker closes its connection when the second announces the same client id [MQTT-3.1.4-2].
    await taken;
    const presence = async () => {
      const q = `SELECT "state", "source" FROM "long"."presence" WHERE "device" = '${id}'`;
      const response = await fetch(`${db.url}/query?${new URLSearchParams({ db: db.database, q })}`);
      const body = (await response.json()) as { results: Array<{ series?: Array<{ values: unknown[][] }> }> };
      return (body.results[0]?.series?.[0]?.values ?? []).map(([, state]) => state);
    };
    await expect.poll(presence, { timeout: 15_000 }).toHaveLength(2);
    // Online on the first, online on the second, and nothing from the first broker's close of the connection
    // it lost: no offline presence and no will, whichever broker got there first.
    // Had either come, it would be in InfluxDB by now: the first broker closed the connection 2 s ago, and
    // the writer writes what a journal holds within a flush interval (250 ms).
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(await presence()).toEqual(["online", "online"]);
  }, 30_000);
});

describe("two fieldq processes (broker and API each) over one Redis and one InfluxDB", () => {
  let redis: RedisServer;
  let db: Awaited<ReturnType<typeof testDatabase>>;
  const dirs: string[] = [];
  const processes: FieldqHandle[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    db = await testDatabase("shared_fieldq");
    for (const label of ["1", "2"]) {
      const dir = await mkdtemp(join(tmpdir(), `fieldq-shared-fq${label}-`));
      dirs.push(dir);
      const config = testConfig(db, dir, { FIELDQ_REDIS_URL: redis.url });
      processes.push(await startFieldq(config, { logger: silentLogger }, { broker: true, api: true }));
    }
  }, 60_000);

  afterAll(async () => {
    await closeClients();
    for (const p of processes) await p.close();
    await db?.drop();
    await redis?.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  const OPERATOR = "operator-token-1";
  async function api(process: FieldqHandle, method: "GET" | "POST", path: string, body?: unknown) {
    const response = await fetch(`${process.apiUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${OPERATOR}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as unknown };
  }

  /** Queues once the API's directory knows the device (its hello reaches InfluxDB first). */
  async function queue(process: FieldqHandle, deviceId: string): Promise<CommandView> {
    const path = `/api/v1/devices/${deviceId}/commands`;
    let answer = await api(process, "POST", path, { type: "reboot" });
    for (let i = 0; i < 100 && answer.status === 404; i++) {
      await new Promise((r) => setTimeout(r, 100));
      answer = await api(process, "POST", path, { type: "reboot" });
    }
    expect(answer.status).toBe(202);
    return answer.body as CommandView;
  }

  const statusOf = async (process: FieldqHandle, deviceId: string, commandId: string) => {
    const list = await api(process, "GET", `/api/v1/devices/${deviceId}/commands`);
    return (list.body as CommandList).items.find((c) => c.id === commandId)?.status;
  };

  test.each([
    { on: 0, through: 1 },
    { on: 1, through: 0 },
  ] as const)(
    "a command queued through process $through reaches the device on process $on once, recorded delivered",
    async ({ on, through }) => {
      const id = `modem-fq-on-${on}`;
      const onProcess = processes[on] as FieldqHandle;
      const device = await connectDevice(onProcess.mqttPort ?? 0, id);
      const got = commandsOf(device);
      const hello = { kind: "modem", model: "FQ-S 1", firmware: "1.0", hardware: "A", serial: `SN-${id}` };
      await device.publishAsync(helloTopic(id), JSON.stringify(hello), { qos: 1, retain: true });
      await device.subscribeAsync(commandFilter(id), { qos: 1 });

      const queued = await queue(processes[through] as FieldqHandle, id);
      await expect.poll(() => got.map((c) => c.commandId), { timeout: 15_000 }).toEqual([queued.id]);
      // Either API reads the delivery the device's broker recorded.
      await expect
        .poll(() => statusOf(processes[through] as FieldqHandle, id, queued.id), { timeout: 15_000 })
        .toBe("delivered");
      expect(await statusOf(onProcess, id, queued.id)).toBe("delivered");
      // Sent by one broker only: the other's dispatch skips a device it does not hold.
      expect(got).toHaveLength(1);
    },
    45_000,
  );

  test("devices first seen on different brokers keep a directory entry each", async () => {
    // device_state is one series, a point per device at its slot (docs/storage.md "Read models"): journals
    // of different brokers must not give one slot to two devices.
    const rows = async () => {
      const q = 'SELECT "device", "serial" FROM "long"."device_state"';
      const response = await fetch(`${db.url}/query?${new URLSearchParams({ db: db.database, q })}`);
      const body = (await response.json()) as { results: Array<{ series?: Array<{ values: unknown[][] }> }> };
      return (body.results[0]?.series?.[0]?.values ?? [])
        .map(([, device, serial]) => [device, serial])
        .sort();
    };
    await expect.poll(rows, { timeout: 15_000 }).toEqual([
      ["modem-fq-on-0", "SN-modem-fq-on-0"],
      ["modem-fq-on-1", "SN-modem-fq-on-1"],
    ]);
  }, 30_000);

  test("a device that moves to the other broker keeps its one directory entry, online", async () => {
    const id = "modem-fq-on-0";
    const moved = await connectDevice(processes[1]?.mqttPort ?? 0, id);
    // A hello after every connect (docs/protocol.md): the broker it moved to learns its labels from it, as its
    // journal never heard of the device.
    const hello = { kind: "modem", model: "FQ-S 1", firmware: "1.0", hardware: "A", serial: `SN-${id}` };
    await moved.publishAsync(helloTopic(id), JSON.stringify(hello), { qos: 1, retain: true });
    const telemetry = { ts: Date.now(), seq: 100, metrics: { snr_margin_db: 7 } };
    await moved.publishAsync(telemetryTopic(id), JSON.stringify(telemetry), { qos: 1 });
    const entries = async () => {
      const q = `SELECT "serial", "model", "presence" FROM "long"."device_state" WHERE "device" = '${id}'`;
      const response = await fetch(`${db.url}/query?${new URLSearchParams({ db: db.database, q })}`);
      const body = (await response.json()) as { results: Array<{ series?: Array<{ values: unknown[][] }> }> };
      return (body.results[0]?.series?.[0]?.values ?? []).map(([, serial, model, presence]) => ({
        serial,
        model,
        presence,
      }));
    };
    await expect
      .poll(entries, { timeout: 15_000 })
      .toEqual([{ serial: `SN-${id}`, model: "FQ-S 1", presence: "online" }]);
  }, 30_000);
});

describe("when Redis is away", () => {
  let redis: RedisServer;
  let db: Awaited<ReturnType<typeof testDatabase>>;
  let dir: string;
  let broker: IngestBrokerHandle | undefined;

  beforeAll(async () => {
    redis = await startRedis();
    db = await testDatabase("shared_redis_away");
    dir = await mkdtemp(join(tmpdir(), "fieldq-shared-away-"));
    broker = await startIngestBroker(testConfig(db, dir, { FIELDQ_REDIS_URL: redis.url }), {
      logger: silentLogger,
    });
  }, 60_000);

  afterAll(async () => {
    await closeClients();
    await broker?.close();
    await db?.drop();
    await redis?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("a broker does not start without its Redis, and says which", async () => {
    const gone = await startRedis();
    await gone.close();
    await expect(openSharedState(gone.url, silentLogger, { connectTimeoutMs: 500 })).rejects.toThrow(
      `FIELDQ_REDIS_URL: Redis at ${gone.url}`,
    );
  });

  test("connected devices' messages are still journaled and acknowledged, and routing comes back with Redis", async () => {
    const id = "modem-redis-away";
    const device = await connectDevice(broker?.mqttPort ?? 0, id);
    const got = commandsOf(device);
    await device.subscribeAsync(commandFilter(id), { qos: 1 });
    await redis.stop();
    const telemetry = { ts: Date.now(), seq: 1, metrics: { snr_margin_db: 7 } };
    // Resolves on the PUBACK, which the broker sends once the journal holds the message.
    await device.publishAsync(telemetryTopic(id), JSON.stringify(telemetry), { qos: 1 });
    const stored = async () => {
      const q = `SELECT count("snr_margin_db") FROM "raw"."telemetry" WHERE "device" = '${id}'`;
      const response = await fetch(`${db.url}/query?${new URLSearchParams({ db: db.database, q })}`);
      const body = (await response.json()) as { results: Array<{ series?: Array<{ values: unknown[][] }> }> };
      return body.results[0]?.series?.[0]?.values[0]?.[1] ?? 0;
    };
    await expect.poll(stored, { timeout: 15_000 }).toBe(1);
    await redis.start();
    // Back, and empty (this test's Redis saves nothing): the emitter subscribes again as it reconnects.
    await expect
      .poll(
        async () => {
          await broker?.broker.publish(commandTopic(id, "c-back-1"), '{"type":"reboot","ts":4}');
          return got.length;
        },
        { timeout: 15_000, interval: 500 },
      )
      .toBeGreaterThan(0);
    expect(got[0]?.commandId).toBe("c-back-1");
  }, 30_000);

  test("a broker stops while its Redis is away", async () => {
    const id = "modem-redis-gone";
    const device = await connectDevice(broker?.mqttPort ?? 0, id, { clean: false });
    await device.subscribeAsync(commandFilter(id), { qos: 1 });
    await redis.stop();
    // Commands waiting for Redis are given up after ioredis's retries (about 10 s), then the broker is closed.
    await broker?.close();
    broker = undefined;
  }, 30_000);
});
