import type { FingerprintRules } from "../analytics/fingerprint.js";
import type { StorageLimits } from "../config/env.js";
import type { RejectReason } from "../contract/messages.js";
import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import { encodePoint, pointBytesAtMost } from "../storage/line-protocol.js";
import { CardinalityGuard, valuesOf } from "./cardinality.js";
import { decodeMessage } from "./decode.js";
import type { DeviceMetaRecord, Journal, JournalRecord } from "./journal.js";
import {
  activityPoint,
  deviceTags,
  exposureHours,
  messagePoints,
  type PresenceSource,
  presencePoint,
  rejectionPoint,
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
  now?: () => number;
};

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

export async function createIngest(options: IngestOptions) {
  const { journal, logger, metrics } = options;
  const metas = await journal.loadDeviceMeta();
  const guard = new CardinalityGuard(options.limits, await journal.loadIntroduced());
  const now = options.now ?? Date.now;
  let discriminator = 0;
  const receiveTime = () => ({ receivedMs: now(), discriminator: discriminator++ % 1_000_000 });
  /** Per device: the hour (and firmware) last credited, so most messages add no point; its latest report. */
  const lastExposure = new Map<string, { key: string; reportMs: number }>();

  function withExposure(deviceId: string, records: JournalRecord[]): JournalRecord[] {
    const added: JournalRecord[] = [];
    for (const { hourMs, tags, firstMs, lastMs } of exposureHours(records)) {
      const key = `${hourMs}|${tags.firmware}`;
      const last = lastExposure.get(deviceId);
      if (last?.key !== key) {
        const gapMs = last !== undefined && firstMs > last.reportMs ? firstMs - last.reportMs : undefined;
        added.push({ point: activityPoint(tags, hourMs, gapMs) });
      }
      lastExposure.set(deviceId, { key, reportMs: Math.max(lastMs, last?.reportMs ?? 0) });
    }
    return added.length > 0 ? [...records, ...added] : records;
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
      const mapped = messagePoints(message, {
        meta: metas.get(deviceId),
        clockSkewFutureMs: options.clockSkewFutureMs,
        clockSkewPastMs: options.clockSkewPastMs,
        statusSource: source,
        ...(options.fingerprintRules ? { fingerprintRules: options.fingerprintRules } : {}),
        ...receiveTime(),
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
      // Later messages of this device are tagged with the new metadata even while this one is syncing.
      if (mapped.meta) metas.set(deviceId, mapped.meta);
      const { introduced } = admission;
      const appended = await journal
        .append(withExposure(deviceId, mapped.records), {
          ...(mapped.meta ? { meta: [deviceId, mapped.meta] as [string, DeviceMetaRecord] } : {}),
          introduced,
        })
        .catch((error: unknown) => {
          guard.forget(introduced);
          throw error;
        });
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
      const point = presencePoint(deviceTags(deviceId, metas.get(deviceId)), receiveTime(), state, "broker");
      const appended = await journal.append([{ point }]);
      if (!appended.ok) logger.warn({ deviceId, state }, "journal full: presence change not recorded");
    },

    deviceMeta(deviceId: string): DeviceMetaRecord | undefined {
      return metas.get(deviceId);
    },
  };
}
