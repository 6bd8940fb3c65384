import { once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import { Aedes, type AuthenticateError, type Client, type ConnectPacket } from "aedes";
import { test as base, describe, expect } from "vitest";
import { canPublish, canSubscribe, canWill } from "../../broker/acl.js";
import { isDeviceKey } from "../../contract/device-key.js";
import {
  CommandResult,
  type DeviceError,
  Event,
  Fault,
  Hello,
  Status,
  Telemetry,
  type TelemetrySample,
} from "../../contract/messages.js";
import {
  commandTopic,
  type DeviceTopic,
  errorsTopic,
  parseDeviceTopic,
  statusTopic,
} from "../../contract/topics.js";
import { runSim, type SimHandle, type SimOptions } from "../../device-sim/run-sim.js";
import { type FleetPlan, plainPlan } from "../../device-sim/schedule.js";
import { PLAIN_SCRIPT } from "../../device-sim/script.js";
import { silentLogger } from "../../observe/logger.js";

// A bare aedes with fieldq's device-key check and ACL stands in for the broker, so the test can watch every
// publish (and tell a last will from a goodbye) and send commands the way fieldq itself would, server-side.

const SECRET = "integration-secret-0123456789abcdef";
const SCHEMAS = { hello: Hello, telemetry: Telemetry, fault: Fault, event: Event, status: Status } as const;
const MINUTE = 60_000;

type Received = { topic: DeviceTopic; payload: unknown; retain: boolean; qos: number; will: boolean };

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
      if (username === undefined || password === undefined || client.id !== username) {
        done(authError("client id and username must be the device id", 4), null);
      } else if (!isDeviceKey(SECRET, username, password.toString("utf8"))) {
        done(authError("bad device key", 4), null);
      } else {
        done(null, true);
      }
    },
    authorizePublish: (client: Client | null, packet, done) => {
      const will = client === null || packet === (client as Client & { will?: unknown }).will;
      const deviceId = client?.id ?? "";
      const allowed = will ? canWill(deviceId, packet.topic) : canPublish(deviceId, packet.topic);
      const topic = parseDeviceTopic(packet.topic);
      if (allowed && topic !== undefined) {
        const text = packet.payload.toString();
        let payload: unknown = text;
        try {
          payload = JSON.parse(text);
        } catch {}
        received.push({ topic, payload, retain: packet.retain, qos: packet.qos, will });
      }
      done(allowed ? null : new Error(`publish to ${packet.topic} not allowed`));
    },
    authorizeSubscribe: (client, subscription, done) =>
      done(null, canSubscribe(client.id, subscription.topic) ? subscription : null),
  });
  const server = createServer(broker.handle);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  /** What fieldq would send: not from a device, so no device ACL applies. */
  const send = (topic: string, payload: unknown) =>
    new Promise<void>((resolve, reject) =>
      broker.publish(
        {
          cmd: "publish",
          topic,
          payload: Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload)),
          qos: 1,
          retain: false,
          dup: false,
        },
        (error) => (error ? reject(error) : resolve()),
      ),
    );
  const of = (deviceId: string, channel?: string) =>
    received.filter(
      (r) => r.topic.deviceId === deviceId && (channel === undefined || r.topic.channel === channel),
    );
  const samples = (deviceId: string): TelemetrySample[] =>
    of(deviceId, "telemetry").flatMap((r) => [r.payload as TelemetrySample | TelemetrySample[]].flat());
  return {
    broker,
    received,
    connects,
    send,
    of,
    samples,
    url: `mqtt://127.0.0.1:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Ten-minute ticks at 6000×: a tick every 100 ms, over two days of scenario time that end now. */
function plan(devices: number, overrides: Partial<FleetPlan> = {}): FleetPlan {
  const now = Date.now();
  return {
    ...plainPlan({ devices, seed: 3, startMs: now - 2 * 86_400_000, endMs: now, cadenceMs: 10 * MINUTE }),
    deviceOptions: { offlineSpellsPerWeek: 0 },
    ...overrides,
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
        plan: plan(4),
        seed: 3,
        speed: 6000,
        logger: silentLogger,
        ...options,
      });
      sims.push(sim);
      return sim;
    });
    await Promise.all(sims.map((sim) => sim.stop()));
  },
});

async function until(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
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
    expect(broker.connects).toHaveLength(4);
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
    await startSim({ plan: plan(8) });
    const seen = (channel: string) => broker.received.some((r) => r.topic.channel === channel);
    await until(() => ["hello", "status", "telemetry", "fault", "event"].every(seen));
    const invalid = broker.received.filter(
      ({ topic, payload }) =>
        !(topic.channel in SCHEMAS) ||
        !SCHEMAS[topic.channel as keyof typeof SCHEMAS].safeParse(payload).success,
    );
    expect(invalid).toEqual([]);
    expect(broker.received.every((r) => r.qos === 1)).toBe(true);
    expect(broker.received.filter((r) => r.topic.channel === "hello").every((r) => r.retain)).toBe(true);
    expect(broker.received.filter((r) => r.topic.channel === "telemetry").every((r) => !r.retain)).toBe(true);
  });

  test("says online after connecting and offline on a clean stop, both retained, without a will", async ({
    broker,
    startSim,
  }) => {
    const sim = await startSim({ plan: plan(2) });
    await sim.stop();
    for (const deviceId of new Set(broker.received.map((r) => r.topic.deviceId))) {
      const statuses = broker.of(deviceId, "status");
      expect(statuses.map((r) => r.payload)).toEqual([{ state: "online" }, { state: "offline" }]);
      expect(statuses.every((r) => r.retain && !r.will)).toBe(true);
    }
    expect(sim.stats().connected).toBe(0);
  });

  test("counts the refusals the broker sends on a device's errors topic", async ({ broker, startSim }) => {
    const sim = await startSim({ plan: plan(1), speed: 1 });
    const refusal: DeviceError = {
      ts: Date.now(),
      topic: "fq/v1/modem-0001/telemetry",
      reason: "invalid_schema",
      message: "metrics: must hold 1-200 metrics",
    };
    await broker.send(errorsTopic("modem-0001"), refusal);
    await until(() => sim.stats().refused === 1);
    expect(sim.stats().refused).toBe(1);
  });

  test("fails to start when the devices' keys come from the wrong secret", async ({ broker, startSim }) => {
    await expect(startSim({ secret: "not-the-broker-secret-at-all" })).rejects.toThrow(
      /Bad username or password/,
    );
    await until(() => broker.broker.connectedClients === 0);
  });

  test("answers a command on …/result, and the command changes the device", async ({ broker, startSim }) => {
    const fleet = plan(2);
    const printer = fleet.devices.find((d) => d.kind === "printer")?.id ?? "";
    const sim = await startSim({ plan: fleet, speed: 600 });
    await until(() => broker.samples(printer).length >= 2);

    await broker.send(commandTopic(printer, "cmd-0001"), { type: "recalibrate", ts: Date.now() });
    await until(() => broker.of(printer, "cmd-result").length === 1);
    const [answer] = broker.of(printer, "cmd-result");
    expect(answer?.topic).toEqual({ deviceId: printer, channel: "cmd-result", commandId: "cmd-0001" });
    const result = CommandResult.parse(answer?.payload);
    expect(result).toMatchObject({ ok: true, message: expect.stringContaining("levelled") });

    // The calibration follows its result, and the telemetry after it shows the levelled bed.
    await until(() => broker.samples(printer).some((s) => s.seq > result.seq));
    const after = broker.received.slice(broker.received.indexOf(answer as Received));
    const calibration = after.find(
      (r) => r.topic.channel === "event" && (r.payload as { type: string }).type === "calibration",
    )?.payload as { seq: number; data: { offset_after_mm: number } };
    expect(calibration.seq).toBeGreaterThan(result.seq);
    expect(calibration.data.offset_after_mm).toBeLessThanOrEqual(0.03);
    const next = broker.samples(printer).find((s) => s.seq > result.seq);
    expect(Number(next?.metrics.bed_level_offset_mm)).toBeLessThan(0.05);

    await broker.send(commandTopic(printer, "cmd-0002"), { type: "self-destruct", ts: Date.now() });
    await until(() => broker.of(printer, "cmd-result").length === 2);
    const refused = CommandResult.parse(broker.of(printer, "cmd-result")[1]?.payload);
    expect(refused).toMatchObject({ ok: false, message: expect.stringContaining("type") });
    expect(refused.seq).toBeGreaterThan(result.seq);
    expect(sim.stats().commands).toBe(2);
  });

  test("after an offline spell, reconnects and flushes its buffer in order with the original timestamps", async ({
    broker,
    startSim,
  }) => {
    // Spells of 20 to 40 scenario minutes, a couple a day: two within about six wall seconds at 12,000×.
    const fleet = plan(1, {
      deviceOptions: { offlineSpellsPerWeek: 300, offlineSpellMs: [20 * MINUTE, 40 * MINUTE] },
    });
    const device = fleet.devices[0]?.id ?? "";
    const sim = await startSim({ plan: fleet, speed: 12_000 });
    await until(
      () =>
        broker.of(device, "status").filter((r) => r.will).length >= 2 && broker.samples(device).length >= 120,
      30_000,
    );
    await sim.stop();

    const statuses = broker.of(device, "status");
    // Each spell: the line drops (the broker's will says offline), then the device says online again.
    expect(statuses.filter((r) => r.will).length).toBeGreaterThanOrEqual(2);
    expect(broker.connects.filter((c) => c.clientId === device).length).toBeGreaterThanOrEqual(3);
    const ts = broker.samples(device).map((s) => s.ts);
    expect(ts).toEqual(Array.from({ length: ts.length }, (_, k) => fleet.startMs + k * fleet.cadenceMs));
  });

  test("a device that goes silent leaves through its last will, and says nothing after", async ({
    broker,
    startSim,
  }) => {
    const fleet = plan(2);
    const [kept, lost] = fleet.devices;
    if (kept === undefined || lost === undefined) throw new Error("fleet too small");
    lost.script = { ...PLAIN_SCRIPT, silentAfter: { firmware: lost.hello.firmware, delayMs: 60 * MINUTE } };
    const sim = await startSim({ plan: fleet });
    await until(() => sim.stats().silent === 1 && broker.of(lost.id, "status").some((r) => r.will));
    const count = broker.of(lost.id).length;
    await until(() => broker.samples(kept.id).length >= 20);
    await sim.stop();
    const statuses = broker.of(lost.id, "status");
    expect(statuses.map((r) => [r.payload, r.will])).toEqual([
      [{ state: "online" }, false],
      [{ state: "offline" }, true],
    ]);
    expect(broker.of(lost.id)).toHaveLength(count);
    expect(Math.max(...broker.samples(lost.id).map((s) => s.ts))).toBeLessThan(fleet.startMs + 70 * MINUTE);
  });
});
