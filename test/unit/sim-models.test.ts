import { describe, expect, it } from "vitest";
import { Event, Fault, FirmwareUpdateEvent, Hello, Telemetry } from "../../contract/messages.js";
import { createDevice, type DeviceSpec } from "../../device-sim/device.js";
import { buildFleet } from "../../device-sim/fleet.js";
import { type BaseState, type DeviceModel, MODELS, type SimMessage } from "../../device-sim/models/index.js";
import { createRandom } from "../../device-sim/random.js";

const T0 = Date.UTC(2025, 0, 6, 8, 0, 0);

type Emitted = { deviceId: string; message: SimMessage };

/** Ticks every device of the fleet `ticks` times, `stepMs` apart, and collects what they said. */
function simulate(fleet: DeviceSpec[], seed: number, ticks: number, stepMs: number): Emitted[] {
  const emitted: Emitted[] = [];
  for (const spec of fleet) {
    const device = createDevice(spec, seed, T0);
    for (let i = 1; i <= ticks; i++) {
      for (const message of device.tick({ now: T0 + i * stepMs, elapsedMs: stepMs })) {
        emitted.push({ deviceId: spec.id, message });
      }
    }
  }
  return emitted;
}

const SCHEMAS = { hello: Hello, telemetry: Telemetry, fault: Fault, event: Event } as const;

const samplesOf = (messages: SimMessage[]) =>
  messages.flatMap((message) => {
    if (message.channel !== "telemetry") return [];
    return Array.isArray(message.payload) ? message.payload : [message.payload];
  });

function byDevice(emitted: Emitted[]): Map<string, SimMessage[]> {
  const grouped = new Map<string, SimMessage[]>();
  for (const { deviceId, message } of emitted)
    grouped.set(deviceId, [...(grouped.get(deviceId) ?? []), message]);
  return grouped;
}

// A day and a half of model time for 24 devices: enough for faults, reboots and print jobs to happen.
const SEED = 7;
const FLEET = buildFleet({ devices: 24, seed: SEED });
const LONG_RUN = simulate(FLEET, SEED, 2000, 60_000);
const LONG_RUN_BY_DEVICE = byDevice(LONG_RUN);
const messagesOf = (deviceId: string) => LONG_RUN_BY_DEVICE.get(deviceId) ?? [];

describe("random", () => {
  it("repeats its sequence for a seed and stays in [0, 1)", () => {
    const a = createRandom(42);
    const b = createRandom(42);
    const draws = Array.from({ length: 1000 }, () => a.next());
    expect(draws).toEqual(Array.from({ length: 1000 }, () => b.next()));
    expect(draws.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(createRandom(43).next()).not.toBe(draws[0]);
  });
});

describe("fleet", () => {
  it("builds the same fleet from the same seed", () => {
    expect(buildFleet({ devices: 30, seed: 3 })).toEqual(buildFleet({ devices: 30, seed: 3 }));
    expect(buildFleet({ devices: 30, seed: 3 })).not.toEqual(buildFleet({ devices: 30, seed: 4 }));
  });

  it("keeps a smaller fleet's devices when the fleet grows", () => {
    expect(buildFleet({ devices: 40, seed: 3 }).slice(0, 10)).toEqual(buildFleet({ devices: 10, seed: 3 }));
  });

  it("mixes modems and printers with numbered ids and valid hellos", () => {
    const fleet = buildFleet({ devices: 50, seed: 1 });
    expect(fleet[0]?.id).toBe("modem-0001");
    expect(fleet[1]?.id).toBe("printer-0002");
    for (const [index, spec] of fleet.entries()) {
      expect(spec.id).toBe(`${spec.kind}-${String(index + 1).padStart(4, "0")}`);
      expect(Hello.safeParse(spec.hello).success).toBe(true);
      expect(spec.hello.kind).toBe(spec.kind);
    }
    const kinds = new Set(fleet.map((spec) => spec.kind));
    expect(kinds).toEqual(new Set(["modem", "printer"]));
    expect(new Set(fleet.map((spec) => spec.hello.serial)).size).toBe(fleet.length);
  });

  it("shows both kinds even in a fleet of two", () => {
    expect(buildFleet({ devices: 2, seed: 99 }).map((spec) => spec.kind)).toEqual(["modem", "printer"]);
  });
});

describe("device models", () => {
  it.each(Object.values(MODELS))(
    "leave the state they are given untouched ($kind)",
    (model: DeviceModel<BaseState>) => {
      const spec = FLEET.find((s) => s.kind === model.kind);
      if (spec === undefined) throw new Error(`no ${model.kind} in the fleet`);
      const random = createRandom(1);
      let state = model.init(spec.hello, random, T0);
      for (let i = 1; i <= 500; i++) {
        const before = structuredClone(state);
        const next = model.step(state, random, { now: T0 + i * 60_000, elapsedMs: 60_000 });
        expect(state).toEqual(before);
        state = next.state;
      }
    },
  );

  it("produce the identical message sequence for the same seed", () => {
    const fleet = buildFleet({ devices: 6, seed: 11 });
    expect(simulate(fleet, 11, 500, 30_000)).toEqual(simulate(fleet, 11, 500, 30_000));
    expect(simulate(fleet, 11, 500, 30_000)).not.toEqual(simulate(fleet, 12, 500, 30_000));
  });

  it("emit only messages that pass the contract schemas", () => {
    const failures = LONG_RUN.flatMap(({ deviceId, message }) => {
      const result = SCHEMAS[message.channel].safeParse(message.payload);
      return result.success ? [] : [{ deviceId, message, issues: result.error.issues }];
    });
    expect(failures).toEqual([]);
    expect(LONG_RUN.length).toBeGreaterThan(FLEET.length * 2000);
  });

  it("report faults and every known event type over a long run", () => {
    const faults = new Set(
      LONG_RUN.flatMap(({ message }) => (message.channel === "fault" ? [message.payload.code] : [])),
    );
    const events = new Set(
      LONG_RUN.flatMap(({ message }) => (message.channel === "event" ? [message.payload.type] : [])),
    );
    for (const code of faults) {
      expect([
        "DSL_RESYNC",
        "WAN_DOWN",
        "DNS_FAILURE",
        "OVERHEAT",
        "WIFI_RADIO_CRASH",
        "THERMAL_RUNAWAY",
        "LAYER_SHIFT",
        "FILAMENT_RUNOUT",
        "NOZZLE_CLOG",
        "BED_LEVEL_DRIFT",
        "FAN_FAILURE",
      ]).toContain(code);
    }
    expect(faults).toContain("DSL_RESYNC");
    expect(faults).toContain("LAYER_SHIFT");
    expect(events).toEqual(new Set(["reboot", "firmware_update", "print_job", "feedback"]));
  });

  it("number every device's messages 0, 1, 2, … across all kinds, in time order", () => {
    for (const spec of FLEET) {
      const stamped = messagesOf(spec.id)
        .flatMap((message) => (message.channel !== "hello" ? [message.payload] : []))
        .flatMap((payload) => (Array.isArray(payload) ? payload : [payload]));
      expect(stamped.map((m) => m.seq)).toEqual(stamped.map((_, i) => i));
      const times = stamped.map((m) => m.ts);
      expect(times).toEqual([...times].sort((a, b) => a - b));
    }
  });

  it("only let counters grow until the device reboots", () => {
    let reboots = 0;
    const shrunk: string[] = [];
    for (const spec of FLEET) {
      const counters = createDevice(spec, SEED, T0).counters;
      let last = new Map<string, number>();
      for (const message of messagesOf(spec.id)) {
        if (message.channel === "event" && message.payload.type === "reboot") {
          reboots += 1;
          last = new Map();
        }
        for (const { seq, metrics } of samplesOf([message])) {
          for (const name of counters) {
            const value = metrics[name];
            const before = last.get(name) ?? 0;
            if (typeof value !== "number" || value < before)
              shrunk.push(`${spec.id} #${seq} ${name}: ${before} → ${value}`);
            else last.set(name, value);
          }
        }
      }
    }
    expect(shrunk).toEqual([]);
    expect(reboots).toBeGreaterThan(0);
  });

  it("keep temperatures physical", () => {
    const ranges: Record<string, [number, number]> = {
      nozzle_temp_c: [15, 300],
      nozzle_target_c: [0, 300],
      bed_temp_c: [15, 120],
      bed_target_c: [0, 120],
      cpu_temp_c: [20, 110],
    };
    const seen = new Set<string>();
    const unphysical: string[] = [];
    for (const spec of FLEET) {
      for (const { seq, metrics } of samplesOf(messagesOf(spec.id))) {
        for (const [name, [min, max]] of Object.entries(ranges)) {
          const value = metrics[name];
          if (value === undefined) continue;
          seen.add(name);
          if (typeof value !== "number" || value < min || value > max)
            unphysical.push(`${spec.id} #${seq} ${name}=${value}`);
        }
      }
    }
    expect(unphysical).toEqual([]);
    expect(seen).toEqual(new Set(Object.keys(ranges)));
  });

  it("heat a printer to its targets while it prints", () => {
    const printing = FLEET.flatMap((spec) => samplesOf(messagesOf(spec.id))).filter(
      (s) => s.metrics.printing === true,
    );
    expect(printing.length).toBeGreaterThan(0);
    for (const { metrics } of printing) {
      expect(Math.abs(Number(metrics.nozzle_temp_c) - Number(metrics.nozzle_target_c))).toBeLessThan(40);
      expect(Number(metrics.fan_rpm)).toBeGreaterThanOrEqual(0);
    }
  });

  it("announce a new hello after a successful firmware update", () => {
    let updates = 0;
    for (const [index, { deviceId, message }] of LONG_RUN.entries()) {
      const update = message.channel === "event" ? FirmwareUpdateEvent.safeParse(message.payload) : undefined;
      if (!update?.success || update.data.data.result !== "success") continue;
      updates += 1;
      const hello = LONG_RUN.slice(index).find(
        (e) => e.deviceId === deviceId && e.message.channel === "hello",
      );
      expect(hello?.message.payload).toMatchObject({ firmware: update.data.data.to });
    }
    expect(updates).toBeGreaterThan(0);
  });
});
