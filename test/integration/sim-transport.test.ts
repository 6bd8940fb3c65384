import { once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import { Aedes, type AuthenticateError, type ConnectPacket } from "aedes";
import { test as base, describe, expect } from "vitest";
import { isDeviceKey } from "../../contract/device-key.js";
import { type DeviceError, Event, Fault, Hello, Status, Telemetry } from "../../contract/messages.js";
import { type DeviceTopic, errorsTopic, parseDeviceTopic, statusTopic } from "../../contract/topics.js";
import { runSim, type SimHandle, type SimOptions } from "../../device-sim/run-sim.js";
import { silentLogger } from "../../observe/logger.js";

// Until broker/start-broker.ts lands, a bare aedes with the device-key check stands in for the fieldq broker.

const SECRET = "integration-secret-0123456789abcdef";
const SCHEMAS = { hello: Hello, telemetry: Telemetry, fault: Fault, event: Event, status: Status } as const;

type Received = { topic: DeviceTopic; payload: unknown; retain: boolean; qos: number };

const authError = (message: string, returnCode: 4 | 5): AuthenticateError =>
  Object.assign(new Error(message), { returnCode }) as AuthenticateError;

async function startTestBroker() {
  const received: Received[] = [];
  const connects: ConnectPacket[] = [];
  const broker = await Aedes.createBroker({
    preConnect: (_client, packet, done) => {
      connects.push(packet);
      done(null, true);
    },
    authenticate: (client, username, password, done) => {
      // fieldq's rule: the client id is the device id, and so is the username.
      if (username === undefined || password === undefined || client.id !== username) {
        done(authError("client id and username must be the device id", 4), null);
      } else if (!isDeviceKey(SECRET, username, password.toString("utf8"))) {
        done(authError("bad device key", 4), null);
      } else {
        done(null, true);
      }
    },
  });
  broker.on("publish", (packet) => {
    const topic = parseDeviceTopic(packet.topic);
    if (topic === undefined) return;
    let payload: unknown;
    try {
      payload = JSON.parse(packet.payload.toString());
    } catch {
      payload = packet.payload.toString();
    }
    received.push({ topic, payload, retain: packet.retain, qos: packet.qos });
  });
  const server = createServer(broker.handle);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    broker,
    received,
    connects,
    url: `mqtt://127.0.0.1:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

type Fixture = {
  broker: Awaited<ReturnType<typeof startTestBroker>>;
  startSim: (options?: Partial<SimOptions>) => Promise<SimHandle>;
};

const test = base.extend<Fixture>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  broker: async ({}, use) => {
    const broker = await startTestBroker();
    await use(broker);
    await broker.close();
  },
  startSim: async ({ broker }, use) => {
    const sims: SimHandle[] = [];
    await use(async (options = {}) => {
      const sim = await runSim({
        brokerUrl: broker.url,
        secret: SECRET,
        devices: 4,
        seed: 3,
        intervalMs: 100,
        logger: silentLogger,
        ...options,
      });
      sims.push(sim);
      return sim;
    });
    await Promise.all(sims.map((sim) => sim.stop()));
  },
});

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("simulator over MQTT", () => {
  test("connects each device as itself, with MQTT 3.1.1 and an offline last will", async ({
    broker,
    startSim,
  }) => {
    const sim = await startSim();
    expect(sim.stats().connected).toBe(4);
    const ids = broker.connects.map((c) => c.clientId).sort();
    expect(ids).toHaveLength(4);
    for (const packet of broker.connects) {
      expect(packet.protocolVersion).toBe(4);
      expect(packet.username).toBe(packet.clientId);
      expect(packet.will).toMatchObject({ topic: statusTopic(packet.clientId), qos: 1, retain: true });
      expect(JSON.parse(String(packet.will?.payload))).toEqual({ state: "offline" });
    }
  });

  test("delivers hello, status, telemetry, faults and events that pass the contract", async ({
    broker,
    startSim,
  }) => {
    // Two model hours per tick, so faults and events show up within a few ticks.
    await startSim({ devices: 6, speed: 72_000 });
    const seen = (channel: string) => broker.received.some((r) => r.topic.channel === channel);
    await until(() => ["hello", "status", "telemetry", "fault", "event"].every(seen));

    const invalid = broker.received.filter(({ topic, payload }) => {
      if (!(topic.channel in SCHEMAS)) return true;
      return !SCHEMAS[topic.channel as keyof typeof SCHEMAS].safeParse(payload).success;
    });
    expect(invalid).toEqual([]);
    expect(broker.received.every((r) => r.qos === 1)).toBe(true);
    const hellos = broker.received.filter((r) => r.topic.channel === "hello");
    expect(hellos.every((r) => r.retain)).toBe(true);
    expect(broker.received.filter((r) => r.topic.channel === "telemetry").every((r) => !r.retain)).toBe(true);
  });

  test("says online after connecting and offline on a clean stop, both retained", async ({
    broker,
    startSim,
  }) => {
    const sim = await startSim({ devices: 2 });
    await sim.stop();
    const statuses = broker.received.filter((r) => r.topic.channel === "status");
    const deviceIds = [...new Set(statuses.map((r) => r.topic.deviceId))];
    expect(deviceIds).toHaveLength(2);
    for (const deviceId of deviceIds) {
      const history = statuses.filter((r) => r.topic.deviceId === deviceId);
      expect(history.map((r) => r.payload)).toEqual([{ state: "online" }, { state: "offline" }]);
      expect(history.every((r) => r.retain)).toBe(true);
    }
    expect(sim.stats().connected).toBe(0);
  });

  test("counts the refusals the broker sends on a device's errors topic", async ({ broker, startSim }) => {
    const sim = await startSim({ devices: 1, intervalMs: 60_000 });
    const refusal: DeviceError = {
      ts: Date.now(),
      topic: "fq/v1/modem-0001/telemetry",
      reason: "invalid_schema",
      message: "metrics: must hold 1-200 metrics",
    };
    broker.broker.publish(
      {
        cmd: "publish",
        topic: errorsTopic("modem-0001"),
        payload: Buffer.from(JSON.stringify(refusal)),
        qos: 1,
        retain: false,
        dup: false,
      },
      () => {},
    );
    await until(() => sim.stats().refused === 1);
    expect(sim.stats().refused).toBe(1);
  });

  test("fails to start when the devices' keys come from the wrong secret", async ({ broker, startSim }) => {
    await expect(startSim({ secret: "not-the-broker-secret-at-all" })).rejects.toThrow(
      /Bad username or password/,
    );
    await until(() => broker.broker.connectedClients === 0);
  });
});
