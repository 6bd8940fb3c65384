import { iso } from "../contract/time.js";
import {
  type Cadence,
  expectedInterval,
  type IntervalSource,
  type PresenceState,
  type PresenceStatus,
  presenceStatus,
  type SilenceOptions,
} from "./silence.js";

// A device's liveness (last seen, last report, presence, status) at an instant, from the few numbers the
// stores keep for it: the same rule for the directory (device_state) and for a past instant (raw points).

/** What liveness is judged from; times in ms, broker times unless said otherwise. */
export type LivenessInput = {
  model: string;
  /** Newest message the device sent itself (not a connect, disconnect or will). */
  lastReportMs: number | null;
  /**
   * Device time of its newest timestamped report (telemetry, fault, event, command result) as stored: its ts
   * where the ingest trusts the clock, else the receive time. Undefined or null: not known (a state point
   * written before it was kept, or no timestamped report), the broker time stands in.
   */
  lastReportDeviceMs?: number | null | undefined;
  /** Newest message or presence change of any kind. */
  lastSeenMs: number | null;
  presence: PresenceState | null;
  cadence: Cadence | undefined;
};

export type Liveness = {
  lastSeen: string | null;
  online: boolean | null;
  /** On the device's clock where known: what silence is judged from. */
  lastReport: string | null;
  status: PresenceStatus;
  expectedIntervalS: number;
  intervalSource: IntervalSource;
};

const newest = (...times: Array<number | null | undefined>) => {
  const known = times.filter((t): t is number => typeof t === "number" && Number.isFinite(t));
  return known.length === 0 ? null : Math.max(...known);
};

type LivenessOptions = Pick<
  SilenceOptions,
  "factor" | "expectedIntervals" | "floorMs" | "defaultMs" | "minSamples"
>;

/** The status alone, without formatting a time: a filter over the whole fleet asks it of every device. */
export function statusAt(input: LivenessInput, atMs: number, options: LivenessOptions): PresenceStatus {
  const interval = expectedInterval(input.cadence, options.expectedIntervals.get(input.model), options);
  return presenceStatus({
    lastReportMs: input.lastReportMs,
    lastReportDeviceMs: input.lastReportDeviceMs,
    expectedMs: interval.ms,
    lastPresence: input.presence,
    nowMs: atMs,
    factor: options.factor,
  });
}

/** The newest report on the device's clock, the broker's where that is not known. */
export const reportedMs = (input: Pick<LivenessInput, "lastReportMs" | "lastReportDeviceMs">) =>
  input.lastReportDeviceMs ?? input.lastReportMs;

export function liveness(input: LivenessInput, atMs: number, options: LivenessOptions): Liveness {
  const interval = expectedInterval(input.cadence, options.expectedIntervals.get(input.model), options);
  const seenMs = newest(input.lastSeenMs, input.lastReportMs, input.presence?.atMs);
  const reportMs = reportedMs(input);
  return {
    lastSeen: seenMs === null ? null : iso(seenMs),
    online: input.presence === null ? null : input.presence.state === "online",
    lastReport: reportMs === null ? null : iso(reportMs),
    status: presenceStatus({
      lastReportMs: input.lastReportMs,
      lastReportDeviceMs: input.lastReportDeviceMs,
      expectedMs: interval.ms,
      lastPresence: input.presence,
      nowMs: atMs,
      factor: options.factor,
    }),
    expectedIntervalS: Math.round(interval.ms / 1000),
    intervalSource: interval.source,
  };
}

/** One presence change as stored: who, where from, what, when (broker time). */
export type PresenceChange = { device: string; source: string; state: "online" | "offline"; atMs: number };

/**
 * A device's newest report before an instant, on the time axis its points are stored at: atMs the newest of
 * any report (a hello counts, at its receive time), deviceMs the newest timestamped one (null: none).
 */
export type StoredReport = { atMs: number; deviceMs: number | null };

/**
 * Liveness inputs of many devices from raw points (the path for a past instant): the newest report per
 * device, the newest presence change per device and source, and the learned cadences. A status message
 * (source "device") is a report too; the newest change of any source is the device's presence. Only what
 * is stored before the instant is read, by stored time: a history imported later is judged as it ran.
 */
export function livenessInputs(raw: {
  reports: ReadonlyMap<string, StoredReport>;
  presence: readonly PresenceChange[];
  cadences: ReadonlyMap<string, Cadence>;
  models: ReadonlyMap<string, string>;
  unknownModel: string;
}): Map<string, LivenessInput> {
  const lastReport = new Map([...raw.reports].map(([id, r]) => [id, r.atMs]));
  const lastPresence = new Map<string, PresenceState>();
  for (const change of raw.presence) {
    if (change.source === "device")
      lastReport.set(change.device, Math.max(change.atMs, lastReport.get(change.device) ?? change.atMs));
    const known = lastPresence.get(change.device);
    if (known === undefined || change.atMs >= known.atMs)
      lastPresence.set(change.device, { state: change.state, atMs: change.atMs });
  }
  const inputs = new Map<string, LivenessInput>();
  for (const id of new Set([...lastReport.keys(), ...lastPresence.keys()])) {
    const reportMs = lastReport.get(id) ?? null;
    const presence = lastPresence.get(id) ?? null;
    inputs.set(id, {
      model: raw.models.get(id) ?? raw.unknownModel,
      lastReportMs: reportMs,
      lastReportDeviceMs: raw.reports.get(id)?.deviceMs ?? null,
      lastSeenMs: newest(reportMs, presence?.atMs),
      presence,
      cadence: raw.cadences.get(id),
    });
  }
  return inputs;
}
