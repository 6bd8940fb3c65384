import { describe, expect, it } from "vitest";
import { deviceKey } from "../../contract/device-key.js";
import { Event, Fault, Hello, Telemetry } from "../../contract/messages.js";
import { historyOf, runBackfill } from "../../device-sim/backfill.js";
import type { SimMessage } from "../../device-sim/models/index.js";
import { deviceOf, type FleetPlan, plainPlan } from "../../device-sim/schedule.js";
import { PLAIN_SCRIPT } from "../../device-sim/script.js";
import type { ConnectDevice, DeviceLink } from "../../device-sim/transport.js";
import { silentLogger } from "../../observe/logger.js";

const SECRET = "a-test-secret-of-32-characters!!";
const SCHEMAS = { hello: Hello, telemetry: Telemetry, fault: Fault, event: Event } as const;
const T0 = Date.UTC(2025, 5, 1);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function plan(devices: number, overrides: Partial<FleetPlan> = {}): FleetPlan {
  return {
    ...plainPlan({ devices, seed: 11, startMs: T0, endMs: T0 + 12 * HOUR, cadenceMs: 5 * MINUTE }),
    ...overrides,
  };
}

const history = (fleet: FleetPlan, index: number, batch = 50, seed = 11) => {
  const messages: SimMessage[] = [];
  const generator = historyOf(deviceOf(fleet, index, seed), fleet, index, batch);
  for (let next = generator.next(); ; next = generator.next()) {
    if (next.done) return { messages, silent: next.value.silent };
    messages.push(next.value.message);
  }
};

const stamps = (messages: SimMessage[]) =>
  messages.flatMap((m) => {
    if (m.channel === "raw" || m.channel === "hello") return [];
    return Array.isArray(m.payload) ? m.payload.map((s) => ({ ts: s.ts, seq: s.seq })) : [m.payload];
  });

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Links whose publishes settle a moment later, recording who was connected when. */
function fakeTransport(options: { failOnce?: { deviceId: string; atPublish: number } } = {}) {
  const open = new Set<string>();
  let mostOpen = 0;
  let mostInFlight = 0;
  const acked = new Map<string, SimMessage[]>();
  const ends = new Map<string, ("close" | "drop")[]>();
  const hellos = new Map<string, string[]>();
  const keys = new Map<string, string>();
  let failed = false;
  const connect: ConnectDevice = async (link) => {
    keys.set(link.deviceId, link.key);
    hellos.set(link.deviceId, [...(hellos.get(link.deviceId) ?? []), link.hello().firmware]);
    open.add(link.deviceId);
    mostOpen = Math.max(mostOpen, open.size);
    let inFlight = 0;
    let published = 0;
    let broken = false;
    const end = (kind: "close" | "drop") => async () => {
      open.delete(link.deviceId);
      ends.set(link.deviceId, [...(ends.get(link.deviceId) ?? []), kind]);
    };
    const fake: DeviceLink = {
      deviceId: link.deviceId,
      publish: async (message) => {
        published += 1;
        const fail = options.failOnce;
        if (!failed && fail?.deviceId === link.deviceId && fail.atPublish === published) {
          failed = true;
          broken = true;
        }
        inFlight += 1;
        mostInFlight = Math.max(mostInFlight, inFlight);
        await tick();
        inFlight -= 1;
        if (broken) throw new Error("connection lost");
        acked.set(link.deviceId, [...(acked.get(link.deviceId) ?? []), message]);
      },
      close: end("close"),
      drop: end("drop"),
    };
    return fake;
  };
  return {
    connect,
    acked,
    ends,
    hellos,
    keys,
    mostOpen: () => mostOpen,
    mostInFlight: () => mostInFlight,
    open,
  };
}

const base = { brokerUrl: "mqtt://broker.test:1883", secret: SECRET, seed: 11, logger: silentLogger };

describe("historyOf", () => {
  it("is the same for the same plan and seed, and differs for another seed", () => {
    const fleet = plan(3);
    expect(history(fleet, 1)).toEqual(history(fleet, 1));
    expect(history(fleet, 1, 50, 12).messages).not.toEqual(history(fleet, 1).messages);
  });

  it("keeps the device's own time order, a sample per tick, and the contract", () => {
    const fleet = plan(2);
    for (const index of [0, 1]) {
      const { messages } = history(fleet, index);
      const seen = stamps(messages);
      for (let i = 1; i < seen.length; i++) {
        expect(seen[i]?.seq).toBeGreaterThan(seen[i - 1]?.seq ?? Number.POSITIVE_INFINITY);
        expect(seen[i]?.ts).toBeGreaterThanOrEqual(seen[i - 1]?.ts ?? Number.POSITIVE_INFINITY);
      }
      const samples = messages.flatMap((m) => (m.channel === "telemetry" ? [m.payload].flat() : []));
      expect(samples).toHaveLength((12 * 60) / 5);
      const invalid = messages.filter(
        (m) => m.channel !== "raw" && !SCHEMAS[m.channel].safeParse(m.payload).success,
      );
      expect(invalid).toEqual([]);
    }
  });

  it("packs consecutive samples into arrays of up to `batch`, as a buffer flush does", () => {
    const { messages } = history(plan(1), 0, 20);
    const telemetry = messages.flatMap((m) => (m.channel === "telemetry" ? [[m.payload].flat().length] : []));
    expect(Math.max(...telemetry)).toBe(20);
    // A shorter array only where another message, or the end, broke the run.
    messages.forEach((m, i) => {
      const next = messages[i + 1];
      if (m.channel === "telemetry" && next?.channel === "telemetry")
        expect([m.payload].flat()).toHaveLength(20);
    });
  });

  it("ends with the tick that silences the device", () => {
    const fleet = plan(2);
    const device = fleet.devices[1];
    if (device === undefined) throw new Error("fleet too small");
    device.script = { ...PLAIN_SCRIPT, silentAfter: { firmware: device.hello.firmware, delayMs: 2 * HOUR } };
    const { messages, silent } = history(fleet, 1);
    expect(silent).toBe(true);
    expect(Math.max(...stamps(messages).map((s) => s.ts))).toBeLessThan(T0 + 2 * HOUR + 5 * MINUTE);
  });
});

describe("runBackfill", () => {
  it("flushes every device's history in order over at most `pool` connections, each with its own key", async () => {
    const fleet = plan(12);
    const transport = fakeTransport();
    const progress: number[] = [];
    const stats = await runBackfill({
      ...base,
      plan: fleet,
      pool: 3,
      inFlight: 8,
      connect: transport.connect,
      onProgress: (p) => progress.push(p.done),
    });
    expect(transport.mostOpen()).toBe(3);
    expect(transport.mostInFlight()).toBeLessThanOrEqual(8);
    expect(stats).toMatchObject({ devices: 12, flushed: 12, failed: 0, silent: 0, retries: 0 });
    fleet.devices.forEach((device, index) => {
      expect(transport.keys.get(device.id)).toBe(deviceKey(SECRET, device.id));
      expect(transport.acked.get(device.id)).toEqual(history(fleet, index).messages);
      expect(transport.ends.get(device.id)).toEqual(["close"]);
    });
    expect(progress.at(-1)).toBe(12);
    expect(transport.open.size).toBe(0);
  });

  it("drops a silent device without a goodbye, so its last will speaks", async () => {
    const fleet = plan(3);
    const device = fleet.devices[2];
    if (device === undefined) throw new Error("fleet too small");
    device.script = { ...PLAIN_SCRIPT, silentAfter: { firmware: device.hello.firmware, delayMs: HOUR } };
    const transport = fakeTransport();
    const stats = await runBackfill({ ...base, plan: fleet, connect: transport.connect });
    expect(stats).toMatchObject({ flushed: 3, silent: 1 });
    expect(transport.ends.get(device.id)).toEqual(["drop"]);
    expect(transport.ends.get(fleet.devices[0]?.id ?? "")).toEqual(["close"]);
  });

  it("resumes a device on a new connection after a lost one, from its first unacknowledged message", async () => {
    const fleet = plan(2);
    const victim = fleet.devices[1]?.id ?? "";
    const transport = fakeTransport({ failOnce: { deviceId: victim, atPublish: 7 } });
    const stats = await runBackfill({
      ...base,
      plan: fleet,
      inFlight: 4,
      retryDelayMs: 0,
      connect: transport.connect,
    });
    expect(stats).toMatchObject({ flushed: 2, failed: 0, retries: 1 });
    expect(transport.ends.get(victim)).toEqual(["drop", "close"]);
    // Everything arrives, in order; at most the in-flight window is sent twice.
    const expected = history(fleet, 1).messages;
    const got = transport.acked.get(victim) ?? [];
    expect(got.filter((m, i) => got.indexOf(m) === i)).toEqual(expected);
  });

  it("stops taking devices once aborted", async () => {
    const controller = new AbortController();
    const transport = fakeTransport();
    const stats = await runBackfill({
      ...base,
      plan: plan(10),
      pool: 2,
      connect: transport.connect,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.done >= 2) controller.abort();
      },
    });
    expect(stats.flushed + stats.failed).toBeLessThan(10);
    expect(transport.acked.size).toBeLessThan(10);
    expect(transport.open.size).toBe(0);
  });
});
