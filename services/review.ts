import { issueFlow, overdueActions, pareto, promiseRows } from "../analytics/review.js";
import type { IssueListItem } from "../contract/api/issues.js";
import type { RegressionVerdict } from "../contract/api/regressions.js";
import { type FirmwareVerdictRow, OVERDUE_AFTER_DAYS, type ReviewReport } from "../contract/api/reports.js";
import { alignHours, iso, type Window } from "../contract/time.js";
import { readFingerprints } from "../storage/issue-queries.js";
import type { ServiceBag } from "./bag.js";
import type { FeedbackService } from "./feedback.js";
import type { PromiseService } from "./promises.js";

// The management review (ISO 9001 §9.3) for a window: the Pareto of fault families, promise compliance,
// the issues opened, closed and verified effective, the overdue actions, the firmware verdicts, and the
// support desk's feedback beside each cohort's fault rate. It only reads; the figures are analytics/review.ts.

export interface ReviewService {
  /** The report for the window, widened to whole UTC hours. */
  report(window: Window): Promise<ReviewReport>;
}

export type ReviewServiceDeps = { promises: PromiseService; feedback: FeedbackService };

/** Issues read per page of the issue list. */
const PAGE = 1000;
/** The newest feedback records whose words the report quotes. */
const LATEST_WORDS = 50;

export const subjectOf = (v: RegressionVerdict): string =>
  v.subject.kind === "firmware"
    ? `firmware ${v.subject.firmware} vs ${v.subject.baseline === "predecessor" ? v.subject.baselineFirmware.join(", ") || "its predecessor" : "the rest of the model"}`
    : `${v.subject.dimension} ${v.subject.value} vs the rest of the ${v.subject.scope}`;

export const verdictRow = (v: RegressionVerdict): FirmwareVerdictRow => ({
  model: v.model,
  kind: v.deviceKind,
  subject: subjectOf(v),
  verdict: v.verdict,
  firstReached: v.firstReached,
  evidenceFrom: v.from,
  evidenceTo: v.to,
  rateRatio: v.overall.rateRatio,
  ciLower: v.overall.ci?.lower ?? null,
  ciUpper: v.overall.ci?.upper ?? null,
  candidatePer1000h: v.overall.candidate.ratePer1000h,
  baselinePer1000h: v.overall.baseline.ratePer1000h,
  candidateDevices: v.overall.evidence.devices.candidate,
  baselineDevices: v.overall.evidence.devices.baseline,
  candidateHours: v.overall.candidate.exposureHours,
  baselineHours: v.overall.baseline.exposureHours,
});

export function createReviewService(bag: ServiceBag, deps: ReviewServiceDeps): ReviewService {
  async function allIssues(window: Window): Promise<IssueListItem[]> {
    const items: IssueListItem[] = [];
    let offset: number | null = 0;
    while (offset !== null) {
      const page = await bag.issues.list({ ...window, sort: "occurrences", limit: PAGE, offset });
      items.push(...page.items);
      offset = page.nextOffset;
    }
    return items;
  }

  return {
    async report(requested) {
      const window = alignHours(requested);
      const [issues, log, fingerprints, verdicts, feedback, promises] = await Promise.all([
        allIssues(window),
        bag.issues.events(),
        readFingerprints(bag.influx),
        bag.firmware.regressions({}),
        deps.feedback.summaryWithRows(window),
        deps.promises.report(window),
      ]);
      const keys = new Map(fingerprints.map((f) => [f.id, f.key]));
      for (const issue of issues) keys.set(issue.id, issue.key);
      const keyOf = (id: string) => keys.get(id) ?? id;
      // A fingerprint merged into another issue is not an issue of its own.
      const merged = new Set(log.filter((e) => e.event.type === "merge").map((e) => e.issue));
      const firstSeen = new Map(fingerprints.filter((f) => !merged.has(f.id)).map((f) => [f.id, f.firstMs]));
      return {
        from: iso(window.fromMs),
        to: iso(window.toMs),
        generatedAt: iso(bag.now()),
        pareto: pareto(
          issues.map((i) => ({
            id: i.id,
            key: i.key,
            status: i.status,
            worstSeverity: i.worstSeverity,
            occurrences: i.occurrences,
            affectedDevices: i.affectedDevices,
          })),
        ),
        promises: promiseRows(promises, window),
        issues: issueFlow({ window, log, firstSeen, keyOf }),
        overdue: overdueActions({ asOfMs: window.toMs, limitDays: OVERDUE_AFTER_DAYS, log, keyOf }),
        firmware: {
          note: "Verdicts the regression runner holds now, first reached before the window's end, each with its own evidence window",
          rows: verdicts.items.filter((v) => Date.parse(v.firstReached) < window.toMs).map(verdictRow),
        },
        feedback: {
          records: feedback.rows.length,
          groups: feedback.summary.groups,
          latest: feedback.rows.slice(0, LATEST_WORDS).map((r) => ({
            at: iso(r.atMs),
            device: r.device,
            model: r.model,
            firmware: r.firmware,
            category: r.category,
            rating: r.rating,
            text: r.text,
          })),
        },
      };
    },
  };
}
