import { describe, expect, it } from "vitest";
import {
  type CohortRankingInput,
  type CohortTally,
  cohortComparisons,
  type DeviceAttributes,
  dimensionValue,
  rankCohorts,
} from "../../analytics/cohort-ranking.js";
import { MIN_DEVICES } from "../../analytics/device-rates.js";
import { CohortRanking } from "../../contract/api/fleet.js";
import { DAY_MS, type Window } from "../../contract/time.js";
import { gamma, poisson, seededRandom } from "../support/gamma-fleet.js";

// A model's devices made by hand: every device 100 h, faults spread evenly, so the devices of a cohort are
// alike and a cohort's rate is exactly what the table says.

const WINDOW = { fromMs: Date.UTC(2026, 0, 1), toMs: Date.UTC(2026, 0, 1) + 30 * DAY_MS };
const MODEM = "FQ-Modem 7590";

type Made = { tallies: CohortTally[]; attributes: Map<string, DeviceAttributes> };

/** n devices of one ISP, each with 100 h and these faults per code. */
function devices(
  into: Made,
  prefix: string,
  n: number,
  hello: DeviceAttributes,
  faults: Record<string, number>,
  over: Partial<CohortTally> = {},
): Made {
  for (let i = 0; i < n; i++) {
    const device = `${prefix}-${i}`;
    into.attributes.set(device, hello);
    into.tallies.push({
      device,
      kind: "modem",
      model: MODEM,
      firmware: "7.57",
      region: "eu",
      hours: 100,
      faults: Object.entries(faults).map(([code, count]) => ({ severity: "error", code, n: count })),
      ...over,
    });
  }
  return into;
}

const fleet = (): Made => ({ tallies: [], attributes: new Map() });

/** 40 devices on two ISPs at 2 DSL_RESYNC + 1 WAN_DOWN each, 20 on "1und1" at three times that. */
function flakyIsp(): Made {
  const made = fleet();
  devices(made, "tk", 20, { isp: "telekom", hardware: "rev-a" }, { DSL_RESYNC: 2, WAN_DOWN: 1 });
  devices(made, "vf", 20, { isp: "vodafone", hardware: "rev-b" }, { DSL_RESYNC: 2, WAN_DOWN: 1 });
  devices(made, "uu", 20, { isp: "1und1", hardware: "rev-a" }, { DSL_RESYNC: 6, WAN_DOWN: 3 });
  return made;
}

const rank = (made: Made, over: Partial<CohortRankingInput> = {}) =>
  rankCohorts({
    model: MODEM,
    dimension: "isp",
    tallies: made.tallies,
    attributesOf: (d) => made.attributes.get(d),
    window: WINDOW,
    ...over,
  } as CohortRankingInput & { window: Window });

describe("rankCohorts", () => {
  it("names the ISP whose devices fault three times as often worst, a regression against the rest", () => {
    const ranking = rank(flakyIsp());
    expect(CohortRanking.safeParse(ranking).success).toBe(true);
    const [worst, ...others] = ranking.cohorts;
    expect(worst).toMatchObject({
      value: "1und1",
      devices: 20,
      exposureHours: 2000,
      faults: 180,
      ratePer1000h: 90,
      verdict: "regression",
      regressedCodes: ["DSL_RESYNC", "WAN_DOWN"],
    });
    expect(worst?.overall.rateRatio).toBeCloseTo(3, 12);
    expect(worst?.overall.baseline).toMatchObject({ count: 120, exposureHours: 4000 });
    expect(worst?.overall.evidence.devices).toEqual({ baseline: 40, candidate: 20 });
    expect(others.map((c) => c.value)).toEqual(["telekom", "vodafone"]);
    for (const c of others) expect(c.verdict).not.toBe("regression");
  });

  it("judges every comparison of the answer as one family: each cohort's overall and per-code ones", () => {
    const ranking = rank(flakyIsp());
    expect(ranking.familySize).toBe(3 * (1 + 2));
    for (const c of ranking.cohorts) {
      expect(c.overall.evidence.familySize).toBe(9);
      for (const b of c.byCode) expect(b.comparison.evidence.familySize).toBe(9);
    }
    // Codes most faults first.
    expect(ranking.cohorts[0]?.byCode.map((b) => b.code)).toEqual(["DSL_RESYNC", "WAN_DOWN"]);
  });

  it("leaves out of the family what could never be called: a cohort of one device, codes without faults", () => {
    const made = flakyIsp();
    devices(made, "one", 1, { isp: "tiny" }, { DSL_RESYNC: 50, WAN_DOWN: 20 });
    const ranking = rank(made);
    const tiny = ranking.cohorts.find((c) => c.value === "tiny");
    expect(tiny?.overall.evidence.refused).toBe("too_few_devices");
    expect(tiny?.verdict).toBe("insufficient_evidence");
    expect(ranking.familySize).toBe(3 * (1 + 2));
    expect(ranking.cohorts.find((c) => c.value === "1und1")?.overall.evidence.familySize).toBe(9);
  });

  it("calls no cohort a regression when the ISPs' devices fault alike", () => {
    const made = fleet();
    for (const isp of ["a", "b", "c"]) devices(made, isp, 20, { isp }, { DSL_RESYNC: 3, WAN_DOWN: 1 });
    const ranking = rank(made);
    expect(ranking.cohorts.map((c) => c.verdict)).not.toContain("regression");
    expect(ranking.cohorts.map((c) => c.verdict)).not.toContain("improvement");
    for (const c of ranking.cohorts) expect(c.overall.rateRatio).toBeCloseTo(1, 12);
  });

  it("counts only the code asked for, and then compares no codes apart", () => {
    const ranking = rank(flakyIsp(), { code: "WAN_DOWN" });
    expect(ranking.code).toBe("WAN_DOWN");
    expect(ranking.familySize).toBe(3);
    expect(ranking.cohorts[0]).toMatchObject({
      value: "1und1",
      faults: 60,
      byCode: [],
      verdict: "regression",
    });
  });

  it("counts only the severity asked for", () => {
    const made = flakyIsp();
    const ranking = rank(made, { severity: "critical" });
    expect(ranking.severity).toBe("critical");
    expect(ranking.cohorts.every((c) => c.faults === 0 && c.byCode.length === 0)).toBe(true);
    expect(ranking.cohorts.map((c) => c.verdict)).not.toContain("regression");
  });

  it("keeps devices of unknown ISP in every rest but makes no cohort of them", () => {
    const made = flakyIsp();
    devices(made, "xx", 5, { isp: null }, { DSL_RESYNC: 2, WAN_DOWN: 1 });
    const ranking = rank(made);
    expect(ranking.cohorts.map((c) => c.value).sort()).toEqual(["1und1", "telekom", "vodafone"]);
    expect(ranking.unknown).toEqual({ devices: 5, exposureHours: 500 });
    expect(ranking.devices).toBe(65);
    expect(ranking.cohorts[0]?.overall.evidence.devices.baseline).toBe(45);
  });

  it("leaves out a value alone in its model: it has no rest to be compared with", () => {
    const made = fleet();
    devices(made, "a", 10, { isp: "only" }, { DSL_RESYNC: 1 });
    const ranking = rank(made);
    expect(ranking.cohorts).toEqual([]);
    expect(ranking.devices).toBe(10);
    expect(ranking.familySize).toBe(0);
  });

  it("reads nothing of other models", () => {
    const made = flakyIsp();
    devices(made, "p", 10, { isp: "1und1" }, { NOZZLE: 50 }, { model: "FQ-Print Mk3" });
    const ranking = rank(made);
    expect(ranking.devices).toBe(60);
    expect(ranking.cohorts[0]?.byCode.map((b) => b.code)).toEqual(["DSL_RESYNC", "WAN_DOWN"]);
  });

  it("has no device and no cohort for a model without exposure", () => {
    const ranking = rank(flakyIsp(), { model: "nothing" });
    expect(ranking).toMatchObject({ devices: 0, cohorts: [], familySize: 0 });
  });
});

const SCALE = Math.ceil(MIN_DEVICES / 13);

describe("a kind's cohorts, across its models", () => {
  /**
   * The home demo's shape: 1und1 serves 5 modems of one model and 8 of another, each too few for a verdict
   * within its model; the second model faults twice as often as the first whatever the ISP. SCALE times as
   * many, so that 13 × SCALE is enough for a verdict across the kind (MIN_DEVICES).
   */
  function twoModels(flaky: number): Made {
    const made = fleet();
    const other = { model: "FQ-Modem 5530" };
    devices(made, "tk", 9 * SCALE, { isp: "telekom" }, { DSL_RESYNC: 2 });
    devices(made, "vf", 4 * SCALE, { isp: "vodafone" }, { DSL_RESYNC: 2 });
    devices(made, "uu", 5 * SCALE, { isp: "1und1" }, { DSL_RESYNC: 2 * flaky });
    devices(made, "tk5", 4 * SCALE, { isp: "telekom" }, { DSL_RESYNC: 4 }, other);
    devices(made, "uu5", 8 * SCALE, { isp: "1und1" }, { DSL_RESYNC: 4 * flaky }, other);
    return made;
  }

  it("finds the ISP whose lines fault three times as often on every model", () => {
    expect(rank(twoModels(3)).cohorts.find((c) => c.value === "1und1")?.devices).toBe(5 * SCALE);
    const ranking = rank(twoModels(3), { model: undefined, kind: "modem" });
    expect(ranking).toMatchObject({ model: null, kind: "modem", devices: 30 * SCALE });
    expect(ranking.cohorts[0]).toMatchObject({ value: "1und1", devices: 13 * SCALE, verdict: "regression" });
    expect(CohortRanking.safeParse(ranking).success).toBe(true);
  });

  it("does not blame the ISP most devices of the faultier model have when the ISPs are alike", () => {
    // Unweighted, 1und1 would look worse: 8 of its 13 modems are of the model that faults twice as often.
    const ranking = rank(twoModels(1), { model: undefined, kind: "modem" });
    const uu = ranking.cohorts.find((c) => c.value === "1und1");
    expect(uu?.ratePer1000h).toBeGreaterThan(30);
    expect(uu?.overall.rateRatio).toBeLessThan(1.15);
    expect(ranking.cohorts.map((c) => c.verdict)).not.toContain("regression");
  });

  /**
   * Null fleets shaped like the home demo's modems (SCALE times as many): two models whose lines fault at
   * 40 and 60 per 100 h, ISPs spread 9/4/5 and 4/8 (or 2/10) devices, exposures of 36-108 h, per-device rates gamma-distributed
   * with the shape given; WAN_DOWN at a third of DSL_RESYNC. The share of answers with any regression or
   * improvement among their comparisons (3 ISPs × overall and 2 codes), and with the ISP made 3× as faulty,
   * how often it is called a regression.
   */
  function kindSimulation(
    runs: number,
    shape: number,
    otherModel: Record<string, number>,
    effects: readonly number[] = [1, 3],
  ) {
    const random = seededRandom(20261202);
    let falseAlarms = 0;
    let found = 0;
    for (let run = 0; run < runs; run++) {
      for (const effect of effects) {
        const made = fleet();
        const add = (model: string, per100h: number, isps: Record<string, number>) => {
          for (const [isp, n] of Object.entries(isps)) {
            for (let i = 0; i < n * SCALE; i++) {
              const device = `${model}-${isp}-${i}`;
              made.attributes.set(device, { isp });
              const hours = 72 * (0.5 + random());
              const rate = (per100h / 100) * (gamma(random, shape) / shape) * (isp === "1und1" ? effect : 1);
              made.tallies.push({
                device,
                kind: "modem",
                model,
                firmware: "1",
                region: "eu",
                hours,
                faults: [
                  { severity: "warning", code: "DSL_RESYNC", n: poisson(random, rate * hours) },
                  { severity: "error", code: "WAN_DOWN", n: poisson(random, (rate / 3) * hours) },
                ],
              });
            }
          }
        };
        add("FQ-Modem 7590", 40, { telekom: 9, vodafone: 4, "1und1": 5 });
        add("FQ-Modem 5530", 60, otherModel);
        const ranking = rank(made, { model: undefined, kind: "modem" });
        const called = (v: string) => v === "regression" || v === "improvement";
        const comparisons = ranking.cohorts.flatMap((c) => [c.overall, ...c.byCode.map((b) => b.comparison)]);
        if (effect === 1 && comparisons.some((c) => called(c.verdict))) falseAlarms++;
        if (effect === 3 && ranking.cohorts.find((c) => c.value === "1und1")?.verdict === "regression")
          found++;
      }
    }
    return { falseShare: falseAlarms / runs, power: found / runs };
  }

  it.each([
    [1, { telekom: 4, "1und1": 8 }],
    [0.5, { telekom: 2, "1und1": 10 }],
  ])(
    "keeps an answer free of false verdicts in 95 percent of null fleets (shape %s, other model %j)",
    (shape, otherModel) => {
      // 200 runs: 5% family-wise would show as 10 ± 3 false answers (docs/api.md gives the measured shares).
      const { falseShare } = kindSimulation(200, shape, otherModel, [1]);
      expect(falseShare).toBeLessThanOrEqual(0.05);
    },
  );

  it("leaves devices of other kinds out", () => {
    const made = twoModels(1);
    devices(made, "p", 10, { isp: "1und1" }, { NOZZLE: 50 }, { kind: "printer", model: "FQ-Print Mk3" });
    expect(rank(made, { model: undefined, kind: "modem" }).devices).toBe(30 * SCALE);
  });
});

describe("cohortComparisons", () => {
  it("ranks hardware by what each device's hello says", () => {
    const { comparisons } = cohortComparisons({
      model: MODEM,
      dimension: "hardware",
      tallies: flakyIsp().tallies,
      attributesOf: (d) => flakyIsp().attributes.get(d),
    });
    // rev-a: telekom and 1und1 (40 devices, 240 faults in 4,000 h); rev-b: vodafone (20, 60 in 2,000 h).
    expect(comparisons.map((c) => [c.value, c.devices, c.faults, c.exposureHours])).toEqual([
      ["rev-a", 40, 240, 4000],
      ["rev-b", 20, 60, 2000],
    ]);
    expect(comparisons[0]?.overall.evidence.familySize).toBe(1);
  });

  it("counts a device that moved to another firmware in each, for the hours it ran it", () => {
    const made = fleet();
    devices(made, "old", 10, {}, { X: 1 }, { firmware: "1.0" });
    devices(made, "new", 10, {}, { X: 4 }, { firmware: "1.1" });
    devices(made, "old", 10, {}, { X: 4 }, { firmware: "1.1", hours: 100 });
    const { comparisons, devices: total } = cohortComparisons({
      model: MODEM,
      dimension: "firmware",
      tallies: made.tallies,
    });
    expect(total).toBe(20);
    expect(comparisons.map((c) => [c.value, c.devices, c.faults])).toEqual([
      ["1.0", 10, 10],
      ["1.1", 20, 80],
    ]);
    expect(comparisons[1]?.overall.evidence.devices).toEqual({ baseline: 10, candidate: 20 });
  });

  it("leaves out devices without exposure", () => {
    const made = flakyIsp();
    devices(made, "idle", 3, { isp: "telekom" }, { DSL_RESYNC: 1 }, { hours: 0 });
    const { comparisons, devices: total } = cohortComparisons({
      model: MODEM,
      dimension: "isp",
      tallies: made.tallies,
      attributesOf: (d) => made.attributes.get(d),
    });
    expect(total).toBe(60);
    expect(comparisons.find((c) => c.value === "telekom")?.devices).toBe(20);
  });
});

describe("dimensionValue", () => {
  const tally: CohortTally = {
    device: "d",
    kind: "modem",
    model: MODEM,
    firmware: "7.57",
    region: "",
    hours: 1,
    faults: [],
  };
  it.each([
    ["firmware", {}, "7.57"],
    ["region", {}, "unknown"],
    ["isp", { isp: "1und1" }, "1und1"],
    ["isp", { isp: null }, "unknown"],
    ["hardware", undefined, "unknown"],
  ] as const)("reads %s from the tally or the hello (%j): %s", (dimension, hello, value) => {
    expect(dimensionValue(dimension, tally, () => hello)).toBe(value);
  });
});
