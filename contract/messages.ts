import { z } from "zod";

// The device contract, v1. These schemas are the single source of the TypeScript types, of the field
// tables in docs/protocol.md and of the OpenAPI document. Objects are strict: an unknown field is refused,
// so a firmware that drifts from the contract shows up at once instead of silently losing data.

/** Epoch milliseconds as the device's clock saw them. */
/** The latest time a JavaScript Date can hold, in ms: a device's ts may not be later. */
export const MAX_TS_MS = 8_640_000_000_000_000;
/** Metrics one telemetry sample may hold. */
export const MAX_SAMPLE_METRICS = 200;

export const Timestamp = z.number().int().min(0).max(MAX_TS_MS).meta({
  description: "Device time, epoch milliseconds",
});
/** Grows per device across all message kinds; with ts it identifies a message for de-duplication. */
export const Seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).meta({
  description: "Per-device sequence number, grows with every message",
});

// Labels become InfluxDB tags and query filters, so their alphabet is closed: no commas, equals signs,
// quotes, backslashes or control characters can reach the line protocol or InfluxQL through them.
export const LABEL_PATTERN = /^[\p{L}\p{N}][\p{L}\p{N} ._:+/()#-]{0,63}$/u;
export const Label = z
  .string()
  .regex(
    LABEL_PATTERN,
    "must be 1-64 letters, digits, spaces or . _ : + / ( ) # - and start with a letter or digit",
  );

/** A label the device did not give (a tag before any hello, a hello without region): the one spelling. */
export const UNKNOWN = "unknown";

/** Free text is stored as a string field; control characters other than tab and newline are refused. */
const freeText = (max: number) =>
  z
    .string()
    .max(max)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    .regex(/^[^\u0000-\u0008\u000b-\u001f\u007f]*$/, "must not contain control characters");

export const METRIC_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
/** Field names the storage uses beside the metrics. */
export const RESERVED_FIELDS = [
  "seq",
  "received_ms",
  "skew_ms",
  "clock_skewed",
  "device_ts",
  "time",
] as const;
/**
 * Tag keys fieldq writes (storage/schema.ts, ingest/to-points.ts). A metric of the same name would make
 * `"device" = 'x'` in InfluxQL match the field instead of the tag and hide every device's telemetry.
 */
export const RESERVED_TAG_KEYS = [
  "device",
  "kind",
  "model",
  "firmware",
  "region",
  "hardware",
  "isp",
  "code",
  "severity",
  "component",
  "fingerprint",
  "type",
  "reason",
  "source",
  "seq_hi",
] as const;
/** No metric may take one of these names. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([...RESERVED_TAG_KEYS, ...RESERVED_FIELDS]);
const nameMessage = "must be 1-64 letters, digits or _ and start with a letter";
/** A key of a Context: stored inside one JSON field, so it cannot collide with a tag or field. */
export const ContextKey = z.string().regex(METRIC_NAME_PATTERN, nameMessage);
export const MetricName = z
  .string()
  .regex(METRIC_NAME_PATTERN, nameMessage)
  .refine((name) => !RESERVED_NAMES.has(name), "is a reserved name");

export const DeviceKind = Label.meta({ description: "modem, router, printer, …", examples: ["modem"] });

export const Hello = z
  .strictObject({
    kind: DeviceKind,
    model: Label,
    firmware: Label,
    hardware: Label.meta({ description: "Hardware revision" }),
    serial: freeText(128).min(1),
    region: Label.optional(),
    isp: Label.optional(),
  })
  .meta({ id: "Hello", description: "Retained birth message: who the device is" });
export type Hello = z.infer<typeof Hello>;

export const TelemetrySample = z
  .strictObject({
    ts: Timestamp,
    seq: Seq,
    metrics: z
      .record(MetricName, z.union([z.number(), z.boolean()]))
      .refine(
        (m) => Object.keys(m).length > 0 && Object.keys(m).length <= MAX_SAMPLE_METRICS,
        `must hold 1-${MAX_SAMPLE_METRICS} metrics`,
      ),
  })
  .meta({ id: "TelemetrySample" });
export type TelemetrySample = z.infer<typeof TelemetrySample>;

/** A buffer of samples flushed after an offline spell. */
export const TelemetryBatch = z.array(TelemetrySample).min(1).max(1000);
/** One sample, or a buffer of them. */
export const Telemetry = z.union([TelemetrySample, TelemetryBatch]);
export type Telemetry = z.infer<typeof Telemetry>;

export const SEVERITIES = ["info", "warning", "error", "critical"] as const;
export const Severity = z.enum(SEVERITIES);
export type Severity = z.infer<typeof Severity>;

/** Flat context: values that fit in one stored JSON field. */
export const Context = z
  .record(ContextKey, z.union([freeText(256), z.number(), z.boolean()]))
  .refine((c) => Object.keys(c).length <= 32, "must hold at most 32 entries");

export const Fault = z
  .strictObject({
    ts: Timestamp,
    seq: Seq,
    code: Label.meta({
      description: "Fault code, the heart of the issue fingerprint",
      examples: ["DSL_RESYNC"],
    }),
    severity: Severity,
    message: freeText(1024).optional(),
    component: Label.optional(),
    context: Context.optional(),
  })
  .meta({ id: "Fault" });
export type Fault = z.infer<typeof Fault>;

const eventBase = { ts: Timestamp, seq: Seq };

export const RebootEvent = z.strictObject({
  ...eventBase,
  type: z.literal("reboot"),
  data: z.strictObject({ reason: Label }),
});
export const FIRMWARE_UPDATE_RESULTS = ["success", "failure", "rolled_back"] as const;
export const FirmwareUpdateEvent = z.strictObject({
  ...eventBase,
  type: z.literal("firmware_update"),
  data: z.strictObject({ from: Label, to: Label, result: z.enum(FIRMWARE_UPDATE_RESULTS) }),
});
export const PrintJobEvent = z.strictObject({
  ...eventBase,
  type: z.literal("print_job"),
  data: z.strictObject({
    result: z.enum(["success", "failed", "cancelled"]),
    job_id: Label.optional(),
    duration_s: z.number().min(0).optional(),
  }),
});
export const FeedbackEvent = z.strictObject({
  ...eventBase,
  type: z.literal("feedback"),
  data: z.strictObject({ rating: z.number().int().min(0).max(10), comment: freeText(1024).optional() }),
});
export const KNOWN_EVENT_TYPES = ["reboot", "firmware_update", "print_job", "feedback"] as const;
/** Any other event type: its data is kept as a JSON string field. */
export const OtherEvent = z.strictObject({
  ...eventBase,
  type: Label.refine((t) => !(KNOWN_EVENT_TYPES as readonly string[]).includes(t), "has a schema of its own"),
  data: Context.optional(),
});
export type RebootEvent = z.infer<typeof RebootEvent>;
export type FirmwareUpdateEvent = z.infer<typeof FirmwareUpdateEvent>;
export type PrintJobEvent = z.infer<typeof PrintJobEvent>;
export type FeedbackEvent = z.infer<typeof FeedbackEvent>;
export type OtherEvent = z.infer<typeof OtherEvent>;
/** The schema an event of this type must match; picking it first lets a refusal name the field at fault. */
export function eventSchemaFor(type: unknown) {
  switch (type) {
    case "reboot":
      return RebootEvent;
    case "firmware_update":
      return FirmwareUpdateEvent;
    case "print_job":
      return PrintJobEvent;
    case "feedback":
      return FeedbackEvent;
    default:
      return OtherEvent;
  }
}
export const Event = z
  .union([RebootEvent, FirmwareUpdateEvent, PrintJobEvent, FeedbackEvent, OtherEvent])
  .meta({ id: "Event" });
export type Event = z.infer<typeof Event>;

export const PRESENCE_STATES = ["online", "offline"] as const;
export const Status = z.strictObject({ state: z.enum(PRESENCE_STATES) }).meta({ id: "Status" });
export type Status = z.infer<typeof Status>;

export const COMMAND_TYPES = ["reboot", "recalibrate", "diagnostics"] as const;
export const CommandType = z.enum(COMMAND_TYPES);
export type CommandType = z.infer<typeof CommandType>;

export const Command = z
  .strictObject({
    type: CommandType,
    ts: Timestamp.meta({ description: "When the command was sent, sender's clock, epoch milliseconds" }),
    args: Context.optional(),
  })
  .meta({
    id: "Command",
    description: "Sent to fq/v1/{deviceId}/cmd/{commandId}: what the device should do",
  });
export type Command = z.infer<typeof Command>;

export const CommandResult = z
  .strictObject({ ts: Timestamp, seq: Seq, ok: z.boolean(), message: freeText(1024).optional() })
  .meta({ id: "CommandResult", description: "A device's answer to a command, on …/cmd/{commandId}/result" });
export type CommandResult = z.infer<typeof CommandResult>;

/** Why a message was refused; the words a device reads on its errors topic. */
export const REJECT_REASONS = [
  "too_large",
  "invalid_json",
  "invalid_schema",
  "unknown_channel",
  "storage_refused",
  /** A new metric name or label value over fieldq's cardinality limits (docs/protocol.md, Limits). */
  "over_limit",
  /** The device sent faster than its rate allows; QoS 0 messages over it are dropped. */
  "rate_limited",
] as const;
export const RejectReason = z.enum(REJECT_REASONS);
export type RejectReason = z.infer<typeof RejectReason>;

export const DeviceError = z
  .strictObject({
    ts: Timestamp.meta({ description: "Broker time, epoch milliseconds" }),
    topic: z.string(),
    reason: RejectReason,
    message: z.string().max(300),
  })
  .meta({ id: "DeviceError", description: "Sent to fq/v1/{deviceId}/errors when a message is refused" });
export type DeviceError = z.infer<typeof DeviceError>;
