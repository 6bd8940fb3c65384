import { describe, expect, it } from "vitest";
import {
  compareDeviceRates,
  type DeviceExposure,
  type DeviceRateComparison,
  holmAdjust,
  judgeFamily,
  MIN_DEVICES,
  MIN_DEVICES_ALIKE,
} from "../../analytics/device-rates.js";
import { compareRates } from "../../analytics/rate-ratio.js";
import { normalQuantile, studentTQuantile } from "../../analytics/special-functions.js";

const cohort = (prefix: string, counts: readonly number[], hours = 100): DeviceExposure[] =>
  counts.map((count, i) => ({ device: `${prefix}${i}`, exposureHours: hours, count }));

const pooled = (side: readonly DeviceExposure[]) => ({
  count: side.reduce((n, d) => n + d.count, 0),
  exposureHours: side.reduce((h, d) => h + d.exposureHours, 0),
});

function exact(baseline: readonly DeviceExposure[], candidate: readonly DeviceExposure[]) {
  const result = compareRates({ baseline: pooled(baseline), candidate: pooled(candidate) });
  if (!result.ok) throw new Error(result.problem.message);
  return result.comparison;
}

// Counts that vary less than Poisson's would (all 2s and 3s): no sign that devices differ.
const alike = (prefix: string, n: number, high: number) =>
  cohort(
    prefix,
    Array.from({ length: n }, (_, i) => (i < high ? 3 : 2)),
  );

describe("compareDeviceRates when devices are alike", () => {
  it("gives the exact test's answer on pooled counts", () => {
    const baseline = alike("b", 30, 6);
    const candidate = alike("c", 25, 25);
    const result = compareDeviceRates({ baseline, candidate });
    const { evidence, ...comparison } = result;
    expect(comparison).toEqual(exact(baseline, candidate));
    expect(evidence).toMatchObject({
      method: "exact_poisson",
      dispersionUsed: 1,
      df: null,
      devices: { baseline: 30, candidate: 25 },
      refused: null,
      adjustedPValue: null,
      familySize: 1,
      cohortDispersion: { baseline: 1, candidate: 1 },
    });
    expect(evidence.dispersion).toBeLessThanOrEqual(1);
  });

  it("keeps the exact test's more-exposure estimate for an insufficient verdict", () => {
    const result = compareDeviceRates({ baseline: alike("b", 24, 0), candidate: alike("c", 24, 1) });
    expect(result.verdict).toBe("insufficient_evidence");
    expect(result.moreExposureNeeded).toEqual(exact(alike("b", 24, 0), alike("c", 24, 1)).moreExposureNeeded);
  });
});

describe("compareDeviceRates when one device is a lemon", () => {
  // 24 printers each side at about 2 faults per 100 h; one candidate printer has 50.
  const typical = [2, 1, 3, 2, 2, 1, 3, 2, 2, 2, 1, 3];
  const baseline = cohort("b", [...typical, ...typical]);
  const candidate = cohort("c", [...typical, ...typical.slice(0, 11), 50]);

  it("turns the pooled exact test's false regression into insufficient evidence", () => {
    expect(exact(baseline, candidate).verdict).toBe("regression");
    const result = compareDeviceRates({ baseline, candidate });
    expect(result.verdict).toBe("insufficient_evidence");
    expect(result.evidence.method).toBe("quasi_poisson");
    expect(result.evidence.cohortDispersion?.candidate).toBeGreaterThan(5);
    expect(result.rateRatio).toBeCloseTo(exact(baseline, candidate).rateRatio ?? 0, 12);
  });

  it("widens the interval around the same rate ratio", () => {
    const pooledCi = exact(baseline, candidate).ci;
    const ci = compareDeviceRates({ baseline, candidate }).ci;
    expect(ci?.lower).toBeLessThan(pooledCi?.lower ?? 0);
    expect(ci?.upper).toBeGreaterThan(pooledCi?.upper ?? 0);
  });

  it("says more hours on the same devices cannot settle it when the lemon dominates", () => {
    const more = compareDeviceRates({ baseline, candidate }).moreExposureNeeded;
    expect(more).not.toBeNull();
    if (more?.reachable) expect(more.factor).toBeGreaterThan(1);
  });

  it("still calls a regression that every candidate device shows", () => {
    const worse = cohort("c", [...typical, ...typical.slice(0, 11)].map((n) => n + 4).concat(50));
    const result = compareDeviceRates({ baseline, candidate: worse });
    expect(result.verdict).toBe("regression");
    expect(result.ci?.lower).toBeGreaterThan(1);
  });
});

describe("compareDeviceRates with too few devices", () => {
  // The home demo: FQ-Print Mini 4.4.1 on 3 printers (one with bad bed drift) against 4.3.0 on 5.
  const baseline = cohort("b", [4, 3, 5, 4, 4], 120);
  const candidate = cohort("c", [3, 4, 16], 110);

  it("refuses a verdict the pooled exact test would give", () => {
    expect(exact(baseline, candidate).verdict).toBe("regression");
    const result = compareDeviceRates({ baseline, candidate });
    expect(result.verdict).toBe("insufficient_evidence");
    expect(result.evidence.refused).toBe("too_few_devices");
    expect(result.evidence.devices).toEqual({ baseline: 5, candidate: 3 });
    expect(result.moreExposureNeeded).toBeNull();
    expect(result.ci).not.toBeNull();
  });

  it("counts only devices with exposure or faults", () => {
    // Devices that differ (0 to 9 faults each), so MIN_DEVICES applies.
    const many = cohort(
      "b",
      Array.from({ length: MIN_DEVICES }, (_, i) => (i * 7) % 10),
    );
    const idle = { device: "idle", exposureHours: 0, count: 0 };
    const result = compareDeviceRates({ baseline: many, candidate: [...many.slice(1), idle] });
    expect(result.evidence.devices).toEqual({ baseline: MIN_DEVICES, candidate: MIN_DEVICES - 1 });
    expect(result.evidence.refused).toBe("too_few_devices");
  });
});

describe("compareDeviceRates with few devices that are alike", () => {
  it("keeps the exact test's verdict from MIN_DEVICES_ALIKE devices on", () => {
    const baseline = cohort("b", [2, 2, 3, 2, 2]);
    const candidate = cohort("c", [9, 10, 9]);
    const result = compareDeviceRates({ baseline, candidate });
    expect(result.evidence.method).toBe("exact_poisson");
    expect(result.evidence.refused).toBeNull();
    expect(result.evidence.minDevices).toBe(MIN_DEVICES_ALIKE);
    expect(result.verdict).toBe(exact(baseline, candidate).verdict);
    expect(result.verdict).toBe("regression");
  });

  it("refuses below MIN_DEVICES_ALIKE devices even when they look alike", () => {
    const result = compareDeviceRates({
      baseline: cohort("b", [2, 2, 3, 2, 2]),
      candidate: cohort("c", [10, 9]),
    });
    expect(exact(cohort("b", [2, 2, 3, 2, 2]), cohort("c", [10, 9])).verdict).toBe("regression");
    expect(result.verdict).toBe("insufficient_evidence");
    expect(result.evidence.refused).toBe("too_few_devices");
  });
});

describe("compareDeviceRates edge cases", () => {
  it("answers insufficient evidence without any fault", () => {
    const result = compareDeviceRates({
      baseline: cohort("b", new Array(24).fill(0)),
      candidate: cohort("c", new Array(24).fill(0)),
    });
    expect(result.verdict).toBe("insufficient_evidence");
    expect(result.ci).toBeNull();
    expect(result.pValue).toBeNull();
    expect(result.rateRatioMissing).toBe("no_events");
    expect(result.moreExposureNeeded).toEqual({ reachable: false, reason: "no_events", maxFactor: 1000 });
    expect(result.evidence.dispersion).toBeNull();
  });

  it("lends a cohort without faults the other cohort's dispersion", () => {
    const baseline = cohort("b", [0, 0, 0, 12, 0, 1, 0, 0, 9, 0, 0, 2, 0, 0, 3, 0, 0, 0, 7, 0, 1, 0, 0, 0]);
    const candidate = cohort("c", new Array(24).fill(0));
    const result = compareDeviceRates({ baseline, candidate });
    expect(result.evidence.cohortDispersion?.candidate).toBe(result.evidence.cohortDispersion?.baseline);
    expect(result.ci?.lower).toBe(0);
  });

  it.each([
    [{ device: "x", exposureHours: 10, count: -1 }],
    [{ device: "x", exposureHours: 10, count: 1.5 }],
    [{ device: "x", exposureHours: Number.NaN, count: 1 }],
    [{ device: "x", exposureHours: -1, count: 1 }],
  ])("throws on an invalid device %o", (bad) => {
    expect(() => compareDeviceRates({ baseline: [bad], candidate: cohort("c", [1]) })).toThrow(RangeError);
  });

  it("throws on a cohort without exposure", () => {
    expect(() => compareDeviceRates({ baseline: [], candidate: cohort("c", [1]) })).toThrow(RangeError);
  });
});

describe("compareDeviceRates evidence", () => {
  it("reports dispersion, degrees of freedom and a t-widened interval", () => {
    const baseline = cohort("b", [0, 1, 8, 2, 0, 14, 3, 1, 0, 5, 2, 9, 1, 0, 4, 6, 0, 2, 1, 12, 0, 3]);
    const candidate = cohort("c", [2, 0, 11, 1, 3, 0, 7, 2, 1, 6, 0, 2, 0, 9, 1, 0, 4, 2, 0, 15, 1]);
    const { evidence, pValue, ci } = compareDeviceRates({ baseline, candidate });
    expect(evidence.method).toBe("quasi_poisson");
    expect(evidence.dispersion).toBeGreaterThan(2);
    expect(evidence.dispersionUsed).toBeGreaterThanOrEqual(1);
    expect(evidence.df).toBeGreaterThan(1);
    expect(evidence.df).toBeLessThanOrEqual(2 * 41);
    expect(evidence.minDevices).toBe(MIN_DEVICES);
    expect(pValue).toBeGreaterThan(0.05);
    expect(ci?.level).toBe(0.95);
  });
});

describe("compareDeviceRates without the more-exposure search", () => {
  it.each([
    ["alike", alike("b", 30, 6), alike("c", 25, 3)],
    [
      "differing",
      cohort("b", [0, 1, 8, 2, 0, 14, 3, 1, 0, 5, 2, 9, 1, 0, 4, 6, 0, 2, 1, 12]),
      cohort("c", new Array(20).fill(3)),
    ],
  ])("gives the same verdict, interval and p-value when devices are %s", (_, baseline, candidate) => {
    const full = compareDeviceRates({ baseline, candidate });
    const quick = compareDeviceRates({ baseline, candidate, moreExposure: false });
    expect(full.verdict).toBe("insufficient_evidence");
    expect(full.moreExposureNeeded).not.toBeNull();
    expect(quick.moreExposureNeeded).toBeNull();
    expect(quick.verdict).toBe(full.verdict);
    expect(quick.ci).toEqual(full.ci);
    expect(quick.pValue).toBe(full.pValue);
    expect(quick.evidence).toEqual(full.evidence);
  });
});

describe("holmAdjust", () => {
  it("matches R's p.adjust(method = 'holm')", () => {
    // p.adjust(c(0.01, 0.04, 0.03, 0.005, 0.2), "holm") = 0.040 0.090 0.090 0.025 0.200
    const adjusted = holmAdjust([0.01, 0.04, 0.03, 0.005, 0.2]);
    for (const [i, p] of [0.04, 0.09, 0.09, 0.025, 0.2].entries()) expect(adjusted[i]).toBeCloseTo(p, 12);
  });

  it("counts a missing p-value as 1 and leaves it missing", () => {
    expect(holmAdjust([0.01, null])).toEqual([0.02, null]);
  });
});

describe("judgeFamily", () => {
  const base = cohort("b", new Array(24).fill(1));
  const strong = compareDeviceRates({ baseline: base, candidate: cohort("c", new Array(24).fill(3)) });
  const weak = compareDeviceRates({
    baseline: base,
    candidate: cohort("c", [...new Array(23).fill(2), 1]),
  });

  it("keeps a regression that survives Holm and records the family", () => {
    const [judged] = judgeFamily([strong, weak, weak]);
    expect(judged?.verdict).toBe("regression");
    expect(judged?.evidence.familySize).toBe(3);
    expect(judged?.evidence.adjustedPValue).toBeCloseTo(3 * (strong.pValue ?? 1), 12);
  });

  it("demotes a regression that does not survive, with the exposure that would settle it", () => {
    expect(weak.verdict).toBe("regression");
    expect(weak.pValue).toBeGreaterThan(0.05 / 8);
    const family = judgeFamily([weak, ...new Array<DeviceRateComparison>(7).fill(weak)]);
    for (const judged of family) {
      expect(judged.verdict).toBe("insufficient_evidence");
      expect(judged.ci).toEqual(weak.ci);
      expect(judged.moreExposureNeeded).toMatchObject({ reachable: true });
      expect(judged.evidence.adjustedPValue).toBeGreaterThanOrEqual(0.05);
    }
  });

  it("changes nothing but the evidence for a family of one", () => {
    const [judged] = judgeFamily([weak]);
    expect({ ...judged, evidence: weak.evidence }).toEqual(weak);
    expect(judged?.evidence.adjustedPValue).toBe(weak.pValue);
  });
});

describe("the quantiles behind the t inflation", () => {
  it.each([
    [0.975, 1, 12.706204736174694],
    [0.975, 8, 2.306004135204166],
    [0.975, 30, 2.0422724563012378],
    [0.99, 2.5, 5.353111173030872],
    [0.9999, 3, 22.203742273205],
  ])("t quantile %f with %f df matches scipy", (p, df, expected) => {
    expect(Math.abs(studentTQuantile(p, df) - expected) / expected).toBeLessThan(1e-12);
  });

  it.each([
    [0.975, 1.959963984540054],
    [0.995, 2.5758293035489004],
    [0.8, 0.8416212335729143],
    [1 - 1e-12, 7.0344869100478356],
  ])("normal quantile %f matches scipy", (p, expected) => {
    expect(Math.abs(normalQuantile(p) - expected) / expected).toBeLessThan(1e-12);
    expect(normalQuantile(1 - p)).toBeCloseTo(-expected, 12);
  });
});
