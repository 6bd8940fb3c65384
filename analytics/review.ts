import {
  FEEDBACK_CATEGORIES,
  type FeedbackBesideFaults,
  type FeedbackCategory,
} from "../contract/api/feedback.js";
import type { PromiseDay, PromiseReport, PromisesAnswer } from "../contract/api/promises.js";
import type {
  IssueFlow,
  IssueFlowRow,
  Overdue,
  OverdueRow,
  Pareto,
  PromiseRow,
  PromiseSection,
} from "../contract/api/reports.js";
import type { IssueEvent, IssueStatus } from "../contract/issue-events.js";
import type { Severity } from "../contract/messages.js";
import { DAY_MS, iso, type Window } from "../contract/time.js";
import { replay } from "./lifecycle.js";

// The management review's figures (ISO 9001 §9.3) as pure functions of what the services read: the Pareto
// of fault families, the issues' flow through the window, the overdue actions, and the support desk's
// feedback beside each cohort's fault rate.

/** The share of occurrences the "vital few" of a Pareto give. */
export const VITAL_SHARE = 0.8;

export type ParetoInput = {
  id: string;
  key: string;
  status: IssueStatus;
  worstSeverity: Severity | null;
  occurrences: number;
  affectedDevices: number;
};

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Issues by occurrences (then affected devices, then id), each with its share and the cumulative share. */
export function pareto(issues: readonly ParetoInput[]): Pareto {
  const counted = issues.filter((i) => i.occurrences > 0);
  const total = counted.reduce((sum, i) => sum + i.occurrences, 0);
  const sorted = [...counted].sort(
    (a, b) => b.occurrences - a.occurrences || b.affectedDevices - a.affectedDevices || byText(a.id, b.id),
  );
  let running = 0;
  const rows = sorted.map((issue, index) => {
    const before = running;
    running += issue.occurrences;
    return {
      rank: index + 1,
      issue: issue.id,
      key: issue.key,
      status: issue.status,
      worstSeverity: issue.worstSeverity,
      occurrences: issue.occurrences,
      affectedDevices: issue.affectedDevices,
      share: issue.occurrences / total,
      cumulativeShare: running / total,
      vitalFew: before / total < VITAL_SHARE,
    };
  });
  return { issues: counted.length, occurrences: total, rows };
}

export type IssueLogEntry = { issue: string; event: IssueEvent };

const inWindow = (at: number, w: Window) => at >= w.fromMs && at < w.toMs;

/**
 * Issues opened (first occurrence ever in the window), closed, verified effective (closed by the field:
 * auto_close) and reopened (a regression, or a person reopening a closed issue) in the window.
 */
export function issueFlow(input: {
  window: Window;
  log: readonly IssueLogEntry[];
  /** Every issue's first occurrence ever. */
  firstSeen: ReadonlyMap<string, number>;
  keyOf: (issue: string) => string;
}): IssueFlow {
  const rows: IssueFlowRow[] = [];
  const row = (
    issue: string,
    event: IssueFlowRow["event"],
    at: number,
    actor: string,
    detail: string | null,
  ) => rows.push({ issue, key: input.keyOf(issue), event, at: iso(at), actor, detail });
  for (const [issue, at] of input.firstSeen) {
    if (inWindow(at, input.window)) row(issue, "opened", at, "system", null);
  }
  const byIssue = groupLog(input.log);
  for (const [issue, events] of byIssue) {
    let status: IssueStatus = "new";
    for (const event of events) {
      const before = status;
      status = replayStep(status, event);
      if (!inWindow(event.at, input.window)) continue;
      if (event.type === "auto_close") {
        row(issue, "closed", event.at, event.actor, "effective");
        row(
          issue,
          "verified_effective",
          event.at,
          event.actor,
          `${event.exposureHours} device-hours on the fix`,
        );
      } else if (event.type === "transition" && event.to === "closed") {
        row(issue, "closed", event.at, event.actor, event.reason ?? null);
      } else if (event.type === "regression") {
        row(issue, "reopened", event.at, event.actor, `regressed on ${event.firmware}`);
      } else if (event.type === "transition" && before === "closed") {
        row(issue, "reopened", event.at, event.actor, event.reason ?? null);
      }
    }
  }
  rows.sort((a, b) => byText(a.at, b.at) || byText(a.issue, b.issue) || byText(a.event, b.event));
  const countOf = (event: IssueFlowRow["event"]) => rows.filter((r) => r.event === event).length;
  return {
    opened: countOf("opened"),
    closed: countOf("closed"),
    verifiedEffective: countOf("verified_effective"),
    reopened: countOf("reopened"),
    rows,
  };
}

/** The status an event moves an issue to, as analytics/lifecycle.ts folds it. */
function replayStep(status: IssueStatus, event: IssueEvent): IssueStatus {
  if (event.type === "transition") return event.to;
  if (event.type === "regression") return "regressed";
  if (event.type === "auto_close") return "closed";
  return status;
}

/** Each issue's events in `at` order (equal times keep their log order). */
function groupLog(log: readonly IssueLogEntry[]): Map<string, IssueEvent[]> {
  const byIssue = new Map<string, IssueEvent[]>();
  for (const { issue, event } of log) {
    const events = byIssue.get(issue) ?? [];
    events.push(event);
    byIssue.set(issue, events);
  }
  for (const events of byIssue.values()) events.sort((a, b) => a.at - b.at);
  return byIssue;
}

/** Someone's move: the issue waits on a person, not on the field (fix_released, verifying) or on nobody. */
const ACTION_STATUSES: ReadonlySet<IssueStatus> = new Set(["acknowledged", "investigating", "regressed"]);

/**
 * Actions open at asOf (the log replayed up to it): issues acknowledged, investigating or regressed, and
 * new issues someone was assigned; overdue when their last progress (the status change, or the assignment
 * of a new issue) is more than limitDays before asOf. Merged issues count under the one they joined.
 */
export function overdueActions(input: {
  asOfMs: number;
  limitDays: number;
  log: readonly IssueLogEntry[];
  keyOf: (issue: string) => string;
}): Overdue {
  const limitMs = input.limitDays * DAY_MS;
  let open = 0;
  const rows: OverdueRow[] = [];
  for (const [issue, events] of groupLog(input.log)) {
    const upTo = events.filter((e) => e.at < input.asOfMs);
    if (upTo.length === 0) continue;
    const state = replay(upTo);
    if (state.mergedInto !== null) continue;
    const assignedNew = state.status === "new" && state.assignee !== null;
    if (!ACTION_STATUSES.has(state.status) && !assignedNew) continue;
    open += 1;
    const lastAssign = upTo.filter((e) => e.type === "assign").at(-1)?.at ?? null;
    const since = assignedNew ? (lastAssign ?? state.statusSince ?? 0) : (state.statusSince ?? 0);
    const waited = input.asOfMs - since;
    if (waited > limitMs) {
      rows.push({
        issue,
        key: input.keyOf(issue),
        status: state.status,
        assignee: state.assignee,
        since: iso(since),
        daysWithoutProgress: Math.floor((waited / DAY_MS) * 10) / 10,
      });
    }
  }
  rows.sort((a, b) => b.daysWithoutProgress - a.daysWithoutProgress || byText(a.issue, b.issue));
  return { limitDays: input.limitDays, asOf: iso(input.asOfMs), openActions: open, rows };
}

export type FeedbackInput = {
  model: string;
  firmware: string;
  category: FeedbackCategory;
  rating: number | null;
};

export type CohortFigures = {
  model: string;
  firmware: string;
  devices: number;
  exposureHours: number;
  faults: number;
  deviceRatings: { count: number; mean: number | null };
};

const cohortKey = (model: string, firmware: string) => JSON.stringify([model, firmware]);

/**
 * The support desk's feedback per model and firmware beside the cohort's exposure, fault rate and the
 * ratings its devices report: one row per cohort with either, sorted by model then firmware.
 */
export function feedbackBesideFaults(
  records: readonly FeedbackInput[],
  cohorts: readonly CohortFigures[],
): FeedbackBesideFaults[] {
  const rows = new Map<string, { cohort: CohortFigures; records: FeedbackInput[] }>();
  const empty = (model: string, firmware: string): CohortFigures => ({
    model,
    firmware,
    devices: 0,
    exposureHours: 0,
    faults: 0,
    deviceRatings: { count: 0, mean: null },
  });
  for (const cohort of cohorts) rows.set(cohortKey(cohort.model, cohort.firmware), { cohort, records: [] });
  for (const record of records) {
    const key = cohortKey(record.model, record.firmware);
    const row = rows.get(key) ?? { cohort: empty(record.model, record.firmware), records: [] };
    row.records.push(record);
    rows.set(key, row);
  }
  return [...rows.values()]
    .map(({ cohort, records: mine }) => {
      const byCategory = Object.fromEntries(FEEDBACK_CATEGORIES.map((c) => [c, 0])) as Record<
        FeedbackCategory,
        number
      >;
      for (const r of mine) byCategory[r.category] += 1;
      const ratings = mine.flatMap((r) => (r.rating === null ? [] : [r.rating]));
      return {
        model: cohort.model,
        firmware: cohort.firmware,
        feedback: {
          total: mine.length,
          byCategory,
          ratings: ratings.length,
          meanRating: ratings.length === 0 ? null : ratings.reduce((s, r) => s + r, 0) / ratings.length,
          per1000Devices: cohort.devices === 0 ? null : (mine.length / cohort.devices) * 1000,
        },
        devices: cohort.devices,
        exposureHours: cohort.exposureHours,
        faults: cohort.faults,
        faultsPer1000h: cohort.exposureHours === 0 ? null : (cohort.faults / cohort.exposureHours) * 1000,
        deviceRatings: cohort.deviceRatings,
      };
    })
    .sort((a, b) => byText(a.model, b.model) || byText(a.firmware, b.firmware));
}

const percentText = (share: number) => `${(Math.round(share * 10_000) / 100).toString()}%`;

/** What a promise's target says, in words: availability and response as shares, fault rates per 1,000 h. */
function targetText(p: PromiseReport): string {
  const days = `on ${percentText(p.objective)} of days`;
  const severity = p.severity === null ? "" : `${p.severity} `;
  if (p.kind === "availability") return `≥ ${percentText(p.target)} of devices online a day, ${days}`;
  if (p.kind === "fault_rate") return `≤ ${p.target} ${severity}faults per 1,000 device-hours a day, ${days}`;
  return `≥ ${percentText(p.target)} of new ${severity}issues answered in time, ${days}`;
}

/**
 * Each promise's compliance over the window's days (met ÷ judged days whose start lies in the window,
 * compliant when that share reaches the promise's objective), with the error budget left as of the
 * answer's asOf and what the days were computed from.
 */
export function promiseRows(answer: PromisesAnswer, window: Window): PromiseSection {
  const rows: PromiseRow[] = [];
  for (const { model, promises } of answer.models) {
    for (const p of promises) {
      const days = p.days.filter((d) => inWindow(Date.parse(d.day), window));
      const judged = days.filter((d) => d.state === "met" || d.state === "missed");
      const met = judged.filter((d) => d.state === "met").length;
      const share = judged.length === 0 ? null : met / judged.length;
      const sum = (key: keyof PromiseDay["sample"]) => days.reduce((s, d) => s + (d.sample[key] ?? 0), 0);
      const sample =
        p.kind === "availability"
          ? `${sum("online")} of ${sum("devices")} device-days online`
          : p.kind === "fault_rate"
            ? `${sum("faults")} faults in ${Math.round(sum("deviceHours"))} device-hours`
            : `${sum("late")} of ${sum("issues")} new issues late`;
      rows.push({
        model,
        promise: `${p.name}: ${p.summary}`,
        target: targetText(p),
        actual: share === null ? null : `${met} of ${judged.length} days met (${percentText(share)})`,
        compliant: share === null ? null : share >= p.objective,
        budgetLeft: p.budget.leftShare,
        sample: `${judged.length} judged of ${days.length} days; ${sample}; now ${p.status.replace("_", " ")} (${p.reason})`,
      });
    }
  }
  return { available: answer.file !== null, note: answer.message, rows };
}
