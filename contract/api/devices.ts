import { z } from "zod";
import { parseDuration } from "../../config/duration.js";
import { Label, MetricName } from "../messages.js";
import { PRESENCE_STATUSES } from "../presence.js";
import { DeviceId, isoTime, pageOf, paging, timeParam } from "./common.js";
import { FaultRecord } from "./faults.js";

// Devices: the directory, one device, its summary, presence, telemetry, and silence across the fleet.

export const RECENT_FAULTS = 20;

export const RECENT_EVENTS = 20;

export const RECENT_PRESENCE = 10;

export const RECENT_RATINGS = 10;

export const PresenceStatus = z.enum(PRESENCE_STATUSES);

export const Device = z
  .object({
    id: DeviceId,
    kind: z.string().meta({ examples: ["modem"] }),
    model: z.string(),
    firmware: z.string(),
    hardware: z.string().nullable().meta({ description: "Hardware revision; null before any hello" }),
    serial: z.string().nullable().meta({ description: "null before any hello" }),
    region: z.string(),
    isp: z.string().nullable(),
    lastSeen: isoTime
      .nullable()
      .meta({ description: "Broker time of the newest message or presence change" }),
    online: z.boolean().nullable().meta({ description: "Last presence state; null when never reported" }),
    lastReport: isoTime.nullable().meta({
      description:
        "The newest report on the device's own clock: the ts of its newest telemetry, fault, event or command result as stored (the receive time for a clock outside the skew bounds); the broker time of its newest hello or status when it sent nothing timestamped",
    }),
    status: PresenceStatus.meta({
      description:
        "silent: nothing received for more than factor × expectedIntervalS, or, once its connection closed after its newest report, that report (lastReport) older than that, whatever presence says; offline: not silent, and its newest presence change is an offline no report has followed; online: otherwise (a device delivering an old backlog is online)",
    }),
    expectedIntervalS: z.number().min(0).meta({ description: "How often the device is expected to report" }),
    intervalSource: z.enum(["configured", "learned", "default"]).meta({
      description:
        "configured per model; learned: the median of its recent gap_ms samples; default: too few samples",
    }),
  })
  .meta({ id: "Device", description: 'Metadata from the device\'s latest hello ("unknown" before any)' });
export type Device = z.infer<typeof Device>;

export const DeviceDetail = Device.extend({ recentFaults: z.array(FaultRecord).max(RECENT_FAULTS) }).meta({
  id: "DeviceDetail",
  description: `A device with its ${RECENT_FAULTS} most recent faults, newest first`,
});
export type DeviceDetail = z.infer<typeof DeviceDetail>;

export const TELEMETRY_FNS = ["mean", "min", "max", "last"] as const;

export const TelemetryFn = z.enum(TELEMETRY_FNS);

export const TelemetrySeries = z
  .object({
    device: DeviceId,
    metric: z.string(),
    fn: TelemetryFn,
    from: isoTime,
    to: isoTime,
    everyMs: z.number().int().positive(),
    points: z.array(
      z.object({
        time: isoTime.meta({ description: "Start of the bucket" }),
        value: z
          .union([z.number(), z.boolean()])
          .nullable()
          .meta({ description: "null for an empty bucket" }),
      }),
    ),
  })
  .meta({ id: "TelemetrySeries" });
export type TelemetrySeries = z.infer<typeof TelemetrySeries>;

export const PresenceRecord = z
  .object({
    time: isoTime.meta({ description: "Broker time" }),
    state: z.enum(["online", "offline"]),
    source: z.string().meta({
      description: "broker: connect or disconnect; device: its status message; will: its last will",
      examples: ["will"],
    }),
  })
  .meta({ id: "PresenceRecord" });
export type PresenceRecord = z.infer<typeof PresenceRecord>;

export const EventRecord = z
  .object({
    type: z.string().meta({ examples: ["firmware_update"] }),
    ts: isoTime.meta({ description: "Device time" }),
    receivedAt: isoTime.meta({ description: "Broker time" }),
    data: z.record(z.string(), z.unknown()).meta({
      description:
        "The event's fields as a JSON object: from, to, result; reason; rating, comment; an unknown type's own data",
    }),
  })
  .meta({ id: "EventRecord" });
export type EventRecord = z.infer<typeof EventRecord>;

export const Rating = z.object({
  time: isoTime.meta({ description: "Device time" }),
  receivedAt: isoTime.meta({ description: "Broker time" }),
  rating: z.number(),
  comment: z.string().nullable(),
});

export const DeviceSummary = Device.extend({
  recentPresence: z.array(PresenceRecord).max(RECENT_PRESENCE),
  metrics: z
    .object({
      since: isoTime,
      values: z.record(z.string(), z.union([z.number(), z.boolean(), z.string()])),
    })
    .meta({ description: "The last value of each telemetry metric reported since `since`" }),
  recentFaults: z.array(FaultRecord).max(RECENT_FAULTS),
  recentEvents: z.array(EventRecord).max(RECENT_EVENTS),
  feedback: z.object({
    count: z.number().int().min(0),
    mean: z
      .number()
      .nullable()
      .meta({ description: "Mean of every rating the device sent; null without any" }),
    recent: z.array(Rating).max(RECENT_RATINGS),
  }),
});
export type DeviceSummary = z.infer<typeof DeviceSummary>;

/** An open issue that affects a device, as the issue store describes it (IssueSummary fits); extra fields pass through. */
export const AffectingIssue = z
  .looseObject({
    id: z.string().meta({ description: "The issue's fingerprint" }),
    status: z.string().meta({ examples: ["investigating"] }),
  })
  .meta({ id: "AffectingIssue" });
export type AffectingIssue = z.infer<typeof AffectingIssue>;

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

const rate = {
  seen: z.number().int().min(0).meta({ description: "Devices with an activity hour in the window" }),
  silent: z.number().int().min(0).meta({ description: "Of those, silent at the end of the window" }),
  rate: z.number().min(0).max(1).meta({ description: "silent / seen" }),
};

export const SilentAfterUpdate = z
  .object({
    device: DeviceId,
    model: z.string(),
    from: z.string(),
    to: z.string(),
    updatedAt: isoTime.meta({
      description: "Device time of its last successful firmware_update event (as stored, like lastReport)",
    }),
    lastReport: isoTime.meta({
      description: "Its newest report on its own clock, as the device's lastReport",
    }),
  })
  .meta({ id: "SilentAfterUpdate" });
export type SilentAfterUpdate = z.infer<typeof SilentAfterUpdate>;

export const SilenceReport = z
  .object({
    from: isoTime,
    to: isoTime.meta({ description: "Silence is judged at this instant" }),
    factor: z.number(),
    byModel: z.array(z.object({ model: z.string(), ...rate })),
    byFirmware: z.array(z.object({ model: z.string(), firmware: z.string(), ...rate })),
    afterUpdate: z.object({
      withinS: z.number().int(),
      devices: z.array(SilentAfterUpdate),
      byModel: z.array(z.object({ model: z.string(), count: z.number().int() })),
      byFirmware: z.array(
        z.object({
          model: z.string(),
          firmware: z.string().meta({ description: "The update's `to`" }),
          count: z.number().int(),
        }),
      ),
    }),
  })
  .meta({
    id: "SilenceReport",
    description:
      "Silent rates per model and per model + firmware (the device's tags in its newest activity hour of the window), and the silent devices whose last report came within 24 h after their last successful firmware update, both on the device's clock",
  });
export type SilenceReport = z.infer<typeof SilenceReport>;

export const DeviceIdParam = z.object({
  id: DeviceId.meta({ param: { name: "id", in: "path" }, example: "modem-0001" }),
});

export const DeviceListQuery = z.strictObject({
  kind: Label.optional().meta({ description: "Device kind from the latest hello", example: "modem" }),
  model: Label.optional(),
  firmware: Label.optional(),
  status: PresenceStatus.optional().meta({
    description: "online, offline or silent (no report for more than factor × the expected interval)",
    example: "silent",
  }),
  serial: z
    .string()
    .trim()
    .min(1)
    .max(128)
    .optional()
    .meta({ description: "Exactly this serial number (from the latest hello)", example: "M7590-FB05945B" }),
  q: z.string().trim().min(1).max(128).optional().meta({
    description: "Free text: devices whose id, serial or model contains it, case-insensitively",
    example: "fb0594",
  }),
  ...paging,
});

export const PresenceQueryParams = z.strictObject({
  from: timeParam("Start, inclusive; default `to` minus 7d"),
  to: timeParam("End, exclusive; default now"),
  ...paging,
});

export const SilenceQueryParams = z.strictObject({
  from: timeParam("Start of the window devices must have reported in, inclusive; default `to` minus 7d"),
  to: timeParam("End, exclusive, and the instant silence is judged at; default now"),
});

export const TelemetryQueryParams = z.strictObject({
  metric: MetricName.meta({ description: "Metric (field) name", example: "snr_margin_db" }),
  fn: TelemetryFn.default("mean").meta({
    description: "Aggregate per bucket; min, max and mean need a number",
  }),
  from: timeParam("Start, inclusive; default `to` minus 6h"),
  to: timeParam("End, exclusive; default now"),
  every: z
    .string()
    .refine((text) => (parseDuration(text) ?? 0) > 0, "must be a duration such as 30s, 5m, 1h or 1d")
    .optional()
    .meta({
      description:
        "Bucket width, at most 84006d (1970 to 2200); default the smallest of 1s … 1w that gives at most 500 buckets",
    }),
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
