import { createHash } from "node:crypto";
// Measurements, retention policies and tags: the storage contract shared by the ingest writer and the
// API's queries. docs/storage.md explains each choice.

export const RP_RAW = "raw";
export const RP_LONG = "long";

export const MEASUREMENTS = {
  /** Birth messages: who a device is. Long retention. */
  device: { name: "device", rp: RP_LONG },
  /** Metrics; one field per metric. Raw retention, rolled up hourly into telemetry_1h. */
  telemetry: { name: "telemetry", rp: RP_RAW },
  fault: { name: "fault", rp: RP_LONG },
  event: { name: "event", rp: RP_LONG },
  /** Connects, disconnects, status messages and last wills. */
  presence: { name: "presence", rp: RP_LONG },
  /** Refused messages: data quality is a field-quality signal of its own. */
  rejection: { name: "rejection", rp: RP_LONG },
  /** A device's answers to commands (…/cmd/{id}/result), as it sent them. */
  command: { name: "command", rp: RP_LONG },
  /** Commands people sent: a log per command (queued, delivered), services/commands.ts. */
  commandLog: { name: "command_log", rp: RP_LONG },
  /** Alerts: a log per alert (raised, delivered, acknowledged, escalated, resolved), alerts/. */
  alertLog: { name: "alert_log", rp: RP_LONG },
  /** What the support desk heard from customers (POST /api/v1/feedback). */
  feedback: { name: "feedback", rp: RP_LONG },
  /** Exposure: one point per device and UTC hour in which it reported; the basis of every rate. */
  activity: { name: "activity", rp: RP_LONG },
  /** The issues' lifecycle: an append-only log of decisions (analytics/lifecycle.ts IssueEvent). */
  issueEvent: { name: "issue_event", rp: RP_LONG },
  /** Verdicts the regression runner reached and cleared: a log per model and subject (rollup/regression-runner.ts). */
  verdict: { name: "verdict", rp: RP_LONG },
  telemetry1h: { name: "telemetry_1h", rp: RP_LONG },
  // Rollups, derived from the raw measurements above by rollup/ (docs/storage.md "Rollups").
  /** Per UTC hour and kind, model, firmware, region: exposure, faults by severity, reboots, ratings. */
  cohort1h: { name: "cohort_1h", rp: RP_LONG },
  /** Per UTC hour and fingerprint, kind, model, firmware, region, severity, code: faults and devices. */
  issue1h: { name: "issue_1h", rp: RP_LONG },
  /** cohort_1h and issue_1h summed per UTC day (without the per-hour distinct counts), for long windows. */
  cohort1d: { name: "cohort_1d", rp: RP_LONG },
  issue1d: { name: "issue_1d", rp: RP_LONG },
  /** One point per fingerprint (at time 0): its key, kind, model, first and last occurrence ever. */
  fingerprint: { name: "fingerprint", rp: RP_LONG },
  /** The devices behind each distinct count, per UTC hour and day: active, faulty, per fingerprint. */
  deviceSet: { name: "device_set", rp: RP_LONG },
  /** Per hour and day bucket, a revision that grows whenever the bucket's rollups are recomputed. */
  rollupRev: { name: "rollup_rev", rp: RP_LONG },
  /** Per UTC hour and day and fingerprint: each device's fault count, last fault and its firmware. */
  issueDevices: { name: "issue_devices", rp: RP_LONG },
  /** Per UTC hour and day and cohort: each device's exposure, reboots, rejections, ratings, faults by code. */
  deviceCohort: { name: "device_cohort", rp: RP_LONG },
  // Read models the ingest keeps as it writes, keyed the way a read filters (docs/storage.md "Read models").
  /** One series, one point per device at its slot (nanoseconds): its hello, last report, presence, cadence. */
  deviceState: { name: "device_state", rp: RP_LONG },
  /** Every fault again, tagged only kind, model, firmware, code, severity: a few hundred series in all. */
  faultList: { name: "fault_list", rp: RP_LONG },
} as const;
export type MeasurementKey = keyof typeof MEASUREMENTS;

/** Tags every point of a device carries, from its latest hello. Bounded cardinality only. */
export const DEVICE_TAGS = ["device", "kind", "model", "firmware", "region"] as const;

export type Point = {
  measurement: string;
  rp: string;
  tags: Record<string, string>;
  fields: Record<string, FieldValue>;
  /** Nanoseconds since the epoch, as a decimal string (beyond Number's exact range). */
  timeNs: string;
};

/**
 * Integers are written with the i suffix; plain numbers as floats. fieldq alone decides each field's type
 * (docs/storage.md "Types"): InfluxDB fixes it per shard and measurement from the first point it sees.
 */
export type FieldValue = number | boolean | string | { int: number };

/** A metric's value as stored: always a float, so no device can fix another type first; booleans as 1 and 0. */
export const metricValue = (value: number | boolean): number =>
  typeof value === "boolean" ? Number(value) : value;

const NS_PER_MS = 1_000_000;

/** A point's time: its millisecond plus a discriminator below 10^6 as nanoseconds. */
export function pointTimeNs(ms: number, discriminator: number): string {
  const whole = Math.trunc(ms);
  const low = discriminator % NS_PER_MS;
  // The digits BigInt would print, without its allocations, for every time after the epoch's first ms.
  if (whole >= 1 && whole <= Number.MAX_SAFE_INTEGER && low >= 0)
    return `${whole}${String(low).padStart(6, "0")}`;
  return (BigInt(whole) * BigInt(NS_PER_MS) + BigInt(low)).toString();
}

/** The tag holding the part of a message's seq that its point's nanoseconds cannot. */
export const SEQ_HI_TAG = "seq_hi";

/**
 * Where a device's message is stored: its millisecond plus seq mod 10^6 ns, and seq_hi = floor(seq / 10^6)
 * as a tag when that is not 0. (device, ms, seq) ↦ (series, time) is one-to-one, a redelivery lands on
 * itself, and the points of seqs below 10^6 keep the identity they had before seq_hi existed.
 */
export function messageIdentity(ms: number, seq: number): { timeNs: string; tags: Record<string, string> } {
  const low = seq % NS_PER_MS;
  const high = (seq - low) / NS_PER_MS;
  return { timeNs: pointTimeNs(ms, low), tags: high === 0 ? {} : { [SEQ_HI_TAG]: String(high) } };
}

/** FNV-1a (32 bits) over the UTF-16 code units of a device id: the same number in every process and version. */
export function deviceHash(deviceId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) {
    hash ^= deviceId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * Where a fault's fault_list copy is stored: the fault point's millisecond plus (seq mod 1000) × 1000 +
 * (deviceHash mod 1000) ns, so faults of two devices in one millisecond with the same tags stay apart unless
 * both their seq mod 1000 and their hash mod 1000 agree (the fault measurement keeps every fault regardless).
 */
export function faultListTimeNs(ms: number, seq: number, deviceId: string): string {
  return pointTimeNs(ms, (seq % 1000) * 1000 + (deviceHash(deviceId) % 1000));
}

/** Where hashed slots begin: far above the slots once numbered 1, 2, 3 … by a single journal. */
export const HASHED_SLOT_BASE = 2 ** 52;

/**
 * A device's device_state slot: HASHED_SLOT_BASE + 52 bits of SHA-256 of its id (and of the attempt, when a
 * slot already taken makes the caller try again). Every process that meets the device computes the same slot,
 * so brokers and ingest processes with journals of their own never hand one slot to two devices, unless two ids
 * share 52 bits of hash (about 1 in 10^6 for a fleet of 100,000 devices; docs/scaling.md).
 */
export function hashedSlot(deviceId: string, attempt = 0): number {
  const digest = createHash("sha256")
    .update(attempt === 0 ? deviceId : `${deviceId}\u0000${attempt}`)
    .digest();
  return HASHED_SLOT_BASE + Number(digest.readBigUInt64BE(0) >> 12n);
}

/** device_state's time: the device's slot as nanoseconds, so the whole directory is one series. */
export const deviceStateTimeNs = (slot: number): string => String(Math.trunc(slot));
