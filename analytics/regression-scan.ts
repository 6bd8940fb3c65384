import type { RegressionVerdict } from "../contract/api/regressions.js";
import { UNKNOWN } from "../contract/messages.js";
import { HOUR_MS, iso, type Window } from "../contract/time.js";
import { cohortComparisons, type DeviceAttributes } from "./cohort-ranking.js";
import { compareDeviceRates, type DeviceRateComparison, judgeFamily } from "./device-rates.js";
import { type CohortTally, type DeviceFaults, devicesByVersion, exposures } from "./firmware-cohorts.js";
import { compareVersions } from "./versions.js";

// Regressions found without asking (docs/api.md "GET /api/v1/firmware/regressions"): per model, every version with
// exposure against its predecessor and against the rest of the model, and every ISP, region and hardware
// revision against the rest of the model (analytics/cohort-ranking.ts), overall and per code, and every one
// of those comparisons of one scan judged as ONE family (Holm, analytics/device-rates.ts judgeFamily), so a
// scan calls anything a regression or an improvement falsely with probability ≤ 1 − confidence.
// When a verdict was first reached is read on the data's clock: the first hour end t at which the scan of
// [t − span, t) reaches it, found by bisection over hours, so a backfilled history and a live run agree.

export type FirmwareSubject = {
  kind: "firmware";
  firmware: string;
  /** predecessor: the newest older version with exposure; rest: every other version of the model. */
  baseline: "predecessor" | "rest";
  /** The versions the baseline cohort ran, oldest first. */
  baselineFirmware: string[];
};
/**
 * A value of what a device reports (its ISP, region, hardware revision) against the rest of its model, or
 * of every model of its kind (an ISP's lines serve several models, each maybe with too few devices of its
 * own; each device's exposure weighted by its model's rate, analytics/cohort-ranking.ts).
 */
export type DimensionSubject = {
  kind: "dimension";
  scope: "model" | "kind";
  dimension: ScanDimension;
  value: string;
};
export type Subject = FirmwareSubject | DimensionSubject;

export const SCAN_DIMENSIONS = ["isp", "region", "hardware"] as const;
export type ScanDimension = (typeof SCAN_DIMENSIONS)[number];

/** A row of the per-device cohort tallies (storage/rollup-schema.ts DeviceCohortTally fits). */
export type ScanTally = CohortTally & { kind: string; region: string };

export type Judged = "regression" | "improvement";
export type SubjectVerdict = Judged | "no_difference" | "insufficient_evidence";

export type CodeComparison = { code: string; comparison: DeviceRateComparison };

export type SubjectResult = {
  /** null when the subject spans every model of a kind. */
  model: string | null;
  /** The kind of the devices concerned. */
  deviceKind: string;
  subject: Subject;
  /** Identifies the subject within its model across scans (labels never hold "|"). */
  key: string;
  /**
   * regression when overall or any code regresses; improvement when overall or a code improves and none
   * regresses; otherwise the overall verdict.
   */
  verdict: SubjectVerdict;
  overall: DeviceRateComparison;
  /** The codes whose own verdict is the subject's (regressing codes of a regression), most faults first. */
  codes: CodeComparison[];
};

export type ScanResult = {
  window: Window;
  /**
   * Comparisons judged together: every subject's overall and per-code comparison that could be called
   * something (a fault in either cohort, enough devices in both).
   */
  familySize: number;
  /** Every subject compared, models by name, versions oldest first. */
  subjects: SubjectResult[];
};

/** A verdict worth telling: a regression or an improvement. */
export type Finding = SubjectResult & { verdict: Judged };

export type ScanOptions = {
  /** Two-sided confidence level, family-wise; 0.95 unless given. */
  confidence?: number;
};

export type ScanInput = {
  window: Window;
  tallies: Iterable<ScanTally>;
  /** Each device's current ISP and hardware revision (its latest hello); without it those are not scanned. */
  attributesOf?: ((device: string) => DeviceAttributes | undefined) | undefined;
};

export const subjectKey = (s: Subject) =>
  (s.kind === "firmware" ? [s.kind, s.firmware, s.baseline] : [s.kind, s.scope, s.dimension, s.value]).join(
    "|",
  );

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const faultTotal = (devices: readonly DeviceFaults[], code: string) =>
  devices.reduce((n, d) => n + d.faults.reduce((m, f) => (f.code === code ? m + f.n : m), 0), 0);

/** The devices of several versions pooled: a device that ran two of them has its exposures added. */
function pooled(cohorts: ReadonlyArray<readonly DeviceFaults[]>): DeviceFaults[] {
  const byDevice = new Map<string, { exposureHours: number; faults: DeviceFaults["faults"][number][] }>();
  for (const cohort of cohorts) {
    for (const d of cohort) {
      const held = byDevice.get(d.device);
      if (held === undefined)
        byDevice.set(d.device, { exposureHours: d.exposureHours, faults: [...d.faults] });
      else {
        held.exposureHours += d.exposureHours;
        held.faults.push(...d.faults);
      }
    }
  }
  return [...byDevice].map(([device, d]) => ({ device, ...d }));
}

type Compared = {
  model: string | null;
  deviceKind: string;
  subject: Subject;
  overall: DeviceRateComparison;
  codes: CodeComparison[];
};

type Planned = {
  model: string;
  subject: FirmwareSubject;
  baseline: DeviceFaults[];
  candidate: DeviceFaults[];
  codes: string[];
};

/** The subjects of one model: each version against its predecessor and against the rest of the model. */
function plan(model: string, versions: Map<string, DeviceFaults[]>): Planned[] {
  const order = [...versions.keys()].filter((v) => v !== UNKNOWN).sort(compareVersions);
  const planned: Planned[] = [];
  const add = (firmware: string, baseline: "predecessor" | "rest", baselineFirmware: string[]) => {
    const candidate = versions.get(firmware) ?? [];
    const base = pooled(baselineFirmware.map((v) => versions.get(v) ?? []));
    const codes = [...new Set([...candidate, ...base].flatMap((d) => d.faults.map((f) => f.code)))];
    planned.push({
      model,
      subject: { kind: "firmware", firmware, baseline, baselineFirmware },
      baseline: base,
      candidate,
      codes: codes
        .map((code) => ({ code, n: faultTotal(candidate, code) + faultTotal(base, code) }))
        .sort((a, b) => b.n - a.n || byText(a.code, b.code))
        .map(({ code }) => code),
    });
  };
  order.forEach((firmware, i) => {
    const previous = order[i - 1];
    if (previous !== undefined) add(firmware, "predecessor", [previous]);
    const rest = order.filter((v) => v !== firmware);
    // With two versions the rest is one of them, already compared as a predecessor pair.
    if (rest.length >= 2) add(firmware, "rest", rest);
  });
  return planned;
}

function verdictOf(overall: DeviceRateComparison, codes: readonly CodeComparison[]): SubjectVerdict {
  const all = [overall.verdict, ...codes.map((c) => c.comparison.verdict)];
  if (all.includes("regression")) return "regression";
  if (all.includes("improvement")) return "improvement";
  return overall.verdict;
}

/** One scan over the per-device cohort tallies of a window (every model in them). */
export function scanRegressions(input: ScanInput, options: ScanOptions = {}): ScanResult {
  const confidence = options.confidence === undefined ? {} : { confidence: options.confidence };
  const tallies = [...input.tallies];
  const byModel = devicesByVersion(tallies);
  const models = [...byModel.keys()].sort(byText);
  // Every comparison of the scan, then all of them judged as one family. One that could never be called
  // anything whatever the family (no fault in either cohort, or a cohort too small: evidence.refused) stays
  // out of it, so it costs the others no power.
  const kindOf = new Map<string, string>();
  for (const t of tallies) if (!kindOf.has(t.model)) kindOf.set(t.model, t.kind);
  const firmware = models.flatMap((model) => plan(model, byModel.get(model) ?? new Map()));
  const compared: Compared[] = firmware.map((p) => {
    const compare = (keep: (f: { code: string }) => boolean) =>
      compareDeviceRates({
        baseline: exposures(p.baseline, keep),
        candidate: exposures(p.candidate, keep),
        moreExposure: false,
        ...confidence,
      });
    return {
      model: p.model,
      deviceKind: kindOf.get(p.model) ?? UNKNOWN,
      subject: p.subject,
      overall: compare(() => true),
      codes: p.codes.map((code) => ({ code, comparison: compare((f) => f.code === code) })),
    };
  });
  const modelsOfKind = new Map<string, Set<string>>();
  for (const [model, kind] of kindOf)
    modelsOfKind.set(kind, (modelsOfKind.get(kind) ?? new Set()).add(model));
  const scopes = [
    ...models.map((model) => ({ model, kind: undefined, deviceKind: kindOf.get(model) ?? UNKNOWN })),
    // A kind of one model would repeat that model's comparisons.
    ...[...modelsOfKind]
      .filter(([, m]) => m.size > 1)
      .map(([kind]) => kind)
      .sort(byText)
      .map((kind) => ({ model: undefined, kind, deviceKind: kind })),
  ];
  for (const scope of scopes) {
    for (const dimension of SCAN_DIMENSIONS) {
      const { comparisons } = cohortComparisons({
        model: scope.model,
        kind: scope.kind,
        dimension,
        tallies,
        moreExposure: false,
        ...(input.attributesOf === undefined ? {} : { attributesOf: input.attributesOf }),
      });
      for (const c of comparisons) {
        compared.push({
          model: scope.model ?? null,
          deviceKind: scope.deviceKind,
          subject: {
            kind: "dimension",
            scope: scope.model === undefined ? "kind" : "model",
            dimension,
            value: c.value,
          },
          overall: c.overall,
          codes: c.byCode,
        });
      }
    }
  }
  const all = compared.flatMap((c) => [c.overall, ...c.codes.map((x) => x.comparison)]);
  const judgeable = (c: DeviceRateComparison) => c.pValue !== null && c.evidence.refused === null;
  const judged = judgeFamily(all.filter(judgeable));
  let next = 0;
  const family = all.map((c) => (judgeable(c) ? (judged[next++] as DeviceRateComparison) : c));
  let at = 0;
  const subjects = compared.map((p): SubjectResult => {
    const overall = family[at++] as DeviceRateComparison;
    const codes = p.codes.map((c) => ({ code: c.code, comparison: family[at++] as DeviceRateComparison }));
    const verdict = verdictOf(overall, codes);
    return {
      model: p.model,
      deviceKind: p.deviceKind,
      subject: p.subject,
      key: subjectKey(p.subject),
      verdict,
      overall,
      codes: codes.filter((c) => c.comparison.verdict === verdict),
    };
  });
  return { window: input.window, familySize: judged.length, subjects };
}

/**
 * The verdicts worth telling: every regression, and improvements over a predecessor. A cohort better than
 * the rest of its model is not told: the rest is a mixture, and beside a cohort that regressed every other
 * one looks better than it.
 */
export const findings = (scan: ScanResult): Finding[] =>
  scan.subjects.filter(
    (s): s is Finding =>
      s.verdict === "regression" ||
      (s.verdict === "improvement" && s.subject.kind === "firmware" && s.subject.baseline === "predecessor"),
  );

/** A subject's identity across models and kinds. */
export const findingKey = (f: { model: string | null; deviceKind: string; key: string }) =>
  JSON.stringify([f.deviceKind, f.model, f.key]);

/** The per-device cohort tallies of a window: in memory (the simulator's bench) or read from the rollups. */
export type TalliesOf = (window: Window) => Iterable<ScanTally> | Promise<Iterable<ScanTally>>;

export type TimedFinding = Finding & {
  /** The first hour end at which the scan of [t − span, t) reached this verdict (data clock). */
  firstReachedMs: number;
};

export type TimedScanInput = {
  /** The scan's end: a whole hour (the newest complete hour of data). */
  toMs: number;
  /** How far back each scan reads; 30 days in the product. */
  spanMs: number;
  tallies: TalliesOf;
  /** Each device's current ISP and hardware revision, for every scan (ScanInput). */
  attributesOf?: ScanInput["attributesOf"];
  /**
   * Verdicts already known, by findingKey: one that still holds with the same verdict keeps its time and
   * is not timed again.
   */
  known?: ReadonlyMap<string, { verdict: Judged; firstReachedMs: number }>;
  /** Per findingKey, the earliest time a new verdict may be dated (e.g. an hour after it was cleared). */
  notBeforeMs?: ReadonlyMap<string, number>;
  /** How many spans back a verdict that holds at every probe is followed; 12 unless given. */
  maxSpansBack?: number;
};

export type TimedScan = {
  scan: ScanResult;
  findings: TimedFinding[];
  /** How many scans the timing ran besides the one at toMs. */
  probes: number;
};

/**
 * The scan at toMs, and for each of its findings the first hour end at which a scan would have reached it:
 * a verdict already known keeps its time; a new one is timed by bisection over whole hours between an hour
 * at which the scan does not reach it (stepping back a span at a time from toMs − span) and toMs. Scans are
 * shared between findings. Bisection assumes a verdict, once reached, holds as data accrues: where noise
 * makes it come and go, the time found is one at which it was reached, not always the first.
 */
export async function scanWithTiming(input: TimedScanInput, options: ScanOptions = {}): Promise<TimedScan> {
  if (input.toMs % HOUR_MS !== 0 || input.spanMs % HOUR_MS !== 0 || input.spanMs <= 0)
    throw new RangeError("toMs and spanMs must be whole hours");
  const scans = new Map<number, Promise<ScanResult>>();
  const scanAt = (toMs: number) => {
    let scan = scans.get(toMs);
    if (scan === undefined) {
      const window = { fromMs: toMs - input.spanMs, toMs };
      scan = Promise.resolve(input.tallies(window)).then((tallies) =>
        scanRegressions({ window, tallies, attributesOf: input.attributesOf }, options),
      );
      scans.set(toMs, scan);
    }
    return scan;
  };
  const verdictAt = async (toMs: number, key: string) =>
    (await scanAt(toMs)).subjects.find((s) => findingKey(s) === key)?.verdict;

  const scan = await scanAt(input.toMs);
  const timed: TimedFinding[] = [];
  for (const finding of findings(scan)) {
    const key = findingKey(finding);
    const known = input.known?.get(key);
    if (known !== undefined && known.verdict === finding.verdict) {
      timed.push({ ...finding, firstReachedMs: known.firstReachedMs });
      continue;
    }
    const floorMs = input.notBeforeMs?.get(key);
    const holds = async (t: number) => (await verdictAt(t, key)) === finding.verdict;
    const firstReachedMs = await firstHour(holds, {
      toMs: input.toMs,
      spanMs: input.spanMs,
      floorMs: floorMs === undefined ? undefined : Math.ceil(floorMs / HOUR_MS) * HOUR_MS,
      maxSpansBack: input.maxSpansBack ?? 12,
    });
    timed.push({ ...finding, firstReachedMs });
  }
  return { scan, findings: timed, probes: scans.size - 1 };
}

/** A finding as GET /api/v1/firmware/regressions shows it, with the evidence of the scan that found it. */
export function regressionVerdictOf(scan: ScanResult, f: TimedFinding): RegressionVerdict {
  return {
    model: f.model,
    deviceKind: f.deviceKind,
    subject: f.subject,
    verdict: f.verdict,
    firstReached: iso(f.firstReachedMs),
    from: iso(scan.window.fromMs),
    to: iso(scan.window.toMs),
    familySize: scan.familySize,
    overall: f.overall,
    codes: f.codes,
  };
}

/**
 * The first whole hour t ≤ toMs at which holds(t), given holds(toMs): below toMs, a span at a time, until an
 * hour that does not hold (or floorMs, or maxSpansBack spans: then the earliest hour tried), then bisection.
 */
async function firstHour(
  holds: (t: number) => Promise<boolean>,
  o: { toMs: number; spanMs: number; floorMs: number | undefined; maxSpansBack: number },
): Promise<number> {
  let hi = o.toMs;
  let lo = o.toMs - o.spanMs;
  for (let steps = 0; ; steps++) {
    if (o.floorMs !== undefined && lo <= o.floorMs) {
      if (o.floorMs >= hi) return hi;
      if (await holds(o.floorMs)) return o.floorMs;
      lo = o.floorMs;
      break;
    }
    if (!(await holds(lo))) break;
    hi = lo;
    if (steps + 1 >= o.maxSpansBack) return lo;
    lo -= o.spanMs;
  }
  while (hi - lo > HOUR_MS) {
    const mid = lo + Math.floor((hi - lo) / 2 / HOUR_MS) * HOUR_MS;
    if (await holds(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}
