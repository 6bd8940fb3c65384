import { z } from "zod";
import { parseDuration } from "../config/duration.js";
import { Label, MetricName } from "../contract/messages.js";
import {
  Device,
  DeviceId,
  DeviceSummary,
  FAULT_FILTER_FIELDS,
  FaultRecord,
  MAX_PAGE,
  PresenceRecord,
  PresenceStatus,
  TelemetryFn,
} from "../storage/fleet-store.js";

// Request and response schemas of the HTTP API; the records themselves come from storage/fleet-store.ts.

export const DEFAULT_PAGE = 100;

export const paging = {
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE)
    .default(DEFAULT_PAGE)
    .meta({ description: `Page size, 1-${MAX_PAGE}`, example: DEFAULT_PAGE }),
  offset: z.coerce
    .number()
    .int()
    .min(0)
    .default(0)
    .meta({ description: "Items to skip: the previous page's nextOffset", example: 0 }),
};

const time = (description: string) =>
  z.iso.datetime({ offset: true }).optional().meta({ description, example: "2025-01-31T12:00:00Z" });

export const DeviceIdParam = z.object({
  id: DeviceId.meta({ param: { name: "id", in: "path" }, example: "modem-0001" }),
});

export const DeviceListQuery = z.object({
  kind: Label.optional().meta({ description: "Device kind from the latest hello", example: "modem" }),
  model: Label.optional(),
  firmware: Label.optional(),
  status: PresenceStatus.optional().meta({
    description: "online, offline or silent (no report for more than factor × the expected interval)",
    example: "silent",
  }),
  ...paging,
});

export const PresenceQueryParams = z.object({
  from: time("Start, inclusive; default `to` minus 7d"),
  to: time("End, exclusive; default now"),
  ...paging,
});

export const SilenceQueryParams = z.object({
  from: time("Start of the window devices must have reported in, inclusive; default `to` minus 7d"),
  to: time("End, exclusive, and the instant silence is judged at; default now"),
});

export const TelemetryQueryParams = z.object({
  metric: MetricName.meta({ description: "Metric (field) name", example: "snr_margin_db" }),
  fn: TelemetryFn.default("mean").meta({
    description: "Aggregate per bucket; min, max and mean need a number",
  }),
  from: time("Start, inclusive; default `to` minus 6h"),
  to: time("End, exclusive; default now"),
  every: z
    .string()
    .refine((text) => (parseDuration(text) ?? 0) > 0, "must be a duration such as 30s, 5m, 1h or 1d")
    .optional()
    .meta({
      description:
        "Bucket width, at most 84006d (1970 to 2200); default the smallest of 1s … 1w that gives at most 500 buckets",
    }),
});

export const FaultListQuery = z.object({
  from: time("Start, inclusive; default `to` minus 7d"),
  to: time("End, exclusive; default now"),
  ...FAULT_FILTER_FIELDS,
  ...paging,
});

export const pageOf = <T extends z.ZodType>(item: T) => ({
  items: z.array(item),
  limit: z.number().int(),
  offset: z.number().int(),
  nextOffset: z
    .number()
    .int()
    .nullable()
    .meta({ description: "offset of the next page; null on the last page" }),
});

export const DevicePage = z.object({ ...pageOf(Device), total: z.number().int() }).meta({ id: "DevicePage" });
export type DevicePage = z.infer<typeof DevicePage>;

export const PresencePage = z
  .object({
    ...pageOf(PresenceRecord),
    from: z.iso.datetime(),
    to: z.iso.datetime().meta({ description: "Keep it fixed while paging" }),
  })
  .meta({ id: "PresencePage" });
export type PresencePage = z.infer<typeof PresencePage>;

/** An open issue that affects a device, as the issue store describes it (IssueSummary fits); extra fields pass through. */
export const AffectingIssue = z
  .looseObject({
    id: z.string().meta({ description: "The issue's fingerprint" }),
    status: z.string().meta({ examples: ["investigating"] }),
  })
  .meta({ id: "AffectingIssue" });
export type AffectingIssue = z.infer<typeof AffectingIssue>;

/** The open issues with an occurrence on the device. */
export type IssuesForDevice = (deviceId: string) => Promise<AffectingIssue[]>;

export const DeviceSummaryResponse = DeviceSummary.extend({
  issues: z
    .object({
      available: z
        .boolean()
        .meta({ description: "false when this API runs without an issue store: items is then empty" }),
      items: z.array(AffectingIssue),
    })
    .meta({ description: "Open issues that affect the device" }),
}).meta({ id: "DeviceSummary", description: "What the support desk needs of one device, on one page" });
export type DeviceSummaryResponse = z.infer<typeof DeviceSummaryResponse>;

export const FaultPage = z
  .object({
    ...pageOf(FaultRecord),
    from: z.iso.datetime(),
    to: z.iso
      .datetime()
      .meta({ description: "Keep it fixed while paging, so new faults do not shift pages" }),
  })
  .meta({ id: "FaultPage" });
export type FaultPage = z.infer<typeof FaultPage>;

export const Health = z
  .object({
    status: z.enum(["ok", "unavailable"]),
    influx: z.object({ reachable: z.boolean(), latencyMs: z.number().int().min(0) }),
    journalBacklog: z.number().int().nullable().meta({ description: "null when the broker runs elsewhere" }),
    connectedDevices: z
      .number()
      .int()
      .nullable()
      .meta({ description: "null when the broker runs elsewhere" }),
  })
  .meta({ id: "Health" });
export type Health = z.infer<typeof Health>;
