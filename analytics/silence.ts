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
  /** How far back cadence samples (activity gap_ms) are read. */
  cadenceWindowMs: number;
};

export const DEFAULT_SILENCE: SilenceOptions = {
  factor: 3,
  expectedIntervals: new Map(),
  floorMs: 60_000,
  defaultMs: 3_600_000,
  minSamples: 3,
  cadenceWindowMs: 7 * 86_400_000,
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
 * silent: the newest report is more than factor × expectedMs old, whatever presence says (a will may say
 * "offline" for a device that is gone for good, and a half-open connection may still look "online").
 * offline: not overdue, and the newest presence change is an "offline" (clean disconnect, status or will)
 * that no report has followed.
 * online: otherwise, including a device with no presence record that reports in time.
 * A device that never reported on its own is judged from its newest presence change instead.
 */
export function presenceStatus(input: {
  lastSeenMs: number | null;
  expectedMs: number;
  lastPresence: PresenceState | null;
  nowMs: number;
  factor: number;
}): PresenceStatus {
  const { lastSeenMs, expectedMs, lastPresence, nowMs, factor } = input;
  const heardMs = lastSeenMs ?? lastPresence?.atMs ?? null;
  if (heardMs === null || nowMs - heardMs > factor * expectedMs) return "silent";
  if (lastPresence?.state === "offline" && (lastSeenMs === null || lastPresence.atMs >= lastSeenMs)) {
    return "offline";
  }
  return "online";
}
