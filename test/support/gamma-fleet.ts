// Seeded generators for simulations of fleets whose devices differ: per-device fault rates drawn from a
// gamma distribution, faults drawn from a Poisson distribution over each device's exposure. Deterministic
// for a seed, so simulation tests are reproducible and bench code can reuse them.

import type { DeviceExposure } from "../../analytics/device-rates.js";
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
