import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hello } from "../../contract/messages.js";
import { DEVICE_ID_PATTERN } from "../../contract/topics.js";
import { listShippedScenarios, loadScenario, parseScenario } from "../../device-sim/scenario/parse.js";
import { planScenario, type ScenarioPlan } from "../../device-sim/scenario/plan.js";
import type { Scenario } from "../../device-sim/scenario/schema.js";

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function parsed(text: string, file = "test.yaml"): Scenario {
  const result = parseScenario(text, file);
  if (!result.ok) throw new Error(result.errors.map((error) => error.text).join("\n"));
  return result.scenario;
}

function errorsOf(text: string, file: string): string[] {
  const result = parseScenario(text, file);
  expect(result.ok).toBe(false);
  return result.ok ? [] : result.errors.map((error) => error.text);
}

/** A valid file; the table below breaks one line of it at a time. Line numbers are the array's index + 1. */
const BASE = [
  "name: test", // 1
  "duration: 7d", // 2
  "fleet:", // 3
  "  - kind: modem", // 4
  "    model: FQ-Modem 7590", // 5
  "    count: 20", // 6
  '    firmware: { "7.57": 100 }', // 7
  "rollouts:", // 8
  "  - model: FQ-Modem 7590", // 9
  '    firmware: "7.62"', // 10
  "    stages:", // 11
  "      - { at: 1d, percent: 25 }", // 12
  "      - { at: 2d, percent: 100 }", // 13
  "problems:", // 14
  "  - id: wan", // 15
  "    type: fault_rate", // 16
  "    model: FQ-Modem 7590", // 17
  '    firmware: "7.62"', // 18
  "    code: WAN_DOWN", // 19
  "    factor: 4", // 20
];
const withLine = (line: number, text: string) =>
  BASE.map((old, index) => (index + 1 === line ? text : old)).join("\n");

describe("parseScenario", () => {
  it("reads the base file used by the error table", () => {
    const scenario = parsed(BASE.join("\n"));
    expect(scenario.duration).toBe(7 * DAY);
    expect(scenario.rollouts[0]?.stages.map((stage) => stage.at)).toEqual([DAY, 2 * DAY]);
    expect(scenario.start).toEqual({ from: "now", offsetMs: 0 });
  });

  it.each([
    ["an unknown field", 7, '    firmwre: { "7.57": 100 }', "test.yaml:7:5: fleet[0].firmwre: unknown field"],
    [
      "a wrong type",
      6,
      "    count: twenty",
      "test.yaml:6:12: fleet[0].count: Invalid input: expected number",
    ],
    ["a bad duration", 2, "duration: 7 days", 'test.yaml:2:11: duration: "7 days" is not a duration'],
    [
      "an unknown model",
      5,
      "    model: FQ-Modem 9999",
      'test.yaml:5:12: fleet[0].model: unknown modem model "FQ-Modem 9999"',
    ],
    [
      "a model of the other kind",
      5,
      "    model: FQ-Print Mk3",
      'test.yaml:5:12: fleet[0].model: "FQ-Print Mk3" is a printer',
    ],
    [
      "rollout percentages that fall",
      13,
      "      - { at: 2d, percent: 20 }",
      "test.yaml:13:28: rollouts[0].stages[1].percent: must rise from stage to stage: 20% after 25%",
    ],
    [
      "a stage after the run",
      13,
      "      - { at: 8d, percent: 100 }",
      "test.yaml:13:15: rollouts[0].stages[1].at: must fall within",
    ],
    [
      "an unknown fault code",
      19,
      "    code: LAYER_SHIFT",
      'test.yaml:19:11: problems[0].code: modems raise no fault "LAYER_SHIFT"',
    ],
    [
      "a firmware the model never runs",
      18,
      '    firmware: "9.99"',
      'test.yaml:18:15: problems[0].firmware: "FQ-Modem 7590" never runs 9.99',
    ],
    [
      "a version written as a number",
      10,
      "    firmware: 7.62",
      "test.yaml:10:15: rollouts[0].firmware: write the version in quotes",
    ],
    [
      "shares that do not add up",
      7,
      '    firmware: { "7.57": 60, "7.29": 30 }',
      "test.yaml:7:15: fleet[0].firmware: percentages add up to 90, not 100",
    ],
    ["a missing field", 2, "seed: 3", "test.yaml:1:1: duration: is required"],
    [
      "an unknown problem type",
      16,
      "    type: fault_rates",
      "test.yaml:16:11: problems[0].type: Invalid discriminator value",
    ],
    ["a syntax error", 12, "      - { at: 1d, percent: 25", "test.yaml:13:7: (syntax):"],
  ])("points at the line and column of %s", (_, line, text, expected) => {
    expect(errorsOf(withLine(line, text), "test.yaml")).toEqual(
      expect.arrayContaining([expect.stringContaining(expected)]),
    );
  });

  it("reports every mistake of a JSON file at its own place, in order", () => {
    const lines = [
      "{",
      '  "name": "json-test",',
      '  "duration": "7d",',
      '  "cadence": 300,',
      '  "fleet": [',
      '    { "kind": "modem", "model": "FQ-Modem 7590", "count": 3, "colour": "red" },',
      '    { "kind": "printer", "model": "FQ-Print Mk3", "count": 2, "isps": "Telekom" }',
      "  ],",
      '  "rollouts": [',
      '    { "model": "FQ-Modem 7590", "firmware": "7.62",',
      '      "stages": [ { "at": "2d", "percent": 50 }, { "at": "1d", "percent": 40 } ] }',
      "  ]",
      "}",
    ];
    /** Where `needle` starts on line `line` (counted from 1), as line:col. */
    const at = (line: number, needle: string) => `${line}:${(lines[line - 1]?.indexOf(needle) ?? -2) + 1}`;
    const json = lines.join("\n");
    // Type errors come first: the cross-references are checked once the fields have their types.
    expect(errorsOf(json, "fleet.json")).toEqual([
      `fleet.json:${at(4, "300")}: cadence: must be a duration such as "90s", "5m", "12h" or "7d"`,
      `fleet.json:${at(6, '"colour"')}: fleet[0].colour: unknown field`,
    ]);
    lines[3] = '  "cadence": "5m",';
    lines[5] = '    { "kind": "modem", "model": "FQ-Modem 7590", "count": 3 },';
    expect(errorsOf(lines.join("\n"), "fleet.json")).toEqual([
      `fleet.json:${at(7, '"Telekom"')}: fleet[1].isps: only modems have an ISP`,
      `fleet.json:${at(11, '"1d"')}: rollouts[0].stages[1].at: must come after the stage before it`,
      `fleet.json:${at(11, "40")}: rollouts[0].stages[1].percent: must rise from stage to stage: 40% after 50%`,
    ]);
    expect(errorsOf('{\n  "name": "x"\n  "duration": "7d"\n}', "broken.json")).toEqual([
      "broken.json:3:3: (syntax): Missing , between flow map items",
    ]);
  });

  it("keeps map keys as written, so a version key keeps its trailing zero", () => {
    const scenario = parsed(withLine(7, "    firmware: { 7.30: 40, 7.57: 60 }"));
    expect(Object.keys(scenario.fleet[0]?.firmware ?? {})).toEqual(["7.30", "7.57"]);
  });

  it.each([
    ["now", NOW],
    ["-14d", NOW - 14 * DAY],
    ["2025-03-01T00:00:00Z", Date.UTC(2025, 2, 1)],
    ["2025-03-01T02:00:00+02:00", Date.UTC(2025, 2, 1)],
  ])("starts %s at the right moment", (start, startMs) => {
    const plan = planScenario(parsed(`start: "${start}"\n${BASE.join("\n")}`), { nowMs: NOW });
    expect(plan.startMs).toBe(startMs);
    expect(plan.endMs).toBe(startMs + 7 * DAY);
  });

  it("refuses a start without a time zone, which would depend on the machine's", () => {
    expect(errorsOf(`start: "2025-03-01T00:00:00"\n${BASE.join("\n")}`, "test.yaml")).toEqual([
      expect.stringContaining('test.yaml:1:8: start: "2025-03-01T00:00:00" must be "now"'),
    ]);
  });
});

describe("loadScenario", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "fieldq-scenario-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("ships the home demo, a firmware regression and a mixed fleet", async () => {
    expect(await listShippedScenarios()).toEqual(
      expect.arrayContaining(["firmware-regression", "home-demo", "mixed-fleet"]),
    );
  });

  it("reads a file by path and names it in its errors", async () => {
    const file = join(dir, "mine.yaml");
    await writeFile(file, withLine(6, "    count: 0"));
    const result = await loadScenario(file);
    expect(result.ok ? [] : result.errors.map((error) => error.text)).toEqual([
      `${file}:6:12: fleet[0].count: Too small: expected number to be >=1`,
    ]);
  });

  it("says which scenarios exist when a name is unknown", async () => {
    const result = await loadScenario("home-dmeo");
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors[0]?.text).toMatch(/^home-dmeo: no shipped scenario .*home-demo/);
  });
});

describe("shipped scenarios", async () => {
  const names = await listShippedScenarios();

  it.each(names)("%s parses, plans, and its devices pass the contract", async (name) => {
    const result = await loadScenario(name);
    if (!result.ok) throw new Error(result.errors.map((error) => error.text).join("\n"));
    const plan = planScenario(result.scenario, { nowMs: NOW });
    expect(plan.warnings).toEqual([]);
    expect(plan.devices.length).toBe(result.scenario.fleet.reduce((sum, entry) => sum + entry.count, 0));
    expect(new Set(plan.devices.map((device) => device.id)).size).toBe(plan.devices.length);
    for (const device of plan.devices) {
      expect(device.id).toMatch(DEVICE_ID_PATTERN);
      expect(Hello.safeParse(device.hello).success).toBe(true);
      expect(device.hello.isp !== undefined).toBe(device.kind === "modem");
    }
    expect(plan.truth.problems.map((problem) => problem.id)).toEqual(
      result.scenario.problems.map((p) => p.id),
    );
  });

  it("makes home-demo 120 devices (20 a side for an honest verdict) and firmware-regression a few hundred", async () => {
    const sizes = Object.fromEntries(
      await Promise.all(
        ["home-demo", "firmware-regression"].map(async (name) => {
          const result = await loadScenario(name);
          return [name, result.ok ? planScenario(result.scenario, { nowMs: NOW }).devices.length : 0];
        }),
      ),
    );
    expect(sizes["home-demo"]).toBe(120);
    expect(sizes["firmware-regression"]).toBeGreaterThanOrEqual(200);
  });
});

const MIXED = `
name: mixed
seed: 11
start: "2025-05-01T00:00:00Z"
duration: 10d
fleet:
  - { kind: modem, model: FQ-Modem 5530, count: 300, firmware: { "7.31": 30, "8.02": 70 }, isps: { O2: 40, Telekom: 60 } }
  - { kind: printer, model: FQ-Print Mini, count: 100 }
rollouts:
  - model: FQ-Modem 5530
    firmware: "8.10"
    stages: [{ at: 1d, percent: 10 }, { at: 2d, percent: 60 }, { at: 3d, percent: 100 }]
problems:
  - { id: regress, type: fault_rate, model: FQ-Modem 5530, firmware: "8.10", code: DNS_FAILURE, factor: 3 }
  - { id: silent, type: silent_after_update, model: FQ-Modem 5530, firmware: "8.10", percent: 5, delay: 12h }
  - { id: flaky, type: flaky_isp, isp: O2, factor: 4 }
  - { id: garbled, type: malformed, model: FQ-Print Mini, count: 7, per_hour: 3 }
`;

describe("planScenario", () => {
  const scenario = parsed(MIXED);
  const plan = planScenario(scenario, { nowMs: NOW });
  const truthOf = <T extends ScenarioPlan["truth"]["problems"][number]["type"]>(type: T) => {
    const problem = plan.truth.problems.find((p) => p.type === type);
    if (problem === undefined) throw new Error(`no ${type} in the truth`);
    return problem as Extract<ScenarioPlan["truth"]["problems"][number], { type: T }>;
  };
  const modems = plan.devices.filter((device) => device.hello.model === "FQ-Modem 5530");
  const pushesTo = (firmware: string) =>
    modems.flatMap((device) => device.script.updates.filter((push) => push.to === firmware));

  it("gives the same plan for the same seed and start, and another for another seed", () => {
    expect(planScenario(parsed(MIXED), { nowMs: NOW + DAY })).toEqual(plan);
    const other = planScenario(scenario, { nowMs: NOW, seed: 12 });
    expect(other.truth.seed).toBe(12);
    expect(other.devices.map((device) => device.id)).toEqual(plan.devices.map((device) => device.id));
    expect(other.devices).not.toEqual(plan.devices);
  });

  it("leaves the other devices as they were when a fleet entry or a problem is added", () => {
    const more = parsed(
      MIXED.replace("rollouts:", "  - { kind: printer, model: FQ-Print Mk3, count: 50 }\nrollouts:").replace(
        "problems:",
        "problems:\n  - { id: early, type: malformed, count: 3, per_hour: 1 }",
      ),
    );
    const bigger = planScenario(more, { nowMs: NOW });
    const byId = new Map(bigger.devices.map((device) => [device.id, device]));
    for (const device of plan.devices) {
      const again = byId.get(device.id);
      expect(again?.hello).toEqual(device.hello);
      expect(again?.script.updates).toEqual(device.script.updates);
      expect(again?.script.silentAfter).toEqual(device.script.silentAfter);
    }
  });

  it("times a fault_rate problem from the first push of its firmware, against the version devices left", () => {
    const truth = truthOf("fault_rate");
    expect(truth.onsetMs).toBe(Math.min(...pushesTo("8.10").map((push) => push.atMs)));
    expect(truth.onsetMs).toBeGreaterThanOrEqual(plan.startMs + DAY);
    // 70% of the modems start on 8.02 and the rollout reaches all of them: 8.02 is what most of them left.
    expect(truth).toMatchObject({
      kind: "modem",
      baseline: "8.02",
      firmware: "8.10",
      code: "DNS_FAILURE",
      factor: 3,
    });
    for (const device of modems) {
      expect(device.script.boosts).toEqual([{ firmware: "8.10", code: "DNS_FAILURE", factor: 3 }]);
    }
  });

  it("starts a fault_rate problem at the start when devices run the firmware from the beginning", () => {
    const fromStart = planScenario(
      parsed(MIXED.replace('firmware: "8.10", code: DNS_FAILURE', 'firmware: "7.31", code: DNS_FAILURE')),
      { nowMs: NOW },
    );
    const truth = fromStart.truth.problems.find((problem) => problem.id === "regress");
    expect(truth).toMatchObject({ onsetMs: fromStart.startMs, firmware: "7.31", baseline: "8.02" });
  });

  it("silences devices picked among those that take the update, from the first silent moment", () => {
    const truth = truthOf("silent_after_update");
    const silent = plan.devices.filter((device) => device.script.silentAfter !== undefined);
    expect(silent.map((device) => device.id)).toEqual(truth.devices);
    const updated = modems.filter((device) => device.script.updates.some((push) => push.to === "8.10"));
    expect(truth.devices.length).toBe(Math.round(updated.length * 0.05));
    const silentAt = silent.map((device) => {
      expect(device.script.silentAfter).toEqual({ firmware: "8.10", delayMs: 12 * HOUR });
      const push = device.script.updates.find((update) => update.to === "8.10");
      expect(push).toBeDefined();
      return (push?.atMs ?? 0) + 12 * HOUR;
    });
    expect(truth.onsetMs).toBe(Math.min(...silentAt));
  });

  it("silences only devices whose silence begins within a shortened run", () => {
    // As `fieldq sim --duration` does: the file is valid for its own 10 days, the run is cut to 73 hours.
    const short = planScenario({ ...scenario, duration: 73 * HOUR }, { nowMs: NOW });
    const silent = short.devices.filter((device) => device.script.silentAfter !== undefined);
    const late = short.devices.filter((device) =>
      device.script.updates.some((push) => push.to === "8.10" && push.atMs + 12 * HOUR >= short.endMs),
    );
    // The last stage starts at 3d, an hour before the end: its devices cannot go silent 12 h later in time.
    expect(late.length).toBeGreaterThan(0);
    expect(silent.length).toBeGreaterThan(0);
    for (const device of silent) {
      const push = device.script.updates.find((update) => update.to === "8.10");
      expect((push?.atMs ?? Number.POSITIVE_INFINITY) + 12 * HOUR).toBeLessThan(short.endMs);
    }
  });

  it("makes the flaky ISP's modems flaky and lists them", () => {
    const truth = truthOf("flaky_isp");
    const o2 = plan.devices.filter((device) => device.hello.isp === "O2");
    expect(o2.length).toBeGreaterThan(0);
    expect(truth.devices).toEqual(o2.map((device) => device.id));
    for (const device of plan.devices)
      expect(device.script.lineFlakiness).toBe(device.hello.isp === "O2" ? 4 : 1);
    expect(truth.onsetMs).toBe(plan.startMs);
  });

  it("has exactly the counted devices send malformed payloads", () => {
    const truth = truthOf("malformed");
    const garbling = plan.devices.filter((device) => device.script.malformedPerHour > 0);
    expect(garbling.map((device) => device.id)).toEqual(truth.devices);
    expect(truth.devices).toHaveLength(7);
    for (const device of garbling) {
      expect(device.hello.model).toBe("FQ-Print Mini");
      expect(device.script.malformedPerHour).toBe(3);
    }
  });

  it("pushes nothing to a device already on the rollout's firmware", () => {
    const half = parsed(`
name: half
duration: 7d
fleet: [{ kind: modem, model: FQ-Modem 7590, count: 200, firmware: { "7.57": 50, "7.62": 50 } }]
rollouts: [{ model: FQ-Modem 7590, firmware: "7.62", stages: [{ at: 1d, percent: 100 }] }]
`);
    const { devices } = planScenario(half, { nowMs: NOW });
    for (const device of devices) {
      expect(device.script.updates.map((push) => push.to)).toEqual(
        device.hello.firmware === "7.62" ? [] : ["7.62"],
      );
    }
    expect(new Set(devices.map((device) => device.hello.firmware))).toEqual(new Set(["7.57", "7.62"]));
  });
});

describe("rollout percentages", () => {
  const DEVICES = 2_000;
  const STAGES = [
    { atDays: 1, percent: 5 },
    { atDays: 2, percent: 25 },
    { atDays: 3, percent: 100 },
  ];
  const fleet = (seed: number) =>
    parsed(`
name: rollout
seed: ${seed}
start: "2025-05-01T00:00:00Z"
duration: 7d
fleet: [{ kind: modem, model: FQ-Modem 7590, count: ${DEVICES}, firmware: "7.57" }]
rollouts:
  - model: FQ-Modem 7590
    firmware: "7.62"
    spread: 6h
    stages: [${STAGES.map((stage) => `{ at: ${stage.atDays}d, percent: ${stage.percent} }`).join(", ")}]
`);

  // Each device lands in a stage by one uniform draw, so the number updated by a stage is Binomial(2000, p):
  // σ is 9.7 devices (0.49%) at 5% and 19.4 (0.97%) at 25%. Four σ leaves a false failure about once in
  // 16,000 seeds. Pooling five seeds halves σ, enough to see a draw biased by a tenth at the 25% stage.
  const tolerancePercent = (percent: number, devices = DEVICES) => {
    const p = percent / 100;
    return 400 * Math.sqrt((p * (1 - p)) / devices);
  };
  const SEEDS = [1, 2, 3, 4, 5];
  const sharesBy = (plan: ScenarioPlan) => {
    const pushes = plan.devices.flatMap((device) => device.script.updates);
    // A stage's pushes land within its first 6 h, so all of them are in by then and none of the next stage's.
    return STAGES.map(
      (stage) => pushes.filter((push) => push.atMs < plan.startMs + stage.atDays * DAY + 6 * HOUR).length,
    );
  };

  it("pools five seeds (10,000 devices) to within four σ of each stage's percent", () => {
    const pooled = SEEDS.map((seed) => sharesBy(planScenario(fleet(seed), { nowMs: NOW })));
    const devices = DEVICES * SEEDS.length;
    STAGES.forEach((stage, index) => {
      const updated = pooled.reduce((sum, counts) => sum + (counts[index] ?? 0), 0);
      const share = (100 * updated) / devices;
      expect(Math.abs(share - stage.percent)).toBeLessThanOrEqual(tolerancePercent(stage.percent, devices));
    });
  });

  it.each(SEEDS)("updates about 5, 25 and 100 percent by the stages' ends (seed %i)", (seed) => {
    const plan = planScenario(fleet(seed), { nowMs: NOW });
    const pushes = plan.devices.flatMap((device) => device.script.updates);
    expect(pushes).toHaveLength(DEVICES);
    expect(pushes.every((push) => push.to === "7.62")).toBe(true);
    sharesBy(plan).forEach((updated, index) => {
      const percent = STAGES[index]?.percent ?? Number.NaN;
      expect(Math.abs((100 * updated) / DEVICES - percent)).toBeLessThanOrEqual(tolerancePercent(percent));
    });
    // Between one stage's window and the next stage nothing lands.
    STAGES.forEach((stage, index) => {
      const previousEnd =
        plan.startMs + (index === 0 ? 0 : (STAGES[index - 1]?.atDays ?? 0) * DAY + 6 * HOUR);
      const stageStart = plan.startMs + stage.atDays * DAY;
      expect(pushes.filter((push) => push.atMs >= previousEnd && push.atMs < stageStart)).toEqual([]);
    });
  });

  it("spreads a stage's pushes over its first hours rather than one instant", () => {
    const plan = planScenario(fleet(1), { nowMs: NOW });
    const firstDay = plan.devices
      .flatMap((device) => device.script.updates)
      .filter((push) => push.atMs < plan.startMs + 2 * DAY)
      .map((push) => push.atMs - plan.startMs - DAY);
    expect(Math.min(...firstDay)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...firstDay)).toBeLessThan(6 * HOUR);
    expect(new Set(firstDay).size).toBe(firstDay.length);
    // Spread evenly, about half of them land in the first half of the window.
    const early = firstDay.filter((offset) => offset < 3 * HOUR).length;
    expect(early / firstDay.length).toBeGreaterThan(0.25);
    expect(early / firstDay.length).toBeLessThan(0.75);
  });
});
