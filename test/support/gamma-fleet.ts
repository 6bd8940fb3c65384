// Seeded generators for simulations of fleets whose devices differ: per-device fault rates drawn from a
// gamma distribution, faults drawn from a Poisson distribution over each device's exposure. Deterministic
// for a seed, so simulation tests are reproducible and bench code can reuse them.

import { compareDeviceRates, type DeviceExposure } from "../../analytics/device-rates.js";
import { rateRatioInterval, verdictFor } from "../../analytics/rate-ratio.js";
import { logGamma } from "../../analytics/special-functions.js";

export type Random = () => number;

/** sfc32 (Chris Doty-Humphrey's small fast counter): uniform in [0, 1), 128 bits of state. */
export function seededRandom(seed: number): Random {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 15; i++) next();
  return next;
}

// (0, 1): a logarithm of it is finite.
function openUnit(random: Random): number {
  let u = random();
  while (u === 0) u = random();
  return u;
}

export function normal(random: Random): number {
  for (;;) {
    const u = 2 * random() - 1;
    const v = 2 * random() - 1;
    const s = u * u + v * v;
    if (s > 0 && s < 1) return u * Math.sqrt((-2 * Math.log(s)) / s);
  }
}

/** Gamma(shape, scale 1) by Marsaglia and Tsang; shape < 1 through Gamma(shape + 1)·U^(1/shape). */
export function gamma(random: Random, shape: number): number {
  if (shape < 1) return gamma(random, shape + 1) * openUnit(random) ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(random);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = openUnit(random);
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Poisson(mean): inversion for small means, Hörmann's PTRS (transformed rejection) from 10 on. */
export function poisson(random: Random, mean: number): number {
  if (mean <= 0) return 0;
  if (mean < 10) {
    const limit = Math.exp(-mean);
    let k = 0;
    let p = random();
    while (p > limit) {
      k++;
      p *= random();
    }
    return k;
  }
  const root = Math.sqrt(mean);
  const logMean = Math.log(mean);
  const b = 0.931 + 2.53 * root;
  const a = -0.059 + 0.02483 * b;
  const invAlpha = 1.1239 + 1.1328 / (b - 3.4);
  const vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const u = random() - 0.5;
    const v = openUnit(random);
    const us = 0.5 - Math.abs(u);
    const k = Math.floor(((2 * a) / us + b) * u + mean + 0.43);
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (
      Math.log(v) + Math.log(invAlpha) - Math.log(a / (us * us) + b) <=
      -mean + k * logMean - logGamma(k + 1)
    ) {
      return k;
    }
  }
}

export type CohortSpec = {
  devices: number;
  /** Mean faults per device-hour. */
  rate: number;
  /** Gamma shape of the per-device rates (their CV is 1/√shape); Infinity for devices alike. */
  shape: number;
  /** Mean exposure per device, in hours. */
  meanHours: number;
  /** Gamma shape of the per-device exposures; Infinity for equal exposures. */
  hoursShape: number;
};

/** One cohort's devices: exposure, a gamma-distributed rate of mean spec.rate, Poisson faults. */
export function gammaCohort(random: Random, spec: CohortSpec, prefix = "d"): DeviceExposure[] {
  const devices: DeviceExposure[] = [];
  for (let i = 0; i < spec.devices; i++) {
    const hours = Number.isFinite(spec.hoursShape)
      ? Math.max(1e-3, (spec.meanHours * gamma(random, spec.hoursShape)) / spec.hoursShape)
      : spec.meanHours;
    const rate = Number.isFinite(spec.shape)
      ? (spec.rate * gamma(random, spec.shape)) / spec.shape
      : spec.rate;
    devices.push({ device: `${prefix}${i}`, exposureHours: hours, count: poisson(random, rate * hours) });
  }
  return devices;
}

// ---- Simulations of issue 11, item 2: shared by test/unit/device-rates-sim.test.ts and bench/stats.ts ----

export type NullConfig = {
  /** Gamma shape of the per-device rates: 0.25 (CV 2), 0.5, 1 (CV 1). */
  shape: number;
  devices: { baseline: number; candidate: number };
  /** Mean faults per device over its exposure. */
  faultsPerDevice: number;
};

/** The grid of issue 11: shapes × devices per cohort (balanced, and small beside large) × faults per device. */
export const NULL_GRID: NullConfig[] = [0.25, 0.5, 1].flatMap((shape) =>
  (
    [
      [5, 5],
      [20, 20],
      [100, 100],
      [500, 500],
      [5, 100],
      [20, 100],
    ] as const
  ).flatMap(([baseline, candidate]) =>
    [0.2, 2, 20].map((faultsPerDevice) => ({ shape, devices: { baseline, candidate }, faultsPerDevice })),
  ),
);

/** Replications per configuration of the null grid in the test (Monte-Carlo SE 0.0069 at a share of 5%). */
export const NULL_REPLICATIONS = 1000;

/** Each configuration's own seed, so a configuration's result does not depend on the others. */
export function nullSeed(c: NullConfig): number {
  return Math.round(
    c.shape * 1000 + c.devices.baseline * 7 + c.devices.candidate * 13 + c.faultsPerDevice * 101,
  );
}

/** Mean exposure per device in the null grid; exposures differ between devices with gamma shape 2 (CV 0.71). */
export const NULL_MEAN_HOURS = 100;
export const NULL_HOURS_SHAPE = 2;

const calls = (verdict: string) => verdict === "regression" || verdict === "improvement";

function nullCohort(random: Random, config: NullConfig, devices: number, prefix: string): DeviceExposure[] {
  return gammaCohort(
    random,
    {
      devices,
      rate: config.faultsPerDevice / NULL_MEAN_HOURS,
      shape: config.shape,
      meanHours: NULL_MEAN_HOURS,
      hoursShape: NULL_HOURS_SHAPE,
    },
    prefix,
  );
}

export type NullShare = {
  replications: number;
  /** Share of comparisons with a regression or improvement verdict (equal means: every one is false). */
  falseVerdicts: number;
  /** The same share had no cohort been refused for too few devices (what the refusal prevents). */
  withoutRefusal: number;
  /** The pooled exact test's share on the same data. */
  pooledExact: number;
};

/** Both cohorts drawn from one gamma-Poisson fleet (mean rates equal), compared `replications` times. */
export function nullShare(
  compare: (
    baseline: DeviceExposure[],
    candidate: DeviceExposure[],
  ) => {
    verdict: string;
    ci: { lower: number; upper: number | null } | null;
  },
  pooled: (baseline: DeviceExposure[], candidate: DeviceExposure[]) => string,
  config: NullConfig,
  replications: number,
  seed: number,
): NullShare {
  const random = seededRandom(seed);
  let falseVerdicts = 0;
  let withoutRefusal = 0;
  let pooledExact = 0;
  for (let r = 0; r < replications; r++) {
    const baseline = nullCohort(random, config, config.devices.baseline, "b");
    const candidate = nullCohort(random, config, config.devices.candidate, "c");
    const result = compare(baseline, candidate);
    if (calls(result.verdict)) falseVerdicts++;
    const ci = result.ci;
    if (ci !== null && (ci.lower > 1 || (ci.upper !== null && ci.upper < 1))) withoutRefusal++;
    if (calls(pooled(baseline, candidate))) pooledExact++;
  }
  return {
    replications,
    falseVerdicts: falseVerdicts / replications,
    withoutRefusal: withoutRefusal / replications,
    pooledExact: pooledExact / replications,
  };
}

/** Like nullShare, the candidate's mean rate `ratio` times the baseline's: the share called a regression. */
export function regressionShare(
  compare: (baseline: DeviceExposure[], candidate: DeviceExposure[]) => { verdict: string },
  config: NullConfig & { ratio: number },
  replications: number,
  seed: number,
): number {
  const random = seededRandom(seed);
  let called = 0;
  for (let r = 0; r < replications; r++) {
    const baseline = nullCohort(random, config, config.devices.baseline, "b");
    const candidate = nullCohort(
      random,
      { ...config, faultsPerDevice: config.faultsPerDevice * config.ratio },
      config.devices.candidate,
      "c",
    );
    if (compare(baseline, candidate).verdict === "regression") called++;
  }
  return called / replications;
}

export type FamilyConfig = NullConfig & { codes: number };

/**
 * A family of null codes per comparison: each device has one frailty shared by its codes (a lemon faults
 * in many) times a frailty per code, both gamma with shape 2·config.shape so each code's rates have shape
 * about config.shape. Returns the share of comparisons with any false verdict, before and after `judge`.
 */
export function familyShare<C extends { verdict: string }>(
  compare: (baseline: DeviceExposure[], candidate: DeviceExposure[]) => C,
  judge: (family: C[]) => C[],
  config: FamilyConfig,
  replications: number,
  seed: number,
): { replications: number; anyBefore: number; anyAfter: number } {
  const random = seededRandom(seed);
  const shape = 2 * config.shape;
  const cohort = (devices: number, prefix: string) =>
    Array.from({ length: devices }, (_, i) => ({
      device: `${prefix}${i}`,
      hours: (NULL_MEAN_HOURS * gamma(random, NULL_HOURS_SHAPE)) / NULL_HOURS_SHAPE,
      frailty: gamma(random, shape) / shape,
    }));
  const rate = config.faultsPerDevice / NULL_MEAN_HOURS;
  let anyBefore = 0;
  let anyAfter = 0;
  for (let r = 0; r < replications; r++) {
    const b = cohort(config.devices.baseline, "b");
    const c = cohort(config.devices.candidate, "c");
    const draw = (side: typeof b): DeviceExposure[] =>
      side.map((d) => ({
        device: d.device,
        exposureHours: d.hours,
        count: poisson(random, (rate * d.frailty * gamma(random, shape) * d.hours) / shape),
      }));
    const family = Array.from({ length: config.codes }, () => compare(draw(b), draw(c)));
    if (family.some((x) => calls(x.verdict))) anyBefore++;
    if (judge(family).some((x) => calls(x.verdict))) anyAfter++;
  }
  return { replications, anyBefore: anyBefore / replications, anyAfter: anyAfter / replications };
}

export type CanaryConfig = {
  canaryDevices: number;
  restDevices: number;
  /** Faults per device-hour of the rest; the canary's is ratio times that. */
  rate: number;
  ratio: number;
  /** Canary device-hours added per step (every device accrues hours at the same pace). */
  stepHours: number;
  maxSteps: number;
};

/**
 * Devices alike, the canary's rate ratio times the rest's: the canary exposure at which each method first
 * calls a regression as exposure accrues in steps, per replication (null when not within maxSteps).
 */
export function canaryExposureNeeded(
  methods: Record<string, (baseline: DeviceExposure[], candidate: DeviceExposure[]) => string>,
  config: CanaryConfig,
  replications: number,
  seed: number,
): Record<string, (number | null)[]> {
  const random = seededRandom(seed);
  const names = Object.keys(methods);
  const needed: Record<string, (number | null)[]> = Object.fromEntries(names.map((n) => [n, []]));
  const hoursPerStep = config.stepHours / config.canaryDevices;
  const devices = (n: number, prefix: string) =>
    Array.from(
      { length: n },
      (_, i): DeviceExposure => ({ device: `${prefix}${i}`, exposureHours: 0, count: 0 }),
    );
  for (let r = 0; r < replications; r++) {
    const canary = devices(config.canaryDevices, "c");
    const rest = devices(config.restDevices, "b");
    // Fault times in per-device hours: a Poisson process per cohort, each fault on a uniform device.
    const next = (n: number, rate: number) => -Math.log(openUnit(random)) / (n * rate);
    let canaryAt = next(config.canaryDevices, config.rate * config.ratio);
    let restAt = next(config.restDevices, config.rate);
    const first: Record<string, number | null> = Object.fromEntries(names.map((n) => [n, null]));
    for (let step = 1; step <= config.maxSteps; step++) {
      const hours = step * hoursPerStep;
      for (const d of canary) d.exposureHours = hours;
      for (const d of rest) d.exposureHours = hours;
      while (canaryAt <= hours) {
        const d = canary[Math.floor(random() * canary.length)];
        if (d !== undefined) d.count++;
        canaryAt += next(config.canaryDevices, config.rate * config.ratio);
      }
      while (restAt <= hours) {
        const d = rest[Math.floor(random() * rest.length)];
        if (d !== undefined) d.count++;
        restAt += next(config.restDevices, config.rate);
      }
      for (const name of names) {
        if (first[name] !== null) continue;
        if (methods[name]?.(rest, canary) === "regression") first[name] = step * config.stepHours;
      }
      if (names.every((n) => first[n] !== null)) break;
    }
    for (const name of names) needed[name]?.push(first[name] ?? null);
  }
  return needed;
}

/** The median, a missing value counting as larger than any. */
export function median(values: readonly (number | null)[]): number | null {
  const sorted = [...values].sort(
    (a, b) => (a ?? Number.POSITIVE_INFINITY) - (b ?? Number.POSITIVE_INFINITY),
  );
  const mid = sorted.length / 2;
  const pick = (i: number) => sorted[i] ?? null;
  if (sorted.length % 2 === 1) return pick(Math.floor(mid));
  const a = pick(mid - 1);
  const b = pick(mid);
  return a === null || b === null ? null : (a + b) / 2;
}

/** The device-level test's verdict alone (no more-exposure search): what the simulations count. */
export const deviceVerdict = (baseline: DeviceExposure[], candidate: DeviceExposure[]) =>
  compareDeviceRates({ baseline, candidate, moreExposure: false });

const total = (side: readonly DeviceExposure[]) => ({
  count: side.reduce((n, d) => n + d.count, 0),
  exposureHours: side.reduce((h, d) => h + d.exposureHours, 0),
});

/** compareRates' verdict on pooled counts, without the more-exposure search it would add. */
export const pooledExact = (baseline: DeviceExposure[], candidate: DeviceExposure[]) => {
  const b = total(baseline);
  const c = total(candidate);
  return verdictFor(rateRatioInterval(c.count, b.count, b.exposureHours / c.exposureHours, 0.95), 1.5);
};
