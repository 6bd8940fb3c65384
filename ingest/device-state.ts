import { median } from "../analytics/silence.js";
import { type FirmwareUpdateEvent, UNKNOWN } from "../contract/messages.js";
import { MEASUREMENTS } from "../storage/schema.js";
import type { DecodedMessage } from "./decode.js";
import type { DeviceMetaRecord, JournalRecord } from "./journal.js";

// When the ingest writes a device's device_state point, and what it holds (docs/storage.md "Read models").
// Pure: the ingest passes in what it saw and the time; ingest/to-points.ts builds the point.

export type PresenceSource = "broker" | "device" | "will";

export type Presence = { state: "online" | "offline"; atMs: number; source: PresenceSource };

/** What the ingest knows of a device beyond its stored record: empty again after a restart. */
export type DeviceActivity = {
  /** Broker time of the newest message the device sent itself. */
  lastReportMs?: number;
  /** Device time (as stored) of its newest timestamped report: what silence is judged from. */
  lastReportDeviceMs?: number;
  /** Broker time of the newest message or presence change of any source. */
  lastSeenMs?: number;
  /** The newest presence change. */
  presence?: Presence;
  /** When the device's state point was last made; undefined: not since this process started. */
  writtenMs?: number;
  /** The last report that point holds. */
  writtenReportMs?: number;
};

/** One thing the ingest received for a device, at broker time atMs. */
export type Observation = {
  atMs: number;
  /** A message the device sent itself (not a connect or disconnect the broker saw, not its will). */
  report: boolean;
  /** The newest time its timestamped points are stored at (its ts, or atMs for a clock not trusted). */
  deviceMs?: number;
  presence?: Presence;
  /** The message changed the device's metadata: a hello that differs, a successful firmware update. */
  metaChanged?: boolean;
  /** The message reports a successful firmware update, which the point keeps (even one the hello told first). */
  update?: boolean;
};

const later = (known: number | undefined, ms: number) => (known === undefined ? ms : Math.max(known, ms));

/**
 * The device's activity after the observation, and whether a state point is written now: at once for its
 * first observation since start, a metadata change or a presence change; for a report, once the stored
 * last report is everyMs older than this one (0: every time). So the stored last report is never more than
 * everyMs behind the newest, and a device back after a while has its first report stored at once.
 */
export function observe(
  activity: DeviceActivity,
  seen: Observation,
  everyMs: number,
): { activity: DeviceActivity; write: boolean } {
  const next: DeviceActivity = { ...activity, lastSeenMs: later(activity.lastSeenMs, seen.atMs) };
  if (seen.report) next.lastReportMs = later(activity.lastReportMs, seen.atMs);
  if (seen.deviceMs !== undefined)
    next.lastReportDeviceMs = later(activity.lastReportDeviceMs, seen.deviceMs);
  if (seen.presence !== undefined && (activity.presence?.atMs ?? -1) <= seen.presence.atMs)
    next.presence = seen.presence;
  const stored = activity.writtenReportMs;
  const write =
    activity.writtenMs === undefined ||
    seen.metaChanged === true ||
    seen.update === true ||
    seen.presence !== undefined ||
    (seen.report &&
      (everyMs === 0 ||
        stored === undefined ||
        seen.atMs - stored >= everyMs ||
        // A clock stepped back must not hold the writes off until it catches up.
        seen.atMs < stored));
  if (write) {
    next.writtenMs = seen.atMs;
    if (next.lastReportMs !== undefined) next.writtenReportMs = next.lastReportMs;
  }
  return { activity: next, write };
}

/** Points that carry the device's own time: a hello and a status are stored at receive time. */
const TIMESTAMPED: ReadonlySet<string> = new Set(
  (["telemetry", "fault", "event", "command"] as const).map((k) => MEASUREMENTS[k].name),
);

/** The newest time the message's timestamped points are stored at (device time, or receive time if skewed). */
export function storedDeviceMs(records: readonly JournalRecord[]): number | undefined {
  let newestMs: number | undefined;
  for (const { point } of records) {
    if (!TIMESTAMPED.has(point.measurement)) continue;
    const ms = Number(BigInt(point.timeNs) / 1_000_000n);
    newestMs = later(newestMs, ms);
  }
  return newestMs;
}

/**
 * What the ingest saw of a message received at atMs: a status message is the device's own report unless the
 * broker published it as the device's will; deviceMs from the points it is stored as.
 */
export function observationOf(
  message: DecodedMessage,
  records: readonly JournalRecord[],
  atMs: number,
  source: PresenceSource,
): Observation {
  if (message.channel === "status")
    return { atMs, report: source !== "will", presence: { state: message.body.state, atMs, source } };
  const seen: Observation = { atMs, report: true };
  const deviceMs = storedDeviceMs(records);
  if (deviceMs !== undefined) seen.deviceMs = deviceMs;
  if (successfulUpdate(message) !== undefined) seen.update = true;
  return seen;
}

/** The data of a successful firmware_update event, or undefined for any other message. */
export function successfulUpdate(message: DecodedMessage): FirmwareUpdateEvent["data"] | undefined {
  if (message.channel !== "event" || message.body.type !== "firmware_update") return undefined;
  const { data } = message.body as FirmwareUpdateEvent;
  return data.result === "success" ? data : undefined;
}

/** How many gap samples a device keeps: a day of hourly samples. */
export const GAP_SAMPLES = 24;

/** The device's recent gap samples with a new one, the oldest dropped past GAP_SAMPLES. */
export const withGap = (gapsMs: readonly number[] | undefined, gapMs: number): number[] =>
  [...(gapsMs ?? []), gapMs].slice(-GAP_SAMPLES);

/** The device's cadence as stored: the median of its gap samples and how many there are. */
export function cadenceOf(
  gapsMs: readonly number[] | undefined,
): { medianMs: number; samples: number } | undefined {
  const medianMs = median(gapsMs ?? []);
  return medianMs === undefined ? undefined : { medianMs, samples: gapsMs?.length ?? 0 };
}

/** The hello fields of device_state, in the record's names. */
export const HELLO_FIELDS = ["kind", "model", "firmware", "hardware", "serial", "region", "isp"] as const;

/** A hello field's value as device_state stores it: undefined when unknown (the field is left out). */
export function helloValue(meta: DeviceMetaRecord, field: (typeof HELLO_FIELDS)[number]): string | undefined {
  const value = meta[field];
  return value === "" || value === UNKNOWN ? undefined : value;
}

/**
 * Hello fields the previous metadata knew and the new one does not. InfluxDB keeps the fields a rewrite of
 * a point leaves out, so these are written as "unknown" once, or the old value would stay.
 */
export const clearedHelloFields = (
  before: DeviceMetaRecord | undefined,
  after: DeviceMetaRecord,
): Array<(typeof HELLO_FIELDS)[number]> =>
  before === undefined
    ? []
    : HELLO_FIELDS.filter((f) => helloValue(before, f) !== undefined && helloValue(after, f) === undefined);
