import { describe, expect, it } from "vitest";
import { faultFactor } from "../../device-sim/models/device-model.js";
import { createRandom, faultProneness, gamma } from "../../device-sim/random.js";
import { loadScenario, parseScenario } from "../../device-sim/scenario/parse.js";
import { planScenario, type ScenarioPlan } from "../../device-sim/scenario/plan.js";
import type { Scenario } from "../../device-sim/scenario/schema.js";
import { deviceOf, ticksOf } from "../../device-sim/schedule.js";
import { PLAIN_SCRIPT } from "../../device-sim/script.js";

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
const HOUR = 3_600_000;

function parsed(text: string): Scenario {
  const result = parseScenario(text, "test.yaml");
  if (!result.ok) throw new Error(result.errors.map((error) => error.text).join("\n"));
  return result.scenario;
}

const meanOf = (xs: number[]) => xs.reduce((sum, x) => sum + x, 0) / xs.length;
const varianceOf = (xs: number[]) => {
  const mean = meanOf(xs);
  return xs.reduce((sum, x) => sum + (x - mean) ** 2, 0) / (xs.length - 1);
};

describe("fault proneness", () => {
  // 20,000 draws: the mean's standard error is at most sqrt(4 / 20,000) = 0.014 (shape 0.25), the variance's
  // at most 4% of it (a gamma's kurtosis is 6 / shape), so the bounds below are over three standard errors.
  it.each([0.25, 0.5, 1, 2])("has mean 1 and variance 1/shape at shape %s", (shape) => {
    const random = createRandom(shape * 1000);
    const draws = Array.from({ length: 20_000 }, () => faultProneness(random, shape));
    expect(Math.abs(meanOf(draws) - 1)).toBeLessThan(0.05);
    expect(varianceOf(draws) / (1 / shape)).toBeGreaterThan(0.85);
    expect(varianceOf(draws) / (1 / shape)).toBeLessThan(1.15);
    expect(Math.min(...draws)).toBeGreaterThan(0);
  });

  it("draws a gamma whose mean is its shape, below 1 and above", () => {
    for (const shape of [0.3, 3]) {
      const random = createRandom(5);
      const draws = Array.from({ length: 20_000 }, () => gamma(random, shape));
      expect(meanOf(draws) / shape).toBeCloseTo(1, 1);
    }
  });

  it("is 1 for every device without a shape", () => {
    const random = createRandom(1);
    expect(Array.from({ length: 5 }, () => faultProneness(random, undefined))).toEqual([1, 1, 1, 1, 1]);
  });

  it("multiplies every fault rate, times the boosts that hold for the firmware and the code", () => {
    const script = {
      ...PLAIN_SCRIPT,
      proneness: 0.5,
      boosts: [
        { firmware: "8.10", code: "WAN_DOWN", factor: 4 },
        { code: "DNS_FAILURE", factor: 3 },
        { factor: 2 },
      ],
    };
    expect(faultFactor(script, "8.10", "WAN_DOWN")).toBe(0.5 * 4 * 2);
    expect(faultFactor(script, "8.02", "WAN_DOWN")).toBe(0.5 * 2);
    expect(faultFactor(script, "8.02", "DNS_FAILURE")).toBe(0.5 * 3 * 2);
    expect(faultFactor(PLAIN_SCRIPT, "8.02", "OVERHEAT")).toBe(1);
  });
});

const FLEET = `
name: differ
seed: 4
start: "2025-05-01T00:00:00Z"
duration: 2d
cadence: 10m
heterogeneity: 0.5
fleet:
  - { kind: modem, model: FQ-Modem 5530, count: 4000, firmware: { "7.31": 30, "8.02": 70 } }
  - { kind: modem, model: FQ-Modem 7590, count: 300, heterogeneity: none }
  - { kind: printer, model: FQ-Print Mk3, count: 200 }
rollouts:
  - model: FQ-Modem 5530
    firmware: "8.10"
    stages: [{ at: 1d, percent: 50 }]
problems:
  - { id: lemons, type: lemons, model: FQ-Modem 5530, count: 5, factor: 10 }
  - { id: clogs, type: lemons, kind: printer, count: 3, code: NOZZLE_CLOG, factor: 15 }
  - { id: silent, type: silent_after_update, model: FQ-Modem 5530, firmware: "8.10", count: 10, delay: 6h }
`;

describe("devices that differ, planned", () => {
  const plan = planScenario(parsed(FLEET), { nowMs: NOW });
  const of = (model: string) => plan.devices.filter((device) => device.hello.model === model);
  const problem = <T extends ScenarioPlan["truth"]["problems"][number]["type"]>(type: T, id: string) => {
    const found = plan.truth.problems.find((p) => p.type === type && p.id === id);
    if (found === undefined) throw new Error(`no ${id}`);
    return found as Extract<ScenarioPlan["truth"]["problems"][number], { type: T }>;
  };
  const lemons = new Set([...problem("lemons", "lemons").devices, ...problem("lemons", "clogs").devices]);

  it("draws each device's proneness with its entry's shape, or the scenario's", () => {
    // 4,000 draws at shape 0.5: the variance's standard error is about 6% of it.
    const prone = of("FQ-Modem 5530")
      .filter((device) => !lemons.has(device.id))
      .map((device) => device.script.proneness);
    expect(Math.abs(meanOf(prone) - 1)).toBeLessThan(0.1);
    expect(varianceOf(prone)).toBeGreaterThan(2 * 0.75);
    expect(varianceOf(prone)).toBeLessThan(2 * 1.25);
    expect(new Set(of("FQ-Modem 7590").map((device) => device.script.proneness))).toEqual(new Set([1]));
    expect(plan.truth.heterogeneity).toEqual([
      { model: "FQ-Modem 5530", devices: 4000, shape: 0.5 },
      { model: "FQ-Modem 7590", devices: 300, shape: null },
      { model: "FQ-Print Mk3", devices: 200, shape: 0.5 },
    ]);
  });

  it("leaves every other draw as it was: identities, updates and picks do not depend on the shapes", () => {
    const alike = planScenario(parsed(FLEET.replace("heterogeneity: 0.5", "heterogeneity: none")), {
      nowMs: NOW,
    });
    expect(alike.devices.map(({ id, hello, script }) => ({ id, hello, updates: script.updates }))).toEqual(
      plan.devices.map(({ id, hello, script }) => ({ id, hello, updates: script.updates })),
    );
    expect(alike.truth.problems).toEqual(plan.truth.problems);
    for (const device of alike.devices) if (!lemons.has(device.id)) expect(device.script.proneness).toBe(1);
  });

  it("picks the lemons among their model or kind and lists them", () => {
    const modems = problem("lemons", "lemons");
    expect(modems).toMatchObject({
      kind: "modem",
      model: "FQ-Modem 5530",
      factor: 10,
      onsetMs: plan.startMs,
    });
    expect(modems.code).toBeUndefined();
    expect(modems.devices).toHaveLength(5);
    const printers = problem("lemons", "clogs");
    expect(printers).toMatchObject({ kind: "printer", code: "NOZZLE_CLOG", factor: 15 });
    expect(printers.model).toBeUndefined();
    expect(printers.devices).toHaveLength(3);
    for (const id of printers.devices) expect(id).toMatch(/^printer-/);
  });

  it("makes a lemon fault factor times as often as the model's average device, and no one else", () => {
    for (const device of plan.devices) {
      const { script, hello } = device;
      const average = { ...script, proneness: 1, boosts: [] };
      if (problem("lemons", "lemons").devices.includes(device.id)) {
        expect(faultFactor(script, hello.firmware, "WAN_DOWN")).toBe(10);
      } else if (problem("lemons", "clogs").devices.includes(device.id)) {
        expect(faultFactor(script, hello.firmware, "NOZZLE_CLOG")).toBeCloseTo(15, 9);
        expect(faultFactor(script, hello.firmware, "LAYER_SHIFT")).toBe(script.proneness);
      } else {
        expect(script.boosts).toEqual([]);
        expect(faultFactor(script, hello.firmware, "WAN_DOWN")).toBe(
          script.proneness * faultFactor(average, hello.firmware, "WAN_DOWN"),
        );
      }
    }
  });
});

describe("lemons, played", () => {
  // 30 modems alike but for two lemons, a day in 10-minute steps.
  const plan = planScenario(
    parsed(`
name: lemons
seed: 9
start: "2025-05-01T00:00:00Z"
duration: 1d
cadence: 10m
heterogeneity: none
fleet: [{ kind: modem, model: FQ-Modem 7590, count: 30 }]
problems: [{ id: bad, type: lemons, model: FQ-Modem 7590, count: 2, factor: 10 }]
`),
    { nowMs: NOW },
  );
  const faults = plan.devices.map((device, index) => {
    let count = 0;
    for (const { outcome } of ticksOf(deviceOf(plan, index, plan.truth.seed), plan, index)) {
      count += outcome.messages.filter((message) => message.channel === "fault").length;
    }
    return { id: device.id, count };
  });

  it("has every lemon fault more than every other device", () => {
    const bad = plan.truth.problems[0]?.type === "lemons" ? plan.truth.problems[0].devices : [];
    expect(bad).toHaveLength(2);
    const lemonCounts = faults.filter((f) => bad.includes(f.id)).map((f) => f.count);
    const others = faults.filter((f) => !bad.includes(f.id)).map((f) => f.count);
    expect(Math.min(...lemonCounts)).toBeGreaterThan(2 * Math.max(...others));
    // About one fault an hour on an average modem.
    expect(meanOf(others)).toBeGreaterThan(12);
    expect(meanOf(others)).toBeLessThan(40);
  });
});

describe("scenario files", () => {
  const errorsOf = (text: string) => {
    const result = parseScenario(text, "test.yaml");
    return result.ok ? [] : result.errors.map((error) => error.text);
  };
  const BASE = [
    "name: test", // 1
    "duration: 7d", // 2
    "fleet:", // 3
    "  - kind: modem", // 4
    "    model: FQ-Modem 7590", // 5
    "    count: 20", // 6
    "    heterogeneity: 1", // 7
    "problems:", // 8
    "  - id: bad", // 9
    "    type: lemons", // 10
    "    model: FQ-Modem 7590", // 11
    "    count: 2", // 12
    "    code: WAN_DOWN", // 13
    "    factor: 8", // 14
  ];
  const withLine = (line: number, text: string) =>
    BASE.map((old, index) => (index + 1 === line ? text : old)).join("\n");

  it("reads heterogeneity and lemons, and defaults the shape to 2", () => {
    const scenario = parsed(BASE.join("\n"));
    expect(scenario.heterogeneity).toBe(2);
    expect(scenario.fleet[0]?.heterogeneity).toBe(1);
    expect(scenario.problems[0]).toMatchObject({ type: "lemons", count: 2, code: "WAN_DOWN", factor: 8 });
  });

  it.each([
    [
      "a shape of 0",
      7,
      "    heterogeneity: 0",
      "test.yaml:7:20: fleet[0].heterogeneity: must be a number from 0.1",
    ],
    ["a shape as a word", 7, "    heterogeneity: high", 'or "none" (all alike)'],
    [
      "lemons of a code the kind never raises",
      13,
      "    code: NOZZLE_CLOG",
      'modems raise no fault "NOZZLE_CLOG"',
    ],
    [
      "more lemons than devices",
      12,
      "    count: 21",
      "test.yaml:12:12: problems[0].count: the fleet has only 20",
    ],
    [
      "lemons of a model not in the fleet",
      11,
      "    model: FQ-Modem 5530",
      'no fleet entry has model "FQ-Modem 5530"',
    ],
    [
      "lemons of a kind not in the fleet",
      11,
      "    kind: printer",
      "problems[0].kind: the fleet has no printer",
    ],
    [
      "lemons of a model and a kind",
      11,
      "    model: FQ-Modem 7590\n    kind: modem",
      "give either the model or the kind",
    ],
    [
      "lemons among a version no entry starts on",
      13,
      '    firmware: "9.9"',
      "test.yaml:13:15: problems[0].firmware: no fleet entry of these devices starts on 9.9",
    ],
    ["a factor of 1", 14, "    factor: 1", "test.yaml:14:13: problems[0].factor: Too small"],
  ])("points at %s", (_, line, text, expected) => {
    expect(errorsOf(withLine(line, text))).toEqual(
      expect.arrayContaining([expect.stringContaining(expected)]),
    );
  });
});

describe("lemons-and-canary", async () => {
  const loaded = await loadScenario("lemons-and-canary");
  if (!loaded.ok) throw new Error(loaded.errors.map((error) => error.text).join("\n"));
  const plan = planScenario(loaded.scenario, { nowMs: NOW });

  it("is a week of history of a few hundred devices that differ, at shape 0.5", () => {
    expect(loaded.scenario.start).toEqual({ from: "now", offsetMs: -7 * 24 * HOUR });
    expect(plan.endMs - plan.startMs).toBe(7 * 24 * HOUR);
    expect(plan.devices.length).toBeGreaterThanOrEqual(200);
    expect(plan.devices.length).toBeLessThanOrEqual(400);
    expect(plan.truth.heterogeneity?.every((entry) => entry.shape === 0.5)).toBe(true);
    // Telemetry alone is devices × ticks; the whole run stays near 400,000 messages (docs/simulator.md).
    expect((plan.devices.length * (plan.endMs - plan.startMs)) / plan.cadenceMs).toBeLessThanOrEqual(350_000);
  });

  it("lists a canary regression and the lemons in its ground truth, and nothing on FQ-Modem 7590's versions", () => {
    expect(plan.truth.problems.map((p) => [p.id, p.type])).toEqual([
      ["canary-8.10-wan-down", "fault_rate"],
      ["lemons-5530", "lemons"],
      ["lemons-mk3-clog", "lemons"],
    ]);
    expect(plan.truth.problems[0]).toMatchObject({
      model: "FQ-Modem 5530",
      baseline: "8.02",
      firmware: "8.10",
      code: "WAN_DOWN",
      onsetMs: plan.startMs,
    });
    const canary = plan.devices.filter((device) => device.hello.firmware === "8.10");
    expect(canary).toHaveLength(40);
    const lemons = plan.truth.problems[1]?.type === "lemons" ? plan.truth.problems[1].devices : [];
    expect(canary.filter((device) => lemons.includes(device.id))).toEqual([]);
    const versions = new Set(
      plan.devices.filter((d) => d.hello.model === "FQ-Modem 7590").map((d) => d.hello.firmware),
    );
    expect(versions).toEqual(new Set(["7.29", "7.57"]));
    expect(
      plan.truth.problems.some((p) => "model" in p && p.type !== "lemons" && p.model === "FQ-Modem 7590"),
    ).toBe(false);
  });
});
