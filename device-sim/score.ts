import { z } from "zod";
import { median } from "../analytics/silence.js";
import type { Device, SilenceReport } from "../contract/api/devices.js";
import type { FleetSummary, RateComparison } from "../contract/api/fleet.js";
import type { Concentration, IssueDetail, IssueSummary } from "../contract/api/issues.js";
import type { RegressionVerdict } from "../contract/api/regressions.js";
import { iso } from "../contract/time.js";
import type { GroundTruth, InjectedProblem } from "./script.js";

// `fieldq sim score`: what a run injected (its ground truth) against what the fieldq API found. The API is
// reached through ScoreApi, so collectAnswers asks it and scoreRun judges the answers without any I/O.
// docs/simulator.md ("Scoring") says what counts as found, as a false alarm and as the time to detect.

/** The line's flakiness shows as these faults (device-sim/script.ts lineFlakiness: resyncs and drops). */
export const LINE_FAULT_CODES = ["DSL_RESYNC", "WAN_DOWN"] as const;
/** A silent_after_update problem is found once the API names at least this share of its devices. */
export const SILENT_FOUND_SHARE = 0.5;
/** A lemons problem is found once the issues' concentration names at least this share of its devices. */
export const LEMONS_FOUND_SHARE = 0.5;
/** The share of an issue's occurrences whose devices are "the few devices that give most of them". */
export const LEMONS_TOP_SHARE = 0.5;
/**
 * Silence is judged at the moment of asking. When more than this share of the devices nobody silenced are
 * silent too, the fleet has stopped reporting (a backfill scored long after it ended) and the silent signal
 * says nothing about the injected problems.
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
        z.object({
          ...problemBase,
          type: z.literal("lemons"),
          kind: label,
          model: label.exactOptional(),
          code: label.exactOptional(),
          factor: z.number().positive(),
          devices: deviceIds,
        }),
      ]),
    ),
    heterogeneity: z
      .array(
        z.object({ model: label, devices: z.number().int().min(0), shape: z.number().positive().nullable() }),
      )
      .exactOptional(),
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

/** What scoring reads of a verdict of GET /api/v1/firmware/regressions. */
export type RegressionAnswer = {
  /** The model judged, or with scope "kind" the kind whose every model the subject spans. */
  model: string;
  /** model: against the rest of the model (a version: its predecessor or the rest); kind: every model of a kind. */
  scope: "model" | "kind";
  /** firmware: a version of the model; else a value of what the devices report against the rest. */
  dimension: "firmware" | "isp" | "region" | "hardware";
  value: string;
  /** What it was compared with: the predecessor version, or the rest. */
  baseline: string;
  verdict: RateComparison["verdict"];
  regressedCodes: string[];
  /** When the verdict was first reached, on the data's clock; null when not known. */
  firstReached: string | null;
  comparison: RateComparison;
};

/** A verdict of GET /firmware/regressions as scoring reads it. */
export function regressionAnswerOf(v: RegressionVerdict): RegressionAnswer {
  const s = v.subject;
  const subject =
    s.kind === "firmware"
      ? {
          scope: "model" as const,
          dimension: "firmware" as const,
          value: s.firmware,
          baseline:
            s.baseline === "predecessor" ? (s.baselineFirmware.at(-1) ?? "its predecessor") : "the rest",
        }
      : { scope: s.scope, dimension: s.dimension, value: s.value, baseline: "the rest" };
  return {
    model: subject.scope === "kind" ? v.deviceKind : (v.model ?? v.deviceKind),
    ...subject,
    verdict: v.verdict,
    regressedCodes: v.verdict === "regression" ? v.codes.map((c) => c.code) : [],
    firstReached: v.firstReached,
    comparison: v.overall,
  };
}

export type IssueAnswer = Pick<IssueSummary, "id" | "key" | "kind" | "models" | "codes">;
export type IssueDetailAnswer = IssueAnswer & {
  concentration: Concentration;
  devices: {
    total: number;
    items: Array<Pick<IssueDetail["devices"]["items"][number], "id" | "occurrences">>;
  };
};
export type DeviceAnswer = Pick<
  Device,
  "id" | "kind" | "model" | "isp" | "status" | "lastReport" | "expectedIntervalS"
>;
export type SilenceAnswer = Pick<SilenceReport, "factor"> & {
  afterUpdate: Pick<SilenceReport["afterUpdate"], "devices" | "byFirmware">;
};
export type FleetAnswer = {
  groups: Array<{
    group: FleetSummary["groups"][number]["group"];
    rejections: { count: number; per1000h: number | null };
  }>;
};

/** What scoring asks the fieldq API; score-command.ts answers over HTTP, the unit tests with fakes. */
export interface ScoreApi {
  /** Every current verdict of the automatic regression scan. */
  regressions(): Promise<RegressionAnswer[]>;
  /** Every issue with an occurrence in the window, all pages. */
  issues(window: Window): Promise<IssueAnswer[]>;
  issue(id: string, window: Window): Promise<IssueDetailAnswer | undefined>;
  /** Silence judged at window.toMs. */
  silence(window: Window): Promise<SilenceAnswer>;
  /** Every device, all pages, with its status as of now. */
  devices(): Promise<DeviceAnswer[]>;
  /** Grouped by model. */
  fleetSummary(window: Window): Promise<FleetAnswer>;
}

/** Everything scoreRun needs, as the API answered it (or bench:detect computed it with the same rules). */
export type Answers = {
  /** When silence was judged (the moment of asking). */
  judgedAtMs: number;
  /** The automatic verdicts (GET /firmware/regressions), all of them, whatever the verdict. */
  regressions: RegressionAnswer[];
  issues: IssueAnswer[];
  /** The details of the issues on the models of lemons problems, for their concentration. */
  issueDetails: IssueDetailAnswer[];
  /** null when the run's span starts after the moment of asking. */
  silence: SilenceAnswer | null;
  devices: DeviceAnswer[];
  /** Over [startMs, max(endMs, judgedAtMs)): rejections are stamped at receive time. */
  fleet: FleetAnswer;
};

type FaultRateProblem = Extract<InjectedProblem, { type: "fault_rate" }>;
type FlakyIspProblem = Extract<InjectedProblem, { type: "flaky_isp" }>;
type LemonsProblem = Extract<InjectedProblem, { type: "lemons" }>;

/** The models a problem's devices belong to, from the API's device list. */
function modelsOf(deviceIds: readonly string[], devices: readonly DeviceAnswer[]): string[] {
  const ids = new Set(deviceIds);
  return [...new Set(devices.filter((d) => ids.has(d.id)).map((d) => d.model))].sort();
}

/** The kinds a problem's devices are of, from the API's device list. */
function kindsOf(deviceIds: readonly string[], devices: readonly DeviceAnswer[]): string[] {
  const ids = new Set(deviceIds);
  return [...new Set(devices.filter((d) => ids.has(d.id)).map((d) => d.kind))].sort();
}

/** Whether an issue is of a lemons problem's devices: its model (or kind) and, when it names one, its code. */
function lemonIssue(issue: IssueAnswer, p: LemonsProblem): boolean {
  const onModel = issue.models.some((m) =>
    p.model === undefined ? m.startsWith(`${p.kind}/`) : m === `${p.kind}/${p.model}`,
  );
  return onModel && (p.code === undefined || issue.codes.includes(p.code));
}

export type CollectOptions = { nowMs: number };

/** Asks the API everything scoring needs: a few dozen requests for a run of a few models. */
export async function collectAnswers(
  truth: GroundTruth,
  api: ScoreApi,
  options: CollectOptions,
): Promise<Answers> {
  const span: Window = { fromMs: truth.startMs, toMs: truth.endMs };
  const [regressions, issues, devices, fleet, silence] = await Promise.all([
    api.regressions(),
    api.issues(span),
    api.devices(),
    api.fleetSummary({ fromMs: truth.startMs, toMs: Math.max(truth.endMs, options.nowMs) }),
    options.nowMs > truth.startMs
      ? api.silence({ fromMs: truth.startMs, toMs: options.nowMs })
      : Promise.resolve(null),
  ]);
  const issueDetails: IssueDetailAnswer[] = [];
  const lemons = truth.problems.filter((p): p is LemonsProblem => p.type === "lemons");
  for (const issue of issues) {
    if (!lemons.some((p) => lemonIssue(issue, p))) continue;
    const detail = await api.issue(issue.id, span);
    if (detail) issueDetails.push(detail);
  }
  return {
    judgedAtMs: options.nowMs,
    regressions,
    issues,
    issueDetails,
    silence,
    devices,
    fleet,
  };
}

export type ProblemStatus = "found" | "missed" | "not_scored";

type Verdict = RateComparison["verdict"];

export type ProblemDetail =
  | {
      type: "fault_rate";
      model: string;
      baseline: string;
      firmware: string;
      code: string;
      /** The automatic verdicts on the firmware (against its predecessor, against the rest of the model). */
      verdicts: Array<{
        baseline: string;
        verdict: Verdict;
        regressedCodes: string[];
        firstReached: string | null;
      }>;
      /** The injected code is among the regressing codes of a regression verdict. */
      codeNamed: boolean;
      issue: { id: string; key: string } | null;
    }
  | {
      type: "silent_after_update";
      model: string;
      firmware: string;
      devices: number;
      named: string[];
      /** Silent by the API's rule (or unknown to it) but not named by the signal. */
      missed: string[];
      /** Not overdue yet: neither found nor missed. */
      pending: string[];
      /** Named by the signal for this model and firmware, but nobody silenced them. */
      namedNotInjected: string[];
      /** named / (named + missed); null when none is overdue yet. */
      recall: number | null;
    }
  | {
      type: "flaky_isp";
      isp: string;
      /** The models its devices belong to (and "every <kind>" with a verdict), and what the verdicts say. */
      models: Array<{ model: string; verdict: Verdict | null; regressedCodes: string[] }>;
    }
  | {
      type: "lemons";
      devices: number;
      /** The lemons among the few devices that give most of an issue's occurrences. */
      named: string[];
      /** Per issue looked at: how many devices give LEMONS_TOP_SHARE of it, of how many affected. */
      issues: Array<{ key: string; topDevices: number; affected: number; lemons: number }>;
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

export const SIGNALS = ["regression", "silent_after_update", "rejections"] as const;
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

/** A verdict's subject verdict and the codes it rests on, then its overall comparison. */
const judgedText = (r: {
  verdict: RateComparison["verdict"];
  regressedCodes: string[];
  comparison: RateComparison;
}) =>
  `${r.verdict}${r.regressedCodes.length > 0 ? ` in ${r.regressedCodes.join(", ")}` : ""}; all faults: ${ratioText(r.comparison)}`;

const verdictText = (r: RegressionAnswer) =>
  `${r.scope === "kind" ? `(every ${r.model}) ` : ""}${r.value} vs ${r.baseline}: ${judgedText(r)}`;

/** The earliest first-reached time of the verdicts, as ms; null when none says when. */
function earliest(verdicts: readonly RegressionAnswer[]): number | null {
  const times = verdicts.flatMap((v) => (v.firstReached === null ? [] : [Date.parse(v.firstReached)]));
  return times.length === 0 ? null : Math.min(...times);
}

function timed(onsetMs: number, detectedAtMs: number | null) {
  return {
    detectedAt: detectedAtMs === null ? null : iso(detectedAtMs),
    timeToDetectMs: detectedAtMs === null ? null : Math.max(0, detectedAtMs - onsetMs),
  };
}

function scoreFaultRate(p: FaultRateProblem, answers: Answers): ProblemScore {
  const onFirmware = answers.regressions.filter(
    (r) => r.scope === "model" && r.dimension === "firmware" && r.model === p.model && r.value === p.firmware,
  );
  const regressions = onFirmware.filter((r) => r.verdict === "regression");
  const issue = answers.issues.find(
    (i) => i.models.includes(`${p.kind}/${p.model}`) && i.codes.includes(p.code),
  );
  const found = regressions.length > 0 && issue !== undefined;
  const codeNamed = regressions.some((r) => r.regressedCodes.includes(p.code));
  const pair = `${p.model} ${p.firmware}`;
  const evidence = [
    onFirmware.length === 0
      ? `${pair}: no automatic verdict on it`
      : `${p.model} ${onFirmware.map(verdictText).join("; ")}`,
    ...(regressions.length > 0 && !codeNamed ? [`${p.code} not among the regressing codes`] : []),
    issue === undefined ? `no issue for ${p.code} on ${p.model}` : `issue ${issue.key}`,
  ].join("; ");
  return {
    id: p.id,
    type: p.type,
    status: found ? "found" : "missed",
    onset: iso(p.onsetMs),
    ...timed(p.onsetMs, found ? earliest(regressions) : null),
    evidence,
    detail: {
      type: "fault_rate",
      model: p.model,
      baseline: p.baseline,
      firmware: p.firmware,
      code: p.code,
      verdicts: onFirmware.map((r) => ({
        baseline: r.baseline,
        verdict: r.verdict,
        regressedCodes: r.regressedCodes,
        firstReached: r.firstReached,
      })),
      codeNamed,
      issue: issue === undefined ? null : { id: issue.id, key: issue.key },
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
      `${silent} of the ${others.length} devices nobody silenced are silent too: the fleet has stopped reporting ` +
      "(a backfill scored long after it ended); score it right after the backfill, or keep the fleet going with --follow"
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
  // Not overdue yet: the API cannot call it silent before factor × its expected interval has passed since
  // its last report.
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
    return notScored(`too early: none of its ${p.devices.length} devices is overdue yet${due}`);
  }
  // A device is called silent factor × its expected interval after its last report; its problem began
  // with its update.
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

function scoreFlakyIsp(p: FlakyIspProblem, answers: Answers): ProblemScore {
  const models = modelsOf(p.devices, answers.devices);
  // A verdict on the ISP within one of its devices' models, or across every model of their kind.
  const places = [
    ...models.map((model) => ({ scope: "model" as const, model })),
    ...kindsOf(p.devices, answers.devices).map((kind) => ({ scope: "kind" as const, model: kind })),
  ];
  const ispVerdicts = answers.regressions.filter((r) => r.dimension === "isp" && r.value === p.isp);
  // Every model of its devices is shown; a kind only when a verdict spans it.
  const rows = places.flatMap(({ scope, model }) => {
    const verdict = ispVerdicts.find((r) => r.scope === scope && r.model === model);
    if (verdict === undefined && scope === "kind") return [];
    return [
      {
        model: scope === "kind" ? `every ${model}` : model,
        verdict: verdict?.verdict ?? null,
        regressedCodes: verdict?.regressedCodes ?? [],
        firstReached: verdict?.firstReached ?? null,
        ratio: verdict === undefined ? "no automatic verdict" : judgedText(verdict),
      },
    ];
  });
  const regressed = rows.filter((r) => r.verdict === "regression");
  const found = regressed.length > 0;
  const times = regressed.flatMap((r) => (r.firstReached === null ? [] : [Date.parse(r.firstReached)]));
  const detectedAtMs = found && times.length > 0 ? Math.min(...times) : null;
  return {
    id: p.id,
    type: p.type,
    status: found ? "found" : "missed",
    onset: iso(p.onsetMs),
    ...timed(p.onsetMs, detectedAtMs),
    evidence:
      models.length === 0
        ? `none of its devices is known to the API`
        : rows.map((r) => `${r.model} ${p.isp} vs the rest: ${r.ratio}`).join("; "),
    detail: {
      type: "flaky_isp",
      isp: p.isp,
      models: rows.map(({ model, verdict, regressedCodes }) => ({ model, verdict, regressedCodes })),
    },
  };
}

/**
 * The few devices that give most of an issue's occurrences: the fewest that give LEMONS_TOP_SHARE of them
 * (the concentration's count), named by the detail's device list, most occurrences first.
 */
export function topDevices(detail: IssueDetailAnswer): string[] {
  const top = detail.concentration.top.find((t) => t.share === LEMONS_TOP_SHARE);
  if (top === undefined) return [];
  return [...detail.devices.items]
    .sort((a, b) => b.occurrences - a.occurrences)
    .slice(0, top.devices)
    .map((d) => d.id);
}

function scoreLemons(p: LemonsProblem, answers: Answers): ProblemScore {
  const lemons = new Set(p.devices);
  const named = new Set<string>();
  const issues = answers.issueDetails
    .filter((d) => lemonIssue(d, p))
    .map((d) => {
      const top = topDevices(d);
      const mine = top.filter((id) => lemons.has(id));
      for (const id of mine) named.add(id);
      return { key: d.key, topDevices: top.length, affected: d.devices.total, lemons: mine.length };
    });
  const found = named.size > 0 && named.size / p.devices.length >= LEMONS_FOUND_SHARE;
  const shown = [...issues].sort((a, b) => b.lemons - a.lemons).slice(0, 3);
  return {
    id: p.id,
    type: p.type,
    status: found ? "found" : "missed",
    onset: iso(p.onsetMs),
    detectedAt: null,
    timeToDetectMs: null,
    evidence:
      issues.length === 0
        ? "no issue of its devices' model has a concentration"
        : `${named.size} of ${p.devices.length} lemons among the devices that give half an issue's occurrences; ` +
          shown
            .map(
              (i) =>
                `${i.key}: ${i.topDevices} of ${i.affected} devices give half, ${i.lemons} of them lemons`,
            )
            .join("; "),
    detail: { type: "lemons", devices: p.devices.length, named: [...named].sort(), issues },
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
  const key = (...parts: string[]) => JSON.stringify(parts);
  const injected = new Set<string>();
  for (const p of truth.problems) {
    if (p.type === "fault_rate") injected.add(key("model", p.model, "firmware", p.firmware));
    if (p.type === "flaky_isp") {
      for (const model of modelsOf(p.devices, answers.devices))
        injected.add(key("model", model, "isp", p.isp));
      for (const kind of kindsOf(p.devices, answers.devices)) injected.add(key("kind", kind, "isp", p.isp));
    }
  }
  // A subject counts once, however many baselines (predecessor, rest) flag it.
  const flagged = new Set<string>();
  const regressionAlarm = (
    scope: RegressionAnswer["scope"],
    model: string,
    dimension: string,
    value: string,
    evidence: string,
  ) => {
    const subject = key(scope, model, dimension, value);
    if (flagged.has(subject)) return;
    flagged.add(subject);
    const where = scope === "kind" ? `every ${model}` : model;
    alarms.push({
      signal: "regression",
      subject: dimension === "firmware" ? `${where} ${value}` : `${where} ${dimension} ${value}`,
      injected: injected.has(subject),
      evidence,
    });
  };
  for (const r of answers.regressions) {
    if (r.verdict === "regression") regressionAlarm(r.scope, r.model, r.dimension, r.value, verdictText(r));
  }
  if (silentScorable && answers.silence !== null) {
    const silenced = new Set(
      truth.problems.flatMap((p) => (p.type === "silent_after_update" ? [key(p.model, p.firmware)] : [])),
    );
    for (const g of answers.silence.afterUpdate.byFirmware) {
      alarms.push({
        signal: "silent_after_update",
        subject: `${g.model} → ${g.firmware}`,
        injected: silenced.has(key(g.model, g.firmware)),
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
      case "lemons":
        return scoreLemons(p, answers);
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
  if (truth.problems.some((p) => p.type === "lemons")) {
    notes.push("lemons are there from the start and judged over the whole run, so they are not timed");
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
