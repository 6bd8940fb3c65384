// Compares the fault rates of two cohorts of devices when devices differ (docs/statistics.md).
//
// Each device i of cohort c has exposure t_i and count x_i; the cohort's rate is r_c = X_c/T_c and the
// verdict is about RR = r_1/r_0, as in the exact test. What changes is the variance of X_c: devices are not
// alike, so Var(X_c) is estimated from the per-device counts as the largest of
//   - the Poisson variance X_c (the floor: devices are never assumed more alike than Poisson),
//   - a per-cohort robust (sandwich) variance Σ (x_i − r_c·t_i)²/(1 − t_i/T_c), which sees a lemon in either
//     cohort, and
//   - the negative-binomial variance Σ μ_i(1 + α·μ_i) with μ_i = r_c·t_i and α estimated by moments from both
//     cohorts, which a small cohort that happened to miss the heavy tail cannot underestimate.
// φ_c = Var(X_c)/X_c scales the cohort: the exact conditional test runs on effective counts X_c/s_c over
// effective exposures T_c/s_c, with s_c = φ_c·(t_df/z)² so that the uncertainty of the estimate is paid for.
// When φ_0 = φ_1 = 1 this is the exact test on pooled counts, unchanged. A cohort with fewer than
// MIN_DEVICES devices gets no regression or improvement verdict unless no cohort shows any dispersion
// (then MIN_DEVICES_ALIKE).

import {
  binomialTestPValue,
  type CohortCount,
  compareRates,
  DEFAULT_CONFIDENCE,
  DEFAULT_EQUIVALENCE_MARGIN,
  type MoreExposure,
  type RateComparison,
  rateRatioInterval,
  searchExposureFactor,
  validate,
  verdictFor,
  withRate,
} from "./rate-ratio.js";
import { betaInc, betaIncUpper, normalQuantile, studentTQuantile } from "./special-functions.js";

/** One device's exposure and faults within one cohort (a device that changed firmware is in two). */
export type DeviceExposure = { device: string; exposureHours: number; count: number };

export type DeviceRateInput = {
  baseline: readonly DeviceExposure[];
  candidate: readonly DeviceExposure[];
  /** Two-sided confidence level; 0.95 unless given. */
  confidence?: number;
  /** m > 1: "no_difference" needs the interval inside [1/m, m]; 1.5 unless given. */
  equivalenceMargin?: number;
  /** false: skip the search behind moreExposureNeeded (then null), for callers that need verdicts only. */
  moreExposure?: boolean;
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
  /** Each cohort's dispersion as used (≥ 1, before the t inflation); absent from older producers. */
  cohortDispersion?: { baseline: number; candidate: number };
  /** The fewest devices a cohort needs for a regression or improvement verdict, devices alike or not. */
  minDevices?: number;
};

export type DeviceRateComparison = RateComparison & { evidence: RateEvidence };

/**
 * Below this many devices in either cohort no regression or improvement is called when devices differ:
 * with heavy-tailed per-device rates, fewer devices cannot show how much they differ (docs/statistics.md,
 * the null grid: 10 and 15 devices exceed 5%).
 */
export const MIN_DEVICES = 20;
/**
 * When no cohort shows any between-device dispersion, the exact test's verdict stands from this many devices
 * per cohort (the null grid at 3 devices: at most 2.7%; at 1 device a lemon alone makes a verdict).
 */
export const MIN_DEVICES_ALIKE = 3;

type Spread = {
  devices: number;
  count: number;
  exposureHours: number;
  /** Σ t_i²: the negative-binomial variance is X + α·r²·Σ t_i². */
  squaredHours: number;
  /** Σ (x_i − r·t_i)²/(1 − t_i/T): the sandwich variance with its leverage (HC2) correction. */
  sandwich: number;
  /** Σ of the sandwich's terms squared: how unevenly the devices share the variance. */
  sandwichSquares: number;
  /** Σ ((x_i − μ_i)² − μ_i) and Σ μ_i², whose ratio over both cohorts estimates α; Σ of the former squared. */
  excess: number;
  excessSquares: number;
  squaredMeans: number;
};

function requireDevices(side: "baseline" | "candidate", devices: readonly DeviceExposure[]): void {
  for (const d of devices) {
    if (!Number.isSafeInteger(d.count) || d.count < 0) {
      throw new RangeError(`${side}: ${d.device}.count must be a non-negative integer`);
    }
    if (!(Number.isFinite(d.exposureHours) && d.exposureHours >= 0)) {
      throw new RangeError(`${side}: ${d.device}.exposureHours must be finite and ≥ 0`);
    }
  }
}

function spreadOf(side: readonly DeviceExposure[]): Spread {
  let count = 0;
  let exposureHours = 0;
  let squaredHours = 0;
  let devices = 0;
  for (const d of side) {
    if (d.exposureHours === 0 && d.count === 0) continue;
    devices++;
    count += d.count;
    exposureHours += d.exposureHours;
    squaredHours += d.exposureHours * d.exposureHours;
  }
  const rate = exposureHours > 0 ? count / exposureHours : 0;
  let sandwich = 0;
  let sandwichSquares = 0;
  let excess = 0;
  let excessSquares = 0;
  let squaredMeans = 0;
  for (const d of side) {
    if (d.exposureHours === 0 && d.count === 0) continue;
    const mean = rate * d.exposureHours;
    const squared = (d.count - mean) ** 2;
    const leverage = exposureHours > 0 ? d.exposureHours / exposureHours : 0;
    const term = leverage < 1 ? squared / (1 - leverage) : squared;
    sandwich += term;
    sandwichSquares += term * term;
    excess += squared - mean;
    excessSquares += (squared - mean) ** 2;
    squaredMeans += mean * mean;
  }
  return {
    devices,
    count,
    exposureHours,
    squaredHours,
    sandwich,
    sandwichSquares,
    excess,
    excessSquares,
    squaredMeans,
  };
}

// Degrees of freedom of a variance estimated as a sum of n terms, 2·(Σu)²/Var(Σu) with Var(Σu) estimated
// from the terms' own spread: n − 1 for normal data, far fewer when a few devices carry the sum (heavy
// tails), at most cap and at least 1.
function varianceDf(sum: number, sumOfSquares: number, n: number, cap: number): number {
  if (n < 2 || cap < 1) return 1;
  const spread = (n / (n - 1)) * Math.max(0, sumOfSquares - (sum * sum) / n);
  if (spread === 0) return cap;
  return Math.min(cap, Math.max(1, (2 * sum * sum) / spread));
}

/** Each cohort's dispersion (estimated and as used) and the degrees of freedom of the scale. */
type Scale = {
  estimated: { baseline: number | null; candidate: number | null };
  used: { baseline: number; candidate: number };
  df: number | null;
};

function scaleOf(baseline: Spread, candidate: Spread): Scale {
  const devices = baseline.devices + candidate.devices;
  const denominator = baseline.squaredMeans + candidate.squaredMeans;
  // The moment estimate of α, with its degrees-of-freedom correction for the two fitted rates.
  const alpha =
    denominator > 0 && devices > 2
      ? Math.max(0, (baseline.excess + candidate.excess) / denominator) * (devices / (devices - 2))
      : 0;
  const modelDf = varianceDf(
    baseline.excess + candidate.excess,
    baseline.excessSquares + candidate.excessSquares,
    devices,
    devices - 2,
  );
  const cohort = (s: Spread) => {
    if (s.count === 0) return null;
    const rate = s.count / s.exposureHours;
    const model = s.count + alpha * rate * rate * s.squaredHours;
    const robust = s.devices > 1 && s.sandwich > model;
    const variance = Math.max(s.count, robust ? s.sandwich : model);
    // A robust variance rests on this cohort's devices alone; the model's α on both cohorts' devices, but
    // the cohort's sum is no closer to normal than its own devices make it (a small canary's is skewed).
    const df =
      variance <= s.count
        ? null
        : robust
          ? varianceDf(s.sandwich, s.sandwichSquares, s.devices, s.devices - 1)
          : Math.min(modelDf, Math.max(1, s.devices - 1));
    return { dispersion: variance / s.count, df, robust };
  };
  const b = cohort(baseline);
  const c = cohort(candidate);
  // A cohort without faults has no spread of its own: it borrows the other cohort's.
  const usedB = b ?? c ?? { dispersion: 1, df: null, robust: false };
  const usedC = c ?? b ?? { dispersion: 1, df: null, robust: false };
  // Satterthwaite's degrees of freedom for Var(log RR) = φ_0/X_0 + φ_1/X_1. Only the between-device part
  // (φ − 1)/X is estimated, the Poisson part 1/X is known; the parts that rest on the shared α are one
  // estimate, not two. Devices nearly alike thus pay almost nothing for the estimate.
  const v0 = usedB.dispersion / Math.max(baseline.count, 1);
  const v1 = usedC.dispersion / Math.max(candidate.count, 1);
  let shared = 0;
  let sharedDf = Number.POSITIVE_INFINITY;
  let spread = 0;
  for (const [used, count] of [
    [usedB, baseline.count],
    [usedC, candidate.count],
  ] as const) {
    if (used.df === null) continue;
    const estimated = (used.dispersion - 1) / Math.max(count, 1);
    if (used.robust) spread += (estimated * estimated) / used.df;
    else {
      shared += estimated;
      sharedDf = Math.min(sharedDf, used.df);
    }
  }
  if (shared > 0) spread += (shared * shared) / sharedDf;
  const df = spread > 0 ? (v0 + v1) ** 2 / spread : null;
  return {
    estimated: { baseline: b?.dispersion ?? null, candidate: c?.dispersion ?? null },
    used: { baseline: usedB.dispersion, candidate: usedC.dispersion },
    df,
  };
}

// (t_df/z)² at the interval's level: the price of an estimated dispersion; 1 when it was not estimated.
function inflation(df: number | null, confidence: number): number {
  if (df === null) return 1;
  const p = 1 - (1 - confidence) / 2;
  return (studentTQuantile(p, df) / normalQuantile(p)) ** 2;
}

type Scaled = { candidateCount: number; baselineCount: number; exposureRatio: number };

// The effective counts and exposure ratio of the conditional test, the cohorts grown by factor on the
// same devices: the Poisson part of a variance grows with exposure, the between-device part with its
// square, so φ(k) = 1 + (φ − 1)·k and more hours on few devices settle less and less.
function scaled(
  baseline: CohortCount,
  candidate: CohortCount,
  dispersion: { baseline: number; candidate: number },
  inflate: number,
  factor: number,
): Scaled {
  const s0 = Math.max(1, 1 + (dispersion.baseline - 1) * factor) * inflate;
  const s1 = Math.max(1, 1 + (dispersion.candidate - 1) * factor) * inflate;
  return {
    candidateCount: (candidate.count * factor) / s1,
    baselineCount: (baseline.count * factor) / s0,
    exposureRatio: baseline.exposureHours / s0 / (candidate.exposureHours / s1),
  };
}

// Two-sided p-value of RR = 1 as twice the smaller tail of the (continuous) binomial behind the interval,
// so that it is below 1 − confidence exactly when the interval excludes 1.
function centralPValue({ candidateCount: x, baselineCount, exposureRatio }: Scaled): number | null {
  const n = x + baselineCount;
  if (n === 0) return null;
  const p0 = 1 / (1 + exposureRatio);
  const atLeast = x === 0 ? 1 : betaInc(x, n - x + 1, p0);
  const atMost = baselineCount === 0 ? 1 : betaIncUpper(x + 1, n - x, p0);
  return Math.min(1, 2 * Math.min(atLeast, atMost));
}

function moreExposureFor(
  baseline: CohortCount,
  candidate: CohortCount,
  dispersion: { baseline: number; candidate: number },
  inflate: number,
  confidence: number,
  margin: number,
): MoreExposure {
  return searchExposureFactor(baseline, candidate, (k) => {
    const s = scaled(baseline, candidate, dispersion, inflate, k);
    const ci = rateRatioInterval(s.candidateCount, s.baselineCount, s.exposureRatio, confidence);
    return verdictFor(ci, margin) !== "insufficient_evidence";
  });
}

// Var(log RR) relative to Poisson's 1/X_0 + 1/X_1: one number for "how much devices differ".
function overall(dispersion: { baseline: number; candidate: number }, x0: number, x1: number): number {
  const w0 = x0 > 0 ? 1 / x0 : 0;
  const w1 = x1 > 0 ? 1 / x1 : 0;
  if (w0 + w1 === 0) return 1;
  return (dispersion.baseline * w0 + dispersion.candidate * w1) / (w0 + w1);
}

/** Rates of two cohorts of devices compared; throws on invalid input only (programmer error). */
export function compareDeviceRates(input: DeviceRateInput): DeviceRateComparison {
  const confidence = input.confidence ?? DEFAULT_CONFIDENCE;
  const margin = input.equivalenceMargin ?? DEFAULT_EQUIVALENCE_MARGIN;
  requireDevices("baseline", input.baseline);
  requireDevices("candidate", input.candidate);
  const b = spreadOf(input.baseline);
  const c = spreadOf(input.candidate);
  const baseline = { count: b.count, exposureHours: b.exposureHours };
  const candidate = { count: c.count, exposureHours: c.exposureHours };
  const problem = validate({ baseline, candidate }, confidence, margin);
  if (problem !== null) throw new RangeError(`${problem.field}: ${problem.message}`);

  const scale = scaleOf(b, c);
  const exactOnly = scale.used.baseline === 1 && scale.used.candidate === 1;
  const fewest = Math.min(b.devices, c.devices);
  const refused =
    fewest < (exactOnly ? MIN_DEVICES_ALIKE : MIN_DEVICES) ? ("too_few_devices" as const) : null;
  const estimated =
    scale.estimated.baseline === null && scale.estimated.candidate === null
      ? null
      : overall(
          { baseline: scale.estimated.baseline ?? 1, candidate: scale.estimated.candidate ?? 1 },
          b.count,
          c.count,
        );
  const evidence: RateEvidence = {
    method: "exact_poisson",
    dispersion: estimated,
    dispersionUsed: overall(scale.used, b.count, c.count),
    df: scale.df,
    devices: { baseline: b.devices, candidate: c.devices },
    refused,
    adjustedPValue: null,
    familySize: 1,
    cohortDispersion: scale.used,
    minDevices: exactOnly ? MIN_DEVICES_ALIKE : MIN_DEVICES,
  };
  const refuse = (comparison: RateComparison): RateComparison =>
    refused === null
      ? comparison
      : { ...comparison, verdict: "insufficient_evidence", moreExposureNeeded: null };

  const explain = input.moreExposure ?? true;
  if (exactOnly && explain) {
    const exact = compareRates({ baseline, candidate, confidence, equivalenceMargin: margin });
    if (!exact.ok) throw new RangeError(`${exact.problem.field}: ${exact.problem.message}`);
    return { ...refuse(exact.comparison), evidence };
  }

  const inflate = inflation(scale.df, confidence);
  const s = scaled(baseline, candidate, scale.used, inflate, 1);
  const ci = rateRatioInterval(s.candidateCount, s.baselineCount, s.exposureRatio, confidence);
  const verdict = verdictFor(ci, margin);
  const n = b.count + c.count;
  const comparison: RateComparison = {
    baseline: withRate(baseline),
    candidate: withRate(candidate),
    rateRatio: b.count === 0 ? null : c.count / c.exposureHours / (b.count / b.exposureHours),
    rateRatioMissing: n === 0 ? "no_events" : b.count === 0 ? "no_baseline_events" : null,
    ci,
    pValue: exactOnly
      ? n === 0
        ? null
        : binomialTestPValue(c.count, n, 1 / (1 + s.exposureRatio))
      : centralPValue(s),
    equivalenceMargin: margin,
    verdict,
    moreExposureNeeded:
      verdict === "insufficient_evidence" && explain
        ? moreExposureFor(baseline, candidate, scale.used, inflate, confidence, margin)
        : null,
  };
  return {
    ...refuse(comparison),
    evidence: { ...evidence, method: exactOnly ? "exact_poisson" : "quasi_poisson" },
  };
}

/** Holm's step-down adjusted p-values, in the order given; null p-values stay null and count as 1. */
export function holmAdjust(pValues: readonly (number | null)[]): (number | null)[] {
  const m = pValues.length;
  const order = pValues.map((p, i) => ({ p: p ?? 1, i })).sort((a, b) => a.p - b.p);
  const adjusted: (number | null)[] = new Array(m).fill(null);
  let running = 0;
  order.forEach(({ p, i }, rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * p));
    adjusted[i] = pValues[i] === null ? null : running;
  });
  return adjusted;
}

/**
 * A family of comparisons judged together (the codes of one firmware comparison, every comparison of one
 * regression scan): Holm's step-down procedure at 1 − confidence family-wise; a verdict of regression or
 * improvement whose adjusted p-value does not pass becomes insufficient_evidence, with the exposure that
 * would settle it at the Bonferroni level 1 − (1 − confidence)/m. Same order as given.
 */
export function judgeFamily(comparisons: readonly DeviceRateComparison[]): DeviceRateComparison[] {
  const m = comparisons.length;
  const adjusted = holmAdjust(comparisons.map((c) => c.pValue));
  return comparisons.map((c, i) => {
    const adjustedPValue = adjusted[i] ?? null;
    const evidence = { ...c.evidence, adjustedPValue, familySize: m };
    const level = c.ci?.level ?? DEFAULT_CONFIDENCE;
    const called = c.verdict === "regression" || c.verdict === "improvement";
    if (!called || (adjustedPValue !== null && adjustedPValue < 1 - level)) return { ...c, evidence };
    const dispersion = c.evidence.cohortDispersion ?? { baseline: 1, candidate: 1 };
    const familyLevel = 1 - (1 - level) / m;
    return {
      ...c,
      verdict: "insufficient_evidence",
      moreExposureNeeded: moreExposureFor(
        c.baseline,
        c.candidate,
        dispersion,
        inflation(c.evidence.df, familyLevel),
        familyLevel,
        c.equivalenceMargin,
      ),
      evidence,
    };
  });
}
