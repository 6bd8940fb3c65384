import { z } from "zod";
import { IssueEvent, IssueStatus, TransitionTarget } from "../issue-events.js";
import { Label, Severity } from "../messages.js";
import { AlertStatus } from "./alerts.js";
import { count, IssueId, isoTime, pageOf, paging, timeParam } from "./common.js";
import { MAX_SERIES_DAYS } from "./fleet.js";

// Issues: faults grouped by fingerprint, their statistics and their lifecycle.

export const MAX_AFFECTED_DEVICES = 500;

/** The list's assignee filter value for issues assigned to nobody. */
export const UNASSIGNED = "none";

export const ISSUE_SORTS = ["devices", "occurrences", "last_seen", "growth"] as const;

export const IssueSort = z.enum(ISSUE_SORTS);
export type IssueSort = z.infer<typeof IssueSort>;

export const IssueSummary = z
  .object({
    id: IssueId,
    key: z.string().meta({ examples: ["modem/FQ-Modem 7590/DSL_RESYNC"] }),
    kind: z.string(),
    model: z.string(),
    models: z.array(z.string()).meta({ description: '"kind/model" of every fingerprint in the issue' }),
    codes: z.array(z.string()).meta({ description: "Fault codes seen in the window" }),
    mergedIds: z.array(IssueId).meta({ description: "Issues merged into this one by hand" }),
    status: IssueStatus,
    assignee: z.string().nullable(),
    fixVersion: z.string().nullable(),
    firstSeen: isoTime.meta({ description: "Earliest occurrence ever (device time)" }),
    lastSeen: isoTime.meta({ description: "Latest occurrence ever (device time)" }),
    occurrences: count.meta({
      description: "Faults in the window, widened to whole UTC hours (from floored, to raised)",
    }),
    affectedDevices: count.meta({ description: "Distinct devices with a fault in the window" }),
    activeDevices: count.meta({
      description: "Distinct devices of the issue's models that reported in the window (activity)",
    }),
    fleetShare: z
      .number()
      .min(0)
      .nullable()
      .meta({ description: "affectedDevices / activeDevices; null when no device was active" }),
    worstSeverity: Severity.nullable().meta({ description: "null when no occurrence in the window" }),
    growth: z.object({ firstHalf: count, secondHalf: count, delta: z.number().int() }).meta({
      description:
        "Occurrences in each half of the window, split at a whole hour (an odd hour goes to the first half); " +
        "delta = secondHalf - firstHalf",
    }),
  })
  .meta({ id: "IssueSummary" });
export type IssueSummary = z.infer<typeof IssueSummary>;

export const IssueListItem = IssueSummary.extend({
  trend: z
    .object({
      bucketMs: z
        .number()
        .int()
        .positive()
        .meta({ description: "3600000 up to a 2-day window, else 86400000" }),
      occurrences: z.array(count).meta({
        description: "Occurrences per bucket from `from` on, as the detail's trend buckets: a sparkline",
      }),
    })
    .optional()
    .meta({
      description:
        "With withTrend=true: the issue's occurrences over the window, bucketed like the detail's trend",
    }),
}).meta({ id: "IssueListItem" });
export type IssueListItem = z.infer<typeof IssueListItem>;

export const BREAKDOWNS = ["firmware", "region", "isp", "hardware"] as const;
export type BreakdownName = (typeof BREAKDOWNS)[number];

const Breakdown = (name: BreakdownName) =>
  z.object({ [name]: z.string(), occurrences: count, affectedDevices: count });

/** The shares of an issue's occurrences the concentration says how few devices give. */
export const CONCENTRATION_SHARES = [0.5, 0.8] as const;

export const Concentration = z
  .object({
    devices: count.meta({ description: "Devices with an occurrence in the window" }),
    occurrences: count.meta({ description: "Their occurrences in the window, added up per device" }),
    top: z
      .array(
        z.object({
          share: z.number().meta({ description: "A share of the occurrences: 0.5, 0.8" }),
          devices: count.meta({
            description: "The fewest devices that give at least that share: those with the most occurrences",
          }),
          occurrences: count.meta({ description: "What those devices give" }),
        }),
      )
      .meta({ description: "One entry per share in CONCENTRATION_SHARES, in that order" }),
    topDevice: z
      .object({ id: z.string(), occurrences: count, share: z.number() })
      .nullable()
      .meta({ description: "The device with the most occurrences (then the smallest id); null without any" }),
  })
  .meta({
    id: "Concentration",
    description:
      'How few devices give most of the issue\'s occurrences ("3 devices give 80%"): a bad unit or a fleet problem',
  });
export type Concentration = z.infer<typeof Concentration>;

export const IssueHistoryEntry = z
  .object({ issue: IssueId, event: IssueEvent })
  .meta({ id: "IssueHistoryEntry", description: "An event and the issue it was recorded on" });
export type IssueHistoryEntry = z.infer<typeof IssueHistoryEntry>;

export const IssueImpact = z
  .object({
    score: z
      .number()
      .min(0)
      .meta({ description: "severityWeight × affectedDevices × fleetShare × ageFactor" }),
    severityWeight: z.number().meta({
      description:
        "Of the worst severity in the window: info 1, warning 3, error 9, critical 27; 0 without one",
    }),
    affectedDevices: count,
    fleetShare: z.number().min(0).max(1).meta({ description: "affectedDevices / activeDevices, at most 1" }),
    ageDays: z
      .number()
      .min(0)
      .meta({ description: "Days from the first occurrence to the window's end (or now, if earlier)" }),
    ageFactor: z.number().min(1).max(4).meta({ description: "min(4, 1 + ageDays / 7)" }),
  })
  .meta({
    id: "IssueImpact",
    description:
      "What to escalate first (analytics/impact.ts, docs/alert-rules.md); alert rules may require a minimum",
  });
export type IssueImpact = z.infer<typeof IssueImpact>;

export const IssueEscalation = z
  .object({
    alertId: z.string(),
    rule: z.string(),
    level: z.number().int().min(1),
    levelName: z.string(),
    since: isoTime.meta({ description: "When the alert reached this level" }),
    status: AlertStatus.nullable().meta({
      description: "The alert's status now; null when its log cannot be read",
    }),
    acknowledged: z.object({ by: z.string(), at: isoTime }).nullable(),
  })
  .meta({
    id: "IssueEscalation",
    description: "The latest escalation of an alert about this issue (its escalated events, the alert log)",
  });
export type IssueEscalation = z.infer<typeof IssueEscalation>;

export const IssueDetail = IssueSummary.extend({
  from: isoTime.meta({
    description: "Start of the window used: the requested one floored to a whole UTC hour",
  }),
  to: isoTime.meta({
    description: "End of the window used (exclusive): the requested one raised to a whole UTC hour",
  }),
  closure: z.enum(["effective", "fixed", "without_fix"]).nullable(),
  regressions: count,
  statusSince: isoTime.nullable(),
  impact: IssueImpact,
  escalation: IssueEscalation.nullable().meta({
    description: "null: no alert about the issue has escalated",
  }),
  byFirmware: z.array(Breakdown("firmware")),
  byRegion: z.array(Breakdown("region")),
  byIsp: z.array(Breakdown("isp")).meta({
    description: "By each affected device's current ISP (its latest hello), not the one at the fault",
  }),
  byHardware: z.array(Breakdown("hardware")).meta({
    description: "By each affected device's current hardware revision (its latest hello)",
  }),
  concentration: Concentration,
  trend: z.object({
    bucketMs: z
      .number()
      .int()
      .positive()
      .meta({ description: "3600000 up to a 2-day window, else 86400000" }),
    buckets: z.array(z.object({ time: isoTime, occurrences: count, affectedDevices: count })).meta({
      description:
        "Hours from `from` on up to a 2-day window, else UTC days (the first and last may be partial); each bucket's `time` is its start",
    }),
  }),
  devices: z
    .object({
      total: count,
      offset: count,
      nextOffset: count.nullable().meta({ description: "devicesOffset of the next page; null on the last" }),
      items: z
        .array(z.object({ id: z.string(), occurrences: count, lastSeen: isoTime, firmware: z.string() }))
        .max(MAX_AFFECTED_DEVICES),
    })
    .meta({
      description:
        "The affected devices, a page of them: by occurrences in the window, then last seen, then id",
    }),
  history: z.array(IssueHistoryEntry),
}).meta({ id: "IssueDetail" });
export type IssueDetail = z.infer<typeof IssueDetail>;

export const DeviceIssue = z
  .object({
    id: z.string(),
    key: z.string().nullable(),
    status: z.string(),
    fixVersion: z.string().nullable(),
    advice: z
      .string()
      .nullable()
      .meta({ examples: ["fixed in firmware 7.60: advise the update"] }),
  })
  .meta({ id: "DeviceIssue" });
export type DeviceIssue = z.infer<typeof DeviceIssue>;

const window = {
  from: timeParam(`Start, inclusive; default \`to\` minus 7d; at most ${MAX_SERIES_DAYS} days before \`to\``),
  to: timeParam("End, exclusive; default now"),
};

export const IssueIdParam = z.object({
  id: IssueId.meta({ param: { name: "id", in: "path" }, example: "Xk3v0Qp9T2bY1aZc" }),
});

export const IssueListQuery = z.strictObject({
  ...window,
  kind: Label.optional().meta({ description: "Issues of this device kind", example: "modem" }),
  model: Label.optional().meta({ description: "Issues of this model" }),
  firmware: Label.optional().meta({
    description: "Issues with an occurrence on this firmware in the window",
  }),
  status: IssueStatus.optional(),
  assignedTo: z
    .string()
    .trim()
    .min(1)
    .max(128)
    .optional()
    .meta({
      description: `Issues assigned to this person; "${UNASSIGNED}" for issues assigned to nobody`,
    }),
  severity: Severity.optional().meta({
    description:
      "Issues whose worst severity in the window is at least this (info < warning < error < critical)",
  }),
  withTrend: z.stringbool().default(false).meta({
    description: "Add each issue's trend (occurrences per hour or day of the window): a sparkline",
  }),
  sort: IssueSort.default("devices").meta({
    description:
      "Descending: affected devices, occurrences, last seen, or growth (second-half minus first-half occurrences)",
  }),
  ...paging,
});

export const IssueDetailQuery = z.strictObject({
  ...window,
  devicesLimit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_AFFECTED_DEVICES)
    .default(50)
    .meta({ description: `Affected devices per page, 1-${MAX_AFFECTED_DEVICES}`, example: 50 }),
  devicesOffset: z.coerce
    .number()
    .int()
    .min(0)
    .default(0)
    .meta({ description: "Affected devices to skip: the previous page's devices.nextOffset", example: 0 }),
});

export const IssuePage = z
  .object({
    ...pageOf(IssueListItem),
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
