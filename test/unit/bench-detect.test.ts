import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatSummaries, quantile, summarize } from "../../bench/detect-report.js";
import { BENCH_NOW_MS, detectRun } from "../../bench/detect-run.js";
import { playInMemory, talliesWithin } from "../../bench/detect-sim.js";
import { HOUR_MS } from "../../contract/time.js";
import { parseScenario } from "../../device-sim/scenario/parse.js";
import { planScenario } from "../../device-sim/scenario/plan.js";

// bench:detect on a scenario small enough for a unit test: 60 devices over two days, a report every 15 minutes.
const SCENARIO = `
name: detect-smoke
seed: 5
start: -2d
duration: 2d
cadence: 15m
heterogeneity: none
fleet:
  - kind: modem
    model: FQ-Modem 7590
    count: 60
    firmware: "7.57"
rollouts:
  - model: FQ-Modem 7590
    firmware: "7.62"
    stages:
      - { at: 6h, percent: 50 }
problems:
  - id: wan-down-7.62
    type: fault_rate
    model: FQ-Modem 7590
    firmware: "7.62"
    code: WAN_DOWN
    factor: 8
  - id: garbled
    type: malformed
    count: 2
    per_hour: 2
`;

let dir: string;
let file: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fieldq-detect-"));
  file = join(dir, "detect-smoke.yaml");
  await writeFile(file, SCENARIO);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("playInMemory", () => {
  it("credits one exposure hour per device, hour and firmware, and moves the firmware tag on at an update", () => {
    const parsed = parseScenario(SCENARIO, "detect-smoke.yaml");
    if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.text).join("\n"));
    const plan = planScenario(parsed.scenario, { nowMs: BENCH_NOW_MS });
    const run = playInMemory(plan, plan.truth.seed);
    expect(run.devices).toHaveLength(60);
    const tallies = talliesWithin(run, run.window);
    const spanHours = (run.window.toMs - run.window.fromMs) / HOUR_MS;
    for (const device of run.devices) {
      const mine = tallies.filter((t) => t.device === device.id);
      const hours = mine.reduce((n, t) => n + t.hours, 0);
      // An hour with an update counts for both versions; offline spells lose none (they are flushed later).
      expect(hours).toBeGreaterThan(0);
      expect(hours).toBeLessThanOrEqual(spanHours + device.updates.length);
      expect(new Set(mine.map((t) => t.firmware))).toEqual(
        new Set(["7.57", ...device.updates.map((u) => u.to)]),
      );
    }
    const updated = run.devices.filter((d) => d.updates.length > 0);
    expect(updated.length).toBeGreaterThan(10);
    expect(updated.every((d) => d.firmware === "7.62")).toBe(true);
    // Faults tallied per hour add up to the issues' per-device counts.
    const faults = tallies.reduce((n, t) => n + t.faults.reduce((m, f) => m + f.n, 0), 0);
    const occurrences = run.issues.reduce(
      (n, i) => n + [...i.devices.values()].reduce((m, d) => m + d.n, 0),
      0,
    );
    expect(faults).toBe(occurrences);
  });
});

describe("detectRun", () => {
  it("scores a backfilled scenario with the product's rules, beside the statistical limit", async () => {
    const run = await detectRun(file, 5);
    const regression = run.score.problems.find((p) => p.id === "wan-down-7.62");
    expect(regression).toMatchObject({ status: "found" });
    expect(run.score.problems.find((p) => p.id === "garbled")).toMatchObject({ status: "found" });
    // Nothing is earlier than the uncorrected exact test on the true cohorts.
    const limit = run.limitsMs["wan-down-7.62"];
    expect(limit).not.toBeNull();
    expect(regression?.timeToDetectMs).toBeGreaterThanOrEqual((limit ?? 0) - HOUR_MS);
    expect(run.score.precision).toBe(1);

    const summary = summarize("detect-smoke", [run]);
    expect(summary).toMatchObject({ runs: 1, precision: 1, recall: 1, devices: 60 });
    const table = formatSummaries([summary]).join("\n");
    expect(table).toMatch(/^detect-smoke +1 +1\.00 \(\d+\/\d+\) +1\.00/m);
    expect(table).toMatch(/wan-down-7\.62 \(fault_rate\) +1 +1\/1 found/);
  }, 30_000);
});

describe("quantile", () => {
  it.each([
    [[], 0.5, null],
    [[5], 0.9, 5],
    [[1, 2, 3, 4], 0.5, 2],
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9, 9],
  ])("of %j at %d is %s (nearest rank)", (values, q, expected) => {
    expect(quantile(values, q)).toBe(expected);
  });
});
