import type { BandSpec, ChartSpec, MarkerSpec } from "../chart-spec.js";

// Pure builders for the device page's charts: the presence timeline's spans and the marks faults and events
// put on a metric's time axis. No DOM, no API: unit-tested alone.

export const WINDOWS = { "6h": 6 * 3_600_000, "24h": 24 * 3_600_000, "7d": 7 * 24 * 3_600_000 } as const;
export type WindowName = keyof typeof WINDOWS;
export const DEFAULT_WINDOW: WindowName = "24h";

export function windowOf(text: string | undefined): WindowName {
  return text !== undefined && Object.hasOwn(WINDOWS, text) ? (text as WindowName) : DEFAULT_WINDOW;
}

type Presence = { time: string; state: "online" | "offline" };

/**
 * Online and offline spans over [fromMs, toMs) from the presence changes in the window (any order), and a
 * silent span from the last report on when the device is silent now. Before the first change in the window its
 * state is unknown (no span: a backfilled history has reports but no broker presence, so "the other state" would
 * be a guess); without any change in the window, its current state throughout.
 */
export function presenceBands(input: {
  fromMs: number;
  toMs: number;
  records: Presence[];
  online: boolean | null;
  silentSinceMs: number | null;
}): BandSpec[] {
  const { fromMs, toMs } = input;
  const changes = input.records
    .map((r) => ({ atMs: Date.parse(r.time), online: r.state === "online" }))
    .filter((r) => r.atMs >= fromMs && r.atMs < toMs)
    .sort((a, b) => a.atMs - b.atMs);
  const first = changes[0];
  let state: boolean | null = first === undefined ? input.online : null;
  let startMs = fromMs;
  const bands: BandSpec[] = [];
  const close = (endMs: number) => {
    if (state !== null && endMs > startMs) bands.push(band(startMs, endMs, state));
  };
  for (const change of changes) {
    if (change.online === state) continue;
    close(change.atMs);
    state = change.online;
    startMs = change.atMs;
  }
  const silentFrom = input.silentSinceMs === null ? null : Math.max(fromMs, input.silentSinceMs);
  if (silentFrom === null || silentFrom >= toMs) {
    close(toMs);
    return bands;
  }
  // Silence wins over what presence says from the last report on.
  const kept = bands
    .filter((b) => b.fromMs < silentFrom)
    .map((b) => ({ ...b, toMs: Math.min(b.toMs, silentFrom) }));
  if (startMs < silentFrom) kept.push(...(state === null ? [] : [band(startMs, silentFrom, state)]));
  kept.push({ fromMs: silentFrom, toMs, label: "silent", tone: "bad" });
  return kept;
}

/**
 * Where presence says nothing (a backfilled history has no broker presence), the spans the device was sending
 * reports in, from its telemetry buckets with data: consecutive buckets, no gap over `gapMs`, make one span.
 */
export function reportingBands(input: {
  bands: readonly BandSpec[];
  fromMs: number;
  toMs: number;
  reportedMs: readonly number[];
  bucketMs: number;
  gapMs: number;
}): BandSpec[] {
  const covered = (ms: number) => input.bands.some((b) => ms >= b.fromMs && ms < b.toMs);
  const starts = [...new Set(input.reportedMs)]
    .filter((ms) => ms >= input.fromMs && ms < input.toMs)
    .sort((a, b) => a - b);
  const spans: BandSpec[] = [];
  for (const ms of starts) {
    if (covered(ms)) continue;
    const last = spans[spans.length - 1];
    const end = Math.min(input.toMs, ms + input.bucketMs);
    if (last !== undefined && ms - last.toMs <= input.gapMs) last.toMs = end;
    else spans.push({ fromMs: ms, toMs: end, label: "reporting", tone: "good" });
  }
  // A span runs into a presence or silent span at most, never over it.
  for (const span of spans) {
    const next = input.bands.filter((b) => b.fromMs >= span.fromMs).sort((a, b) => a.fromMs - b.fromMs)[0];
    if (next !== undefined) span.toMs = Math.min(span.toMs, next.fromMs);
  }
  return [...input.bands, ...spans].sort((a, b) => a.fromMs - b.fromMs);
}

const band = (fromMs: number, toMs: number, online: boolean): BandSpec => ({
  fromMs,
  toMs,
  label: online ? "online" : "offline",
  tone: online ? "good" : "muted",
});

/** The timeline as a chart over the whole window: the spans, and a 1/0 step line so it reads without colour too. */
export function presenceChart(bands: BandSpec[], fromMs: number, toMs: number): ChartSpec {
  const x: number[] = [fromMs];
  const values: Array<number | null> = [null];
  for (const b of bands) {
    const v = b.label === "online" || b.label === "reporting" ? 1 : 0;
    const end = Math.max(b.fromMs, b.toMs - 1);
    if (b.fromMs > (x[x.length - 1] ?? fromMs)) {
      x.push(b.fromMs);
      values.push(v);
    }
    if (end > (x[x.length - 1] ?? fromMs)) {
      x.push(end);
      values.push(v);
    }
  }
  if (toMs > (x[x.length - 1] ?? fromMs)) {
    x.push(toMs);
    values.push(null);
  }
  return { kind: "series", x, series: [{ label: "Online or reporting (1) / not (0)", values }], bands };
}

const FAULT_TONE: Record<string, MarkerSpec["tone"]> = {
  critical: "critical",
  error: "major",
  warning: "minor",
  info: "info",
};

/** Faults and events inside the window as marks on the time axis, oldest first. */
export function markersOf(input: {
  fromMs: number;
  toMs: number;
  faults: Array<{ ts: string; code: string; severity: string }>;
  events: Array<{ ts: string; type: string }>;
}): MarkerSpec[] {
  const marks: MarkerSpec[] = [
    ...input.faults.map((f) => ({
      atMs: Date.parse(f.ts),
      label: `${f.code} (${f.severity})`,
      tone: FAULT_TONE[f.severity] ?? "info",
    })),
    ...input.events.map((e) => ({ atMs: Date.parse(e.ts), label: e.type, tone: "event" as const })),
  ];
  return marks.filter((m) => m.atMs >= input.fromMs && m.atMs < input.toMs).sort((a, b) => a.atMs - b.atMs);
}

/** Metrics worth a chart first, by kind; then any other numeric ones, up to `max`. */
const PREFERRED = [
  "snr_margin_db",
  "downstream_rate_kbps",
  "wan_latency_ms",
  "packet_loss_pct",
  "nozzle_temp_c",
  "bed_temp_c",
  "fan_rpm",
  "print_progress_pct",
];

export function chosenMetrics(values: Record<string, unknown>, max = 4): string[] {
  const numeric = Object.keys(values)
    .filter((k) => typeof values[k] === "number" && k !== "uptime_s")
    .sort();
  const first = PREFERRED.filter((k) => numeric.includes(k));
  return [...first, ...numeric.filter((k) => !first.includes(k))].slice(0, max);
}

/** What to tell the customer about an issue that hits their device. */
export function adviceFor(
  issue: { status: string; fixVersion?: unknown; advice?: unknown },
  firmware: string,
): string {
  if (typeof issue.advice === "string" && issue.advice !== "")
    return `${upperFirst(issue.advice)}. Tell the customer a firmware update fixes this.`;
  if (typeof issue.fixVersion === "string" && issue.fixVersion !== "" && issue.fixVersion !== firmware)
    return `Fixed in firmware ${issue.fixVersion}: advise the update. Tell the customer a firmware update fixes this.`;
  if (issue.status === "fix_released" || issue.status === "verifying")
    return "A fix is released and being verified; the device already runs it or newer: if it persists, note it on the issue.";
  return "No fix released yet: tell the customer the problem is known and being worked on.";
}

const upperFirst = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);
