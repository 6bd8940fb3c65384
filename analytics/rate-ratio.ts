// Compares the fault rates of two firmware cohorts with an exact test for Poisson counts.
//
// Conditional on n = x0 + x1 faults in total, the candidate's count is x1 ~ Binomial(n, π) with
// π = t1·RR / (t1·RR + t0). A Clopper–Pearson interval for π, mapped through RR = π/(1 − π) · t0/t1,
// is an exact interval for the rate ratio; the p-value is the exact binomial test of π0 = t1/(t0 + t1).
// Both are what R's poisson.test(c(x1, x0), c(t1, t0)) reports.
//
// Building blocks (clopperPearson, binomialTestPValue) throw RangeError on arguments outside their domain:
// those are programmer errors. compareRates takes cohort data, where a zero exposure or a bad count is an
// expected failure, and returns it as a value.

import { betaInc, betaIncUpper, betaQuantileWithComplement, logBinomialPmf } from "./special-functions.js";

export type CohortCount = { count: number; exposureHours: number };
export type CohortRate = CohortCount & { ratePer1000h: number };
export type Verdict = "regression" | "improvement" | "no_difference" | "insufficient_evidence";

export type RateRatioInput = {
  baseline: CohortCount;
  candidate: CohortCount;
  /** Two-sided confidence level of the interval; 0.95 unless given. */
  confidence?: number;
  /** m > 1: "no_difference" needs the whole interval inside [1/m, m]; 1.5 unless given. */
  equivalenceMargin?: number;
};

/** JSON cannot carry Infinity: an interval without an upper bound has upper null and upperUnbounded true. */
export type RateRatioInterval = {
  lower: number;
  upper: number | null;
  upperUnbounded: boolean;
  level: number;
};

/**
 * How much more exposure would settle an "insufficient_evidence" verdict if the observed rates held:
 * both cohorts' exposure (and counts) grown by factor, which means baselineHours and candidateHours more.
 */
export type MoreExposure =
  | { reachable: true; factor: number; baselineHours: number; candidateHours: number }
  | { reachable: false; reason: "no_events" | "beyond_cap"; maxFactor: number };

export type RateComparison = {
  baseline: CohortRate;
  candidate: CohortRate;
  /** Candidate's rate over baseline's; null when it is 0/0 or x/0, with the reason beside it. */
  rateRatio: number | null;
  rateRatioMissing: "no_events" | "no_baseline_events" | null;
  /** null when neither cohort has any event: there is nothing to condition on. */
  ci: RateRatioInterval | null;
  pValue: number | null;
  equivalenceMargin: number;
  verdict: Verdict;
  /** Only for "insufficient_evidence"; null otherwise. */
  moreExposureNeeded: MoreExposure | null;
};

export type RateRatioProblem = {
  code: "invalid_count" | "invalid_exposure" | "invalid_confidence" | "invalid_margin";
  field: string;
  message: string;
};

export type RateComparisonResult =
  | { ok: true; comparison: RateComparison }
  | { ok: false; problem: RateRatioProblem };

export const DEFAULT_CONFIDENCE = 0.95;
export const DEFAULT_EQUIVALENCE_MARGIN = 1.5;
export const MAX_EXPOSURE_FACTOR = 1000;

function requireCounts(x: number, n: number): void {
  if (!Number.isSafeInteger(x) || !Number.isSafeInteger(n) || x < 0 || x > n) {
    throw new RangeError("x and n must be integers with 0 ≤ x ≤ n");
  }
}

function requireConfidence(confidence: number): void {
  if (!(confidence > 0 && confidence < 1)) throw new RangeError("confidence must lie in (0, 1)");
}

/** Exact (Clopper–Pearson) interval for a binomial proportion x/n, from beta quantiles. */
export function clopperPearson(
  x: number,
  n: number,
  confidence = DEFAULT_CONFIDENCE,
): { lower: number; upper: number } {
  requireCounts(x, n);
  if (n === 0) throw new RangeError("n must be at least 1");
  requireConfidence(confidence);
  const tail = (1 - confidence) / 2;
  const lower = x === 0 ? 0 : betaQuantileWithComplement(tail, x, n - x + 1, 1 - tail).x;
  const upper = x === n ? 1 : betaQuantileWithComplement(1 - tail, x + 1, n - x, tail).x;
  return { lower, upper };
}

// P(X ≤ k) and P(X ≥ k) for X ~ Binomial(n, p), each from its own incomplete beta so small tails keep digits.
function binomialAtMost(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  return betaIncUpper(k + 1, n - k, p);
}

function binomialAtLeast(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  return betaInc(k, n - k + 1, p);
}

/**
 * Exact two-sided binomial test of p0, as R's binom.test: the probability of all outcomes no more likely
 * than x, with R's relative tolerance of 1e-7 for ties.
 */
export function binomialTestPValue(x: number, n: number, p0: number): number {
  requireCounts(x, n);
  if (!(p0 >= 0 && p0 <= 1)) throw new RangeError("p0 must lie in [0, 1]");
  if (p0 === 0) return x === 0 ? 1 : 0;
  if (p0 === 1) return x === n ? 1 : 0;
  const expected = n * p0;
  if (x === expected) return 1;
  const threshold = logBinomialPmf(x, n, p0) + Math.log1p(1e-7);
  const asLikely = (i: number) => logBinomialPmf(i, n, p0) <= threshold;
  // The pmf falls monotonically away from the mode, so the outcomes on the far side that are no more
  // likely than x form one run reaching to the end; a binary search finds where it starts.
  if (x < expected) {
    let lo = Math.ceil(expected);
    let hi = n + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (asLikely(mid)) hi = mid;
      else lo = mid + 1;
    }
    return Math.min(1, binomialAtMost(x, n, p0) + (lo > n ? 0 : binomialAtLeast(lo, n, p0)));
  }
  let lo = -1;
  let hi = Math.floor(expected);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (asLikely(mid)) lo = mid;
    else hi = mid - 1;
  }
  return Math.min(1, (lo < 0 ? 0 : binomialAtMost(lo, n, p0)) + binomialAtLeast(x, n, p0));
}

/**
 * The exact interval for RR given the counts and the exposure ratio t0/t1; null without any event. Counts
 * need not be integers: the dispersion-scaled comparison (device-rates.ts) passes effective counts.
 */
export function rateRatioInterval(
  candidateCount: number,
  baselineCount: number,
  exposureRatio: number,
  confidence: number,
): RateRatioInterval | null {
  const n = candidateCount + baselineCount;
  if (n === 0) return null;
  const tail = (1 - confidence) / 2;
  // π/(1 − π) from the quantile and its complement, so a π near 1 keeps its digits.
  const odds = (q: { x: number; complement: number }) => (q.x / q.complement) * exposureRatio;
  const lower =
    candidateCount === 0
      ? 0
      : odds(betaQuantileWithComplement(tail, candidateCount, baselineCount + 1, 1 - tail));
  const upper =
    baselineCount === 0
      ? null
      : odds(betaQuantileWithComplement(1 - tail, candidateCount + 1, baselineCount, tail));
  return { lower, upper, upperUnbounded: upper === null, level: confidence };
}

/** A significant difference wins over equivalence: an interval of [1.1, 1.4] is a (small) regression. */
export function verdictFor(ci: RateRatioInterval | null, margin: number): Verdict {
  if (ci === null) return "insufficient_evidence";
  if (ci.lower > 1) return "regression";
  if (ci.upper !== null && ci.upper < 1) return "improvement";
  if (ci.upper !== null && ci.lower >= 1 / margin && ci.upper <= margin) return "no_difference";
  return "insufficient_evidence";
}

// How much more exposure settles the exact test's verdict, counts scaled as round(x·k).
function moreExposureFor(
  baseline: CohortCount,
  candidate: CohortCount,
  confidence: number,
  margin: number,
): MoreExposure {
  const exposureRatio = baseline.exposureHours / candidate.exposureHours;
  return searchExposureFactor(baseline, candidate, (k) => {
    const ci = rateRatioInterval(
      Math.round(candidate.count * k),
      Math.round(baseline.count * k),
      exposureRatio,
      confidence,
    );
    return verdictFor(ci, margin) !== "insufficient_evidence";
  });
}

/**
 * The smallest factor k ≤ MAX_EXPOSURE_FACTOR (to within 1%) at which `settled(k)` holds, both cohorts'
 * exposure grown by k: doubling finds a settled k, bisection narrows it. Discreteness makes "settled" not
 * perfectly monotone in k, so this is the first settled k the search meets, which is close to minimal.
 */
export function searchExposureFactor(
  baseline: CohortCount,
  candidate: CohortCount,
  settled: (k: number) => boolean,
): MoreExposure {
  if (baseline.count + candidate.count === 0) {
    return { reachable: false, reason: "no_events", maxFactor: MAX_EXPOSURE_FACTOR };
  }
  let lo = 1;
  let hi = 2;
  while (!settled(hi)) {
    if (hi >= MAX_EXPOSURE_FACTOR)
      return { reachable: false, reason: "beyond_cap", maxFactor: MAX_EXPOSURE_FACTOR };
    lo = hi;
    hi = Math.min(2 * hi, MAX_EXPOSURE_FACTOR);
  }
  while (hi / lo > 1.01) {
    const mid = Math.sqrt(lo * hi);
    if (settled(mid)) hi = mid;
    else lo = mid;
  }
  return {
    reachable: true,
    factor: hi,
    baselineHours: baseline.exposureHours * (hi - 1),
    candidateHours: candidate.exposureHours * (hi - 1),
  };
}

export function validate(input: RateRatioInput, confidence: number, margin: number): RateRatioProblem | null {
  for (const side of ["baseline", "candidate"] as const) {
    const { count, exposureHours } = input[side];
    if (!Number.isSafeInteger(count) || count < 0) {
      return { code: "invalid_count", field: `${side}.count`, message: "must be a non-negative integer" };
    }
    if (!(Number.isFinite(exposureHours) && exposureHours > 0)) {
      return { code: "invalid_exposure", field: `${side}.exposureHours`, message: "must be finite and > 0" };
    }
  }
  if (!(confidence > 0 && confidence < 1)) {
    return { code: "invalid_confidence", field: "confidence", message: "must lie strictly between 0 and 1" };
  }
  if (!(Number.isFinite(margin) && margin > 1)) {
    return { code: "invalid_margin", field: "equivalenceMargin", message: "must be finite and > 1" };
  }
  return null;
}

export function withRate(cohort: CohortCount): CohortRate {
  return { ...cohort, ratePer1000h: (cohort.count / cohort.exposureHours) * 1000 };
}

/** Rates per 1,000 device-hours, their ratio with an exact interval and p-value, and a verdict. */
export function compareRates(input: RateRatioInput): RateComparisonResult {
  const confidence = input.confidence ?? DEFAULT_CONFIDENCE;
  const margin = input.equivalenceMargin ?? DEFAULT_EQUIVALENCE_MARGIN;
  const problem = validate(input, confidence, margin);
  if (problem !== null) return { ok: false, problem };

  const { baseline, candidate } = input;
  const exposureRatio = baseline.exposureHours / candidate.exposureHours;
  const n = baseline.count + candidate.count;
  const ci = rateRatioInterval(candidate.count, baseline.count, exposureRatio, confidence);
  const verdict = verdictFor(ci, margin);
  return {
    ok: true,
    comparison: {
      baseline: withRate(baseline),
      candidate: withRate(candidate),
      rateRatio: baseline.count === 0 ? null : (candidate.count / baseline.count) * exposureRatio,
      rateRatioMissing: n === 0 ? "no_events" : baseline.count === 0 ? "no_baseline_events" : null,
      ci,
      pValue: n === 0 ? null : binomialTestPValue(candidate.count, n, 1 / (1 + exposureRatio)),
      equivalenceMargin: margin,
      verdict,
      moreExposureNeeded:
        verdict === "insufficient_evidence" ? moreExposureFor(baseline, candidate, confidence, margin) : null,
    },
  };
}
