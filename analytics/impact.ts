import type { Severity } from "../contract/messages.js";
import { DAY_MS } from "../contract/time.js";

// An issue's impact score (ISO 10003: what to escalate first), docs/alert-rules.md:
//
//   impact = severityWeight × affectedDevices × fleetShare × ageFactor
//
// - severityWeight: info 1, warning 3, error 9, critical 27: one severity step outweighs a threefold spread.
// - affectedDevices × fleetShare: how many customers, and how much of the model's fleet they are. The product
//   (= affected² / active) keeps a large fleet's 30 devices (0.3%) below a small model's 30 (30%), and one
//   device of a tiny fleet (100%) below either.
// - ageFactor = min(4, 1 + ageDays / 7): an issue that stays open weighs more each week it is left (1 when
//   first seen, 2 after a week, at most 4 after three weeks), so old issues cannot sit unanswered forever.
// Without a severity in the window (no occurrence) the score is 0: nothing happens to anyone now.

export const SEVERITY_WEIGHTS: Readonly<Record<Severity, number>> = {
  info: 1,
  warning: 3,
  error: 9,
  critical: 27,
};

export const MAX_AGE_FACTOR = 4;
export const AGE_FACTOR_WEEK_MS = 7 * DAY_MS;

export type ImpactInput = {
  worstSeverity: Severity | null;
  affectedDevices: number;
  /** Devices of the models active in the window. */
  activeDevices: number;
  /** The first occurrence. */
  firstSeenMs: number;
  nowMs: number;
};

export type Impact = {
  score: number;
  severityWeight: number;
  affectedDevices: number;
  /** affected / active, at most 1 (a device may fault without an activity hour in the window). */
  fleetShare: number;
  ageDays: number;
  ageFactor: number;
};

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

export function ageFactorOf(ageMs: number): number {
  return Math.min(MAX_AGE_FACTOR, 1 + Math.max(0, ageMs) / AGE_FACTOR_WEEK_MS);
}

export function impactOf(input: ImpactInput): Impact {
  const affected = Math.max(0, input.affectedDevices);
  const severityWeight = input.worstSeverity === null ? 0 : SEVERITY_WEIGHTS[input.worstSeverity];
  const fleet = Math.max(input.activeDevices, affected);
  const fleetShare = fleet > 0 ? affected / fleet : 0;
  const ageMs = Math.max(0, input.nowMs - input.firstSeenMs);
  const ageFactor = ageFactorOf(ageMs);
  return {
    score: round(severityWeight * affected * fleetShare * ageFactor, 2),
    severityWeight,
    affectedDevices: affected,
    fleetShare: round(fleetShare, 4),
    ageDays: round(ageMs / DAY_MS, 2),
    ageFactor: round(ageFactor, 3),
  };
}
