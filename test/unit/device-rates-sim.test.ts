// Issue 11, item 2: the device-level comparison proved by seeded simulation (docs/statistics.md has the
// table and `npm run bench:stats` prints it with more replications).

import { describe, expect, it } from "vitest";
import { judgeFamily } from "../../analytics/device-rates.js";
import {
  canaryExposureNeeded,
  deviceVerdict,
  familyShare,
  median,
  NULL_GRID,
  NULL_REPLICATIONS,
  nullSeed,
  nullShare,
  pooledExact,
  regressionShare,
} from "../support/gamma-fleet.js";

const device = deviceVerdict;

describe("device-level rates on fleets whose devices differ, means equal (the null grid)", () => {
  it.each(
    NULL_GRID.map((c) => [c.shape, c.devices.baseline, c.devices.candidate, c.faultsPerDevice, c] as const),
  )(
    "shape %f, %i vs %i devices, %f faults per device: at most 5% false verdicts",
    (_s, _b, _c, _f, config) => {
      const share = nullShare(device, pooledExact, config, NULL_REPLICATIONS, nullSeed(config));
      expect(share.falseVerdicts).toBeLessThanOrEqual(0.05);
    },
  );

  it("is needed: the pooled exact test calls most of the same comparisons", () => {
    const config = { shape: 0.5, devices: { baseline: 100, candidate: 100 }, faultsPerDevice: 20 };
    const share = nullShare(device, pooledExact, config, 200, 7);
    expect(share.pooledExact).toBeGreaterThan(0.5);
  });
});

describe("device-level rates on a real change in a fleet whose devices differ", () => {
  it("calls a 3x regression in most comparisons of 100 vs 100 devices (shape 0.5, 20 faults per device)", () => {
    const config = { shape: 0.5, devices: { baseline: 100, candidate: 100 }, faultsPerDevice: 20, ratio: 3 };
    expect(regressionShare(device, config, 200, 5)).toBeGreaterThan(0.9);
  });
});

describe("device-level rates across the codes of one comparison", () => {
  it("keeps the family-wise false-verdict share at most 5% over 8 null codes", () => {
    const share = familyShare(
      device,
      judgeFamily,
      { shape: 0.5, devices: { baseline: 100, candidate: 100 }, faultsPerDevice: 2, codes: 8 },
      1000,
      23,
    );
    expect(share.anyBefore).toBeGreaterThan(0.1);
    expect(share.anyAfter).toBeLessThanOrEqual(0.05);
  });
});

describe("device-level rates when devices are alike", () => {
  it("calls a 2x regression on a 500-device canary within 1.3x of the exposure the exact test needs", () => {
    const needed = canaryExposureNeeded(
      { device: (b, c) => device(b, c).verdict, exact: pooledExact },
      { canaryDevices: 500, restDevices: 9500, rate: 0.01, ratio: 2, stepHours: 20, maxSteps: 250 },
      150,
      11,
    );
    const exact = median(needed.exact ?? []);
    const deviceLevel = median(needed.device ?? []);
    expect(exact).not.toBeNull();
    expect(deviceLevel).not.toBeNull();
    expect((deviceLevel ?? Number.POSITIVE_INFINITY) / (exact ?? 1)).toBeLessThanOrEqual(1.3);
  });
});
