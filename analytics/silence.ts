import { DAY_MS, HOUR_MS, iso, MINUTE_MS } from "../contract/time.js";

// When a device counts as silent (docs/domain.md: "stopped reporting for longer than its expected interval,
// whatever its last will said"), decided from numbers alone so the stores and the tests share one rule.

export const PRESENCE_STATUSES = ["online", "offline", "silent"] as const;
export type PresenceStatus = (typeof PRESENCE_STATUSES)[number];

export type IntervalSource = "configured" | "learned" | "default";

export type SilenceOptions = {
  /** Overdue once now - last report exceeds factor × the expected interval. */
  factor: number;
  /** Per model; beats whatever the device's own cadence says. */
  expectedIntervals: ReadonlyMap<string, number>;
  /** A learned interval is never shorter than this. */
  floorMs: number;
  /** For a device with fewer than minSamples cadence samples and no configured interval. */
  defaultMs: number;
  /** Cadence samples needed before the median is trusted. */
  minSamples: number;
};

export const DEFAULT_SILENCE: SilenceOptions = {
  factor: 3,
  expectedIntervals: new Map(),
  floorMs: MINUTE_MS,
  defaultMs: HOUR_MS,
  minSamples: 3,
};

export function silenceOptions(options: Partial<SilenceOptions> = {}): SilenceOptions {
  return Object.assign({}, DEFAULT_SILENCE, options);
}

export function median(samples: readonly number[]): number | undefined {
  const sorted = samples.filter((s) => Number.isFinite(s)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = Math.floor(sorted.length / 2);
  const upper = sorted[mid] ?? 0;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? upper) + upper) / 2;
}

/** The device's cadence as its recent gap_ms samples, or their median and count when InfluxDB computed it. */
export type Cadence = readonly number[] | { medianMs: number; samples: number };

export function expectedInterval(
  cadence: Cadence | undefined,
  configuredMs: number | undefined,
  options: Pick<SilenceOptions, "floorMs" | "defaultMs" | "minSamples">,
): { ms: number; source: IntervalSource } {
  if (configuredMs !== undefined && configuredMs > 0) return { ms: configuredMs, source: "configured" };
  const learned =
    cadence === undefined
      ? undefined
      : "medianMs" in cadence
        ? cadence
        : { medianMs: median(cadence) ?? Number.NaN, samples: cadence.length };
  if (learned === undefined || learned.samples < options.minSamples || !Number.isFinite(learned.medianMs)) {
    return { ms: options.defaultMs, source: "default" };
  }
  return { ms: Math.max(options.floorMs, learned.medianMs), source: "learned" };
}

export type PresenceState = { state: "online" | "offline"; atMs: number };

/**
 * silent: nothing received for more than factor × expectedMs (broker time), whatever presence says (a will
 * may say "offline" for a device that is gone for good, and a half-open connection may still look "online");
 * or, once its connection has closed after its newest report, that report is overdue on the device's own
 * clock. That clock is the time its reports are stored at: the device's ts where the ingest trusts it
 * (within FIELDQ_CLOCK_SKEW_FUTURE / _PAST), the receive time otherwise. So a history imported in one go
 * shows the devices that stopped before its end as silent right after the import, while a device that is
 * still delivering an old backlog (connected, received just now) is not.
 * offline: not silent, and the newest presence change is an "offline" (clean disconnect, status or will)
 * that no report has followed.
 * online: otherwise, including a device with no presence record that reports in time.
 * A device that never reported on its own is judged from its newest presence change instead.
 */
export function presenceStatus(input: {
  /** Broker time of the newest report. */
  lastReportMs: number | null;
  /** Device time of the newest timestamped report (undefined or null: not known, the broker time counts). */
  lastReportDeviceMs?: number | null | undefined;
  expectedMs: number;
  lastPresence: PresenceState | null;
  nowMs: number;
  factor: number;
}): PresenceStatus {
  const { lastReportMs, expectedMs, lastPresence, nowMs, factor } = input;
  const allowanceMs = factor * expectedMs;
  const heardMs = lastReportMs ?? lastPresence?.atMs ?? null;
  if (heardMs === null || nowMs - heardMs > allowanceMs) return "silent";
  const closed =
    lastPresence?.state === "offline" && (lastReportMs === null || lastPresence.atMs >= lastReportMs);
  if (!closed) return "online";
  const deviceMs = input.lastReportDeviceMs ?? lastReportMs;
  return deviceMs !== null && nowMs - deviceMs > allowanceMs ? "silent" : "offline";
}

/** "Went silent within 24 hours of a firmware update". */
export const AFTER_UPDATE_MS = DAY_MS;

/**
 * A device that reported in the window, with its cohort and whether it is silent at the window's end; its
 * last report on its own clock (the broker's where the device's is not trusted).
 */
export type SeenDevice = {
  device: string;
  model: string;
  firmware: string;
  silent: boolean;
  lastReportMs: number | null;
};
/** A device's last successful firmware update, on the device's clock like its last report. */
export type FirmwareUpdate = { device: string; model: string; from: string; to: string; atMs: number };

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** One row per distinct key with how many items have it, sorted by key. */
export function countBy<T, K extends Record<string, string>>(items: readonly T[], key: (item: T) => K) {
  const counts = new Map<string, K & { count: number }>();
  for (const item of items) {
    const k = key(item);
    const id = JSON.stringify(Object.values(k));
    counts.set(id, { ...k, count: (counts.get(id)?.count ?? 0) + 1 });
  }
  return [...counts.entries()].sort(([a], [b]) => compare(a, b)).map(([, row]) => row);
}

/** Seen and silent devices per group; one pass that allocates per group, not per device (100,000 are usual). */
function rates<K extends Record<string, string>>(
  seen: readonly SeenDevice[],
  id: (d: SeenDevice) => string,
  key: (d: SeenDevice) => K,
) {
  const rows = new Map<string, { key: K; seen: number; silent: number }>();
  for (const d of seen) {
    const k = id(d);
    let row = rows.get(k);
    if (row === undefined) {
      row = { key: key(d), seen: 0, silent: 0 };
      rows.set(k, row);
    }
    row.seen += 1;
    if (d.silent) row.silent += 1;
  }
  return [...rows.entries()]
    .sort(([a], [b]) => compare(a, b))
    .map(([, row]) => ({ ...row.key, seen: row.seen, silent: row.silent, rate: row.silent / row.seen }));
}

/**
 * Silent rates per model and per model + firmware among the devices seen in the window, and the silent
 * ones whose last report came within AFTER_UPDATE_MS after their last successful firmware update.
 */
export function silenceReport(input: {
  fromMs: number;
  toMs: number;
  factor: number;
  seen: readonly SeenDevice[];
  updates: readonly FirmwareUpdate[];
}) {
  const silentReports = new Map(
    input.seen.filter((d) => d.silent && d.lastReportMs !== null).map((d) => [d.device, d.lastReportMs ?? 0]),
  );
  const devices: Array<{
    device: string;
    model: string;
    from: string;
    to: string;
    updatedAt: string;
    lastReport: string;
  }> = [];
  for (const u of input.updates) {
    const reportMs = silentReports.get(u.device);
    if (reportMs === undefined || reportMs < u.atMs || reportMs - u.atMs > AFTER_UPDATE_MS) continue;
    devices.push({
      device: u.device,
      model: u.model,
      from: u.from,
      to: u.to,
      updatedAt: iso(u.atMs),
      lastReport: iso(reportMs),
    });
  }
  devices.sort((a, b) => compare(a.device, b.device));
  return {
    from: iso(input.fromMs),
    to: iso(input.toMs),
    factor: input.factor,
    byModel: rates(
      input.seen,
      (d) => d.model,
      (d) => ({ model: d.model }),
    ),
    byFirmware: rates(
      input.seen,
      (d) => `${d.model}\u0000${d.firmware}`,
      (d) => ({ model: d.model, firmware: d.firmware }),
    ),
    afterUpdate: {
      withinS: AFTER_UPDATE_MS / 1000,
      devices,
      byModel: countBy(devices, (d) => ({ model: d.model })),
      byFirmware: countBy(devices, (d) => ({ model: d.model, firmware: d.to })),
    },
  };
}
