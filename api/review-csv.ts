import { FEEDBACK_CATEGORIES } from "../contract/api/feedback.js";
import type { ReviewReport, ReviewTable } from "../contract/api/reports.js";

// The review's tables as CSV (RFC 4180): CRLF line ends, every field that holds a comma, a quote, CR or LF
// quoted with its quotes doubled. A cell a spreadsheet would run as a formula (it starts with = + - @, or a
// tab or CR that some spreadsheets skip before them) gets a leading apostrophe (OWASP "CSV injection").
// Numbers are written as numbers, so a negative one stays a number.

type Cell = string | number | boolean | null;

const FORMULA_START = /^[=+\-@\t\r]/;

export function csvCell(value: Cell): string {
  if (value === null) return "";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "";
  if (typeof value === "boolean") return value ? "true" : "false";
  const guarded = FORMULA_START.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(guarded) ? `"${guarded.replaceAll('"', '""')}"` : guarded;
}

export function toCsv(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  return `${[header, ...rows].map((row) => row.map(csvCell).join(",")).join("\r\n")}\r\n`;
}

/** One table of the report: its header and rows, each row in the header's order. */
export function reviewTable(report: ReviewReport, table: ReviewTable): { header: string[]; rows: Cell[][] } {
  const window = [report.from, report.to];
  switch (table) {
    case "pareto":
      return {
        header: [
          "from",
          "to",
          "rank",
          "issue",
          "key",
          "status",
          "worst_severity",
          "occurrences",
          "affected_devices",
          "share",
          "cumulative_share",
          "vital_few",
          "window_occurrences",
        ],
        rows: report.pareto.rows.map((r) => [
          ...window,
          r.rank,
          r.issue,
          r.key,
          r.status,
          r.worstSeverity,
          r.occurrences,
          r.affectedDevices,
          r.share,
          r.cumulativeShare,
          r.vitalFew,
          report.pareto.occurrences,
        ]),
      };
    case "promises":
      return {
        header: ["from", "to", "model", "promise", "target", "actual", "compliant", "budget_left", "sample"],
        rows: report.promises.rows.map((r) => [
          ...window,
          r.model,
          r.promise,
          r.target,
          r.actual,
          r.compliant,
          r.budgetLeft,
          r.sample,
        ]),
      };
    case "issues":
      return {
        header: ["from", "to", "at", "event", "issue", "key", "actor", "detail"],
        rows: report.issues.rows.map((r) => [...window, r.at, r.event, r.issue, r.key, r.actor, r.detail]),
      };
    case "overdue":
      return {
        header: [
          "as_of",
          "limit_days",
          "issue",
          "key",
          "status",
          "assignee",
          "since",
          "days_without_progress",
          "open_actions",
        ],
        rows: report.overdue.rows.map((r) => [
          report.overdue.asOf,
          report.overdue.limitDays,
          r.issue,
          r.key,
          r.status,
          r.assignee,
          r.since,
          r.daysWithoutProgress,
          report.overdue.openActions,
        ]),
      };
    case "firmware":
      return {
        header: [
          "model",
          "kind",
          "subject",
          "verdict",
          "first_reached",
          "evidence_from",
          "evidence_to",
          "rate_ratio",
          "ci_lower",
          "ci_upper",
          "candidate_per_1000h",
          "baseline_per_1000h",
          "candidate_devices",
          "baseline_devices",
          "candidate_hours",
          "baseline_hours",
        ],
        rows: report.firmware.rows.map((r) => [
          r.model,
          r.kind,
          r.subject,
          r.verdict,
          r.firstReached,
          r.evidenceFrom,
          r.evidenceTo,
          r.rateRatio,
          r.ciLower,
          r.ciUpper,
          r.candidatePer1000h,
          r.baselinePer1000h,
          r.candidateDevices,
          r.baselineDevices,
          r.candidateHours,
          r.baselineHours,
        ]),
      };
    case "feedback":
      return {
        header: [
          "from",
          "to",
          "model",
          "firmware",
          "feedback",
          ...FEEDBACK_CATEGORIES,
          "ratings",
          "mean_rating_1_5",
          "feedback_per_1000_devices",
          "devices",
          "exposure_hours",
          "faults",
          "faults_per_1000h",
          "device_ratings",
          "device_mean_rating_0_10",
        ],
        rows: report.feedback.groups.map((g) => [
          ...window,
          g.model,
          g.firmware,
          g.feedback.total,
          ...FEEDBACK_CATEGORIES.map((c) => g.feedback.byCategory[c]),
          g.feedback.ratings,
          g.feedback.meanRating,
          g.feedback.per1000Devices,
          g.devices,
          g.exposureHours,
          g.faults,
          g.faultsPer1000h,
          g.deviceRatings.count,
          g.deviceRatings.mean,
        ]),
      };
    default: {
      const unreachable: never = table;
      throw new Error(`unknown table ${String(unreachable)}`);
    }
  }
}

export function reviewCsv(report: ReviewReport, table: ReviewTable): string {
  const { header, rows } = reviewTable(report, table);
  return toCsv(header, rows);
}
