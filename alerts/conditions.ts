import type { ObservedCondition } from "../analytics/alerting.js";
import { impactOf } from "../analytics/impact.js";
import type { IssueListItem } from "../contract/api/issues.js";
import type { PromiseAlarm } from "../contract/api/promises.js";
import type { RegressionVerdict } from "../contract/api/regressions.js";
import { SEVERITIES, type Severity } from "../contract/messages.js";
import { DAY_MS, iso, WEEK_MS } from "../contract/time.js";
import type { ReadServices } from "../services/read-services.js";
import type { AlertRule } from "./rules-file.js";
import type { AlertNotice, AlertSeverity, ConditionKind } from "./types.js";

// What the rules alert on, observed now through the read services (reads only): the issues that are new or
// regressed, the firmware regressions the regression runner keeps, the share of each model's devices that
// went silent. Which of them a rule takes is decided by the pure matchers below (unit-tested).

/** The part of a notice that says what the alert is about: the alert engine's payload. */
export type AlertPayload = Pick<AlertNotice, "kind" | "severity" | "subject" | "refs" | "title" | "detail">;
export type AlertCondition = ObservedCondition<AlertPayload>;

/** Issue conditions look at this window (the issue list's default). */
export const ISSUE_WINDOW_MS = WEEK_MS;
/** silent_share judges the devices seen in this window. */
export const SILENCE_WINDOW_MS = DAY_MS;
const MAX_ISSUES = 1000;

/** What the read services said now; a source that failed is undefined, and its alerts are left as they are. */
export type Observations = {
  nowMs: number;
  issues?: { new: IssueListItem[]; regressed: IssueListItem[] } | undefined;
  regressions?: RegressionVerdict[] | undefined;
  silence?: Array<{ model: string; seen: number; silent: number; rate: number }> | undefined;
  /** The promises breached or burning their budget fast now (services/promises.ts status). */
  promises?: PromiseAlarm[] | undefined;
};

/** The kinds a rule wants whose source failed now: their alerts are left as they are this step. */
export function unobservedKinds(rules: readonly AlertRule[], o: Observations): Set<ConditionKind> {
  const answered = (kind: ConditionKind) => {
    switch (kind) {
      case "issue_new":
      case "issue_regressed":
        return o.issues !== undefined;
      case "firmware_regression":
        return o.regressions !== undefined;
      case "silent_share":
        return o.silence !== undefined;
      case "promise_breached":
      case "error_budget_burn":
        return o.promises !== undefined;
    }
  };
  return new Set(rules.map((r) => r.kind).filter((kind) => !answered(kind)));
}

const rank = (s: Severity) => SEVERITIES.indexOf(s);
const inModels = (rule: AlertRule, model: string | null) =>
  rule.models === undefined || (model !== null && rule.models.includes(model));

/** An issue's alert severity when its rule names none: critical for critical faults, else warning. */
export const issueAlertSeverity = (worst: Severity | null): AlertSeverity =>
  worst === "critical" ? "critical" : "warning";

/** The conditions every rule finds in what was observed. */
export function conditionsOf(rules: readonly AlertRule[], o: Observations): AlertCondition[] {
  return rules.flatMap((rule): AlertCondition[] => conditionsOfRule(rule, o));
}

function conditionsOfRule(rule: AlertRule, o: Observations): AlertCondition[] {
  switch (rule.kind) {
    case "issue_new":
      return (o.issues?.new ?? []).flatMap((issue) => issueCondition(rule, issue, o.nowMs));
    case "issue_regressed":
      return (o.issues?.regressed ?? []).flatMap((issue) => issueCondition(rule, issue, o.nowMs));
    case "firmware_regression":
      return (o.regressions ?? []).flatMap((v) => regressionCondition(rule, v));
    case "silent_share":
      return (o.silence ?? []).flatMap((m) => silenceCondition(rule, m));
    case "promise_breached":
    case "error_budget_burn":
      return (o.promises ?? []).flatMap((alarm) => promiseCondition(rule, alarm));
  }
}

export function issueCondition(rule: AlertRule, issue: IssueListItem, nowMs: number): AlertCondition[] {
  if (!inModels(rule, issue.model)) return [];
  if (rule.minSeverity !== undefined) {
    if (issue.worstSeverity === null || rank(issue.worstSeverity) < rank(rule.minSeverity)) return [];
  }
  if (issue.affectedDevices < (rule.minDevices ?? 1)) return [];
  const impact = impactOf({
    worstSeverity: issue.worstSeverity,
    affectedDevices: issue.affectedDevices,
    activeDevices: issue.activeDevices,
    firstSeenMs: Date.parse(issue.firstSeen),
    nowMs,
  });
  if (rule.minImpact !== undefined && impact.score < rule.minImpact) return [];
  const what = rule.kind === "issue_new" ? "New issue" : "Issue regressed";
  return [
    {
      key: `${rule.name}:issue:${issue.id}`,
      rule: rule.name,
      payload: {
        kind: rule.kind,
        severity: rule.severity ?? issueAlertSeverity(issue.worstSeverity),
        subject: `issue ${issue.id} · ${issue.model} ${issue.codes.join(", ") || issue.key}`,
        refs: { issue: issue.id, model: issue.model },
        title: `${what}: ${issue.key} on ${issue.affectedDevices} devices`,
        detail: {
          key: issue.key,
          status: issue.status,
          worstSeverity: issue.worstSeverity,
          affectedDevices: issue.affectedDevices,
          activeDevices: issue.activeDevices,
          fleetShare: issue.fleetShare,
          occurrences: issue.occurrences,
          fixVersion: issue.fixVersion,
          firstSeen: issue.firstSeen,
          lastSeen: issue.lastSeen,
          impact,
          window: { from: iso(nowMs - ISSUE_WINDOW_MS), to: iso(nowMs) },
        },
      },
    },
  ];
}

export function regressionCondition(rule: AlertRule, v: RegressionVerdict): AlertCondition[] {
  if (v.verdict !== "regression" || !inModels(rule, v.model)) return [];
  const scope = v.model ?? v.deviceKind;
  const { subject, refs, id } =
    v.subject.kind === "firmware"
      ? {
          subject: `${scope} firmware ${v.subject.firmware}`,
          refs: { ...(v.model === null ? {} : { model: v.model }), firmware: v.subject.firmware },
          id: `fw:${scope}:${v.subject.firmware}:${v.subject.baseline}`,
        }
      : {
          subject: `${scope} ${v.subject.dimension} ${v.subject.value}`,
          refs: {
            ...(v.model === null ? {} : { model: v.model }),
            [v.subject.dimension]: v.subject.value,
          },
          id: `dim:${v.subject.scope}:${scope}:${v.subject.dimension}:${v.subject.value}`,
        };
  return [
    {
      key: `${rule.name}:${id}`,
      rule: rule.name,
      payload: {
        kind: "firmware_regression",
        severity: rule.severity ?? "warning",
        subject,
        refs,
        title: `Regression: ${subject} (rate ratio ${v.overall.rateRatio?.toFixed(2) ?? "n/a"})`,
        detail: {
          subject: v.subject,
          firstReached: v.firstReached,
          from: v.from,
          to: v.to,
          overall: v.overall,
          codes: v.codes.map((c) => c.code),
        },
      },
    },
  ];
}

export function silenceCondition(
  rule: AlertRule,
  m: { model: string; seen: number; silent: number; rate: number },
): AlertCondition[] {
  if (!inModels(rule, m.model)) return [];
  if (m.silent < (rule.minDevices ?? 3) || m.rate < (rule.minShare ?? 0.1)) return [];
  const percent = Math.round(m.rate * 1000) / 10;
  return [
    {
      key: `${rule.name}:silent:${m.model}`,
      rule: rule.name,
      payload: {
        kind: "silent_share",
        severity: rule.severity ?? "warning",
        subject: `${m.model}: ${m.silent} of ${m.seen} devices silent`,
        refs: { model: m.model },
        title: `${percent}% of ${m.model} devices silent`,
        detail: { seen: m.seen, silent: m.silent, rate: m.rate, windowMs: SILENCE_WINDOW_MS },
      },
    },
  ];
}

export function promiseCondition(rule: AlertRule, alarm: PromiseAlarm): AlertCondition[] {
  const wanted = rule.kind === "promise_breached" ? "breached" : "burning";
  if (alarm.state !== wanted || !inModels(rule, alarm.model)) return [];
  const subject = `${alarm.model} promise ${alarm.promise}`;
  return [
    {
      key: `${rule.name}:promise:${alarm.model}:${alarm.promise}`,
      rule: rule.name,
      payload: {
        kind: rule.kind,
        severity: rule.severity ?? (wanted === "breached" ? "critical" : "warning"),
        subject,
        refs: { model: alarm.model, promise: alarm.promise },
        title:
          wanted === "breached" ? `Promise breached: ${subject}` : `Error budget burning fast: ${subject}`,
        detail: {
          promiseKind: alarm.kind,
          state: alarm.state,
          reason: alarm.detail,
          budgetLeftDays: alarm.budgetLeftDays,
          burnRate: alarm.burnRate,
        },
      },
    },
  ];
}

/** Reads what the rules need now; a source that fails is left out (its alerts stay as they are). */
export async function observe(
  read: Pick<ReadServices, "issues" | "firmware" | "devices" | "promises">,
  rules: readonly AlertRule[],
  nowMs: number,
  onError: (source: string, err: unknown) => void,
): Promise<Observations> {
  const wants = new Set(rules.map((r) => r.kind));
  const window = { fromMs: nowMs - ISSUE_WINDOW_MS, toMs: nowMs };
  const issuesOf = (status: "new" | "regressed") =>
    read.issues
      .list({ ...window, status, sort: "devices", limit: MAX_ISSUES, offset: 0 })
      .then((page) => page.items);
  const guard = async <T>(source: string, wanted: boolean, run: () => Promise<T>) => {
    if (!wanted) return undefined;
    try {
      return await run();
    } catch (err) {
      onError(source, err);
      return undefined;
    }
  };
  const [issues, regressions, silence, promises] = await Promise.all([
    guard("issues", wants.has("issue_new") || wants.has("issue_regressed"), async () => {
      const [fresh, regressed] = await Promise.all([issuesOf("new"), issuesOf("regressed")]);
      return { new: fresh, regressed };
    }),
    guard(
      "firmware regressions",
      wants.has("firmware_regression"),
      async () => (await read.firmware.regressions({ verdict: "regression" })).items,
    ),
    guard(
      "silence",
      wants.has("silent_share"),
      async () => (await read.devices.silence({ fromMs: nowMs - SILENCE_WINDOW_MS, toMs: nowMs })).byModel,
    ),
    guard("promises", wants.has("promise_breached") || wants.has("error_budget_burn"), () =>
      read.promises.status(nowMs),
    ),
  ]);
  return { nowMs, issues, regressions, silence, promises };
}
