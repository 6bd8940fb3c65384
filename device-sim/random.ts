/** A seeded source of randomness: the same seed yields the same sequence on every machine. */
export type Random = {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [min, max], both included. */
  int(min: number, max: number): number;
  /** Uniform in [min, max). */
  between(min: number, max: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** Normally distributed (Box-Muller). */
  normal(mean: number, sd: number): number;
  pick<T>(items: readonly [T, ...T[]]): T;
  /** Picks by relative weight. */
  weighted<T>(items: readonly [readonly [T, number], ...(readonly [T, number])[]]): T;
};

/** mulberry32: 32 bits of state, fast, and good enough for a simulation (not for secrets). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function createRandom(seed: number): Random {
  const next = mulberry32(seed);
  const random: Random = {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    between: (min, max) => min + next() * (max - min),
    chance: (p) => next() < p,
    normal: (mean, sd) => {
      const u = 1 - next();
      const v = next();
      return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
    pick: (items) => items[Math.floor(next() * items.length)] ?? items[0],
    weighted: (items) => {
      const total = items.reduce((sum, [, weight]) => sum + weight, 0);
      let roll = next() * total;
      for (const [item, weight] of items) {
        roll -= weight;
        if (roll < 0) return item;
      }
      return items[items.length - 1]?.[0] ?? items[0][0];
    },
  };
  return random;
}

/** A seed of its own for each device, so one device's sequence does not depend on the others. */
export function deriveSeed(seed: number, name: string): number {
  // FNV-1a over the name, mixed with the fleet seed.
  let hash = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** How many times something with `mean` expected occurrences happened (Knuth's method: fine for small means). */
export function poisson(random: Random, mean: number): number {
  if (mean <= 0) return 0;
  const limit = Math.exp(-Math.min(mean, 500));
  let count = 0;
  for (let product = random.next(); product > limit; product *= random.next()) count += 1;
  return count;
}

/** A gamma-distributed draw with this shape and scale 1 (Marsaglia and Tsang; a shape below 1 by boosting). */
export function gamma(random: Random, shape: number): number {
  if (shape < 1) return gamma(random, shape + 1) * (1 - random.next()) ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = random.normal(0, 1);
    const v = (1 + c * x) ** 3;
    if (v <= 0) continue;
    if (Math.log(1 - random.next()) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/**
 * How fault-prone one device is, as a multiplier of its model's fault rates: gamma with mean 1 and variance
 * 1 / shape, so a smaller shape makes devices differ more (0.5: a tenth of them fault over 2.7 times the
 * average, a third under a fifth of it). No shape: every device is average.
 */
export function faultProneness(random: Random, shape: number | undefined): number {
  return shape === undefined ? 1 : gamma(random, shape) / shape;
}
