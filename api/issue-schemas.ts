import { z } from "zod";
import { IssueStatus, TransitionTarget } from "../analytics/lifecycle.js";
import { Label, Severity } from "../contract/messages.js";
import { MAX_SERIES_DAYS } from "../storage/health-store.js";
import { IssueHistoryEntry, IssueId, IssueSort, IssueSummary } from "../storage/issue-store.js";
import { pageOf, paging } from "./schemas.js";

// Request and response schemas of the issue routes; the records come from storage/issue-store.ts.

const time = (description: string) =>
  z.iso.datetime({ offset: true }).optional().meta({ description, example: "2025-01-31T12:00:00Z" });

const window = {
  from: time(`Start, inclusive; default \`to\` minus 7d; at most ${MAX_SERIES_DAYS} days before \`to\``),
  to: time("End, exclusive; default now"),
};

export const IssueIdParam = z.object({
  id: IssueId.meta({ param: { name: "id", in: "path" }, example: "Xk3v0Qp9T2bY1aZc" }),
});

export const IssueListQuery = z.object({
  ...window,
  kind: Label.optional().meta({ description: "Issues of this device kind", example: "modem" }),
  model: Label.optional().meta({ description: "Issues of this model" }),
  firmware: Label.optional().meta({
    description: "Issues with an occurrence on this firmware in the window",
  }),
  status: IssueStatus.optional(),
  severity: Severity.optional().meta({
    description:
      "Issues whose worst severity in the window is at least this (info < warning < error < critical)",
  }),
  sort: IssueSort.default("devices").meta({
    description:
      "Descending: affected devices, occurrences, last seen, or growth (second-half minus first-half occurrences)",
  }),
  ...paging,
});

export const IssueDetailQuery = z.object(window);

export const IssuePage = z
  .object({
    ...pageOf(IssueSummary),
    total: z.number().int(),
    from: z.iso.datetime(),
    to: z.iso.datetime().meta({ description: "Keep it fixed while paging" }),
  })
  .meta({ id: "IssuePage" });
export type IssuePage = z.infer<typeof IssuePage>;

const Reason = z.string().trim().min(1).max(2000);

export const TransitionBody = z
  .strictObject({
    to: TransitionTarget,
    reason: Reason.optional().meta({ description: "Required to close, mute or reopen" }),
    fixVersion: Label.optional().meta({
      description: "Required with fix_released: the firmware that carries the fix",
    }),
  })
  .meta({ id: "TransitionRequest" });

export const AssigneeBody = z
  .strictObject({
    assignee: z.string().trim().min(1).max(128).nullable().meta({ description: "null unassigns" }),
  })
  .meta({ id: "AssigneeRequest" });

export const NoteBody = z
  .strictObject({ text: z.string().trim().min(1).max(10_000) })
  .meta({ id: "NoteRequest" });

export const MergeBody = z.strictObject({ into: IssueId, reason: Reason.optional() }).meta({
  id: "MergeRequest",
  description: "Moves this issue's occurrences, past and future, into another issue",
});

export const IssueChange = z
  .object({
    issue: IssueId,
    recorded: IssueHistoryEntry,
    status: IssueStatus,
    assignee: z.string().nullable(),
    fixVersion: z.string().nullable(),
    mergedInto: IssueId.nullable(),
  })
  .meta({ id: "IssueChange", description: "The event recorded and the issue's state after it" });
export type IssueChange = z.infer<typeof IssueChange>;
