import { describe, expect, it } from "vitest";
import { Event, Fault, Hello, Telemetry, type TelemetrySample } from "../../contract/messages.js";
import type { DeviceSpec } from "../../device-sim/device.js";
import { buildFleet } from "../../device-sim/fleet.js";
import {
  type BaseState,
  type DeviceModel,
  FAULT_CODES,
  MODELS,
  type SimKind,
  type SimMessage,
} from "../../device-sim/models/index.js";
import { type ModemState, modem } from "../../device-sim/models/modem.js";
import {
  AMBIENT_C,
  DRIFT_LIMIT_MM,
  layerShiftsPerHour,
  type PrinterState,
  printer,
} from "../../device-sim/models/printer.js";
import { createRandom, deriveSeed, poisson } from "../../device-sim/random.js";
import { type DeviceScript, PLAIN_SCRIPT } from "../../device-sim/script.js";

const T0 = Date.UTC(2025, 0, 6, 8, 0, 0);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

type Emitted = { deviceId: string; at: number; message: SimMessage };

/** Steps a model alone (no connection, no runtime) from `state`, `stepMs` at a time, for `hours`. */
function runModel<S extends BaseState>(
  model: DeviceModel<S>,
  options: { state: S; seed: number; script?: DeviceScript; hours: number; stepMs: number; from?: number },
) {
  const random = createRandom(options.seed);
  const script = options.script ?? PLAIN_SCRIPT;
  const from = options.from ?? T0;
  const emitted: { at: number; message: SimMessage }[] = [];
  let state = options.state;
  const steps = Math.round((options.hours * HOUR) / options.stepMs);
  for (let i = 1; i <= steps; i++) {
    const at = from + i * options.stepMs;
    const step = model.step(state, random, { now: at, elapsedMs: options.stepMs }, script);
    state = step.state;
    for (const message of step.messages) emitted.push({ at, message });
  }
  return { emitted, state };
}

/** What every device of a fleet says over `hours`, each from its own seed, with `script`. */
function runFleet(fleet: DeviceSpec[], seed: number, hours: number, stepMs: number, script = PLAIN_SCRIPT) {
  return fleet.flatMap((spec) => {
    const model: DeviceModel<BaseState> = MODELS[spec.kind];
    const state = model.init(spec.hello, createRandom(deriveSeed(seed, spec.id)), T0);
    const run = runModel(model, { state, seed: deriveSeed(seed, spec.id), script, hours, stepMs });
    return run.emitted.map((e): Emitted => ({ deviceId: spec.id, ...e }));
  });
}

const firstOf = <K extends SimKind>(fleet: DeviceSpec[], kind: K) => {
  const spec = fleet.find((s) => s.kind === kind);
  if (spec === undefined) throw new Error(`no ${kind} in the fleet`);
  return spec;
};

const SCHEMAS = { hello: Hello, telemetry: Telemetry, fault: Fault, event: Event } as const;

function samplesOf(messages: SimMessage[]): TelemetrySample[] {
  return messages.flatMap((message) => {
    if (message.channel !== "telemetry") return [];
    return Array.isArray(message.payload) ? message.payload : [message.payload];
  });
}

const faultsOf = (emitted: { message: SimMessage }[], code: string) =>
  emitted.filter(({ message }) => message.channel === "fault" && message.payload.code === code);

function eventsOf(emitted: Emitted[] | { at: number; message: SimMessage }[], type: string) {
  return emitted.flatMap(({ at, message }) =>
    message.channel === "event" && !Array.isArray(message.payload) && message.payload.type === type
      ? [{ at, data: { ...message.payload.data } as Record<string, unknown> }]
      : [],
  );
}

function byDevice(emitted: Emitted[]): Map<string, SimMessage[]> {
  const grouped = new Map<string, SimMessage[]>();
  for (const { deviceId, message } of emitted) {
    const list = grouped.get(deviceId) ?? [];
    list.push(message);
    grouped.set(deviceId, list);
  }
  return grouped;
}

/**
 * Poisson counts: ln(B/A) has a standard deviation of about sqrt(1/A + 1/B). Runs with the same seeds draw
 * the same numbers, so their counts go together and the real spread is smaller: the bound is conservative.
 */
function expectRatio(boosted: number, plain: number, factor: number) {
  const sd = Math.sqrt(1 / plain + 1 / boosted);
  // Long enough to tell ×factor from ×1.5·factor at four standard deviations.
  expect(4 * sd).toBeLessThan(Math.log(1.5));
  expect(Math.abs(Math.log(boosted / plain) - Math.log(factor))).toBeLessThan(4 * sd);
}

// Long runs for invariants: three fleets as they come, three with a scenario's worst at once (an update at
// hour 6 to a firmware with boosted faults, a flaky line), each of 10 devices over two days in 2-minute steps.
const NEW_FIRMWARE = "9.0.0";
const STRESS_SCRIPT: DeviceScript = {
  updates: [{ atMs: T0 + 6 * HOUR, to: NEW_FIRMWARE }],
  boosts: [...FAULT_CODES.modem, ...FAULT_CODES.printer].map((code) => ({
    firmware: NEW_FIRMWARE,
    code,
    factor: 4,
  })),
  proneness: 1,
  lineFlakiness: 3,
  malformedPerHour: 0,
};
const LONG_RUN = { devices: 10, hours: 48, stepMs: 2 * MINUTE };
const LONG_RUN_STEPS = (6 * LONG_RUN.devices * LONG_RUN.hours * HOUR) / LONG_RUN.stepMs;
const LONG_RUNS = [1, 2, 3, 4, 5, 6].map((seed) => {
  const fleet = buildFleet({ devices: LONG_RUN.devices, seed });
  const emitted = runFleet(
    fleet,
    seed,
    LONG_RUN.hours,
    LONG_RUN.stepMs,
    seed > 3 ? STRESS_SCRIPT : PLAIN_SCRIPT,
  );
  return { seed, fleet, emitted, byDevice: byDevice(emitted) };
});
const ALL = LONG_RUNS.flatMap((run) => run.emitted);

describe("random", () => {
  it("repeats its sequence for a seed and stays in [0, 1)", () => {
    const a = createRandom(42);
    const b = createRandom(42);
    const draws = Array.from({ length: 1000 }, () => a.next());
    expect(draws).toEqual(Array.from({ length: 1000 }, () => b.next()));
    expect(draws.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(createRandom(43).next()).not.toBe(draws[0]);
  });

  it("draws Poisson counts around their mean", () => {
    const random = createRandom(9);
    const draws = Array.from({ length: 20_000 }, () => poisson(random, 2.5));
    const mean = draws.reduce((sum, x) => sum + x, 0) / draws.length;
    // The mean of 20,000 draws has a standard deviation of sqrt(2.5 / 20,000) ≈ 0.011.
    expect(Math.abs(mean - 2.5)).toBeLessThan(0.05);
    expect(poisson(random, 0)).toBe(0);
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

  it("mixes modems and printers with numbered ids, valid hellos and no script", () => {
    const fleet = buildFleet({ devices: 50, seed: 1 });
    expect(fleet[0]?.id).toBe("modem-0001");
    expect(fleet[1]?.id).toBe("printer-0002");
    for (const [index, spec] of fleet.entries()) {
      expect(spec.id).toBe(`${spec.kind}-${String(index + 1).padStart(4, "0")}`);
      expect(Hello.safeParse(spec.hello).success).toBe(true);
      expect(spec.hello.kind).toBe(spec.kind);
      expect(spec.script).toBeUndefined();
    }
    const kinds = new Set(fleet.map((spec) => spec.kind));
    expect(kinds).toEqual(new Set(["modem", "printer"]));
    expect(new Set(fleet.map((spec) => spec.hello.serial)).size).toBe(fleet.length);
  });

  it("shows both kinds even in a fleet of two", () => {
    expect(buildFleet({ devices: 2, seed: 99 }).map((spec) => spec.kind)).toEqual(["modem", "printer"]);
  });
});

describe("device models over long runs", () => {
  it.each(Object.values(MODELS))(
    "leave the state they are given untouched, stepping and answering commands ($kind)",
    (model: DeviceModel<BaseState>) => {
      const spec = firstOf(buildFleet({ devices: 2, seed: 1 }), model.kind as SimKind);
      const random = createRandom(1);
      let state = model.init(spec.hello, random, T0);
      for (let i = 1; i <= 500; i++) {
        const now = T0 + i * MINUTE;
        const before = structuredClone(state);
        const next = model.step(state, random, { now, elapsedMs: MINUTE }, STRESS_SCRIPT);
        expect(state).toEqual(before);
        if (i % 50 === 0) {
          for (const type of ["reboot", "recalibrate", "diagnostics"] as const) {
            const given = structuredClone(next.state);
            model.command(next.state, { id: `cmd-${i}`, type }, random, now);
            expect(next.state).toEqual(given);
          }
        }
        state = next.state;
      }
    },
  );

  it("produce the identical message sequence for the same seed and script, another for another seed", () => {
    const fleet = buildFleet({ devices: 6, seed: 11 });
    const run = (seed: number) => runFleet(fleet, seed, 8, 30_000, STRESS_SCRIPT);
    expect(run(11)).toEqual(run(11));
    expect(run(11)).not.toEqual(run(12));
  });

  it("emit only messages that pass the contract schemas", () => {
    const failures = ALL.flatMap(({ deviceId, message }): unknown[] => {
      if (message.channel === "raw") return [{ deviceId, message, issues: "a model never sends raw" }];
      const result = SCHEMAS[message.channel].safeParse(message.payload);
      return result.success ? [] : [{ deviceId, message, issues: result.error.issues }];
    });
    expect(failures).toEqual([]);
    expect(samplesOf(ALL.map((e) => e.message))).toHaveLength(LONG_RUN_STEPS);
  });

  it("raise only their kind's fault codes, and show every event type a plain fleet has", () => {
    const wrong: string[] = [];
    const seen = new Set<string>();
    for (const { fleet, byDevice } of LONG_RUNS) {
      for (const spec of fleet) {
        for (const message of byDevice.get(spec.id) ?? []) {
          if (message.channel !== "fault") continue;
          seen.add(message.payload.code);
          if (!FAULT_CODES[spec.kind].includes(message.payload.code))
            wrong.push(`${spec.id} ${message.payload.code}`);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(seen).toEqual(new Set([...FAULT_CODES.modem, ...FAULT_CODES.printer]));
    const events = new Set(
      ALL.flatMap(({ message }) =>
        message.channel === "event" && !Array.isArray(message.payload) ? [message.payload.type] : [],
      ),
    );
    expect(events).toEqual(new Set(["reboot", "firmware_update", "print_job", "feedback", "calibration"]));
  });

  it("number every device's messages 0, 1, 2, … across all kinds, in time order", () => {
    let checked = 0;
    for (const { fleet, byDevice } of LONG_RUNS) {
      for (const spec of fleet) {
        const stamped = (byDevice.get(spec.id) ?? [])
          .flatMap((message) =>
            message.channel !== "hello" && message.channel !== "raw" ? [message.payload] : [],
          )
          .flatMap((payload) => (Array.isArray(payload) ? payload : [payload]));
        expect(stamped.map((m) => m.seq)).toEqual(stamped.map((_, i) => i));
        const times = stamped.map((m) => m.ts);
        expect(times).toEqual([...times].sort((a, b) => a - b));
        checked += stamped.length;
      }
    }
    expect(checked).toBeGreaterThan(LONG_RUN_STEPS);
  });

  it("only let counters grow until the device reboots, and a printer's EEPROM counters not even then", () => {
    const IN_EEPROM = new Set(["jobs_started", "jobs_finished", "jobs_failed", "print_time_s"]);
    let reboots = 0;
    const shrunk: string[] = [];
    for (const { fleet, byDevice } of LONG_RUNS) {
      for (const spec of fleet) {
        const counters = MODELS[spec.kind].counters;
        let last = new Map<string, number>();
        for (const message of byDevice.get(spec.id) ?? []) {
          if (
            message.channel === "event" &&
            !Array.isArray(message.payload) &&
            message.payload.type === "reboot"
          ) {
            reboots += 1;
            last = new Map([...last].filter(([name]) => IN_EEPROM.has(name)));
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
    }
    expect(shrunk).toEqual([]);
    expect(reboots).toBeGreaterThan(0);
  });

  it("keep temperatures physical", () => {
    const ranges: Record<string, [number, number]> = {
      nozzle_temp_c: [AMBIENT_C - 2, 300],
      nozzle_target_c: [0, 300],
      bed_temp_c: [AMBIENT_C - 2, 120],
      bed_target_c: [0, 120],
      cpu_temp_c: [20, 110],
    };
    const seen = new Set<string>();
    const unphysical: string[] = [];
    for (const { deviceId, message } of ALL) {
      for (const { seq, metrics } of samplesOf([message])) {
        for (const [name, [min, max]] of Object.entries(ranges)) {
          const value = metrics[name];
          if (value === undefined) continue;
          seen.add(name);
          if (typeof value !== "number" || value < min || value > max)
            unphysical.push(`${deviceId} #${seq} ${name}=${value}`);
        }
      }
    }
    expect(unphysical).toEqual([]);
    expect(seen).toEqual(new Set(Object.keys(ranges)));
  });

  it("heat a printer to its targets while it prints", () => {
    const printing = samplesOf(ALL.map((e) => e.message)).filter((s) => s.metrics.printing === true);
    expect(printing.length).toBeGreaterThan(1000);
    const off = printing.filter(
      ({ metrics }) =>
        Math.abs(Number(metrics.nozzle_temp_c) - Number(metrics.nozzle_target_c)) >= 40 ||
        !(Number(metrics.fan_rpm) >= 0),
    );
    expect(off).toEqual([]);
  });

  it("rate the devices from 0 to 10, lower after faults", () => {
    const ratings = eventsOf(ALL, "feedback").map(({ data }) => Number(data.rating));
    expect(ratings.length).toBeGreaterThan(100);
    expect(ratings.every((r) => Number.isInteger(r) && r >= 0 && r <= 10)).toBe(true);
    // The stressed fleets (seeds 4-6) suffer four times the faults from hour 6 on.
    const mean = (runs: typeof LONG_RUNS) => {
      const r = eventsOf(
        runs.flatMap((run) => run.emitted).filter((e) => e.at > T0 + 12 * HOUR),
        "feedback",
      ).map(({ data }) => Number(data.rating));
      return r.reduce((sum, x) => sum + x, 0) / r.length;
    };
    expect(mean(LONG_RUNS.slice(3))).toBeLessThan(mean(LONG_RUNS.slice(0, 3)) - 0.5);
  });
});

describe("scripts", () => {
  const FLEET = buildFleet({ devices: 60, seed: 21 });
  const MODEMS = FLEET.filter((s) => s.kind === "modem");
  const PRINTERS = FLEET.filter((s) => s.kind === "printer");
  /** The same devices, each boosted on the firmware it runs. */
  const boostedOnOwnFirmware = (specs: DeviceSpec[], code: string, factor: number) =>
    specs.map((spec) => ({
      spec,
      script: { ...PLAIN_SCRIPT, boosts: [{ firmware: spec.hello.firmware, code, factor }] },
    }));
  const runEach = (runs: { spec: DeviceSpec; script: DeviceScript }[], hours: number, stepMs: number) =>
    runs.flatMap(({ spec, script }) => runFleet([spec], 21, hours, stepMs, script));

  // Device-hours chosen so that the plain run counts 150-250 of the code: enough for expectRatio's check.
  it.each([
    ["modem", "DNS_FAILURE", 3, 30],
    ["modem", "OVERHEAT", 5, 80],
    ["printer", "LAYER_SHIFT", 3, 150],
  ] as const)("multiply a %s's %s by the boost on its firmware (×%d)", (kind, code, factor, hours) => {
    const specs = kind === "modem" ? MODEMS : PRINTERS;
    const plain = faultsOf(runFleet(specs, 21, hours, 5 * MINUTE), code).length;
    const boosted = faultsOf(
      runEach(boostedOnOwnFirmware(specs, code, factor), hours, 5 * MINUTE),
      code,
    ).length;
    expectRatio(boosted, plain, factor);
  });

  it("ignore a boost on a firmware the device does not run", () => {
    const spec = firstOf(FLEET, "modem");
    const script = { ...PLAIN_SCRIPT, boosts: [{ firmware: "0.0.1", code: "DNS_FAILURE", factor: 50 }] };
    expect(runFleet([spec], 21, 24, MINUTE, script)).toEqual(runFleet([spec], 21, 24, MINUTE));
  });

  it("resync a flaky line more often, with a thinner margin and more errors", () => {
    const flaky = { ...PLAIN_SCRIPT, lineFlakiness: 4 };
    // One-minute steps: at five, a flaky long line's resyncs would bunch up beyond one per step.
    const plainRun = runFleet(MODEMS, 21, 12, MINUTE);
    const flakyRun = runFleet(MODEMS, 21, 12, MINUTE, flaky);
    expectRatio(faultsOf(flakyRun, "DSL_RESYNC").length, faultsOf(plainRun, "DSL_RESYNC").length, 4);
    expect(faultsOf(flakyRun, "WAN_DOWN").length).toBeGreaterThan(2 * faultsOf(plainRun, "WAN_DOWN").length);
    const mean = (run: Emitted[], metric: string) => {
      const values = samplesOf(run.map((e) => e.message)).map((s) => Number(s.metrics[metric]));
      return values.reduce((sum, x) => sum + x, 0) / values.length;
    };
    // 1.5 dB less margin for every doubling of flakiness.
    expect(mean(flakyRun, "snr_margin_db")).toBeLessThan(mean(plainRun, "snr_margin_db") - 2);
    expect(mean(flakyRun, "crc_errors")).toBeGreaterThan(mean(plainRun, "crc_errors"));
  });

  it("take a firmware push at its time and not before, then announce the new firmware", () => {
    const atMs = T0 + 6 * HOUR;
    const script = { ...PLAIN_SCRIPT, updates: [{ atMs, to: NEW_FIRMWARE }] };
    for (const spec of MODEMS) {
      const run = runFleet([spec], 21, 36, 5 * MINUTE, script);
      const updates = eventsOf(run, "firmware_update");
      const hellos = run.flatMap(({ at, message }) =>
        message.channel === "hello" ? [{ at, firmware: message.payload.firmware }] : [],
      );
      expect(updates[0]?.at).toBe(atMs);
      const success = updates.find(({ data }) => data.result === "success");
      expect(success).toBeDefined();
      expect(hellos).toEqual([{ at: success?.at, firmware: NEW_FIRMWARE }]);
      expect(updates.every(({ data }) => data.to === NEW_FIRMWARE)).toBe(true);
    }
  });

  it("let a printer finish its print before it flashes a push", () => {
    const atMs = T0 + 6 * HOUR;
    const script = { ...PLAIN_SCRIPT, updates: [{ atMs, to: NEW_FIRMWARE }] };
    let waited = 0;
    for (const spec of PRINTERS) {
      const run = runFleet([spec], 21, 36, 5 * MINUTE, script);
      const first = eventsOf(run, "firmware_update")[0];
      expect(first).toBeDefined();
      expect(first?.at).toBeGreaterThanOrEqual(atMs);
      const before = samplesOf(
        run.filter((e) => first !== undefined && e.at < first.at).map((e) => e.message),
      );
      expect(before.at(-1)?.metrics.printing).toBe(false);
      if (first !== undefined && first.at > atMs) waited += 1;
    }
    expect(waited).toBeGreaterThan(0);
  });

  it("retry a push that failed, hours later, until it takes", () => {
    const atMs = T0 + HOUR;
    const script = { ...PLAIN_SCRIPT, updates: [{ atMs, to: NEW_FIRMWARE }] };
    const many = buildFleet({ devices: 300, seed: 5 }).filter((s) => s.kind === "modem");
    let retried = 0;
    for (const spec of many) {
      const updates = eventsOf(runFleet([spec], 5, 30, 5 * MINUTE, script), "firmware_update");
      expect(updates.at(-1)?.data.result).toBe("success");
      for (const [i, { at, data }] of updates.slice(0, -1).entries()) {
        expect(data.result).not.toBe("success");
        const gap = (updates[i + 1]?.at ?? 0) - at;
        expect(gap).toBeGreaterThanOrEqual(HOUR);
        expect(gap).toBeLessThanOrEqual(6 * HOUR + 5 * MINUTE);
        retried += 1;
      }
    }
    expect(retried).toBeGreaterThan(0);
  });

  it("skip a push to the firmware the device runs, and pushes overtaken by a newer one", () => {
    const spec = firstOf(FLEET, "modem");
    const same = { ...PLAIN_SCRIPT, updates: [{ atMs: T0 + HOUR, to: spec.hello.firmware }] };
    expect(runFleet([spec], 21, 12, 5 * MINUTE, same)).toEqual(runFleet([spec], 21, 12, 5 * MINUTE));
    // Both pushes are due at the first step: only the newer is taken.
    const both = {
      ...PLAIN_SCRIPT,
      updates: [
        { atMs: T0, to: "8.0.0" },
        { atMs: T0 + MINUTE, to: NEW_FIRMWARE },
      ],
    };
    const updates = eventsOf(runFleet([spec], 21, 12, 5 * MINUTE, both), "firmware_update");
    expect(updates.map(({ data }) => data.to)).toEqual(updates.map(() => NEW_FIRMWARE));
  });
});

describe("printer calibration drift", () => {
  const SPECS = buildFleet({ devices: 80, seed: 33 }).filter((s) => s.kind === "printer");
  const initial = (spec: DeviceSpec) =>
    printer.init(spec.hello, createRandom(deriveSeed(33, spec.id)), T0) as PrinterState;

  it("makes layer shifts likelier as the bed drifts, back to the base rate once levelled", () => {
    const state = initial(firstOf(SPECS, "printer"));
    const rates = [0, 0.1, 0.2, 0.3, 0.5].map((driftMm) => layerShiftsPerHour({ ...state, driftMm }));
    expect(rates).toEqual([...rates].sort((a, b) => a - b));
    expect(new Set(rates).size).toBe(rates.length);
    const levelled = printer.command(
      { ...state, driftMm: 0.5 },
      { id: "c1", type: "recalibrate" },
      createRandom(1),
      T0,
    );
    expect(levelled.state.driftMm).toBeLessThan(0.05);
    expect(layerShiftsPerHour(levelled.state)).toBeLessThan((rates[0] ?? 0) * 1.2);
  });

  it("grows with print hours and is reported past its limit until the printer is levelled", () => {
    let reported = 0;
    for (const spec of SPECS.slice(0, 10)) {
      const state = { ...initial(spec), driftMm: DRIFT_LIMIT_MM * 0.9 };
      const run = runModel(printer, { state, seed: deriveSeed(2, spec.id), hours: 96, stepMs: 5 * MINUTE });
      const offsets = samplesOf(run.emitted.map((e) => e.message)).map((s) =>
        Number(s.metrics.bed_level_offset_mm),
      );
      const drift = faultsOf(run.emitted, "BED_LEVEL_DRIFT");
      const calibrations = eventsOf(run.emitted, "calibration");
      reported += drift.length;
      for (const { message } of drift) {
        if (message.channel === "fault")
          expect(Number(message.payload.context?.offset_mm)).toBeGreaterThanOrEqual(DRIFT_LIMIT_MM);
      }
      // Between levellings the offset only grows.
      const levelledAt = new Set(calibrations.map((c) => c.at));
      const samples = run.emitted.filter((e) => e.message.channel === "telemetry");
      for (const [i, sample] of samples.entries()) {
        if (i === 0 || levelledAt.has(sample.at)) continue;
        expect(offsets[i]).toBeGreaterThanOrEqual(offsets[i - 1] ?? 0);
      }
      expect(Math.max(...offsets)).toBeGreaterThan(offsets[0] ?? 0);
    }
    expect(reported).toBeGreaterThan(0);
  });

  it("shifts layers more often on a drifted bed than after a recalibration", () => {
    let drifted = 0;
    let levelled = 0;
    for (const spec of SPECS) {
      const state = { ...initial(spec), driftMm: DRIFT_LIMIT_MM * 1.5 };
      const recalibrated = printer.command(
        state,
        { id: "c1", type: "recalibrate" },
        createRandom(3),
        T0,
      ).state;
      const seed = deriveSeed(4, spec.id);
      drifted += faultsOf(
        runModel(printer, { state, seed, hours: 48, stepMs: 5 * MINUTE }).emitted,
        "LAYER_SHIFT",
      ).length;
      levelled += faultsOf(
        runModel(printer, { state: recalibrated, seed, hours: 48, stepMs: 5 * MINUTE }).emitted,
        "LAYER_SHIFT",
      ).length;
    }
    // 5.5 times the base rate at 1.5 × the limit, until the owner levels the bed.
    expect(levelled).toBeGreaterThan(20);
    expect(drifted).toBeGreaterThan(2 * levelled);
  });
});

describe("commands", () => {
  const FLEET = buildFleet({ devices: 4, seed: 8 });
  const modemState = () => {
    const spec = firstOf(FLEET, "modem");
    return modem.init(spec.hello, createRandom(8), T0) as ModemState;
  };
  const printerState = () => {
    const spec = firstOf(FLEET, "printer");
    return printer.init(spec.hello, createRandom(8), T0) as PrinterState;
  };

  it("reboot a modem: uptime and error counters restart and a WAN outage is over", () => {
    const script = {
      ...PLAIN_SCRIPT,
      boosts: [{ firmware: modemState().hello.firmware, code: "WAN_DOWN", factor: 500 }],
    };
    let state = modemState();
    const random = createRandom(8);
    let now = T0;
    while (state.wanDownS === 0 && now < T0 + 24 * HOUR) {
      now += MINUTE;
      state = modem.step(state, random, { now, elapsedMs: MINUTE }, script).state;
    }
    expect(state.wanDownS).toBeGreaterThan(0);
    expect(state.crcErrors).toBeGreaterThan(0);
    const {
      state: after,
      result,
      messages,
    } = modem.command(state, { id: "c1", type: "reboot" }, random, now);
    expect(result.ok).toBe(true);
    expect(result.message).toContain("WAN outage");
    expect(messages).toEqual([
      { channel: "event", payload: { ts: now, seq: state.seq, type: "reboot", data: { reason: "remote" } } },
    ]);
    expect(after).toMatchObject({
      wanDownS: 0,
      radioDownS: 0,
      uptimeS: 0,
      crcErrors: 0,
      fecErrors: 0,
      seq: state.seq + 1,
    });
    const next = modem.step(after, random, { now: now + MINUTE, elapsedMs: MINUTE }, PLAIN_SCRIPT);
    const [sample] = samplesOf(next.messages);
    expect(sample?.metrics).toMatchObject({ wan_up: true, uptime_s: 60 });
  });

  it("reboot a printer mid-print: the job is aborted, the jobs counters kept", () => {
    let state = printerState();
    const random = createRandom(8);
    let now = T0;
    while (state.phase !== "printing") {
      now += MINUTE;
      state = printer.step(state, random, { now, elapsedMs: MINUTE }, PLAIN_SCRIPT).state;
    }
    const {
      state: after,
      result,
      messages,
    } = printer.command(state, { id: "c2", type: "reboot" }, random, now);
    expect(result).toEqual({ ok: true, message: `rebooted; ${state.job?.id} aborted` });
    expect(
      messages.map((m) => (m.channel === "event" && !Array.isArray(m.payload) ? m.payload.type : m.channel)),
    ).toEqual(["print_job", "reboot"]);
    expect(after).toMatchObject({
      phase: "idle",
      job: undefined,
      uptimeS: 0,
      nozzleTargetC: 0,
      jobsStarted: state.jobsStarted,
      jobsFailed: state.jobsFailed + 1,
    });
  });

  it("recalibrate a printer: a calibration event, the drift gone; a modem says it cannot", () => {
    const state = { ...printerState(), driftMm: 0.42 };
    const {
      state: after,
      result,
      messages,
    } = printer.command(state, { id: "c3", type: "recalibrate" }, createRandom(2), T0);
    expect(result.ok).toBe(true);
    expect(result.message).toContain("0.42 mm");
    expect(after.driftMm).toBeLessThan(0.05);
    expect(messages).toHaveLength(1);
    const [event] = messages;
    expect(event?.channel === "event" && Event.parse(event.payload)).toMatchObject({
      type: "calibration",
      data: { reason: "remote", offset_before_mm: 0.42 },
    });
    const modemAnswer = modem.command(modemState(), { id: "c4", type: "recalibrate" }, createRandom(2), T0);
    expect(modemAnswer.result.ok).toBe(false);
    expect(modemAnswer.result.message).toMatch(/not supported/);
    expect(modemAnswer.messages).toEqual([]);
  });

  it.each([
    ["modem", modemState, ["SNR margin", "CRC errors", "kbit/s"]],
    ["printer", printerState, ["nozzle", "bed offset", "fan"]],
  ] as const)("run diagnostics on a %s without changing it", (_kind, make, words) => {
    const state: BaseState = make();
    const model: DeviceModel<BaseState> = MODELS[state.hello.kind as SimKind];
    const random = createRandom(5);
    const untouched = createRandom(5);
    const answer = model.command(state, { id: "c5", type: "diagnostics" }, random, T0);
    expect(answer.state).toBe(state);
    expect(answer.messages).toEqual([]);
    expect(answer.result.ok).toBe(true);
    for (const word of words) expect(answer.result.message).toContain(word);
    expect(random.next()).toBe(untouched.next());
  });
});
