import type { FingerprintRules } from "../analytics/fingerprint.js";
import type { StorageLimits } from "../config/env.js";
import type { RejectReason } from "../contract/messages.js";
import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import { encodePoint, pointBytesAtMost } from "../storage/line-protocol.js";
import { CardinalityGuard, valuesOf } from "./cardinality.js";
import { decodeMessage } from "./decode.js";
import {
  clearedHelloFields,
  type DeviceActivity,
  HELLO_FIELDS,
  type Observation,
  observationOf,
  observe,
  withGap,
} from "./device-state.js";
import { type adoptedSlots, filledState, type StoredFacts } from "./device-state-backfill.js";
import type { AppendResult, DeviceMetaRecord, IntroducedValue, Journal, JournalRecord } from "./journal.js";
import {
  activityPoint,
  deviceStatePoint,
  deviceTags,
  exposureHours,
  type FirmwareUpdate,
  firmwareUpdateOf,
  messagePoints,
  type PresenceSource,
  presencePoint,
  rejectionPoint,
  unknownMeta,
} from "./to-points.js";

// The ingest step the broker calls before it acknowledges a publish: decode, validate, map to points,
// journal durably. Bad input becomes a data-quality record and a short reason the broker passes on to the
// device; it never throws and never touches the good data beside it.

export type IngestOutcome =
  | { kind: "accepted" }
  | { kind: "refused"; reason: RejectReason; message: string }
  /** The journal is at its bound: leave the message unacknowledged so the device keeps it. */
  | { kind: "unavailable" };

export type IngestOptions = {
  journal: Journal;
  logger: Logger;
  metrics: Metrics;
  maxPayloadBytes: number;
  clockSkewFutureMs: number;
  clockSkewPastMs: number;
  /** The size of a stored point and what one device may add to InfluxDB's indexes. */
  limits: StorageLimits;
  fingerprintRules?: FingerprintRules;
  /** A device's device_state point is rewritten for a report at most this often (0: every message). */
  deviceStateEveryMs?: number;
  now?: () => number;
};

export const DEFAULT_DEVICE_STATE_EVERY_MS = 10_000;

export type Ingest = Awaited<ReturnType<typeof createIngest>>;

/** The first point whose line protocol is over maxBytes: InfluxDB would have to take it whole, or never. */
export function oversizedPoint(
  records: readonly JournalRecord[],
  maxBytes: number,
): { measurement: string; bytes: number } | undefined {
  for (const { point } of records) {
    // Most points are far below the limit: encoding each of them twice (here and in the writer) would cost.
    if (pointBytesAtMost(point) <= maxBytes) continue;
    const bytes = Buffer.byteLength(encodePoint(point));
    if (bytes > maxBytes) return { measurement: point.measurement, bytes };
  }
  return undefined;
}

type SlottedRecord = DeviceMetaRecord & { slot: number };

const sameHello = (a: DeviceMetaRecord | undefined, b: DeviceMetaRecord) =>
  a !== undefined && HELLO_FIELDS.every((f) => a[f] === b[f]);

export async function createIngest(options: IngestOptions) {
  const { journal, logger, metrics } = options;
  const metas = await journal.loadDeviceMeta();
  const guard = new CardinalityGuard(options.limits, await journal.loadIntroduced());
  const now = options.now ?? Date.now;
  const stateEveryMs = options.deviceStateEveryMs ?? DEFAULT_DEVICE_STATE_EVERY_MS;
  let discriminator = 0;
  const receiveTime = () => ({ receivedMs: now(), discriminator: discriminator++ % 1_000_000 });
  /** Per device: the hour (and firmware) last credited, so most messages add no point; its latest report. */
  const lastExposure = new Map<string, { key: string; reportMs: number }>();
  /** Per device: what its device_state point holds beyond its record. */
  const activities = new Map<string, DeviceActivity>();
  /** Devices whose record changed since it was last journaled: it goes with their next append. */
  const unsaved = new Set<string>();

  /** The exposure records a message's records add, and the gap samples they measured. */
  function exposure(
    deviceId: string,
    records: JournalRecord[],
  ): { added: JournalRecord[]; gapsMs: number[] } {
    const added: JournalRecord[] = [];
    const gapsMs: number[] = [];
    for (const { hourMs, tags, firstMs, lastMs } of exposureHours(records)) {
      const key = `${hourMs}|${tags.firmware}`;
      const last = lastExposure.get(deviceId);
      if (last?.key !== key) {
        const gapMs = last !== undefined && firstMs > last.reportMs ? firstMs - last.reportMs : undefined;
        added.push({ point: activityPoint(tags, hourMs, gapMs) });
        if (gapMs !== undefined) gapsMs.push(gapMs);
      }
      lastExposure.set(deviceId, { key, reportMs: Math.max(lastMs, last?.reportMs ?? 0) });
    }
    return { added, gapsMs };
  }

  /** Replaces the device's record; it is journaled with the device's next append. */
  function keep(deviceId: string, record: SlottedRecord): SlottedRecord {
    metas.set(deviceId, record);
    unsaved.add(deviceId);
    return record;
  }

  /** The device's record; the first time it is seen, a new one with a slot of its own and its first time. */
  function recordOf(deviceId: string, atMs: number): SlottedRecord {
    const known = metas.get(deviceId);
    if (known?.slot !== undefined) return known as SlottedRecord;
    return keep(deviceId, { ...(known ?? unknownMeta()), slot: journal.assignSlot(deviceId), firstMs: atMs });
  }

  /** The device's state point when this observation calls for one (ingest/device-state.ts). */
  function stateRecords(
    deviceId: string,
    record: SlottedRecord,
    seen: Observation,
    cleared: ReturnType<typeof clearedHelloFields> = [],
    update?: FirmwareUpdate,
  ): JournalRecord[] {
    const { activity, write } = observe(activities.get(deviceId) ?? {}, seen, stateEveryMs);
    activities.set(deviceId, activity);
    if (!write) return [];
    return [
      { point: deviceStatePoint({ deviceId, record, activity, updatedMs: seen.atMs, cleared, update }) },
    ];
  }

  /**
   * Journals the records with the device's record when it changed; the record and its device_state point
   * land in one batch. Not stored: the record is kept for the next append and the next state point is
   * written at once.
   */
  async function appendFor(
    deviceId: string,
    records: JournalRecord[],
    introduced: readonly IntroducedValue[] = [],
  ) {
    const saving = unsaved.delete(deviceId);
    const record = metas.get(deviceId);
    try {
      const appended = await journal.append(records, {
        ...(saving && record ? { meta: [deviceId, record] as [string, DeviceMetaRecord] } : {}),
        introduced,
      });
      if (!appended.ok) notStored(deviceId, saving);
      return appended;
    } catch (error) {
      notStored(deviceId, saving);
      throw error;
    }
  }

  /** An append did not store the device's record or state point: they go with its next one. */
  function notStored(deviceId: string, saving: boolean) {
    if (saving) unsaved.add(deviceId);
    const activity = activities.get(deviceId);
    if (activity !== undefined) {
      const { writtenMs: _, writtenReportMs: __, ...unwritten } = activity;
      activities.set(deviceId, unwritten);
    }
  }

  async function refuse(
    deviceId: string,
    topic: string,
    bytes: number,
    reason: RejectReason,
    message: string,
  ) {
    const time = receiveTime();
    const point = rejectionPoint(deviceTags(deviceId, metas.get(deviceId)), time, {
      reason,
      topic,
      detail: message,
      bytes,
    });
    const appended = await journal.append([{ point }]);
    if (!appended.ok) return { kind: "unavailable" } as const;
    metrics.messagesRefused.inc({ reason });
    logger.debug({ deviceId, topic, reason, message }, "refused a device message");
    return { kind: "refused", reason, message } as const;
  }

  return {
    /** The message is journaled (or its refusal is) when this resolves "accepted" or "refused". */
    async receive(
      deviceId: string,
      topic: string,
      payload: Buffer,
      source: PresenceSource = "device",
    ): Promise<IngestOutcome> {
      const decoded = decodeMessage(topic, payload, options.maxPayloadBytes);
      if (!decoded.ok)
        return refuse(deviceId, topic, payload.length, decoded.refusal.reason, decoded.refusal.message);
      const { message } = decoded;
      const time = receiveTime();
      const mapped = messagePoints(message, {
        meta: metas.get(deviceId),
        clockSkewFutureMs: options.clockSkewFutureMs,
        clockSkewPastMs: options.clockSkewPastMs,
        statusSource: source,
        ...(options.fingerprintRules ? { fingerprintRules: options.fingerprintRules } : {}),
        ...time,
      });
      const oversized = oversizedPoint(mapped.records, options.limits.maxPointBytes);
      if (oversized) {
        const { measurement, bytes } = oversized;
        const limit = `${options.limits.maxPointBytes} (FIELDQ_MAX_POINT_BYTES)`;
        const why = `its ${measurement} point would be ${bytes} bytes of line protocol, over the limit of ${limit}`;
        return refuse(deviceId, topic, payload.length, "too_large", why);
      }
      const admission = guard.admit(deviceId, valuesOf(message, mapped));
      if (!admission.ok) return refuse(deviceId, topic, payload.length, "over_limit", admission.message);
      // From here to the append nothing waits, so the journal holds the device's state points in the order
      // its messages came. Later messages are tagged with new metadata even while this one is syncing.
      const before = metas.get(deviceId);
      let record = recordOf(deviceId, time.receivedMs);
      const seen = observationOf(message, mapped.records, time.receivedMs, source);
      let cleared: ReturnType<typeof clearedHelloFields> = [];
      if (mapped.meta) {
        seen.metaChanged = !sameHello(before, mapped.meta);
        cleared = clearedHelloFields(before, mapped.meta);
        const { slot, firstMs, gapsMs } = record;
        record = keep(deviceId, {
          ...mapped.meta,
          slot,
          ...(firstMs !== undefined ? { firstMs } : {}),
          ...(gapsMs !== undefined ? { gapsMs } : {}),
        });
      }
      const { added, gapsMs } = exposure(deviceId, mapped.records);
      if (gapsMs.length > 0)
        record = keep(deviceId, {
          ...record,
          gapsMs: gapsMs.reduce((all, gap) => withGap(all, gap), record.gapsMs ?? []),
        });
      const { introduced } = admission;
      const records = mapped.records;
      for (const r of added) records.push(r);
      for (const r of stateRecords(deviceId, record, seen, cleared, firmwareUpdateOf(message, seen)))
        records.push(r);
      let appended: AppendResult;
      try {
        appended = await appendFor(deviceId, records, introduced);
      } catch (error) {
        guard.forget(introduced);
        throw error;
      }
      if (!appended.ok) {
        // Not stored, so not known: the device sends the message again later and introduces them then.
        guard.forget(introduced);
        return { kind: "unavailable" };
      }
      metrics.messagesAccepted.inc({ channel: message.channel });
      if (mapped.skewed > 0) metrics.clockSkewed.inc(mapped.skewed);
      return { kind: "accepted" };
    },

    /** Connects and disconnects as the broker saw them. */
    async presence(deviceId: string, state: "online" | "offline"): Promise<void> {
      const time = receiveTime();
      const point = presencePoint(deviceTags(deviceId, metas.get(deviceId)), time, state, "broker");
      const record = recordOf(deviceId, time.receivedMs);
      const atMs = time.receivedMs;
      const seen: Observation = { atMs, report: false, presence: { state, atMs, source: "broker" } };
      const appended = await appendFor(deviceId, [{ point }, ...stateRecords(deviceId, record, seen)]);
      if (!appended.ok) logger.warn({ deviceId, state }, "journal full: presence change not recorded");
    },

    deviceMeta(deviceId: string): DeviceMetaRecord | undefined {
      return metas.get(deviceId);
    },

    /** Every device the journal has a record of. */
    knownDevices(): string[] {
      return [...metas.keys()];
    },

    hasRecord(deviceId: string): boolean {
      return metas.has(deviceId);
    },

    /** Takes device_state's slots (and hellos) for devices the journal has no record of; see adoptedSlots. */
    adoptSlots(adopted: ReturnType<typeof adoptedSlots>): void {
      journal.takeSlots(adopted.taken);
      for (const [deviceId, record] of adopted.records) if (!metas.has(deviceId)) keep(deviceId, record);
    },

    /**
     * Writes the device's state point from what InfluxDB stored of it, merged with what this process knows
     * (ingest/device-state-backfill.ts): for a device device_state has no point for.
     */
    async fillState(deviceId: string, facts: StoredFacts): Promise<AppendResult> {
      const atMs = now();
      const known = metas.get(deviceId);
      const filled = filledState({ record: known, activity: activities.get(deviceId) }, facts);
      const record = keep(deviceId, { ...filled.record, slot: known?.slot ?? journal.assignSlot(deviceId) });
      const { lastReportMs } = filled.activity;
      const activity: DeviceActivity = {
        ...filled.activity,
        writtenMs: atMs,
        ...(lastReportMs !== undefined ? { writtenReportMs: lastReportMs } : {}),
      };
      activities.set(deviceId, activity);
      return appendFor(deviceId, [
        { point: deviceStatePoint({ deviceId, record, activity, updatedMs: atMs }) },
      ]);
    },
  };
}
