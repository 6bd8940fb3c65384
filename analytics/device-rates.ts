// SEAM (lead, issue 11): the interface the comparisons, the regression scan and the cohort comparison use.
// The implementation below is a placeholder that pools the counts into the exact test; the statistics
// helper replaces it with a test that accounts for between-device variation (docs/statistics.md).

import { compareRates, type RateComparison } from "./rate-ratio.js";

/** One device's exposure and faults within one cohort (a device that changed firmware is in two). */
export type DeviceExposure = { device: string; exposureHours: number; count: number };

export type DeviceRateInput = {
  baseline: readonly DeviceExposure[];
  candidate: readonly DeviceExposure[];
  /** Two-sided confidence level; 0.95 unless given. */
  confidence?: number;
  /** m > 1: "no_difference" needs the interval inside [1/m, m]; 1.5 unless given. */
  equivalenceMargin?: number;
};

/** What the verdict rests on, beside the counts: how much devices differ and how many there are. */
export type RateEvidence = {
  /** exact_poisson: devices alike (dispersion ≤ 1), the exact test; quasi_poisson: dispersion-scaled. */
  method: "exact_poisson" | "quasi_poisson";
  /** Estimated between-device dispersion (1 = Poisson); null when it cannot be estimated. */
  dispersion: number | null;
  /** The dispersion the interval was computed with (≥ 1). */
  dispersionUsed: number;
  /** Degrees of freedom of the dispersion estimate; null when not estimated. */
  df: number | null;
  /** Devices with exposure in each cohort. */
  devices: { baseline: number; candidate: number };
  /** Why no regression/improvement verdict could be given whatever the counts; null when none. */
  refused: "too_few_devices" | null;
  /** Holm-adjusted p-value within the family it was judged in; null outside a family or without events. */
  adjustedPValue: number | null;
  /** How many comparisons the family held (1 outside a family). */
  familySize: number;
};

export type DeviceRateComparison = RateComparison & { evidence: RateEvidence };

/** Rates of two cohorts of devices compared; throws on invalid input only (programmer error). */
export function compareDeviceRates(input: DeviceRateInput): DeviceRateComparison {
  const total = (side: readonly DeviceExposure[]) => ({
    count: side.reduce((n, d) => n + d.count, 0),
    exposureHours: side.reduce((h, d) => h + d.exposureHours, 0),
  });
  const result = compareRates({
    baseline: total(input.baseline),
    candidate: total(input.candidate),
    ...(input.confidence === undefined ? {} : { confidence: input.confidence }),
    ...(input.equivalenceMargin === undefined ? {} : { equivalenceMargin: input.equivalenceMargin }),
  });
  if (!result.ok) throw new RangeError(`${result.problem.field}: ${result.problem.message}`);
  return {
    ...result.comparison,
    evidence: {
      method: "exact_poisson",
      dispersion: null,
      dispersionUsed: 1,
      df: null,
      devices: { baseline: input.baseline.length, candidate: input.candidate.length },
      refused: null,
      adjustedPValue: null,
      familySize: 1,
    },
  };
}

/**
 * A family of comparisons judged together (the codes of one firmware comparison, every comparison of one
 * regression scan): Holm's step-down procedure at 1 − confidence family-wise; a verdict of regression or
 * improvement whose adjusted p-value does not pass becomes insufficient_evidence. Same order as given.
 */
export function judgeFamily(comparisons: readonly DeviceRateComparison[]): DeviceRateComparison[] {
  return comparisons.map((c) => ({ ...c, evidence: { ...c.evidence, familySize: comparisons.length } }));
}
