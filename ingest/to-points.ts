import { DEFAULT_FINGERPRINT_RULES, type FingerprintRules, fingerprint } from "../analytics/fingerprint.js";
import type {
  Event,
  FeedbackEvent,
  FirmwareUpdateEvent,
  OtherEvent,
  PrintJobEvent,
  RebootEvent,
  RejectReason,
} from "../contract/messages.js";
import { UNKNOWN } from "../contract/messages.js";
import { floorHour } from "../contract/time.js";
import {
  DEVICE_TAGS,
  deviceStateTimeNs,
  type FieldValue,
  faultListTimeNs,
  MEASUREMENTS,
  messageIdentity,
  metricValue,
  type Point,
  pointTimeNs,
} from "../storage/schema.js";
import type { DecodedMessage } from "./decode.js";
import {
  cadenceOf,
  type DeviceActivity,
  HELLO_FIELDS,
  helloValue,
  type PresenceSource,
  successfulUpdate,
} from "./device-state.js";
import type { DeviceMetaRecord, JournalRecord } from "./journal.js";

export type { PresenceSource } from "./device-state.js";

// A decoded message → the points it is stored as (docs/storage.md). Pure: time and metadata come in.

export type PointContext = {
  meta: DeviceMetaRecord | undefined;
  receivedMs: number;
  clockSkewFutureMs: number;
  clockSkewPastMs: number;
  /** Separates points stamped with receive time that share a millisecond. */
  discriminator: number;
  /** Who published a status message: the device itself, or the broker on its behalf (its last will). */
  statusSource?: PresenceSource;
  /** How faults group into issues; default kind + model + code. */
  fingerprintRules?: FingerprintRules;
};

export type MessagePoints = {
  records: JournalRecord[];
  /** How many of the records carry a device time too far off to trust. */
  skewed: number;
  /** The device's metadata after this message, when it changed. */
  meta?: DeviceMetaRecord;
};

export const unknownMeta = (): DeviceMetaRecord => ({
  kind: UNKNOWN,
  model: UNKNOWN,
  firmware: UNKNOWN,
  hardware: UNKNOWN,
  region: UNKNOWN,
  isp: UNKNOWN,
  serial: "",
});

/**
 * The device tags a stored point carries, "unknown" where it lacks one. The read models keep some of them
 * as string fields instead (fault_list's device and region, device_state's all), which count as well.
 */
export const deviceTagsOf = (point: Point): Record<string, string> =>
  Object.fromEntries(
    DEVICE_TAGS.map((tag) => {
      const field = point.fields[tag];
      return [tag, point.tags[tag] ?? (typeof field === "string" ? field : UNKNOWN)];
    }),
  );

export function deviceTags(deviceId: string, meta: DeviceMetaRecord | undefined): Record<string, string> {
  const m = meta ?? unknownMeta();
  return { device: deviceId, kind: m.kind, model: m.model, firmware: m.firmware, region: m.region };
}

const int = (n: number): FieldValue => ({ int: Math.trunc(n) });

/** Identity (time and seq tag) and bookkeeping fields of a message that carries its own ts and seq. */
function stamp(
  ts: number,
  seq: number,
  ctx: PointContext,
): { timeNs: string; tags: Record<string, string>; fields: Record<string, FieldValue>; skewed: boolean } {
  const skew = ctx.receivedMs - ts;
  const skewed = skew > ctx.clockSkewPastMs || -skew > ctx.clockSkewFutureMs;
  const fields: Record<string, FieldValue> = {
    seq: int(seq),
    received_ms: int(ctx.receivedMs),
    skew_ms: int(skew),
  };
  if (skewed) {
    fields.clock_skewed = true;
    fields.device_ts = int(ts);
  }
  return { ...messageIdentity(skewed ? ctx.receivedMs : ts, seq), fields, skewed };
}

function metricValues(metrics: Record<string, number | boolean>): Record<string, FieldValue> {
  const fields: Record<string, FieldValue> = {};
  for (const name in metrics) {
    if (!Object.hasOwn(metrics, name)) continue;
    const value = metricValue(metrics[name] as number | boolean);
    // Defined, not assigned, so even a key such as __proto__ stays a metric.
    if (name === "__proto__")
      Object.defineProperty(fields, name, { value, enumerable: true, writable: true, configurable: true });
    else fields[name] = value;
  }
  return fields;
}

// OtherEvent's type is any label, so a switch on type cannot narrow the union by itself.
function eventFields(event: Event): Record<string, FieldValue> {
  switch (event.type) {
    case "reboot":
      return { reason: (event as RebootEvent).data.reason };
    case "firmware_update": {
      const { from, to, result } = (event as FirmwareUpdateEvent).data;
      return { from, to, result };
    }
    case "print_job": {
      const data = (event as PrintJobEvent).data;
      const fields: Record<string, FieldValue> = { result: data.result };
      if (data.job_id !== undefined) fields.job_id = data.job_id;
      if (data.duration_s !== undefined) fields.duration_s = data.duration_s;
      return fields;
    }
    case "feedback": {
      const data = (event as FeedbackEvent).data;
      const fields: Record<string, FieldValue> = { rating: data.rating };
      if (data.comment !== undefined) fields.comment = data.comment;
      return fields;
    }
    default: {
      const data = (event as OtherEvent).data;
      return data !== undefined ? { data: JSON.stringify(data) } : {};
    }
  }
}

/** A message's identity for de-duplication of redeliveries. A function here, not a closure per message. */
const dedupeKey = (deviceId: string, channel: string, seq: number, ts: number) =>
  `${deviceId}/${channel}/${seq}/${ts}`;

export function messagePoints(message: DecodedMessage, ctx: PointContext): MessagePoints {
  const { deviceId } = message;
  const tags = deviceTags(deviceId, ctx.meta);
  switch (message.channel) {
    case "hello": {
      const h = message.body;
      const meta: DeviceMetaRecord = {
        kind: h.kind,
        model: h.model,
        firmware: h.firmware,
        hardware: h.hardware,
        region: h.region ?? UNKNOWN,
        isp: h.isp ?? UNKNOWN,
        serial: h.serial,
      };
      const point: Point = {
        measurement: MEASUREMENTS.device.name,
        rp: MEASUREMENTS.device.rp,
        tags: { ...deviceTags(deviceId, meta), hardware: meta.hardware, isp: meta.isp },
        fields: { serial: h.serial, received_ms: int(ctx.receivedMs) },
        timeNs: pointTimeNs(ctx.receivedMs, ctx.discriminator),
      };
      return { records: [{ point }], skewed: 0, meta };
    }
    case "telemetry": {
      let skewed = 0;
      const records: JournalRecord[] = [];
      for (const sample of message.body) {
        const s = stamp(sample.ts, sample.seq, ctx);
        if (s.skewed) skewed += 1;
        const fields = metricValues(sample.metrics);
        for (const key in s.fields) fields[key] = s.fields[key] as FieldValue;
        records.push({
          dedupe: dedupeKey(deviceId, message.channel, sample.seq, sample.ts),
          point: {
            measurement: MEASUREMENTS.telemetry.name,
            rp: MEASUREMENTS.telemetry.rp,
            tags: { ...tags, ...s.tags },
            fields,
            timeNs: s.timeNs,
          },
        });
      }
      return { records, skewed };
    }
    case "fault": {
      const f = message.body;
      const s = stamp(f.ts, f.seq, ctx);
      // device_id repeats the tag as a field, so InfluxQL can count the distinct devices an issue affects.
      const fields: Record<string, FieldValue> = { ...s.fields, device_id: deviceId };
      if (f.message !== undefined) fields.message = f.message;
      if (f.context !== undefined) fields.context = JSON.stringify(f.context);
      const issue = fingerprint(
        {
          kind: tags.kind ?? UNKNOWN,
          model: tags.model ?? UNKNOWN,
          code: f.code,
          component: f.component,
          context: f.context,
        },
        ctx.fingerprintRules ?? DEFAULT_FINGERPRINT_RULES,
      );
      fields.fingerprint_key = issue.key;
      const faultTags: Record<string, string> = {
        ...tags,
        ...s.tags,
        code: f.code,
        severity: f.severity,
        fingerprint: issue.id,
      };
      if (f.component !== undefined) faultTags.component = f.component;
      const point: Point = {
        measurement: MEASUREMENTS.fault.name,
        rp: MEASUREMENTS.fault.rp,
        tags: faultTags,
        fields,
        timeNs: s.timeNs,
      };
      // The fault list's copy has its own identity, so de-duplication keeps both or neither.
      const listed = {
        dedupe: `${deviceId}/${MEASUREMENTS.faultList.name}/${f.seq}/${f.ts}`,
        point: faultListPoint(point, deviceId, f.seq),
      };
      return {
        records: [{ dedupe: dedupeKey(deviceId, message.channel, f.seq, f.ts), point }, listed],
        skewed: s.skewed ? 1 : 0,
      };
    }
    case "event": {
      const e = message.body;
      const s = stamp(e.ts, e.seq, ctx);
      const point: Point = {
        measurement: MEASUREMENTS.event.name,
        rp: MEASUREMENTS.event.rp,
        tags: { ...tags, ...s.tags, type: e.type },
        fields: { ...eventFields(e), ...s.fields },
        timeNs: s.timeNs,
      };
      const result: MessagePoints = {
        records: [{ dedupe: dedupeKey(deviceId, message.channel, e.seq, e.ts), point }],
        skewed: s.skewed ? 1 : 0,
      };
      // A successful update changes what every later point of the device is tagged with.
      if (e.type === "firmware_update" && (e as FirmwareUpdateEvent).data.result === "success") {
        result.meta = { ...(ctx.meta ?? unknownMeta()), firmware: (e as FirmwareUpdateEvent).data.to };
      }
      return result;
    }
    case "status":
      return {
        records: [{ point: presencePoint(tags, ctx, message.body.state, ctx.statusSource ?? "device") }],
        skewed: 0,
      };
    case "cmd-result": {
      const c = message.body;
      const s = stamp(c.ts, c.seq, ctx);
      const fields: Record<string, FieldValue> = { command_id: message.commandId, ok: c.ok, ...s.fields };
      if (c.message !== undefined) fields.message = c.message;
      const point: Point = {
        measurement: MEASUREMENTS.command.name,
        rp: MEASUREMENTS.command.rp,
        tags: { ...tags, ...s.tags },
        fields,
        timeNs: s.timeNs,
      };
      return {
        records: [{ dedupe: dedupeKey(deviceId, message.channel, c.seq, c.ts), point }],
        skewed: s.skewed ? 1 : 0,
      };
    }
  }
}

/** Tags of fault_list: the fault list's filters, and nothing per device. */
const FAULT_LIST_TAGS = ["kind", "model", "firmware", "code", "severity"] as const;

/**
 * A fault point again for the fault list: tagged only by what the list filters on, so a page reads a few
 * hundred series instead of one per device; the device, region, fingerprint and component become fields.
 */
export function faultListPoint(fault: Point, deviceId: string, seq: number): Point {
  const tags: Record<string, string> = {};
  for (const tag of FAULT_LIST_TAGS) tags[tag] = fault.tags[tag] ?? UNKNOWN;
  const { device_id: _, ...own } = fault.fields;
  const fields: Record<string, FieldValue> = {
    device: deviceId,
    region: fault.tags.region ?? UNKNOWN,
    fingerprint: fault.tags.fingerprint ?? UNKNOWN,
    ...own,
  };
  if (fault.tags.component !== undefined) fields.component = fault.tags.component;
  const ms = Number(BigInt(fault.timeNs) / 1_000_000n);
  return {
    measurement: MEASUREMENTS.faultList.name,
    rp: MEASUREMENTS.faultList.rp,
    tags,
    fields,
    timeNs: faultListTimeNs(ms, seq, deviceId),
  };
}

/** A device's successful firmware update: broker time, and device time as its event is stored. */
export type FirmwareUpdate = { atMs: number; deviceMs?: number | undefined; from: string; to: string };

/**
 * The update a message reports, when it is a successful firmware_update event; `at` is when it was received
 * and the time its point is stored at (the ingest's Observation).
 */
export function firmwareUpdateOf(
  message: DecodedMessage,
  at: { atMs: number; deviceMs?: number | undefined },
): FirmwareUpdate | undefined {
  const data = successfulUpdate(message);
  if (data === undefined) return undefined;
  const update: FirmwareUpdate = { atMs: at.atMs, from: data.from, to: data.to };
  if (at.deviceMs !== undefined) update.deviceMs = at.deviceMs;
  return update;
}

/**
 * A device's device_state point (docs/storage.md "Read models"): at its slot, every field it knows, the
 * ones it does not know left out (InfluxDB keeps what an earlier point of the slot had), except `cleared`
 * hello fields, written as "unknown" so an old value does not stay.
 */
export function deviceStatePoint(input: {
  deviceId: string;
  record: DeviceMetaRecord & { slot: number };
  activity: DeviceActivity;
  updatedMs: number;
  cleared?: readonly (typeof HELLO_FIELDS)[number][];
  /** A successful firmware update this message reported: kept in the point until the next one. */
  update?: FirmwareUpdate | undefined;
}): Point {
  const { record, activity } = input;
  const fields: Record<string, FieldValue> = { device: input.deviceId };
  for (const field of HELLO_FIELDS) {
    const value = helloValue(record, field);
    if (value !== undefined) fields[field] = value;
  }
  for (const field of input.cleared ?? []) fields[field] = UNKNOWN;
  if (record.firstMs !== undefined) fields.first_ms = int(record.firstMs);
  if (activity.lastReportMs !== undefined) fields.last_report_ms = int(activity.lastReportMs);
  if (activity.lastReportDeviceMs !== undefined)
    fields.last_report_device_ms = int(activity.lastReportDeviceMs);
  if (activity.lastSeenMs !== undefined) fields.last_seen_ms = int(activity.lastSeenMs);
  if (activity.presence !== undefined) {
    fields.presence = activity.presence.state;
    fields.presence_ms = int(activity.presence.atMs);
    fields.presence_source = activity.presence.source;
  }
  const cadence = cadenceOf(record.gapsMs);
  if (cadence !== undefined) {
    // Always a float, even when the median is a whole number: the field's type is fixed by fieldq.
    fields.gap_median_ms = cadence.medianMs;
    fields.gap_samples = int(cadence.samples);
  }
  if (input.update !== undefined) {
    fields.update_ms = int(input.update.atMs);
    if (input.update.deviceMs !== undefined) fields.update_device_ms = int(input.update.deviceMs);
    fields.update_from = input.update.from;
    fields.update_to = input.update.to;
  }
  fields.updated_ms = int(input.updatedMs);
  return {
    measurement: MEASUREMENTS.deviceState.name,
    rp: MEASUREMENTS.deviceState.rp,
    tags: {},
    fields,
    timeNs: deviceStateTimeNs(record.slot),
  };
}

type ReceiveTime = Pick<PointContext, "receivedMs" | "discriminator">;

export function presencePoint(
  tags: Record<string, string>,
  ctx: ReceiveTime,
  state: "online" | "offline",
  source: PresenceSource,
): Point {
  return {
    measurement: MEASUREMENTS.presence.name,
    rp: MEASUREMENTS.presence.rp,
    tags: { ...tags, source },
    fields: { state, received_ms: int(ctx.receivedMs) },
    timeNs: pointTimeNs(ctx.receivedMs, ctx.discriminator),
  };
}

export function rejectionPoint(
  tags: Record<string, string>,
  ctx: ReceiveTime,
  rejection: { reason: RejectReason; topic: string; detail: string; bytes: number },
): Point {
  return {
    measurement: MEASUREMENTS.rejection.name,
    rp: MEASUREMENTS.rejection.rp,
    tags: { ...tags, reason: rejection.reason },
    fields: {
      topic: rejection.topic.slice(0, 256),
      detail: rejection.detail.slice(0, 300),
      bytes: int(rejection.bytes),
      received_ms: int(ctx.receivedMs),
    },
    timeNs: pointTimeNs(ctx.receivedMs, ctx.discriminator),
  };
}

/** Measurements whose points mean the device was up and reporting at their time. */
const EXPOSING: ReadonlySet<string> = new Set([
  MEASUREMENTS.telemetry.name,
  MEASUREMENTS.fault.name,
  MEASUREMENTS.event.name,
  MEASUREMENTS.command.name,
]);

/**
 * The device-hours a message's points show the device reporting in, as activity points. Written again for
 * the same hour they land on themselves (same tags, same time), so repeating one costs nothing but a write.
 */
/** An hour a device reported in, with its first and last report in this batch of records. */
export type ExposedHour = { hourMs: number; tags: Record<string, string>; firstMs: number; lastMs: number };

/** A point's time in whole ms: its digits but the last six, or BigInt's division for anything else. */
function msOfTimeNs(timeNs: string): number {
  if (timeNs.length > 6 && timeNs.length < 22 && /^[1-9][0-9]*$/.test(timeNs))
    return Number(timeNs.slice(0, -6));
  return Number(BigInt(timeNs) / 1_000_000n);
}

export function exposureHours(records: readonly JournalRecord[]): ExposedHour[] {
  // Most messages hold one point that exposes: its hour, without the map.
  if (records.length === 1) {
    const { point } = records[0] as JournalRecord;
    if (!EXPOSING.has(point.measurement)) return [];
    const ms = msOfTimeNs(point.timeNs);
    return [{ hourMs: floorHour(ms), tags: deviceTagsOf(point), firstMs: ms, lastMs: ms }];
  }
  const hours = new Map<string, ExposedHour>();
  for (const { point } of records) {
    if (!EXPOSING.has(point.measurement)) continue;
    const ms = msOfTimeNs(point.timeNs);
    const hourMs = floorHour(ms);
    const tags = deviceTagsOf(point);
    const key = `${hourMs}|${tags.firmware}`;
    const seen = hours.get(key);
    if (seen === undefined) hours.set(key, { hourMs, tags, firstMs: ms, lastMs: ms });
    else hours.set(key, { ...seen, firstMs: Math.min(seen.firstMs, ms), lastMs: Math.max(seen.lastMs, ms) });
  }
  return [...hours.values()].sort((a, b) => a.firstMs - b.firstMs);
}

/**
 * gapMs: how long before this hour's first report the device's previous one came, a sample of its cadence
 * from which silence can be judged without reading raw telemetry.
 */
export function activityPoint(tags: Record<string, string>, hourMs: number, gapMs?: number): Point {
  // device_id repeats the tag as a field: InfluxQL counts distinct fields, not tags.
  const fields: Record<string, FieldValue> = { hours: { int: 1 }, device_id: tags.device ?? UNKNOWN };
  if (gapMs !== undefined) fields.gap_ms = { int: gapMs };
  return {
    measurement: MEASUREMENTS.activity.name,
    rp: MEASUREMENTS.activity.rp,
    tags,
    fields,
    timeNs: pointTimeNs(hourMs, 0),
  };
}
