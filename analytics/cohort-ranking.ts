import type { CohortDimension, CohortRanking, RankedCohort } from "../contract/api/fleet.js";
import { type Severity, UNKNOWN } from "../contract/messages.js";
import { iso, type Window } from "../contract/time.js";
import {
  compareDeviceRates,
  type DeviceExposure,
  type DeviceRateComparison,
  judgeFamily,
} from "./device-rates.js";

// "Which cohort is worst": within one model, each value of a dimension (an ISP, a region, a hardware
// revision, a firmware) against the rest of the model, device by device (analytics/device-rates.ts), overall
// and per code, every comparison of one ranking judged as one family (Holm). ISP and hardware are what each
// device's latest hello says (the caller's attributesOf); region and firmware are those the device reported
// in, so a device that moved between them counts in each for the hours it spent there.

export type FaultTally = { severity: string; code: string; n: number };

/** One device's exposure and faults in one cohort (storage/rollup-schema.ts DeviceCohortTally fits). */
export type CohortTally = {
  device: string;
  kind: string;
  model: string;
  firmware: string;
  region: string;
  hours: number;
  faults: readonly FaultTally[];
};

/** What a device's hello says beyond its cohort; null or missing when unknown. */
export type DeviceAttributes = { isp?: string | null; hardware?: string | null };

/**
 * Whose cohorts are compared: one model's, every model of a kind (an ISP's lines serve several models, each
 * with too few devices of its own to say anything), or the whole fleet's. Each device's exposure is weighted
 * by its model's rate of what is compared (indirect standardization; 1 within one model): a model that
 * faults more does not make the values its devices have look worse.
 */
export type CohortScope = { model?: string | undefined; kind?: string | undefined };

export type CohortRankingInput = CohortScope & {
  dimension: CohortDimension;
  tallies: Iterable<CohortTally>;
  /** The device's current ISP and hardware revision (the directory's); needed for those dimensions. */
  attributesOf?: ((device: string) => DeviceAttributes | undefined) | undefined;
  /** Count only faults of this severity, of this code. */
  severity?: Severity | undefined;
  code?: string | undefined;
  /** false: skip the search for how much more exposure would settle an undecided comparison (a scan). */
  moreExposure?: boolean | undefined;
};

/** One value against the rest of its model, before the family is judged. */
export type CohortComparison = {
  value: string;
  devices: number;
  exposureHours: number;
  faults: number;
  overall: DeviceRateComparison;
  byCode: Array<{ code: string; comparison: DeviceRateComparison }>;
};

export type CohortComparisons = {
  comparisons: CohortComparison[];
  /** The model's devices with exposure, whatever their value. */
  devices: number;
  /** Devices without a known value: in every rest, never a cohort. */
  unknown: { devices: number; exposureHours: number };
};

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The value of the dimension a tally counts towards; UNKNOWN when the device's hello has none. */
export function dimensionValue(
  dimension: CohortDimension,
  tally: CohortTally,
  attributesOf: CohortRankingInput["attributesOf"],
): string {
  if (dimension === "firmware" || dimension === "region") return tally[dimension] || UNKNOWN;
  return attributesOf?.(tally.device)?.[dimension] || UNKNOWN;
}

type Held = { model: string; exposureHours: number; faults: Map<string, FaultTally> };
/** A device of a cohort: its faults kept, in all and per code. */
type Device = {
  device: string;
  model: string;
  exposureHours: number;
  faults: FaultTally[];
  total: number;
  byCode: Map<string, number>;
};

const countOf = (d: Device, only: string | undefined) =>
  only === undefined ? d.total : (d.byCode.get(only) ?? 0);

/**
 * With a kind's scope, each model's rate of the faults `only` names (all kept, or one code) over the
 * kind's: what a device's hours are weighted by. 1 for every model when the kind has none of them.
 */
function modelWeights(devices: readonly Device[], only: string | undefined): Map<string, number> {
  const byModel = new Map<string, { hours: number; n: number }>();
  let hours = 0;
  let n = 0;
  for (const d of devices) {
    const m = byModel.get(d.model) ?? { hours: 0, n: 0 };
    byModel.set(d.model, m);
    const count = countOf(d, only);
    m.hours += d.exposureHours;
    m.n += count;
    hours += d.exposureHours;
    n += count;
  }
  return new Map([...byModel].map(([model, m]) => [model, n === 0 ? 1 : m.n / m.hours / (n / hours)]));
}

/**
 * Each value of the dimension within the scope against the rest of it (all its other devices, those of
 * unknown value included), overall and per code, each comparison on its own (not judged as a family):
 * what rankCohorts judges, and what a scan may add to a larger family. Values in the order of their name;
 * UNKNOWN and a value without a rest (alone in its scope) are no cohort. Over several models the
 * comparisons' exposureHours are weighted device-hours (CohortScope); the cohort's own are as counted.
 */
export function cohortComparisons(input: CohortRankingInput): CohortComparisons {
  const keep = (f: FaultTally) =>
    (input.severity === undefined || f.severity === input.severity) &&
    (input.code === undefined || f.code === input.code);
  // value → device → exposure and faults.
  const byValue = new Map<string, Map<string, Held>>();
  const inScope = (t: CohortTally) =>
    (input.model === undefined || t.model === input.model) &&
    (input.kind === undefined || t.kind === input.kind);
  for (const t of input.tallies) {
    if (!inScope(t)) continue;
    const value = dimensionValue(input.dimension, t, input.attributesOf);
    const devices = byValue.get(value) ?? new Map<string, Held>();
    byValue.set(value, devices);
    const held = devices.get(t.device) ?? {
      model: t.model,
      exposureHours: 0,
      faults: new Map<string, FaultTally>(),
    };
    devices.set(t.device, held);
    held.exposureHours += t.hours;
    for (const f of t.faults) {
      if (!keep(f)) continue;
      const key = `${f.severity}\u0000${f.code}`;
      const sum = held.faults.get(key);
      if (sum === undefined) held.faults.set(key, { ...f });
      else sum.n += f.n;
    }
  }
  // Devices without exposure are in no cohort: a rate needs time.
  const withExposure = new Map(
    [...byValue].map(([value, devices]) => [
      value,
      [...devices]
        .filter(([, d]) => d.exposureHours > 0)
        .map(([device, d]) => ({
          device,
          model: d.model,
          exposureHours: d.exposureHours,
          faults: [...d.faults.values()],
          total: [...d.faults.values()].reduce((n, f) => n + f.n, 0),
          byCode: [...d.faults.values()].reduce(
            (codes, f) => codes.set(f.code, (codes.get(f.code) ?? 0) + f.n),
            new Map<string, number>(),
          ),
        }))
        .sort((a, b) => byText(a.device, b.device)),
    ]),
  );
  const codeTotals = new Map<string, number>();
  for (const devices of withExposure.values())
    for (const d of devices)
      for (const f of d.faults) codeTotals.set(f.code, (codeTotals.get(f.code) ?? 0) + f.n);
  const codes =
    input.code === undefined
      ? [...codeTotals]
          .filter(([, n]) => n > 0)
          .sort(([a, m], [b, n]) => n - m || byText(a, b))
          .map(([code]) => code)
      : [];

  const everyDevice = [...withExposure.values()].flat();
  const weightsOf = new Map<string, Map<string, number>>();
  /** A model's weight for `only` (1 when the scope holds one model). */
  const weight = (model: string, only: string | undefined) => {
    const key = only ?? "\u0000all";
    let weights = weightsOf.get(key);
    if (weights === undefined) {
      weights = modelWeights(everyDevice, only);
      weightsOf.set(key, weights);
    }
    return weights.get(model) ?? 1;
  };
  // A device of a model without any of the faults compared weighs nothing: it says nothing of them.
  const exposures = (devices: readonly Device[], only?: string): DeviceExposure[] =>
    devices
      .map((d) => ({
        device: d.device,
        exposureHours: d.exposureHours * weight(d.model, only),
        count: countOf(d, only),
      }))
      .filter((d) => d.exposureHours > 0);
  const comparisons: CohortComparison[] = [];
  for (const value of [...withExposure.keys()].sort(byText)) {
    const cohort = withExposure.get(value) ?? [];
    const rest = [...withExposure].filter(([v]) => v !== value).flatMap(([, devices]) => devices);
    if (value === UNKNOWN || cohort.length === 0 || rest.length === 0) continue;
    // Nothing to compare when a side weighs nothing: no model has both it and any of the faults.
    const compare = (only?: string) => {
      const [baseline, candidate] = [exposures(rest, only), exposures(cohort, only)];
      if (baseline.length === 0 || candidate.length === 0) return undefined;
      return compareDeviceRates({
        baseline,
        candidate,
        ...(input.moreExposure === false ? { moreExposure: false } : {}),
      });
    };
    const overall = compare();
    if (overall === undefined) continue;
    comparisons.push({
      value,
      devices: cohort.length,
      exposureHours: cohort.reduce((h, d) => h + d.exposureHours, 0),
      faults: cohort.reduce((n, d) => n + d.total, 0),
      overall,
      byCode: codes.flatMap((code) => {
        const comparison = compare(code);
        return comparison === undefined ? [] : [{ code, comparison }];
      }),
    });
  }
  const unknown = withExposure.get(UNKNOWN) ?? [];
  const devices = new Set([...withExposure.values()].flatMap((list) => list.map((d) => d.device)));
  return {
    comparisons,
    devices: devices.size,
    unknown: { devices: unknown.length, exposureHours: unknown.reduce((h, d) => h + d.exposureHours, 0) },
  };
}

const isRegression = (c: { verdict: string }) => c.verdict === "regression";

/** The cohort's verdict: regression when it or any of its codes regresses, else the overall one. */
const cohortVerdict = (overall: DeviceRateComparison, regressedCodes: readonly string[]) =>
  regressedCodes.length > 0 ? "regression" : overall.verdict;

/** Worst first: regressions, then the highest rate ratio (none last), then by value. */
function worstFirst(a: RankedCohort, b: RankedCohort): number {
  const rank = (c: RankedCohort) => (c.verdict === "regression" ? 0 : 1);
  const ratio = (c: RankedCohort) => c.overall.rateRatio ?? Number.NEGATIVE_INFINITY;
  return rank(a) - rank(b) || ratio(b) - ratio(a) || byText(a.value, b.value);
}

/**
 * Which cohort of a model is worst: cohortComparisons judged as one family (Holm, judgeFamily), so the
 * chance of any false regression or improvement among them stays at 5%; sorted worst first. Comparisons
 * that cannot be called anything (no fault, a side below the device minimum) are not in the family.
 */
export function rankCohorts(input: CohortRankingInput & { window: Window }): CohortRanking {
  const { comparisons, devices, unknown } = cohortComparisons(input);
  // One that could never be called anything whatever the family (no fault on either side, or a side too
  // small: evidence.refused) stays out of it, so it costs the others no power (as the regression scan does).
  const all = comparisons.flatMap((c) => [c.overall, ...c.byCode.map((b) => b.comparison)]);
  const judgeable = (c: DeviceRateComparison) => c.pValue !== null && c.evidence.refused === null;
  const judged = judgeFamily(all.filter(judgeable));
  let next = 0;
  const family = all.map((c) => (judgeable(c) ? judged[next++] : c));
  let at = 0;
  const take = (): DeviceRateComparison => {
    const c = family[at++];
    if (c === undefined) throw new Error("judgeFamily returned fewer comparisons than it was given");
    return c;
  };
  const cohorts = comparisons.map((c): RankedCohort => {
    const overall = take();
    const byCode = c.byCode.map(({ code }) => ({ code, comparison: take() }));
    const regressedCodes = byCode.filter((b) => isRegression(b.comparison)).map((b) => b.code);
    return {
      value: c.value,
      devices: c.devices,
      exposureHours: c.exposureHours,
      faults: c.faults,
      ratePer1000h: c.exposureHours > 0 ? (c.faults / c.exposureHours) * 1000 : null,
      verdict: cohortVerdict(overall, regressedCodes),
      regressedCodes,
      overall,
      byCode,
    };
  });
  return {
    model: input.model ?? null,
    kind: input.kind ?? null,
    dimension: input.dimension,
    from: iso(input.window.fromMs),
    to: iso(input.window.toMs),
    severity: input.severity ?? null,
    code: input.code ?? null,
    devices,
    familySize: judged.length,
    unknown,
    cohorts: cohorts.sort(worstFirst),
  };
}
