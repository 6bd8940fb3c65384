import type { FirmwareComparison, FirmwareVersions, RateComparison } from "../contract/api/fleet.js";
import type { Severity } from "../contract/messages.js";
import { err, ok, type Result } from "../contract/result.js";
import { iso } from "../contract/time.js";
import { compareRates } from "./rate-ratio.js";
import { compareVersions } from "./versions.js";

// Firmware cohorts: which versions a model runs and how fast they spread (adoption), and the fault rates
// of two versions of one model compared (analytics/rate-ratio.ts).

export type Cohort = { firmware: string; devices: number; exposureHours: number };
export type FaultCount = { firmware: string; severity: string; code: string; n: number };
export type Side = "baseline" | "candidate";

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function compare(baseline: Cohort, candidate: Cohort, counts: Record<Side, number>): RateComparison {
  const result = compareRates({
    baseline: { count: counts.baseline, exposureHours: baseline.exposureHours },
    candidate: { count: counts.candidate, exposureHours: candidate.exposureHours },
  });
  // Exposure is positive and counts are whole: compareRates refuses neither.
  if (!result.ok) throw new Error(`compareRates refused ${result.problem.field}: ${result.problem.message}`);
  // SEAM (issue 11): pooled counts until the comparison reads per-device tallies (analytics/device-rates.ts).
  return {
    ...result.comparison,
    evidence: {
      method: "exact_poisson",
      dispersion: null,
      dispersionUsed: 1,
      df: null,
      devices: { baseline: baseline.devices, candidate: candidate.devices },
      refused: null,
      adjustedPValue: null,
      familySize: 1,
    },
  };
}

/**
 * Two cohorts of one model compared: overall (faults of `severity`, or all), critical faults, and per code
 * (of `severity`), most faults first. Not ok, naming the sides, when a cohort has no exposure.
 */
export function compareCohorts(input: {
  model: string;
  window: { fromMs: number; toMs: number };
  severity: Severity | undefined;
  baseline: Cohort;
  candidate: Cohort;
  faults: readonly FaultCount[];
}): Result<FirmwareComparison, { reason: "no_exposure"; cohorts: Side[] }> {
  const { baseline, candidate, faults } = input;
  const missing = (["baseline", "candidate"] as const).filter((side) => input[side].exposureHours === 0);
  if (missing.length > 0) return err({ reason: "no_exposure", cohorts: missing });

  const tally = (keep: (f: FaultCount) => boolean) => {
    const counts = { baseline: 0, candidate: 0 };
    for (const f of faults) {
      if (!keep(f)) continue;
      if (f.firmware === baseline.firmware) counts.baseline += f.n;
      else if (f.firmware === candidate.firmware) counts.candidate += f.n;
    }
    return counts;
  };
  const ofSeverity = (f: FaultCount) => input.severity === undefined || f.severity === input.severity;
  const codes = [...new Set(faults.filter(ofSeverity).map((f) => f.code))];
  const byCode = codes
    .map((code) => {
      const counts = tally((f) => ofSeverity(f) && f.code === code);
      return {
        code,
        total: counts.baseline + counts.candidate,
        comparison: compare(baseline, candidate, counts),
      };
    })
    .sort((a, b) => b.total - a.total || byText(a.code, b.code))
    .map(({ code, comparison }) => ({ code, comparison }));
  return ok({
    model: input.model,
    from: iso(input.window.fromMs),
    to: iso(input.window.toMs),
    severity: input.severity ?? null,
    baseline,
    candidate,
    overall: compare(baseline, candidate, tally(ofSeverity)),
    critical: compare(
      baseline,
      candidate,
      tally((f) => f.severity === "critical"),
    ),
    byCode,
  });
}

/** What the version list is assembled from; keys of the maps are versionKey(model, firmware). */
export type VersionsInput = {
  window: { fromMs: number; toMs: number };
  /** Exposure hours per version in the window (rows of any bucket; added up here). */
  hours: ReadonlyArray<{ model: string; firmware: string; hours: number }>;
  firstSeen: ReadonlyMap<string, number>;
  /** Distinct active devices per version in the window, and in its last 24 h. */
  devices: ReadonlyMap<string, number>;
  devicesNow: ReadonlyMap<string, number>;
  /** Per UTC day of the window: distinct active devices per version and per model. */
  days: ReadonlyArray<{
    day: number;
    versions: ReadonlyMap<string, number>;
    models: ReadonlyMap<string, number>;
  }>;
};

export const versionKey = (model: string, firmware: string) => `${model}\u0000${firmware}`;

/** Versions with exposure in the window per model (models by name), oldest version first. */
export function assembleVersions(input: VersionsInput): FirmwareVersions {
  const hoursByVersion = new Map<string, { model: string; firmware: string; hours: number }>();
  for (const row of input.hours) {
    const key = versionKey(row.model, row.firmware);
    const entry = hoursByVersion.get(key) ?? { model: row.model, firmware: row.firmware, hours: 0 };
    entry.hours += row.hours;
    hoursByVersion.set(key, entry);
  }
  const models = new Map<string, FirmwareVersions["models"][number]>();
  for (const [key, v] of hoursByVersion) {
    let entry = models.get(v.model);
    if (entry === undefined) {
      entry = {
        model: v.model,
        devicesByDay: input.days.map((d) => ({ day: iso(d.day), devices: d.models.get(v.model) ?? 0 })),
        versions: [],
      };
      models.set(v.model, entry);
    }
    entry.versions.push({
      firmware: v.firmware,
      firstSeen: iso(input.firstSeen.get(key) ?? input.window.fromMs),
      devicesNow: input.devicesNow.get(key) ?? 0,
      devices: input.devices.get(key) ?? 0,
      exposureHours: v.hours,
      adoption: input.days.map((d) => {
        const onVersion = d.versions.get(key) ?? 0;
        const all = d.models.get(v.model) ?? 0;
        return { day: iso(d.day), devices: onVersion, share: all > 0 ? onVersion / all : null };
      }),
    });
  }
  for (const entry of models.values()) entry.versions.sort((a, b) => compareVersions(a.firmware, b.firmware));
  return {
    from: iso(input.window.fromMs),
    to: iso(input.window.toMs),
    models: [...models.values()].sort((a, b) => byText(a.model, b.model)),
  };
}
