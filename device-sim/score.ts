import { z } from "zod";
import { median } from "../analytics/silence.js";
import type { Device, SilenceReport } from "../contract/api/devices.js";
import type {
  FirmwareComparison,
  FirmwareVersions,
  FleetSummary,
  RateComparison,
} from "../contract/api/fleet.js";
import type { IssueDetail, IssueSummary } from "../contract/api/issues.js";
import { HOUR_MS, iso } from "../contract/time.js";
import type { GroundTruth, InjectedProblem } from "./script.js";

// `fieldq sim score`: what a run injected (its ground truth) against what the fieldq API found. The API is
// reached through ScoreApi, so collectAnswers asks it and scoreRun judges the answers without any I/O.
// docs/simulator.md ("Scoring") says what counts as found, as a false alarm and as the time to detect.

/** The line's flakiness shows as these faults (device-sim/script.ts lineFlakiness: resyncs and drops). */
export const LINE_FAULT_CODES = ["DSL_RESYNC", "WAN_DOWN"] as const;
/** A silent_after_update problem is found once the API names at least this share of its devices. */
export const SILENT_FOUND_SHARE = 0.5;
/**
 * Silence is judged at the moment of asking, by the broker's clock. When more than this share of the
 * devices nobody silenced are silent too, the fleet has stopped reporting (a finished run, a backfill)
 * and the silent signal says nothing about the injected problems.
 */
export const FLEET_SILENT_LIMIT = 0.5;

const label = z.string().min(1);
const epochMs = z.number().int().min(0);
const deviceIds = z.array(label).min(1);
const problemBase = { id: label, onsetMs: epochMs };

/** The ground-truth file a run writes (device-sim/script.ts GroundTruth), checked before anything is asked. */
export const GroundTruthFile = z
  .object({
    scenario: z.string(),
    seed: z.number().int(),
    startMs: epochMs,
    endMs: epochMs,
    devices: z.number().int().min(0),
    problems: z.array(
      z.discriminatedUnion("type", [
        z.object({
          ...problemBase,
          type: z.literal("fault_rate"),
          kind: label,
          model: label,
          baseline: label,
          firmware: label,
          code: label,
          factor: z.number().positive(),
        }),
        z.object({
          ...problemBase,
          type: z.literal("silent_after_update"),
          kind: label,
          model: label,
          firmware: label,
          devices: deviceIds,
        }),
        z.object({
          ...problemBase,
          type: z.literal("flaky_isp"),
          isp: label,
          factor: z.number().positive(),
          devices: deviceIds,
        }),
        z.object({
          ...problemBase,
          type: z.literal("malformed"),
          perHour: z.number().positive(),
          devices: deviceIds,
        }),
      ]),
    ),
  })
  .refine((t) => t.startMs < t.endMs, { path: ["endMs"], message: "must be after startMs" })
  .superRefine((t, ctx) => {
    const seen = new Set<string>();
    t.problems.forEach((p, i) => {
      if (seen.has(p.id))
        ctx.addIssue({ code: "custom", path: ["problems", i, "id"], message: "is a duplicate" });
      seen.add(p.id);
    });
  }) satisfies z.ZodType<GroundTruth>;

export type GroundTruthResult = { ok: true; truth: GroundTruth } | { ok: false; problems: string[] };

const pathText = (path: readonly PropertyKey[]) =>
  path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`)).join("");

/** The text of a ground-truth file, parsed and validated; problems name the field they are about. */
export function parseGroundTruth(text: string): GroundTruthResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, problems: [`not JSON: ${error instanceof Error ? error.message : String(error)}`] };
  }
  const parsed = GroundTruthFile.safeParse(json);
  if (parsed.success) return { ok: true, truth: parsed.data };
  return {
    ok: false,
    problems: parsed.error.issues.map((i) => `${pathText(i.path) || "(file)"}: ${i.message}`),
  };
}

export type Window = { fromMs: number; toMs: number };
export type CompareQuery = Window & { model: string; baseline: string; candidate: string };

/** What scoring asks the fieldq API; score-command.ts answers over HTTP, the unit tests with fakes. */
export interface ScoreApi {
  firmwareVersions(window: Window): Promise<FirmwareVersions>;
  /** undefined when a cohort has no exposure in the window (the API's 404). */
  compare(query: CompareQuery): Promise<FirmwareComparison | undefined>;
  /** Every issue with an occurrence in the window, all pages. */
  issues(window: Window): Promise<IssueSummary[]>;
  issue(id: string, window: Window): Promise<IssueDetail | undefined>;
  /** Silence judged at window.toMs. */
  silence(window: Window): Promise<SilenceReport>;
  /** Every device, all pages, with its status as of now. */
  devices(): Promise<Device[]>;
  /** Grouped by model. */
  fleetSummary(window: Window): Promise<FleetSummary>;
}

export type PairAnswer = {
  model: string;
  baseline: string;
  candidate: string;
  /** Over the run's whole span; null when a cohort had no exposure. */
  comparison: FirmwareComparison | null;
};

/** The end of the first window [startMs, atMs) whose comparison found the problem; null if none did. */
export type Detection = { atMs: number | null; probes: number };

/** Everything scoreRun needs, as the API answered it. */
export type Answers = {
  /** When silence was judged (the moment of asking). */
  judgedAtMs: number;
  comparisons: PairAnswer[];
  /** Per fault_rate problem id. */
  detections: Record<string, Detection>;
  issues: IssueSummary[];
  /** The details of the issues with a line fault code, for the flaky-ISP evidence. */
  lineIssues: IssueDetail[];
  /** null when the run's span starts after the moment of asking. */
  silence: SilenceReport | null;
  devices: Device[];
  /** Over [startMs, max(endMs, judgedAtMs)): rejections are stamped at receive time. */
  fleet: FleetSummary;
};

type FaultRateProblem = Extract<InjectedProblem, { type: "fault_rate" }>;

const codeComparison = (comparison: FirmwareComparison, code: string): RateComparison | undefined =>
  comparison.byCode.find((c) => c.code === code)?.comparison;

/** The compare verdict that finds a fault_rate problem: the firmware is worse, and the injected code is. */
export function regressionFound(comparison: FirmwareComparison | undefined | null, code: string): boolean {
  if (!comparison) return false;
  return (
    comparison.overall.verdict === "regression" && codeComparison(comparison, code)?.verdict === "regression"
  );
}

/**
 * The window ends detection is asked at: from the onset's hour plus one step, a step apart, to the run's
 * end raised to a whole hour, as the API widens every window.
 */
export function detectionGrid(onsetMs: number, endMs: number, stepMs: number): number[] {
  const lastMs = Math.ceil(endMs / HOUR_MS) * HOUR_MS;
  const grid: number[] = [];
  for (let t = Math.floor(onsetMs / HOUR_MS) * HOUR_MS + stepMs; t < lastMs; t += stepMs) grid.push(t);
  grid.push(lastMs);
  return grid;
}

/**
 * The first grid point where `holds` is true, asking as few as it can: it bisects, which assumes that
 * once a verdict holds it keeps holding as the window grows. `holdsAtEnd` is the answer for the last
 * point when it is already known.
 */
export async function firstHolding(
  grid: readonly number[],
  holds: (atMs: number) => Promise<boolean>,
  holdsAtEnd?: boolean,
): Promise<Detection> {
  const last = grid.length - 1;
  const end = grid[last];
  if (end === undefined) return { atMs: null, probes: 0 };
  let probes = 0;
  const ask = async (index: number) => {
    probes += 1;
    return holds(grid[index] ?? end);
  };
  if (!(holdsAtEnd ?? (await ask(last)))) return { atMs: null, probes };
  let lo = 0;
  let hi = last;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (await ask(mid)) hi = mid;
    else lo = mid + 1;
  }
  return { atMs: grid[hi] ?? end, probes };
}

const pairKey = (model: string, baseline: string, candidate: string) =>
  JSON.stringify([model, baseline, candidate]);

/** Adjacent versions of every model (oldest first, as the API lists them) and the injected pairs. */
export function pairsToCompare(
  truth: GroundTruth,
  versions: FirmwareVersions,
): Array<{ model: string; baseline: string; candidate: string }> {
  const pairs = new Map<string, { model: string; baseline: string; candidate: string }>();
  const add = (model: string, baseline: string, candidate: string) =>
    pairs.set(pairKey(model, baseline, candidate), { model, baseline, candidate });
  for (const p of truth.problems) if (p.type === "fault_rate") add(p.model, p.baseline, p.firmware);
  for (const m of versions.models) {
    // A device that never sent a hello has the firmware "unknown": not a cohort anyone rolled out.
    const real = m.versions.map((v) => v.firmware).filter((f) => f !== "unknown");
    for (let i = 1; i < real.length; i++) {
      const [baseline, candidate] = [real[i - 1], real[i]];
      if (baseline !== undefined && candidate !== undefined) add(m.model, baseline, candidate);
    }
  }
  return [...pairs.values()];
}

export type CollectOptions = { nowMs: number; stepMs: number };

/** Asks the API everything scoring needs: a few dozen requests for a run of a few models. */
export async function collectAnswers(
  truth: GroundTruth,
  api: ScoreApi,
  options: CollectOptions,
): Promise<Answers> {
  const span: Window = { fromMs: truth.startMs, toMs: truth.endMs };
  const [versions, issues, devices, fleet, silence] = await Promise.all([
    api.firmwareVersions(span),
    api.issues(span),
    api.devices(),
    api.fleetSummary({ fromMs: truth.startMs, toMs: Math.max(truth.endMs, options.nowMs) }),
    options.nowMs > truth.startMs
      ? api.silence({ fromMs: truth.startMs, toMs: options.nowMs })
      : Promise.resolve(null),
  ]);
  const comparisons: PairAnswer[] = [];
  for (const pair of pairsToCompare(truth, versions)) {
    comparisons.push({ ...pair, comparison: (await api.compare({ ...pair, ...span })) ?? null });
  }
  const detections: Record<string, Detection> = {};
  for (const p of truth.problems) {
    if (p.type !== "fault_rate") continue;
    const final = comparisons.find(
      (c) => c.model === p.model && c.baseline === p.baseline && c.candidate === p.firmware,
    );
    detections[p.id] = await firstHolding(
      detectionGrid(p.onsetMs, truth.endMs, options.stepMs),
      async (atMs) =>
        regressionFound(
          await api.compare({
            model: p.model,
            baseline: p.baseline,
            candidate: p.firmware,
            fromMs: truth.startMs,
            toMs: atMs,
          }),
          p.code,
        ),
      regressionFound(final?.comparison, p.code),
    );
  }
  const lineIssues: IssueDetail[] = [];
  if (truth.problems.some((p) => p.type === "flaky_isp")) {
    for (const issue of issues) {
      if (!issue.codes.some((code) => (LINE_FAULT_CODES as readonly string[]).includes(code))) continue;
      const detail = await api.issue(issue.id, span);
      if (detail) lineIssues.push(detail);
    }
  }
  return { judgedAtMs: options.nowMs, comparisons, detections, issues, lineIssues, silence, devices, fleet };
}

export type ProblemStatus = "found" | "missed" | "not_scored";

export type ProblemDetail =
  | {
      type: "fault_rate";
      model: string;
      baseline: string;
      firmware: string;
      code: string;
      /** null: a cohort had no exposure over the run. */
      overall: RateComparison["verdict"] | null;
      rateRatio: number | null;
      ci: { lower: number; upper: number | null } | null;
      codeVerdict: RateComparison["verdict"] | "absent" | null;
      issue: { id: string; key: string } | null;
      probes: number;
    }
  | {
      type: "silent_after_update";
      model: string;
      firmware: string;
      devices: number;
      named: string[];
      /** Silent by the API's rule (or unknown to it) but not named by the signal. */
      missed: string[];
      /** Not overdue yet on the broker's clock: neither found nor missed. */
      pending: string[];
      /** Named by the signal for this model and firmware, but nobody silenced them. */
      namedNotInjected: string[];
      /** named / (named + missed); null when none is overdue yet. */
      recall: number | null;
    }
  | {
      type: "flaky_isp";
      isp: string;
      codes: string[];
      /** Line faults per device for each ISP, most first (what a person could work out from the API). */
      ranking: Array<{ isp: string; devices: number; faults: number; perDevice: number }>;
      rank: number | null;
      /** The issues' device lists stop at 500: counts then cover only their most affected devices. */
      truncated: boolean;
    }
  | {
      type: "malformed";
      devices: number;
      models: Array<{ model: string; rejections: number; per1000h: number | null }>;
    };

export type ProblemScore = {
  id: string;
  type: InjectedProblem["type"];
  status: ProblemStatus;
  onset: string;
  detectedAt: string | null;
  timeToDetectMs: number | null;
  /** Why it was found, missed or not scored, in a sentence or two. */
  evidence: string;
  detail: ProblemDetail;
};

export const SIGNALS = ["firmware_regression", "silent_after_update", "rejections"] as const;
export type Signal = (typeof SIGNALS)[number];

export type Alarm = { signal: Signal; subject: string; injected: boolean; evidence: string };

export type Score = {
  scenario: string;
  seed: number;
  from: string;
  to: string;
  judgedAt: string;
  problems: ProblemScore[];
  /** Every alarm the API raised, true (matches an injected problem) or false. */
  alarms: Alarm[];
  falseAlarms: number;
  /** True alarms / all alarms; null without any alarm. */
  precision: number | null;
  /** Found / (found + missed); problems not scored count in neither. */
  recall: number | null;
  timeToDetect: { count: number; medianMs: number | null; maxMs: number | null };
  notes: string[];
};

/** Three significant digits or so: 181, 72.4, 1.28. */
const fixed = (n: number) => n.toFixed(Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2);

function ratioText(c: RateComparison): string {
  if (c.rateRatio === null) return c.verdict;
  const ci =
    c.ci === null ? "" : ` (95% CI ${fixed(c.ci.lower)}–${c.ci.upper === null ? "∞" : fixed(c.ci.upper)})`;
  return `${c.verdict}, rate ratio ${fixed(c.rateRatio)}${ci}`;
}

function scoreFaultRate(p: FaultRateProblem, answers: Answers): ProblemScore {
  const comparison =
    answers.comparisons.find(
      (c) => c.model === p.model && c.baseline === p.baseline && c.candidate === p.firmware,
    )?.comparison ?? null;
  const issue = answers.issues.find(
    (i) => i.models.includes(`${p.kind}/${p.model}`) && i.codes.includes(p.code),
  );
  const code = comparison === null ? undefined : codeComparison(comparison, p.code);
  const detection = answers.detections[p.id] ?? { atMs: null, probes: 0 };
  const found = regressionFound(comparison, p.code) && issue !== undefined;
  const detectedAtMs = found ? detection.atMs : null;
  const pair = `${p.model} ${p.baseline} → ${p.firmware}`;
  const evidence =
    comparison === null
      ? `${pair}: a cohort reported no activity over the run`
      : [
          `${pair}: ${ratioText(comparison.overall)}`,
          `${p.code}: ${code === undefined ? "no faults in either cohort" : ratioText(code)}`,
          issue === undefined ? `no issue for ${p.code} on ${p.model}` : `issue ${issue.key}`,
        ].join("; ");
  return {
    id: p.id,
    type: p.type,
    status: found ? "found" : "missed",
    onset: iso(p.onsetMs),
    detectedAt: detectedAtMs === null ? null : iso(detectedAtMs),
    timeToDetectMs: detectedAtMs === null ? null : detectedAtMs - p.onsetMs,
    evidence,
    detail: {
      type: "fault_rate",
      model: p.model,
      baseline: p.baseline,
      firmware: p.firmware,
      code: p.code,
      overall: comparison?.overall.verdict ?? null,
      rateRatio: comparison?.overall.rateRatio ?? null,
      ci: comparison?.overall.ci
        ? { lower: comparison.overall.ci.lower, upper: comparison.overall.ci.upper }
        : null,
      codeVerdict: comparison === null ? null : (code?.verdict ?? "absent"),
      issue: issue === undefined ? null : { id: issue.id, key: issue.key },
      probes: detection.probes,
    },
  };
}

/** Why the silent signal cannot be scored, or undefined when it can. */
function silenceUnscorable(truth: GroundTruth, answers: Answers): string | undefined {
  if (answers.silence === null) return "the run's span starts after the moment of asking";
  const injected = new Set(
    truth.problems.flatMap((p) => (p.type === "silent_after_update" ? p.devices : [])),
  );
  const others = answers.devices.filter((d) => !injected.has(d.id));
  const silent = others.filter((d) => d.status === "silent").length;
  if (others.length > 0 && silent / others.length > FLEET_SILENT_LIMIT) {
    return (
      `${silent} of the ${others.length} devices nobody silenced are silent too: the fleet has stopped reporting. ` +
      "fieldq judges silence at the moment of asking, by the broker's clock; score silent devices while a live run is going"
    );
  }
  return undefined;
}

function scoreSilent(
  p: Extract<InjectedProblem, { type: "silent_after_update" }>,
  answers: Answers,
  unscorable: string | undefined,
  injectedSilent: ReadonlySet<string>,
): ProblemScore {
  const base = { id: p.id, type: p.type, onset: iso(p.onsetMs), detectedAt: null };
  const named = new Map((answers.silence?.afterUpdate.devices ?? []).map((d) => [d.device, d]));
  const known = new Map(answers.devices.map((d) => [d.id, d]));
  // Not overdue yet: the API cannot call it silent before factor × its expected interval has passed on the
  // broker's clock since its last report (for a backfill, since the backfill delivered it).
  const pending = p.devices.filter(
    (id) => !named.has(id) && (known.get(id)?.status ?? "silent") !== "silent",
  );
  const found = p.devices.filter((id) => named.has(id));
  const missed = p.devices.filter((id) => !named.has(id) && !pending.includes(id));
  const judged = found.length + missed.length;
  const detail: ProblemDetail = {
    type: "silent_after_update",
    model: p.model,
    firmware: p.firmware,
    devices: p.devices.length,
    named: found,
    missed,
    pending,
    namedNotInjected: [...named.values()]
      .filter((d) => d.model === p.model && d.to === p.firmware && !injectedSilent.has(d.device))
      .map((d) => d.device),
    recall: judged === 0 ? null : found.length / judged,
  };
  const notScored = (reason: string): ProblemScore => ({
    ...base,
    status: "not_scored",
    timeToDetectMs: null,
    evidence: `not scored: ${reason}`,
    detail,
  });
  if (unscorable !== undefined) return notScored(unscorable);
  const factor = answers.silence?.factor ?? 0;
  if (judged === 0) {
    const lastReports = pending.flatMap((id) => {
      const d = known.get(id);
      return d?.lastReport ? [Date.parse(d.lastReport) + factor * d.expectedIntervalS * 1000] : [];
    });
    const due = lastReports.length === 0 ? "" : ` (the first at ${iso(Math.min(...lastReports))})`;
    return notScored(
      `too early: none of its ${p.devices.length} devices is overdue on the broker's clock yet${due}; ` +
        "a backfill delivers every report just now, so score silent devices during a live run or a backfill with --follow",
    );
  }
  // A device is called silent factor × its expected interval after its last report; its problem began
  // with its update (both on the broker's clock).
  const delays = found.flatMap((id) => {
    const entry = named.get(id);
    const intervalS = known.get(id)?.expectedIntervalS;
    if (entry === undefined || intervalS === undefined) return [];
    return [Date.parse(entry.lastReport) + factor * intervalS * 1000 - Date.parse(entry.updatedAt)];
  });
  const isFound = found.length > 0 && found.length / judged >= SILENT_FOUND_SHARE;
  const extras = [
    ...(pending.length > 0 ? [`${pending.length} not overdue yet`] : []),
    ...(detail.namedNotInjected.length > 0
      ? [`${detail.namedNotInjected.length} named that nobody silenced`]
      : []),
  ];
  return {
    ...base,
    status: isFound ? "found" : "missed",
    timeToDetectMs: isFound ? (median(delays) ?? null) : null,
    evidence:
      `${found.length} of ${judged} overdue devices named silent within 24 h of an update` +
      (extras.length > 0 ? `; ${extras.join(", ")}` : ""),
    detail,
  };
}

function scoreFlakyIsp(p: Extract<InjectedProblem, { type: "flaky_isp" }>, answers: Answers): ProblemScore {
  const kinds = new Set(answers.lineIssues.map((i) => i.kind));
  const faults = new Map<string, number>();
  for (const issue of answers.lineIssues) {
    for (const d of issue.devices.items) faults.set(d.id, (faults.get(d.id) ?? 0) + d.occurrences);
  }
  const byIsp = new Map<string, { isp: string; devices: number; faults: number }>();
  for (const d of answers.devices) {
    if (!kinds.has(d.kind) || d.isp === null) continue;
    const row = byIsp.get(d.isp) ?? { isp: d.isp, devices: 0, faults: 0 };
    byIsp.set(d.isp, { ...row, devices: row.devices + 1, faults: row.faults + (faults.get(d.id) ?? 0) });
  }
  const ranking = [...byIsp.values()]
    .map((r) => ({ ...r, perDevice: r.faults / r.devices }))
    .sort((a, b) => b.perDevice - a.perDevice || a.isp.localeCompare(b.isp));
  const at = ranking.findIndex((r) => r.isp === p.isp);
  const codes = [...new Set(answers.lineIssues.flatMap((i) => i.codes))].sort();
  const others = ranking.filter((r) => r.isp !== p.isp);
  const rest =
    others.reduce((n, r) => n + r.faults, 0) /
    Math.max(
      1,
      others.reduce((n, r) => n + r.devices, 0),
    );
  const seen =
    at === -1
      ? `no ${p.isp} device has line faults the API lists`
      : `its data puts ${p.isp} at rank ${at + 1} of ${ranking.length} ISPs by ${codes.join("/")} faults per device ` +
        `(${fixed(ranking[at]?.perDevice ?? 0)} vs ${fixed(rest)} for the others)`;
  return {
    id: p.id,
    type: p.type,
    status: "not_scored",
    onset: iso(p.onsetMs),
    detectedAt: null,
    timeToDetectMs: null,
    evidence: `not scored: fieldq does not group by ISP, so no alarm can name one; ${seen}`,
    detail: {
      type: "flaky_isp",
      isp: p.isp,
      codes,
      ranking,
      rank: at === -1 ? null : at + 1,
      truncated: answers.lineIssues.some((i) => i.devices.total > i.devices.items.length),
    },
  };
}

function scoreMalformed(p: Extract<InjectedProblem, { type: "malformed" }>, answers: Answers): ProblemScore {
  const modelOf = new Map(answers.devices.map((d) => [d.id, d.model]));
  const models = [...new Set(p.devices.flatMap((id) => modelOf.get(id) ?? []))].sort();
  const rows = models.map((model) => {
    const group = answers.fleet.groups.find((g) => g.group.model === model);
    return { model, rejections: group?.rejections.count ?? 0, per1000h: group?.rejections.per1000h ?? null };
  });
  const found = rows.length > 0 && rows.every((r) => r.rejections > 0);
  return {
    id: p.id,
    type: p.type,
    status: found ? "found" : "missed",
    onset: iso(p.onsetMs),
    detectedAt: null,
    timeToDetectMs: null,
    evidence:
      rows.length === 0
        ? "none of its devices is known to the API"
        : rows
            .map(
              (r) =>
                `${r.model}: ${r.rejections} rejected (${r.per1000h === null ? "–" : fixed(r.per1000h)} per 1000 h)`,
            )
            .join("; "),
    detail: { type: "malformed", devices: p.devices.length, models: rows },
  };
}

/** Every alarm the answers hold, each marked true when it matches an injected problem. */
function alarmsOf(truth: GroundTruth, answers: Answers, silentScorable: boolean): Alarm[] {
  const alarms: Alarm[] = [];
  const injectedFirmware = new Set(
    truth.problems.flatMap((p) => (p.type === "fault_rate" ? [JSON.stringify([p.model, p.firmware])] : [])),
  );
  const flagged = new Set<string>();
  for (const c of answers.comparisons) {
    const key = JSON.stringify([c.model, c.candidate]);
    if (c.comparison?.overall.verdict !== "regression" || flagged.has(key)) continue;
    flagged.add(key);
    alarms.push({
      signal: "firmware_regression",
      subject: `${c.model} ${c.candidate}`,
      injected: injectedFirmware.has(key),
      evidence: `vs ${c.baseline}: ${ratioText(c.comparison.overall)}`,
    });
  }
  if (silentScorable && answers.silence !== null) {
    const injected = new Set(
      truth.problems.flatMap((p) =>
        p.type === "silent_after_update" ? [JSON.stringify([p.model, p.firmware])] : [],
      ),
    );
    for (const g of answers.silence.afterUpdate.byFirmware) {
      alarms.push({
        signal: "silent_after_update",
        subject: `${g.model} → ${g.firmware}`,
        injected: injected.has(JSON.stringify([g.model, g.firmware])),
        evidence: `${g.count} ${g.count === 1 ? "device" : "devices"} silent within 24 h of the update`,
      });
    }
  }
  const modelOf = new Map(answers.devices.map((d) => [d.id, d.model]));
  const malformedModels = new Set(
    truth.problems.flatMap((p) =>
      p.type === "malformed" ? p.devices.flatMap((id) => modelOf.get(id) ?? []) : [],
    ),
  );
  for (const g of answers.fleet.groups) {
    const model = g.group.model;
    if (model === undefined || g.rejections.count === 0) continue;
    alarms.push({
      signal: "rejections",
      subject: model,
      injected: malformedModels.has(model),
      evidence: `${g.rejections.count} messages rejected`,
    });
  }
  return alarms;
}

/** Judges the API's answers against the ground truth; no I/O. */
export function scoreRun(truth: GroundTruth, answers: Answers): Score {
  const unscorable = silenceUnscorable(truth, answers);
  const injectedSilent = new Set(
    truth.problems.flatMap((p) => (p.type === "silent_after_update" ? p.devices : [])),
  );
  const scoreProblem = (p: InjectedProblem): ProblemScore => {
    switch (p.type) {
      case "fault_rate":
        return scoreFaultRate(p, answers);
      case "silent_after_update":
        return scoreSilent(p, answers, unscorable, injectedSilent);
      case "flaky_isp":
        return scoreFlakyIsp(p, answers);
      case "malformed":
        return scoreMalformed(p, answers);
    }
  };
  const problems = truth.problems.map(scoreProblem);
  const alarms = alarmsOf(truth, answers, unscorable === undefined);
  const trueAlarms = alarms.filter((a) => a.injected).length;
  const found = problems.filter((p) => p.status === "found").length;
  const scored = problems.filter((p) => p.status !== "not_scored").length;
  const times = problems.flatMap((p) => (p.timeToDetectMs === null ? [] : [p.timeToDetectMs]));
  const notes: string[] = [];
  if (truth.problems.some((p) => p.type === "malformed")) {
    notes.push("rejections are stamped at receive time, so malformed payloads are found but not timed");
  }
  if (unscorable !== undefined && truth.problems.some((p) => p.type === "silent_after_update")) {
    notes.push(`silent devices not scored: ${unscorable}`);
  }
  return {
    scenario: truth.scenario,
    seed: truth.seed,
    from: iso(truth.startMs),
    to: iso(truth.endMs),
    judgedAt: iso(answers.judgedAtMs),
    problems,
    alarms,
    falseAlarms: alarms.length - trueAlarms,
    precision: alarms.length === 0 ? null : trueAlarms / alarms.length,
    recall: scored === 0 ? null : found / scored,
    timeToDetect: {
      count: times.length,
      medianMs: median(times) ?? null,
      maxMs: times.length === 0 ? null : Math.max(...times),
    },
    notes,
  };
}
