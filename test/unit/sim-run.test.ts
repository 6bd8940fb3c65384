import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { deviceKey } from "../../contract/device-key.js";
import { Event, Fault, Hello, Telemetry, type TelemetrySample } from "../../contract/messages.js";
import type { SimMessage } from "../../device-sim/models/index.js";
import { runSim, type SimOptions } from "../../device-sim/run-sim.js";
import { type FleetPlan, plainPlan } from "../../device-sim/schedule.js";
import { PLAIN_SCRIPT } from "../../device-sim/script.js";
import type { ConnectDevice, ConnectDeviceOptions, DeviceLink } from "../../device-sim/transport.js";
import { silentLogger } from "../../observe/logger.js";

const SECRET = "a-test-secret-of-32-characters!!";
const SCHEMAS = { hello: Hello, telemetry: Telemetry, fault: Fault, event: Event } as const;
const T0 = Date.UTC(2025, 5, 1);
const MINUTE = 60_000;
const QUIET = { offlineSpellsPerWeek: 0 };

type Happening =
  | { deviceId: string; kind: "connect" | "close" | "drop" | "refused" }
  | { deviceId: string; kind: "publish"; message: SimMessage };

/** Links that record instead of talking MQTT, so the scheduling can run on fake timers. */
function fakeTransport(options: { refuse?: string | undefined; failReconnects?: number } = {}) {
  const log: Happening[] = [];
  const sessions = new Map<string, ConnectDeviceOptions>();
  const open = new Set<string>();
  let reconnectsToFail = options.failReconnects ?? 0;
  const connect: ConnectDevice = async (link) => {
    if (link.deviceId === options.refuse) throw new Error("Connection refused: Bad username or password");
    if (sessions.has(link.deviceId) && reconnectsToFail > 0) {
      reconnectsToFail -= 1;
      log.push({ deviceId: link.deviceId, kind: "refused" });
      throw new Error("connect ECONNREFUSED");
    }
    log.push({ deviceId: link.deviceId, kind: "connect" });
    sessions.set(link.deviceId, link);
    open.add(link.deviceId);
    let ended = false;
    const end = (kind: "close" | "drop") => async () => {
      ended = true;
      open.delete(link.deviceId);
      log.push({ deviceId: link.deviceId, kind });
    };
    const fake: DeviceLink = {
      deviceId: link.deviceId,
      publish: async (message) => {
        if (ended) throw new Error("client disconnecting");
        log.push({ deviceId: link.deviceId, kind: "publish", message });
      },
      close: end("close"),
      drop: end("drop"),
    };
    return fake;
  };
  const published = (deviceId?: string) =>
    log.flatMap((h) =>
      h.kind === "publish" && (deviceId === undefined || h.deviceId === deviceId) ? [h.message] : [],
    );
  const samples = (deviceId: string): TelemetrySample[] =>
    published(deviceId).flatMap((m) =>
      m.channel === "telemetry" ? (Array.isArray(m.payload) ? m.payload : [m.payload]) : [],
    );
  const kinds = (deviceId: string) => log.filter((h) => h.deviceId === deviceId).map((h) => h.kind);
  return { connect, log, sessions, open, published, samples, kinds };
}

function plan(devices: number, overrides: Partial<FleetPlan> = {}): FleetPlan {
  return {
    ...plainPlan({ devices, seed: 5, startMs: T0, endMs: T0 + 6 * 60 * MINUTE, cadenceMs: MINUTE }),
    deviceOptions: QUIET,
    ...overrides,
  };
}

const base = { brokerUrl: "mqtt://broker.test:1883", secret: SECRET, seed: 5, logger: silentLogger };

function start(
  transport: ReturnType<typeof fakeTransport>,
  options: Partial<SimOptions> & { plan: FleetPlan },
) {
  return runSim({ ...base, speed: 60, connect: transport.connect, ...options });
}

describe("runSim (live)", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: T0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("connects every device with its own id and key", async () => {
    const transport = fakeTransport();
    const fleet = plan(5);
    const sim = await start(transport, { plan: fleet });
    expect([...transport.sessions.keys()].sort()).toEqual(fleet.devices.map((d) => d.id).sort());
    for (const link of transport.sessions.values()) expect(link.key).toBe(deviceKey(SECRET, link.deviceId));
    expect(sim.stats()).toMatchObject({ devices: 5, connected: 5 });
    await sim.stop();
  });

  it("ticks each device once per cadence of scenario time, stamped with scenario time", async () => {
    const transport = fakeTransport();
    const fleet = plan(4);
    // 60× speed: a one-minute cadence is one wall second.
    const sim = await start(transport, { plan: fleet });
    await vi.advanceTimersByTimeAsync(9_999);
    expect(sim.stats().ticks).toBe(40);
    fleet.devices.forEach((device, index) => {
      const phase = (index * MINUTE) / 4;
      expect(transport.samples(device.id).map((s) => s.ts)).toEqual(
        Array.from({ length: 10 }, (_, k) => T0 + phase + k * MINUTE),
      );
    });
    const invalid = transport
      .published()
      .filter((m) => m.channel !== "raw" && !SCHEMAS[m.channel].safeParse(m.payload).success);
    expect(invalid).toEqual([]);
    await sim.stop();
  });

  it("stops ticking and closes every link with a goodbye on stop", async () => {
    const transport = fakeTransport();
    const sim = await start(transport, { plan: plan(3) });
    await vi.advanceTimersByTimeAsync(3000);
    await sim.stop();
    const count = transport.published().length;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(transport.published()).toHaveLength(count);
    expect(transport.log.filter((h) => h.kind === "close")).toHaveLength(3);
    expect(transport.log.filter((h) => h.kind === "drop")).toEqual([]);
    expect(sim.stats().connected).toBe(0);
  });

  it("stops on its own when scenario time reaches the plan's end", async () => {
    const transport = fakeTransport();
    // Ten scenario minutes at 60×: ten wall seconds.
    const sim = await start(transport, { plan: plan(2, { endMs: T0 + 10 * MINUTE }) });
    let done = false;
    void sim.done.then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(9_000);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1_500);
    expect(done).toBe(true);
    expect(transport.log.filter((h) => h.kind === "close")).toHaveLength(2);
    const last = Math.max(
      ...transport
        .published()
        .flatMap((m) => (m.channel === "telemetry" ? [m.payload] : []).flat().map((s) => s.ts)),
    );
    expect(last).toBeLessThan(T0 + 10 * MINUTE);
  });

  it("rejects when a device can't connect, and closes those that did", async () => {
    const fleet = plan(6);
    const ids = fleet.devices.map((d) => d.id);
    const transport = fakeTransport({ refuse: ids[3] });
    await expect(start(transport, { plan: fleet, concurrency: 1 })).rejects.toThrow(
      "Bad username or password",
    );
    expect([...transport.sessions.keys()]).toEqual(ids.slice(0, 3));
    expect(transport.open.size).toBe(0);
  });

  it("drops a device that goes silent without a goodbye, and never hears from it again", async () => {
    const transport = fakeTransport();
    const fleet = plan(3);
    const [first, victim, third] = fleet.devices;
    if (first === undefined || victim === undefined || third === undefined)
      throw new Error("fleet too small");
    victim.script = {
      ...PLAIN_SCRIPT,
      silentAfter: { firmware: victim.hello.firmware, delayMs: 5 * MINUTE },
    };
    const sim = await start(transport, { plan: fleet });
    await vi.advanceTimersByTimeAsync(20_000);
    expect(transport.kinds(victim.id).filter((k) => k !== "publish")).toEqual(["connect", "drop"]);
    expect(Math.max(...transport.samples(victim.id).map((s) => s.ts))).toBeLessThan(T0 + 5 * MINUTE + MINUTE);
    expect(transport.samples(third.id).length).toBeGreaterThanOrEqual(19);
    await sim.stop();
    expect(sim.stats()).toMatchObject({ silent: 1 });
    expect(transport.kinds(victim.id).filter((k) => k !== "publish")).toEqual(["connect", "drop"]);
  });

  it("disconnects for an offline spell and flushes what the device buffered, in order, when it is back", async () => {
    const transport = fakeTransport();
    // Frequent three-minute spells, so a few hours of scenario time hold several.
    const fleet = plan(2, {
      deviceOptions: { offlineSpellsPerWeek: 500, offlineSpellMs: [3 * MINUTE, 3 * MINUTE] },
    });
    const sim = await start(transport, { plan: fleet });
    await vi.advanceTimersByTimeAsync(4 * 60 * 1000);
    await sim.stop();
    for (const [index, device] of fleet.devices.entries()) {
      const kinds = transport.kinds(device.id).filter((k) => k !== "publish");
      expect(kinds.filter((k) => k === "drop").length).toBeGreaterThan(0);
      expect(kinds.filter((k) => k === "connect").length).toBe(kinds.filter((k) => k === "drop").length + 1);
      // Every sample arrives, oldest first, with the time it was taken: the buffer keeps the gaps filled.
      const phase = (index * MINUTE) / 2;
      const ts = transport.samples(device.id).map((s) => s.ts);
      expect(ts).toEqual(Array.from({ length: ts.length }, (_, k) => T0 + phase + k * MINUTE));
      expect(ts.length).toBeGreaterThan(200);
    }
  });

  it("tries again on the next tick when connecting after a spell fails", async () => {
    const transport = fakeTransport({ failReconnects: 1 });
    const fleet = plan(1, {
      deviceOptions: { offlineSpellsPerWeek: 500, offlineSpellMs: [3 * MINUTE, 3 * MINUTE] },
    });
    const sim = await start(transport, { plan: fleet });
    await vi.advanceTimersByTimeAsync(4 * 60 * 1000);
    await sim.stop();
    const id = fleet.devices[0]?.id ?? "";
    const kinds = transport.kinds(id).filter((k) => k !== "publish");
    // The first reconnect is refused; the one after it, a tick later, goes through, and so do later spells.
    expect(kinds.slice(0, 4)).toEqual(["connect", "drop", "refused", "connect"]);
    expect(kinds.filter((k) => k === "connect").length).toBeGreaterThan(2);
    expect(sim.stats().failed).toBeGreaterThan(0);
  });

  it("starts at fromMs with the devices where the time before it left them", async () => {
    const transport = fakeTransport();
    const fleet = plan(2);
    const fromMs = T0 + 30 * MINUTE;
    const sim = await start(transport, { plan: fleet, fromMs });
    await vi.advanceTimersByTimeAsync(2_000);
    await sim.stop();
    const samples = transport.samples(fleet.devices[0]?.id ?? "");
    expect(samples[0]?.ts).toBe(fromMs);
    // Thirty earlier ticks used their sequence numbers, though nothing was published for them.
    expect(samples[0]?.seq).toBeGreaterThanOrEqual(30);
  });

  it("routes a command to its device and answers with a result and what the command caused", async () => {
    const transport = fakeTransport();
    const fleet = plan(2);
    const printer = fleet.devices.find((d) => d.kind === "printer");
    if (printer === undefined) throw new Error("the fleet has no printer");
    const sim = await start(transport, { plan: fleet });
    await vi.advanceTimersByTimeAsync(2_000);
    const onCommand = transport.sessions.get(printer.id)?.onCommand;
    const seqBefore = Math.max(...transport.samples(printer.id).map((s) => s.seq));
    const answer = onCommand?.("cmd-1", { ok: true, command: { type: "recalibrate", ts: Date.now() } });
    expect(answer?.result).toMatchObject({ ok: true });
    expect(answer?.result.seq).toBeGreaterThan(seqBefore);
    expect(answer?.messages.length).toBeGreaterThan(0);
    const refused = onCommand?.("cmd-2", { ok: false, reason: "type: Invalid option" });
    expect(refused?.result).toMatchObject({
      ok: false,
      message: expect.stringContaining("type: Invalid option"),
    });
    expect(refused?.result.seq).toBeGreaterThan(answer?.result.seq ?? Number.POSITIVE_INFINITY);
    expect(sim.stats().commands).toBe(2);
    await sim.stop();
  });
});
