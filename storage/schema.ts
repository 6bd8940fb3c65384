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
  command: { name: "command", rp: RP_LONG },
  /** Exposure: one point per device and UTC hour in which it reported; the basis of every rate. */
  activity: { name: "activity", rp: RP_LONG },
  /** The issues' lifecycle: an append-only log of decisions (analytics/lifecycle.ts IssueEvent). */
  issueEvent: { name: "issue_event", rp: RP_LONG },
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
} as const;
export type MeasurementKey = keyof typeof MEASUREMENTS;

/** Tags every point of a device carries, from its latest hello. Bounded cardinality only. */
export const DEVICE_TAGS = ["device", "kind", "model", "firmware", "region"] as const;
/** Written where the hello does not say. */
export const UNKNOWN = "unknown";

export type Point = {
  measurement: string;
  rp: string;
  tags: Record<string, string>;
  fields: Record<string, FieldValue>;
  /** Nanoseconds since the epoch, as a decimal string (beyond Number's exact range). */
  timeNs: string;
};

/** Integers are written with the i suffix; plain numbers as floats. */
export type FieldValue = number | boolean | string | { int: number };

/**
 * A point's time: the message's millisecond plus its seq modulo 10^6 as nanoseconds, so two different
 * messages in one millisecond never overwrite each other, and a redelivered one lands on itself.
 */
export function pointTimeNs(ms: number, discriminator: number): string {
  return (BigInt(Math.trunc(ms)) * 1_000_000n + BigInt(discriminator % 1_000_000)).toString();
}
