// Log-gamma, log-beta, the regularized incomplete beta function and its inverse: enough to compute exact
// binomial and Poisson intervals without a statistics dependency. Domain errors are programmer errors and
// throw RangeError; callers validate user input before calling.

const LN_SQRT_2PI = 0.9189385332046728;
// ln(Number.MIN_VALUE): below this a quantile underflows to 0 anyway.
const LN_SMALLEST = -745;
const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

function requirePositive(name: string, value: number): void {
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be finite and > 0`);
}

function requireUnit(name: string, value: number): void {
  if (!(value >= 0 && value <= 1)) throw new RangeError(`${name} must lie in [0, 1]`);
}

// Stirling's series for ln Γ(x) − ((x − ½)·ln x − x + ln √(2π)); accurate to ~1e-17 for x ≥ 10.
function stirlingCorrection(x: number): number {
  const r = 1 / (x * x);
  return (
    (1 / 12 -
      r *
        (1 / 360 -
          r *
            (1 / 1260 -
              r * (1 / 1680 - r * (1 / 1188 - r * (691 / 360360 - r * (1 / 156 - (r * 3617) / 122400))))))) /
    x
  );
}

export function logGamma(x: number): number {
  requirePositive("x", x);
  if (x >= 10) return (x - 0.5) * Math.log(x) - x + LN_SQRT_2PI + stirlingCorrection(x);
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let sum = LANCZOS[0] ?? 0;
  for (let i = 1; i < LANCZOS.length; i++) sum += (LANCZOS[i] ?? 0) / (z + i);
  const t = z + LANCZOS_G + 0.5;
  return LN_SQRT_2PI + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

// ln B(a, b), arranged as R's lbeta so that large arguments do not cancel catastrophically.
export function logBeta(a: number, b: number): number {
  requirePositive("a", a);
  requirePositive("b", b);
  const p = Math.min(a, b);
  const q = Math.max(a, b);
  const share = p / (p + q);
  if (p >= 10) {
    const correction = stirlingCorrection(p) + stirlingCorrection(q) - stirlingCorrection(p + q);
    return (
      -0.5 * Math.log(q) + LN_SQRT_2PI + correction + (p - 0.5) * Math.log(share) + q * Math.log1p(-share)
    );
  }
  if (q >= 10) {
    const correction = stirlingCorrection(q) - stirlingCorrection(p + q);
    return logGamma(p) + correction + p - p * Math.log(p + q) + (q - 0.5) * Math.log1p(-share);
  }
  return logGamma(p) + logGamma(q) - logGamma(p + q);
}

// x − ln(1 + x) without cancellation near 0, via ln(1 + x) = 2·atanh(t) with t = x/(2 + x).
function xMinusLog1p(x: number): number {
  if (Math.abs(x) > 0.5) return x - Math.log1p(x);
  const t = x / (2 + x);
  const t2 = t * t;
  let power = t * t2;
  let series = 0;
  for (let k = 3; k < 80; k += 2) {
    const term = power / k;
    series += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(series)) break;
    power *= t2;
  }
  return t * x - 2 * series;
}

// ln of x^a·(1−x)^b / B(a, b), the factor in front of the continued fraction. For large a and b the
// direct sum cancels to a few digits near the mean, so it is rewritten around x0 = a/(a + b) with
// Stirling's formula for B(a, b), as in TOMS 708 (brcomp).
function logFront(a: number, b: number, x: number): number {
  if (Math.min(a, b) < 10) return a * Math.log(x) + b * Math.log1p(-x) - logBeta(a, b);
  const x0 = a / (a + b);
  const y0 = b / (a + b);
  // a − (a + b)·x, taken from the side where it cancels least.
  const lambda = a <= b ? a - (a + b) * x : (a + b) * (1 - x) - b;
  const e1 = -lambda / a;
  const e2 = lambda / b;
  const u = Math.abs(e1) > 0.6 ? e1 - (Math.log(x) - Math.log(x0)) : xMinusLog1p(e1);
  const v = Math.abs(e2) > 0.6 ? e2 - (Math.log1p(-x) - Math.log(y0)) : xMinusLog1p(e2);
  const correction = stirlingCorrection(a) + stirlingCorrection(b) - stirlingCorrection(a + b);
  return -(a * u + b * v) + 0.5 * Math.log(b * x0) - LN_SQRT_2PI - correction;
}

// Continued fraction for I_x(a, b) by the modified Lentz method (Numerical Recipes, betacf). It converges
// fast for x < (a + 1)/(a + b + 2), in O(√max(a, b)) steps at worst.
function betaContinuedFraction(a: number, b: number, x: number, y: number): number {
  const tiny = 1e-300;
  const maxSteps = 1000 + Math.ceil(20 * Math.sqrt(Math.max(a, b)));
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  // 1 − (a + b)·x/(a + 1), from y = 1 − x where x is near 1: there the difference would cancel.
  let d = x < 0.5 ? 1 - (qab * x) / qap : (1 - b + qab * y) / qap;
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= maxSteps; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) <= 1e-15) break;
  }
  return h;
}

function requireBetaArgs(a: number, b: number, x: number): void {
  requirePositive("a", a);
  requirePositive("b", b);
  requireUnit("x", x);
}

// Both tails I_x(a, b) and 1 − I_x(a, b), each computed where it is small so neither loses digits.
function betaTails(a: number, b: number, x: number): { lower: number; upper: number } {
  if (x === 0) return { lower: 0, upper: 1 };
  if (x === 1) return { lower: 1, upper: 0 };
  if (x < (a + 1) / (a + b + 2)) {
    const lower = (Math.exp(logFront(a, b, x)) * betaContinuedFraction(a, b, x, 1 - x)) / a;
    return { lower, upper: 1 - lower };
  }
  const upper = (Math.exp(logFront(a, b, x)) * betaContinuedFraction(b, a, 1 - x, x)) / b;
  return { lower: 1 - upper, upper };
}

/** The regularized incomplete beta function I_x(a, b), the CDF of Beta(a, b) at x. */
export function betaInc(a: number, b: number, x: number): number {
  requireBetaArgs(a, b, x);
  return betaTails(a, b, x).lower;
}

/** 1 − I_x(a, b) without the cancellation of computing it as a difference. */
export function betaIncUpper(a: number, b: number, x: number): number {
  requireBetaArgs(a, b, x);
  return betaTails(a, b, x).upper;
}

type Tail = "lower" | "upper";

// ln I_x(a, b) or ln(1 − I_x(a, b)), each finite where the tail itself would underflow.
function logTail(a: number, b: number, x: number, tail: Tail): number {
  if (x < (a + 1) / (a + b + 2)) {
    const logLower = logFront(a, b, x) + Math.log(betaContinuedFraction(a, b, x, 1 - x) / a);
    return tail === "lower" ? logLower : Math.log1p(-Math.exp(logLower));
  }
  const logUpper = logFront(a, b, x) + Math.log(betaContinuedFraction(b, a, 1 - x, x) / b);
  return tail === "upper" ? logUpper : Math.log1p(-Math.exp(logUpper));
}

// Solves tail(x) = target for x in (0, ½] by Newton's method on u = ln x against the log of the tail,
// safeguarded by bisection. In these coordinates the far tail is nearly linear (I ≈ C·x^a), so Newton
// converges fast even for tiny targets.
function solveInLowerHalf(a: number, b: number, tail: Tail, target: number): number {
  const logTarget = Math.log(target);
  const sign = tail === "lower" ? 1 : -1;
  let lo = LN_SMALLEST;
  let hi = Math.log(0.5);
  let u = Math.log(Math.min(0.5, a / (a + b)));
  let previousStep = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 300; i++) {
    const x = Math.exp(u);
    const logT = logTail(a, b, x, tail);
    const h = logT - logTarget;
    if (h === 0) return x;
    if (h * sign < 0) lo = u;
    else hi = u;
    // d ln I / d u = x·f(x)/I(x), with f the Beta(a, b) density; the upper tail has the opposite sign.
    const slope = sign * Math.exp(logFront(a, b, x) - Math.log1p(-x) - logT);
    let next = u - h / slope;
    if (!(next > lo && next < hi) || Math.abs(next - u) > 0.5 * previousStep) next = 0.5 * (lo + hi);
    previousStep = Math.abs(next - u);
    u = next;
    if (previousStep <= 1e-14 * Math.max(1, Math.abs(u)) || hi - lo <= 1e-14) break;
  }
  return u <= LN_SMALLEST ? 0 : Math.exp(u);
}

/**
 * The p-quantile x of Beta(a, b) together with its complement 1 − x, each accurate to ~1e-12 relative.
 * Pass q = 1 − p as you know it: a tail probability too small to survive 1 − p then keeps its digits.
 */
export function betaQuantileWithComplement(
  p: number,
  a: number,
  b: number,
  q: number = 1 - p,
): { x: number; complement: number } {
  requireUnit("p", p);
  requireUnit("q", q);
  requirePositive("a", a);
  requirePositive("b", b);
  if (p === 0) return { x: 0, complement: 1 };
  if (q === 0) return { x: 1, complement: 0 };
  const half = betaTails(a, b, 0.5);
  const inLowerHalf = p <= q ? p <= half.lower : q >= half.upper;
  if (inLowerHalf) {
    const x = p <= q ? solveInLowerHalf(a, b, "lower", p) : solveInLowerHalf(a, b, "upper", q);
    return { x, complement: 1 - x };
  }
  // I_x(a, b) = p  ⇔  I_{1−x}(b, a) = 1 − p.
  const complement = q <= p ? solveInLowerHalf(b, a, "lower", q) : solveInLowerHalf(b, a, "upper", p);
  return { x: 1 - complement, complement };
}

/** The p-quantile of Beta(a, b): the x with I_x(a, b) = p. */
export function betaQuantile(p: number, a: number, b: number): number {
  return betaQuantileWithComplement(p, a, b).x;
}

/** ln of the Binomial(n, p) probability of k, without forming C(n, k). */
export function logBinomialPmf(k: number, n: number, p: number): number {
  requireUnit("p", p);
  if (!Number.isInteger(k) || !Number.isInteger(n) || k < 0 || k > n) {
    throw new RangeError("k and n must be integers with 0 ≤ k ≤ n");
  }
  if (p === 0) return k === 0 ? 0 : Number.NEGATIVE_INFINITY;
  if (p === 1) return k === n ? 0 : Number.NEGATIVE_INFINITY;
  // C(n, k)·p^k·(1 − p)^(n−k) = p^(k+1)·(1 − p)^(n−k+1) / B(k + 1, n − k + 1) / ((n + 1)·p·(1 − p)).
  return logFront(k + 1, n - k + 1, p) - Math.log(n + 1) - Math.log(p) - Math.log1p(-p);
}

// erfc(x) for x ≥ 0: the series of erf (all terms positive) below 3, Lentz's continued fraction above.
function erfcNonNegative(x: number): number {
  if (x < 3) {
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
      if (term <= 1e-17 * sum) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
  }
  // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))).
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = x + a * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = x + a / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const step = c * d;
    f *= step;
    if (Math.abs(step - 1) <= 1e-16) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** P(Z > z) for a standard normal Z, z ≥ 0, with its digits kept far in the tail. */
function normalUpperTail(z: number): number {
  return 0.5 * erfcNonNegative(z / Math.SQRT2);
}

/** The p-quantile of the standard normal distribution. */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError("p must lie in (0, 1)");
  if (p === 0.5) return 0;
  const q = Math.min(p, 1 - p);
  // Abramowitz and Stegun 26.2.23 (error < 4.5e-4), then Halley steps on the upper tail.
  const t = Math.sqrt(-2 * Math.log(q));
  let z =
    t -
    (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t ** 3);
  for (let i = 0; i < 8; i++) {
    const density = Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
    const u = (normalUpperTail(z) - q) / density;
    const step = u / (1 + 0.5 * z * u);
    z += step;
    if (Math.abs(step) <= 1e-15 * Math.max(1, z)) break;
  }
  return p < 0.5 ? -z : z;
}

/** The p-quantile of Student's t with df > 0 degrees of freedom (df = Infinity: the normal quantile). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError("p must lie in (0, 1)");
  if (!(df > 0)) throw new RangeError("df must be > 0");
  if (df === Number.POSITIVE_INFINITY) return normalQuantile(p);
  if (p === 0.5) return 0;
  // P(|T| > t) = I_{df/(df + t²)}(df/2, 1/2).
  const twoSided = 2 * Math.min(p, 1 - p);
  const { x, complement } = betaQuantileWithComplement(twoSided, df / 2, 0.5, 1 - twoSided);
  const t = Math.sqrt((df * complement) / x);
  return p < 0.5 ? -t : t;
}
