import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { deviceKey } from "../../contract/device-key.js";
import { Event, Fault, Hello, Telemetry } from "../../contract/messages.js";
import { buildFleet } from "../../device-sim/fleet.js";
import type { SimMessage } from "../../device-sim/models/index.js";
import { runSim } from "../../device-sim/run-sim.js";
import type { ConnectDevice, ConnectDeviceOptions } from "../../device-sim/transport.js";
import { silentLogger } from "../../observe/logger.js";

const SECRET = "a-test-secret-of-32-characters!!";
const SCHEMAS = { hello: Hello, telemetry: Telemetry, fault: Fault, event: Event } as const;

/** Links that record instead of talking MQTT, so the scheduling can run on fake timers. */
function fakeTransport(options: { refuse?: string | undefined } = {}) {
  const connected: ConnectDeviceOptions[] = [];
  const published: { deviceId: string; message: SimMessage }[] = [];
  const closed: string[] = [];
  const connect: ConnectDevice = async (link) => {
    if (link.deviceId === options.refuse) throw new Error("Connection refused: Bad username or password");
    connected.push(link);
    return {
      deviceId: link.deviceId,
      publish: async (message) => {
        if (closed.includes(link.deviceId)) throw new Error("client disconnecting");
        published.push({ deviceId: link.deviceId, message });
      },
      close: async () => {
        closed.push(link.deviceId);
      },
    };
  };
  return { connect, connected, published, closed };
}

const base = { brokerUrl: "mqtt://broker.test:1883", secret: SECRET, seed: 5, logger: silentLogger };

describe("runSim", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: Date.UTC(2025, 5, 1) });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("connects every device with its own id and key", async () => {
    const transport = fakeTransport();
    const sim = await runSim({ ...base, devices: 5, intervalMs: 1000, connect: transport.connect });
    const ids = buildFleet({ devices: 5, seed: base.seed }).map((spec) => spec.id);
    expect(transport.connected.map((c) => c.deviceId).sort()).toEqual(ids.sort());
    for (const link of transport.connected) expect(link.key).toBe(deviceKey(SECRET, link.deviceId));
    expect(sim.stats()).toMatchObject({ devices: 5, connected: 5 });
    await sim.stop();
  });

  it("ticks each device once per interval and publishes messages that pass the contract", async () => {
    const transport = fakeTransport();
    const sim = await runSim({ ...base, devices: 4, intervalMs: 1000, connect: transport.connect });
    // The first tick is at once, then one per interval: ten ticks each in just under ten seconds.
    await vi.advanceTimersByTimeAsync(9_999);
    const stats = sim.stats();
    expect(stats.ticks).toBe(40);
    expect(stats.published.telemetry).toBe(40);
    for (const deviceId of ["modem-0001", "printer-0002"]) {
      expect(
        transport.published.filter((p) => p.deviceId === deviceId && p.message.channel === "telemetry"),
      ).toHaveLength(10);
    }
    const invalid = transport.published.filter(
      ({ message }) => !SCHEMAS[message.channel].safeParse(message.payload).success,
    );
    expect(invalid).toEqual([]);
    await sim.stop();
  });

  it("stops ticking and closes every link on stop", async () => {
    const transport = fakeTransport();
    const sim = await runSim({ ...base, devices: 3, intervalMs: 1000, connect: transport.connect });
    await vi.advanceTimersByTimeAsync(3000);
    await sim.stop();
    const count = transport.published.length;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(transport.published).toHaveLength(count);
    expect(transport.closed).toHaveLength(3);
    expect(sim.stats().connected).toBe(0);
    await sim.stop();
  });

  it("stops on its own after the duration", async () => {
    const transport = fakeTransport();
    const sim = await runSim({
      ...base,
      devices: 2,
      intervalMs: 500,
      durationMs: 5000,
      connect: transport.connect,
    });
    let done = false;
    void sim.done.then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(4900);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    expect(done).toBe(true);
    expect(transport.closed).toHaveLength(2);
  });

  it("advances model time by interval × speed while stamping wall-clock time", async () => {
    const transport = fakeTransport();
    const sim = await runSim({
      ...base,
      devices: 1,
      intervalMs: 1000,
      speed: 60,
      connect: transport.connect,
    });
    await vi.advanceTimersByTimeAsync(2000);
    const samples = transport.published.flatMap(({ message }) =>
      message.channel === "telemetry" && !Array.isArray(message.payload) ? [message.payload] : [],
    );
    const [first, second] = samples;
    expect(second?.ts).toBe((first?.ts ?? 0) + 1000);
    expect(Number(second?.metrics.uptime_s) - Number(first?.metrics.uptime_s)).toBe(60);
    await sim.stop();
  });

  it("rejects when a device can't connect, and closes those that did", async () => {
    const fleet = buildFleet({ devices: 6, seed: base.seed }).map((spec) => spec.id);
    const transport = fakeTransport({ refuse: fleet[3] });
    await expect(
      runSim({ ...base, devices: 6, intervalMs: 1000, concurrency: 1, connect: transport.connect }),
    ).rejects.toThrow("Bad username or password");
    expect(transport.connected.map((c) => c.deviceId)).toEqual(fleet.slice(0, 3));
    expect(transport.closed.sort()).toEqual(fleet.slice(0, 3).sort());
  });
});
