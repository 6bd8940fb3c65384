import {
  type AutoCloseEvent,
  type IssueEvent,
  type IssueStatus,
  type RegressionEvent,
  TransitionEvent,
  type TransitionTarget,
} from "../contract/issue-events.js";
import type { Result } from "../contract/result.js";
import { isAtLeast } from "./versions.js";

// An issue's lifecycle, in the spirit of ISO 10002 complaint handling: every decision is an event with who
// (actor), when (at, epoch ms) and why (reason, or the evidence for system events). The log is append-only;
// the current state is a fold of it. `applyEvent` records facts without judging them; `requestTransition`
// is where a person's request is checked against the table below.
//
// | from          | to (manual)                                               |
// | ------------- | --------------------------------------------------------- |
// | new           | acknowledged, investigating, muted*, closed*              |
// | acknowledged  | investigating, fix_released†, muted*, closed*             |
// | investigating | fix_released†, muted*, closed*                            |
// | fix_released  | verifying, investigating (the fix was withdrawn)          |
// | verifying     | closed* (before the field proved it), investigating       |
// | regressed     | acknowledged, investigating, fix_released†, muted*, closed* |
// | muted         | acknowledged, investigating (unmute), closed*             |
// | closed        | acknowledged* (reopen)                                    |
// * needs a reason. † needs fixVersion, the firmware that carries the fix.
//
// System events: "regression" (onOccurrence) moves fix_released, verifying or a closed-with-fix issue to
// regressed; checkVerification moves fix_released to verifying on the first device-hours on the fix, and
// verifying to closed with closedEffective once the fix has run the required device-hours. "escalated" (the
// alert engine, alerts/engine.ts) is recorded in the history and changes nothing.

export const TRANSITIONS: Readonly<Record<IssueStatus, readonly TransitionTarget[]>> = {
  new: ["acknowledged", "investigating", "muted", "closed"],
  acknowledged: ["investigating", "fix_released", "muted", "closed"],
  investigating: ["fix_released", "muted", "closed"],
  fix_released: ["verifying", "investigating"],
  verifying: ["closed", "investigating"],
  regressed: ["acknowledged", "investigating", "fix_released", "muted", "closed"],
  muted: ["acknowledged", "investigating", "closed"],
  closed: ["acknowledged"],
};

/** Closing, muting and reopening are decisions someone must explain. */
export const needsReason = (from: IssueStatus, to: TransitionTarget): boolean =>
  to === "closed" || to === "muted" || (from === "closed" && to === "acknowledged");

export const canTransition = (from: IssueStatus, to: TransitionTarget): boolean =>
  TRANSITIONS[from].includes(to);

/**
 * How a closed issue was closed: "effective" after the fix ran its required device-hours without a
 * recurrence; "fixed" by hand while verifying (a fix is out, not yet proven); "without_fix" from any other
 * status (won't fix, not a defect). Only the first two reopen when the fault recurs on the fix.
 */
export type Closure = "effective" | "fixed" | "without_fix";

export type IssueState = {
  status: IssueStatus;
  assignee: string | null;
  /** The firmware of the latest fix_released; kept for the record after a regression or a reopen. */
  fixVersion: string | null;
  fixReleasedAt: number | null;
  mergedInto: string | null;
  closure: Closure | null;
  closedEffective: boolean;
  /** The firmware of the latest regression. */
  regressedOn: string | null;
  regressions: number;
  firstSeenAt: number | null;
  /** When the current status began: the status change, or the first event while still new. */
  statusSince: number | null;
  updatedAt: number | null;
  /** The events in `at` order. */
  history: IssueEvent[];
};

export const INITIAL_ISSUE_STATE: IssueState = {
  status: "new",
  assignee: null,
  fixVersion: null,
  fixReleasedAt: null,
  mergedInto: null,
  closure: null,
  closedEffective: false,
  regressedOn: null,
  regressions: 0,
  firstSeenAt: null,
  statusSince: null,
  updatedAt: null,
  history: [],
};

function moveTo(state: IssueState, status: IssueStatus, at: number): IssueState {
  return {
    ...state,
    status,
    statusSince: at,
    closure: status === "closed" ? state.closure : null,
    closedEffective: status === "closed" ? state.closedEffective : false,
  };
}

function fold(state: IssueState, event: IssueEvent): IssueState {
  const base: IssueState = {
    ...state,
    statusSince: state.statusSince ?? event.at,
    updatedAt: event.at,
    history: [...state.history, event],
  };
  switch (event.type) {
    case "first_seen":
      return { ...base, firstSeenAt: Math.min(base.firstSeenAt ?? event.at, event.at) };
    case "assign":
      return { ...base, assignee: event.assignee };
    case "note":
    case "escalated":
      return base;
    case "merge":
      return { ...base, mergedInto: event.into };
    case "regression":
      return {
        ...moveTo(base, "regressed", event.at),
        regressedOn: event.firmware,
        regressions: base.regressions + 1,
      };
    case "auto_close":
      return { ...moveTo(base, "closed", event.at), closure: "effective", closedEffective: true };
    case "transition": {
      const moved = moveTo(base, event.to, event.at);
      if (event.to === "fix_released") {
        return { ...moved, fixVersion: event.fixVersion ?? null, fixReleasedAt: event.at };
      }
      if (event.to === "closed") {
        return { ...moved, closure: state.status === "verifying" ? "fixed" : "without_fix" };
      }
      return moved;
    }
  }
}

/** The state after `event`. An event older than the last one is put in its place and the log replayed. */
export function applyEvent(state: IssueState, event: IssueEvent): IssueState {
  if (state.updatedAt !== null && event.at < state.updatedAt) return replay([...state.history, event]);
  return fold(state, event);
}

/** The state an event log describes. Events are ordered by `at`; equal times keep their log order. */
export function replay(events: readonly IssueEvent[]): IssueState {
  const ordered = events.map((event, index) => ({ event, index }));
  ordered.sort((a, b) => a.event.at - b.event.at || a.index - b.index);
  return ordered.reduce((state, { event }) => fold(state, event), INITIAL_ISSUE_STATE);
}

export type TransitionRequest = {
  to: TransitionTarget;
  actor: string;
  at: number;
  reason?: string | undefined;
  fixVersion?: string | undefined;
};

export type TransitionErrorCode =
  | "INVALID_REQUEST"
  | "ISSUE_MERGED"
  | "INVALID_TRANSITION"
  | "FIX_VERSION_REQUIRED"
  | "FIX_VERSION_NOT_ALLOWED"
  | "REASON_REQUIRED";
export type TransitionError = { code: TransitionErrorCode; message: string };

const refuse = (code: TransitionErrorCode, message: string): Result<never, TransitionError> => ({
  ok: false,
  error: { code, message },
});

/** The event that records a person's request, or why the request is refused. */
export function requestTransition(
  state: IssueState,
  request: TransitionRequest,
): Result<TransitionEvent, TransitionError> {
  if (state.mergedInto !== null) {
    return refuse("ISSUE_MERGED", `the issue was merged into ${state.mergedInto}; change that one`);
  }
  if (!canTransition(state.status, request.to)) {
    const allowed = TRANSITIONS[state.status].join(", ");
    return refuse("INVALID_TRANSITION", `${state.status} cannot move to ${request.to} (allowed: ${allowed})`);
  }
  if (request.to === "fix_released" && !request.fixVersion) {
    return refuse("FIX_VERSION_REQUIRED", "fix_released names the firmware version that carries the fix");
  }
  if (request.to !== "fix_released" && request.fixVersion !== undefined) {
    return refuse("FIX_VERSION_NOT_ALLOWED", "fixVersion belongs to fix_released only");
  }
  if (needsReason(state.status, request.to) && !request.reason?.trim()) {
    return refuse("REASON_REQUIRED", `${state.status} → ${request.to} needs a reason`);
  }
  const parsed = TransitionEvent.safeParse({
    type: "transition",
    to: request.to,
    actor: request.actor,
    at: request.at,
    ...(request.reason === undefined ? {} : { reason: request.reason }),
    ...(request.fixVersion === undefined ? {} : { fixVersion: request.fixVersion }),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return refuse("INVALID_REQUEST", issue ? `${issue.path.join(".")}: ${issue.message}` : "invalid request");
  }
  return { ok: true, value: parsed.data };
}

/** Whether an issue relies on a released fix, so a recurrence on that fix is a regression. */
export function reliesOnFix(state: IssueState): boolean {
  if (state.status === "fix_released" || state.status === "verifying") return true;
  return state.status === "closed" && (state.closure === "effective" || state.closure === "fixed");
}

/**
 * A "regression" event when the fault recurs on firmware at or above the fix of an issue that relies on it
 * (fix_released, verifying, closed effective or closed by hand while verifying). Recurrences on older
 * firmware are expected until those devices update; muted, merged and closed-without-fix issues never
 * reopen.
 */
export function onOccurrence(
  state: IssueState,
  occurrence: { firmware: string; at: number },
): RegressionEvent | undefined {
  if (state.mergedInto !== null || state.fixVersion === null || !reliesOnFix(state)) return undefined;
  if (!isAtLeast(occurrence.firmware, state.fixVersion)) return undefined;
  return { type: "regression", firmware: occurrence.firmware, at: occurrence.at, actor: "system" };
}

export type VerificationCheck = {
  /** Device-hours on firmware at or above fixVersion since fixReleasedAt. */
  exposureHoursOnFix: number;
  at: number;
  requiredHours: number;
};

/**
 * One step of verification, called periodically. fix_released moves to verifying (by "system") once the
 * fixing firmware has any device-hours; verifying closes as effective once it has `requiredHours`. A
 * recurrence on the fix has already made the issue regressed (onOccurrence), so reaching the hours in
 * verifying means none happened. A fix with enough hours at once takes two checks: verifying, then closed.
 */
export function checkVerification(
  state: IssueState,
  check: VerificationCheck,
): TransitionEvent | AutoCloseEvent | undefined {
  if (state.mergedInto !== null) return undefined;
  const hours = Number.isFinite(check.exposureHoursOnFix) ? check.exposureHoursOnFix : 0;
  if (state.status === "fix_released" && hours > 0) {
    return {
      type: "transition",
      to: "verifying",
      actor: "system",
      at: check.at,
      reason: `firmware ${state.fixVersion ?? "with the fix"} is running in the field`,
    };
  }
  if (state.status === "verifying" && hours >= check.requiredHours) {
    return {
      type: "auto_close",
      exposureHours: hours,
      requiredHours: check.requiredHours,
      at: check.at,
      actor: "system",
    };
  }
  return undefined;
}
