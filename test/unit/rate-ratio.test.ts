import { describe, expect, it } from "vitest";
import {
  binomialTestPValue,
  type CohortCount,
  clopperPearson,
  compareRates,
  type RateComparison,
  type RateRatioInput,
} from "../../analytics/rate-ratio.js";
import { betaInc, betaIncUpper, betaQuantile, logGamma } from "../../analytics/special-functions.js";

const relativeError = (actual: number, expected: number) =>
  actual === expected ? 0 : Math.abs(actual - expected) / Math.abs(expected);

function compare(input: RateRatioInput): RateComparison {
  const result = compareRates(input);
  if (!result.ok) throw new Error(`unexpected problem: ${result.problem.message}`);
  return result.comparison;
}

function cohorts(candidate: CohortCount, baseline: CohortCount, margin?: number): RateComparison {
  return compare(
    margin === undefined ? { baseline, candidate } : { baseline, candidate, equivalenceMargin: margin },
  );
}

// An independent reference: binomial tails summed term by term in log space (log factorials by summing
// logs, no gamma function), and Clopper–Pearson bounds by bisection on those tails.
const logFactorials = [0];
function logFactorial(n: number): number {
  for (let i = logFactorials.length; i <= n; i++)
    logFactorials.push((logFactorials[i - 1] ?? 0) + Math.log(i));
  return logFactorials[n] ?? Number.NaN;
}

function bruteTail(x: number, n: number, p: number, side: "atLeast" | "atMost"): number {
  let sum = 0;
  const [from, to] = side === "atLeast" ? [x, n] : [0, x];
  for (let k = from; k <= to; k++) {
    const logPmf =
      logFactorial(n) - logFactorial(k) - logFactorial(n - k) + k * Math.log(p) + (n - k) * Math.log1p(-p);
    sum += Math.exp(logPmf);
  }
  return sum;
}

function bisect(f: (p: number) => number, increasing: boolean): number {
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 200 && hi - lo > 1e-16; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) < 0 === increasing) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

function bruteClopperPearson(x: number, n: number, confidence = 0.95): { lower: number; upper: number } {
  const tail = (1 - confidence) / 2;
  return {
    lower: x === 0 ? 0 : bisect((p) => bruteTail(x, n, p, "atLeast") - tail, true),
    upper: x === n ? 1 : bisect((p) => bruteTail(x, n, p, "atMost") - tail, false),
  };
}

// R's binom.test two-sided p-value, by enumerating every outcome.
function bruteBinomialTest(x: number, n: number, p: number): number {
  const pmf = (k: number) =>
    Math.exp(logFactorial(n) - logFactorial(k) - logFactorial(n - k)) * p ** k * (1 - p) ** (n - k);
  const observed = pmf(x) * (1 + 1e-7);
  let sum = 0;
  for (let k = 0; k <= n; k++) if (pmf(k) <= observed) sum += pmf(k);
  return Math.min(1, sum);
}

// mulberry32: a small seeded PRNG, so every simulated cohort is reproducible.
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Knuth's product of uniforms is exact but underflows for large λ; a sum of independent Poisson pieces of
// λ ≤ 20 each is again Poisson(λ), so large means stay exact too.
function poisson(lambda: number, random: () => number): number {
  let total = 0;
  for (let remaining = lambda; remaining > 0; remaining -= 20) {
    const limit = Math.exp(-Math.min(remaining, 20));
    let product = random();
    while (product > limit) {
      total++;
      product *= random();
    }
  }
  return total;
}

describe("betaInc", () => {
  it.each([
    // Hand-worked: I_0.5(2, 3) = Σ_{j=2..4} C(4, j)/16 = 11/16.
    [2, 3, 0.5, 0.6875],
    [1, 1, 0.37, 0.37],
    [1, 1, 1e-9, 1e-9],
    [3, 1, 0.2, 0.2 ** 3],
    [0.5, 1, 0.04, 0.2],
    [40, 1, 0.9, 0.9 ** 40],
    [1, 7, 0.1, 1 - 0.9 ** 7],
    [1, 1000, 1e-5, -Math.expm1(1000 * Math.log1p(-1e-5))],
    // References from scipy.special.betainc 1.17 (Boost's ibeta).
    [10, 20, 0.3, 0.3640040810719437],
    [0.5, 300, 0.001, 0.5613457311299086],
    [5e5, 5e5, 0.4999, 0.4207403093309411],
    [3, 1e6, 2e-6, 0.3233246665001949],
  ])("gives I_x(%d, %d) at x = %d as %d", (a, b, x, expected) => {
    expect(relativeError(betaInc(a, b, x), expected)).toBeLessThan(1e-11);
  });

  it.each([
    [2, 3, 0.5],
    [0.3, 4, 0.7],
    [15, 250, 0.02],
    [1e5, 3e5, 0.2501],
  ])("is symmetric: I_x(%d, %d) = 1 − I_{1−x}(b, a) at x = %d", (a, b, x) => {
    expect(betaInc(a, b, x)).toBeCloseTo(1 - betaInc(b, a, 1 - x), 12);
    expect(relativeError(betaIncUpper(a, b, x), betaInc(b, a, 1 - x))).toBeLessThan(1e-11);
  });

  it("keeps relative precision in a far tail", () => {
    // I_x(a, 1) = x^a, here 1e-300.
    expect(relativeError(betaInc(30, 1, 1e-10), 1e-300)).toBeLessThan(1e-12);
  });

  it("is exactly 0 and 1 at the ends", () => {
    expect(betaInc(2, 5, 0)).toBe(0);
    expect(betaInc(2, 5, 1)).toBe(1);
  });

  it.each([
    [0, 1, 0.5],
    [1, -1, 0.5],
    [1, 1, 1.5],
    [1, 1, Number.NaN],
  ])("refuses a = %d, b = %d, x = %d as a programmer error", (a, b, x) => {
    expect(() => betaInc(a, b, x)).toThrow(RangeError);
  });

  it("rests on a log-gamma that matches factorials and Γ(½) = √π", () => {
    expect(logGamma(11)).toBeCloseTo(logFactorial(10), 12);
    expect(logGamma(171)).toBeCloseTo(logFactorial(170), 10);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 14);
  });
});

describe("betaQuantile", () => {
  it.each([
    [0.5, 2, 3],
    [0.025, 1, 10],
    [0.975, 11, 5],
    [1e-30, 3, 4],
    [0.999999, 0.5, 0.5],
    [0.025, 1, 1e6],
    [0.975, 1e6, 2],
    [0.3, 2e5, 7e5],
    [1e-12, 40, 3],
  ])("inverts betaInc at p = %d for a = %d, b = %d", (p, a, b) => {
    const x = betaQuantile(p, a, b);
    expect(relativeError(betaInc(a, b, x), p)).toBeLessThan(1e-10);
  });

  it.each([
    [0.3, 1, 1, 0.3],
    [0.2 ** 3, 3, 1, 0.2],
    [1 - 0.9 ** 7, 1, 7, 0.1],
  ])("gives the closed form where there is one (p = %d, a = %d, b = %d)", (p, a, b, expected) => {
    expect(betaQuantile(p, a, b)).toBeCloseTo(expected, 12);
  });

  it("returns the ends for p = 0 and p = 1", () => {
    expect(betaQuantile(0, 2, 3)).toBe(0);
    expect(betaQuantile(1, 2, 3)).toBe(1);
  });
});

describe("clopperPearson", () => {
  it.each([
    [0, 10, 0, 0.3085],
    [10, 10, 0.6915, 1],
    [5, 10, 0.1871, 0.8129],
    [1, 100, 0.0002531, 0.05446],
    [10, 15, 0.3838, 0.8818],
  ])("gives the textbook interval for %d of %d", (x, n, lower, upper) => {
    const ci = clopperPearson(x, n);
    expect(ci.lower).toBe(lower === 0 ? 0 : ci.lower);
    if (lower > 0) expect(relativeError(ci.lower, lower)).toBeLessThan(5e-4);
    if (upper < 1) expect(relativeError(ci.upper, upper)).toBeLessThan(5e-4);
    else expect(ci.upper).toBe(1);
  });

  it.each([
    [0, 10, 0.95],
    [1, 100, 0.95],
    [10, 15, 0.95],
    [37, 40, 0.95],
    [3, 500, 0.99],
    [250, 600, 0.9],
    [1, 1, 0.95],
  ])("matches binomial tails summed by brute force for %d of %d at %d", (x, n, confidence) => {
    const ci = clopperPearson(x, n, confidence);
    const reference = bruteClopperPearson(x, n, confidence);
    expect(ci.lower === 0 ? 0 : relativeError(ci.lower, reference.lower)).toBeLessThan(1e-9);
    expect(relativeError(ci.upper, reference.upper)).toBeLessThan(1e-9);
  });

  it.each([
    [-1, 10],
    [11, 10],
    [1.5, 10],
    [0, 0],
  ])("refuses x = %d of n = %d as a programmer error", (x, n) => {
    expect(() => clopperPearson(x, n)).toThrow(RangeError);
  });
});

describe("binomialTestPValue", () => {
  it.each([
    [10, 15, 0.5],
    [3, 20, 0.4],
    [17, 20, 0.4],
    [0, 5, 0.3],
    [7, 1000, 0.001],
    [40, 100, 0.37],
    [1, 1, 0.5],
    [12, 60, 0.25],
  ])("matches R's enumeration for %d of %d against p0 = %d", (x, n, p0) => {
    expect(relativeError(binomialTestPValue(x, n, p0), bruteBinomialTest(x, n, p0))).toBeLessThan(1e-9);
  });
});

describe("compareRates", () => {
  it("reproduces R's poisson.test(c(10, 5), c(1000, 1000))", () => {
    const result = cohorts({ count: 10, exposureHours: 1000 }, { count: 5, exposureHours: 1000 });
    const pi = bruteClopperPearson(10, 15);
    expect(result.baseline.ratePer1000h).toBe(5);
    expect(result.candidate.ratePer1000h).toBe(10);
    expect(result.rateRatio).toBe(2);
    expect(relativeError(result.ci?.lower ?? 0, pi.lower / (1 - pi.lower))).toBeLessThan(1e-6);
    expect(relativeError(result.ci?.upper ?? 0, pi.upper / (1 - pi.upper))).toBeLessThan(1e-6);
    expect(result.ci?.lower).toBeCloseTo(0.62286, 5);
    expect(result.ci?.upper).toBeCloseTo(7.4573, 4);
    // Two-sided: 2·P(X ≥ 10 | 15, ½) = 2·4944/32768.
    expect(result.pValue).toBeCloseTo(4944 / 16384, 12);
    expect(result.verdict).toBe("insufficient_evidence");
  });

  it.each([
    [3, 200, 7, 1000],
    [1, 50_000, 30, 40_000],
    [44, 1e-3, 12, 5e-3],
  ])(
    "maps the conditional binomial interval to RR for x1 = %d over %d h, x0 = %d over %d h",
    (x1, t1, x0, t0) => {
      const result = cohorts({ count: x1, exposureHours: t1 }, { count: x0, exposureHours: t0 });
      const pi = bruteClopperPearson(x1, x1 + x0);
      expect(relativeError(result.rateRatio ?? 0, x1 / t1 / (x0 / t0))).toBeLessThan(1e-14);
      expect(relativeError(result.ci?.lower ?? 0, (pi.lower / (1 - pi.lower)) * (t0 / t1))).toBeLessThan(
        1e-8,
      );
      expect(relativeError(result.ci?.upper ?? 0, (pi.upper / (1 - pi.upper)) * (t0 / t1))).toBeLessThan(
        1e-8,
      );
      expect(relativeError(result.pValue ?? 0, bruteBinomialTest(x1, x1 + x0, t1 / (t0 + t1)))).toBeLessThan(
        1e-9,
      );
    },
  );

  it("depends on exposure only through its ratio, from tiny to huge", () => {
    const small = cohorts({ count: 9, exposureHours: 2e-6 }, { count: 4, exposureHours: 3e-6 });
    const large = cohorts({ count: 9, exposureHours: 2e12 }, { count: 4, exposureHours: 3e12 });
    expect(relativeError(small.ci?.lower ?? 0, large.ci?.lower ?? 1)).toBeLessThan(1e-12);
    expect(relativeError(small.ci?.upper ?? 0, large.ci?.upper ?? 1)).toBeLessThan(1e-12);
    expect(small.rateRatio).toBeCloseTo(large.rateRatio ?? 0, 12);
  });

  it.each([
    // References from scipy.special.betaincinv 1.17, mapped to RR.
    [500_300, 499_700, 0.9972817734171089, 1.0051350697433932],
    [3, 999_997, 6.186729329466012e-7, 8.767324653375351e-6],
    [999_997, 3, 1 / 8.767324653375351e-6, 1 / 6.186729329466012e-7],
  ])("stays precise for a million events (x1 = %d, x0 = %d)", (x1, x0, lower, upper) => {
    const result = cohorts({ count: x1, exposureHours: 1e6 }, { count: x0, exposureHours: 1e6 });
    expect(relativeError(result.ci?.lower ?? 0, lower)).toBeLessThan(1e-9);
    expect(relativeError(result.ci?.upper ?? 0, upper)).toBeLessThan(1e-9);
  });

  describe("with zero counts", () => {
    const tail = 0.025;

    it("has no ratio, no interval and no p-value without any event, and cannot say how much more would do", () => {
      const result = cohorts({ count: 0, exposureHours: 500 }, { count: 0, exposureHours: 800 });
      expect(result).toMatchObject({
        rateRatio: null,
        rateRatioMissing: "no_events",
        ci: null,
        pValue: null,
        verdict: "insufficient_evidence",
        moreExposureNeeded: { reachable: false, reason: "no_events" },
      });
      expect(result.candidate.ratePer1000h).toBe(0);
    });

    it("has no ratio and no upper bound when only the baseline has no event, and says so in JSON", () => {
      const result = cohorts({ count: 3, exposureHours: 1000 }, { count: 0, exposureHours: 1000 });
      // x1 = n: the lower bound of π solves π^n = α/2.
      const pi = tail ** (1 / 3);
      expect(result.rateRatio).toBeNull();
      expect(result.rateRatioMissing).toBe("no_baseline_events");
      expect(result.ci?.upper).toBeNull();
      expect(result.ci?.upperUnbounded).toBe(true);
      expect(result.ci?.lower).toBeCloseTo(pi / (1 - pi), 12);
      expect(JSON.parse(JSON.stringify(result))).toEqual(result);
    });

    it("calls a regression even with an empty baseline once the candidate's count shows it", () => {
      const result = cohorts({ count: 10, exposureHours: 1000 }, { count: 0, exposureHours: 1000 });
      const pi = tail ** (1 / 10);
      expect(result.ci?.lower).toBeCloseTo(pi / (1 - pi), 12);
      expect(result.verdict).toBe("regression");
    });

    it("has ratio 0 and lower bound 0 when only the candidate has no event", () => {
      const result = cohorts({ count: 0, exposureHours: 2000 }, { count: 4, exposureHours: 1000 });
      // x1 = 0: the upper bound of π solves (1 − π)^n = α/2.
      const pi = 1 - tail ** (1 / 4);
      expect(result.rateRatio).toBe(0);
      expect(result.ci?.lower).toBe(0);
      expect(result.ci?.upper).toBeCloseTo((pi / (1 - pi)) * (1000 / 2000), 12);
      expect(result.ci?.upperUnbounded).toBe(false);
    });
  });

  describe("verdicts", () => {
    it.each([
      ["regression", { count: 60, exposureHours: 1000 }, { count: 20, exposureHours: 1000 }],
      ["improvement", { count: 10, exposureHours: 2000 }, { count: 40, exposureHours: 1000 }],
      ["no_difference", { count: 400, exposureHours: 10_000 }, { count: 410, exposureHours: 10_000 }],
      ["insufficient_evidence", { count: 3, exposureHours: 1000 }, { count: 2, exposureHours: 1000 }],
      // Significant and inside the margin: a small regression is still a regression.
      ["regression", { count: 12_000, exposureHours: 1e6 }, { count: 10_000, exposureHours: 1e6 }],
    ] as const)("calls %s", (verdict, candidate, baseline) => {
      const result = cohorts(candidate, baseline);
      expect(result.verdict).toBe(verdict);
      expect(result.moreExposureNeeded === null).toBe(verdict !== "insufficient_evidence");
    });

    it("uses the equivalence margin it is given", () => {
      const candidate = { count: 400, exposureHours: 10_000 };
      const baseline = { count: 410, exposureHours: 10_000 };
      expect(cohorts(candidate, baseline, 1.5).verdict).toBe("no_difference");
      expect(cohorts(candidate, baseline, 1.05).verdict).toBe("insufficient_evidence");
      expect(cohorts(candidate, baseline, 1.05).equivalenceMargin).toBe(1.05);
    });

    it("widens the interval with the confidence level", () => {
      const input = {
        candidate: { count: 32, exposureHours: 1000 },
        baseline: { count: 18, exposureHours: 1000 },
      };
      const at90 = compare({ ...input, confidence: 0.9 });
      const at99 = compare({ ...input, confidence: 0.99 });
      expect(at90.ci?.level).toBe(0.9);
      expect(at90.ci?.lower ?? 0).toBeGreaterThan(at99.ci?.lower ?? 0);
      expect(at90.ci?.upper ?? 0).toBeLessThan(at99.ci?.upper ?? 0);
      expect(at90.verdict).toBe("regression");
      expect(at99.verdict).toBe("insufficient_evidence");
    });
  });

  it("flags a candidate three times as faulty as soon as the data can show it, and from then on", () => {
    const checkpoints = [200, 1000, 3000, 10_000, 30_000, 100_000, 300_000, 1_000_000];
    const firstRegressions: number[] = [];
    for (let seed = 1; seed <= 20; seed++) {
      const random = mulberry32(seed);
      let hours = 0;
      let baselineCount = 0;
      let candidateCount = 0;
      const verdicts: string[] = [];
      for (const checkpoint of checkpoints) {
        // A growing rollout: each checkpoint adds exposure to both cohorts (0.5 and 1.5 per 1,000 h).
        baselineCount += poisson((0.5 * (checkpoint - hours)) / 1000, random);
        candidateCount += poisson((1.5 * (checkpoint - hours)) / 1000, random);
        hours = checkpoint;
        const comparison = cohorts(
          { count: candidateCount, exposureHours: hours },
          { count: baselineCount, exposureHours: hours },
        );
        verdicts.push(comparison.verdict);
      }
      expect(verdicts[0]).toBe("insufficient_evidence");
      const first = verdicts.indexOf("regression");
      expect(first).toBeGreaterThan(0);
      expect(verdicts.slice(first).every((v) => v === "regression")).toBe(true);
      expect(verdicts.slice(0, first).every((v) => v === "insufficient_evidence")).toBe(true);
      firstRegressions.push(checkpoints[first] ?? Number.NaN);
    }
    // Expected counts of 15 and 45 by 30,000 h give an exact test ~90% power, and 50 against 150 by
    // 100,000 h leave no doubt.
    expect(Math.max(...firstRegressions)).toBeLessThanOrEqual(100_000);
    expect(firstRegressions.filter((hours) => hours <= 30_000).length).toBeGreaterThanOrEqual(16);
  });

  it("calls identical cohorts a regression no more often than its 2.5% one-sided error allows", () => {
    const random = mulberry32(2024);
    // From tiny samples (expected counts 0.3) to moderate ones (expected 30), equal and unequal exposures.
    const exposures = [
      [300, 300],
      [1000, 1000],
      [1000, 3000],
      [3000, 3000],
      [10_000, 5000],
      [30_000, 30_000],
    ] as const;
    const simulations = 2400;
    let regressions = 0;
    let improvements = 0;
    for (let i = 0; i < simulations; i++) {
      const [candidateHours, baselineHours] = exposures[i % exposures.length] ?? [1, 1];
      const verdict = cohorts(
        { count: poisson(candidateHours / 1000, random), exposureHours: candidateHours },
        { count: poisson(baselineHours / 1000, random), exposureHours: baselineHours },
      ).verdict;
      if (verdict === "regression") regressions++;
      if (verdict === "improvement") improvements++;
    }
    expect(regressions / simulations).toBeLessThanOrEqual(0.025 + 0.005);
    expect(improvements / simulations).toBeLessThanOrEqual(0.025 + 0.005);
  });

  it("finds identical cohorts no different once exposure is large", () => {
    const random = mulberry32(7);
    const simulations = 200;
    let same = 0;
    for (let i = 0; i < simulations; i++) {
      const hours = 2_000_000;
      const verdict = cohorts(
        { count: poisson(hours / 1000, random), exposureHours: hours },
        { count: poisson(hours / 1000, random), exposureHours: hours },
      ).verdict;
      if (verdict === "no_difference") same++;
    }
    expect(same / simulations).toBeGreaterThanOrEqual(0.9);
  });

  describe("moreExposureNeeded", () => {
    function scaled(cohort: CohortCount, factor: number): CohortCount {
      return { count: Math.round(cohort.count * factor), exposureHours: cohort.exposureHours * factor };
    }

    it.each([
      [
        { count: 10, exposureHours: 1000 },
        { count: 5, exposureHours: 1000 },
      ],
      [
        { count: 1, exposureHours: 1000 },
        { count: 1, exposureHours: 1000 },
      ],
      [
        { count: 0, exposureHours: 500 },
        { count: 3, exposureHours: 1000 },
      ],
      [
        { count: 3, exposureHours: 1000 },
        { count: 0, exposureHours: 400 },
      ],
      [
        { count: 4, exposureHours: 800 },
        { count: 2, exposureHours: 1500 },
      ],
      [
        { count: 20, exposureHours: 10_000 },
        { count: 25, exposureHours: 10_000 },
      ],
      [
        { count: 130, exposureHours: 1e6 },
        { count: 100, exposureHours: 1e6 },
      ],
    ])(
      "is a near-minimal factor that settles the verdict (candidate %o, baseline %o)",
      (candidate, baseline) => {
        const result = cohorts(candidate, baseline);
        expect(result.verdict).toBe("insufficient_evidence");
        const more = result.moreExposureNeeded;
        if (more?.reachable !== true) throw new Error("expected a reachable factor");
        expect(more.factor).toBeGreaterThan(1);
        expect(more.baselineHours).toBeCloseTo(baseline.exposureHours * (more.factor - 1), 6);
        expect(more.candidateHours).toBeCloseTo(candidate.exposureHours * (more.factor - 1), 6);
        expect(cohorts(scaled(candidate, more.factor), scaled(baseline, more.factor)).verdict).not.toBe(
          "insufficient_evidence",
        );
        const less = more.factor / 1.1;
        expect(cohorts(scaled(candidate, less), scaled(baseline, less)).verdict).toBe(
          "insufficient_evidence",
        );
      },
    );

    it("settles equal rates by equivalence, since the interval never excludes 1", () => {
      const candidate = { count: 4, exposureHours: 1000 };
      const baseline = { count: 4, exposureHours: 1000 };
      const more = cohorts(candidate, baseline).moreExposureNeeded;
      if (more?.reachable !== true) throw new Error("expected a reachable factor");
      expect(cohorts(scaled(candidate, more.factor), scaled(baseline, more.factor)).verdict).toBe(
        "no_difference",
      );
    });

    it("says when the observed rates could not settle it within the cap", () => {
      // RR = 1.005 on a margin of 1.005: only significance can settle it, and that needs ~1,500× the data.
      const result = cohorts({ count: 201, exposureHours: 1000 }, { count: 200, exposureHours: 1000 }, 1.005);
      expect(result.moreExposureNeeded).toEqual({ reachable: false, reason: "beyond_cap", maxFactor: 1000 });
    });
  });

  it.each([
    ["invalid_count", "baseline.count", { baseline: { count: -1, exposureHours: 10 } }],
    ["invalid_count", "candidate.count", { candidate: { count: 2.5, exposureHours: 10 } }],
    ["invalid_exposure", "baseline.exposureHours", { baseline: { count: 1, exposureHours: 0 } }],
    ["invalid_exposure", "candidate.exposureHours", { candidate: { count: 1, exposureHours: Number.NaN } }],
    ["invalid_exposure", "candidate.exposureHours", { candidate: { count: 1, exposureHours: Infinity } }],
    ["invalid_confidence", "confidence", { confidence: 1 }],
    ["invalid_confidence", "confidence", { confidence: 0 }],
    ["invalid_margin", "equivalenceMargin", { equivalenceMargin: 1 }],
  ] as const)("returns %s for a bad %s instead of throwing", (code, field, override) => {
    const input: RateRatioInput = {
      baseline: { count: 5, exposureHours: 1000 },
      candidate: { count: 6, exposureHours: 1000 },
      ...override,
    };
    const result = compareRates(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problem).toMatchObject({ code, field });
  });
});
