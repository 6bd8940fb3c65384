import { parseDuration } from "../config/duration.js";
import { MAX_SERIES_DAYS } from "../contract/api/fleet.js";
import { alignHours, DAY_MS } from "../contract/time.js";
import { ApiError } from "./errors.js";

export const MAX_BUCKETS = 500;

/** InfluxDB stores nanoseconds in an int64: times past 2262 cannot be queried. */
const LATEST_MS = Date.UTC(2200, 0, 1);

/** No bucket is wider than the longest window (84006d); InfluxDB's int64 nanoseconds end at about 106751d. */
export const MAX_EVERY_MS = LATEST_MS;

const EVERY_STEPS = [
  "1s",
  "5s",
  "10s",
  "30s",
  "1m",
  "5m",
  "10m",
  "15m",
  "30m",
  "1h",
  "3h",
  "6h",
  "12h",
  "1d",
  "1w",
];

const badRequest = (message: string) => new ApiError({ code: "BAD_REQUEST", message });

/** from/to as validated ISO strings, or their defaults: `to` now, `from` defaultSpanMs before `to`. */
export function resolveWindow(
  query: { from?: string | undefined; to?: string | undefined },
  nowMs: number,
  defaultSpanMs: number,
): { fromMs: number; toMs: number } {
  const toMs = query.to === undefined ? nowMs : Date.parse(query.to);
  const fromMs = query.from === undefined ? toMs - defaultSpanMs : Date.parse(query.from);
  if (fromMs < 0 || toMs > LATEST_MS) {
    throw badRequest(`from and to must lie between 1970-01-01 and ${new Date(LATEST_MS).toISOString()}`);
  }
  if (fromMs >= toMs) throw badRequest("from must be before to");
  return { fromMs, toMs };
}

/**
 * resolveWindow for the routes that read the rollups (issues, fleet, firmware): at most MAX_SERIES_DAYS of
 * whole hours. Their work grows with the days of the window (1970 to 2199 took a second of CPU in the
 * broker's process), and the daily series (issue and fleet trend, adoption) answer one entry per day.
 */
export function resolveAnalyticsWindow(
  query: { from?: string | undefined; to?: string | undefined },
  nowMs: number,
  defaultSpanMs: number,
): { fromMs: number; toMs: number } {
  const window = resolveWindow(query, nowMs, defaultSpanMs);
  const aligned = alignHours(window);
  if (aligned.toMs - aligned.fromMs > MAX_SERIES_DAYS * DAY_MS) {
    throw badRequest(`from and to span more than ${MAX_SERIES_DAYS} days: choose a shorter window`);
  }
  return window;
}

export const bucketCount = (spanMs: number, everyMs: number) => Math.ceil(spanMs / everyMs);

/** The given bucket width, or the smallest step that keeps the series within MAX_BUCKETS. */
export function resolveEvery(every: string | undefined, spanMs: number): number {
  if (every !== undefined) {
    const everyMs = parseDuration(every);
    if (everyMs === undefined || everyMs <= 0)
      throw badRequest(`every "${every}" is not a duration such as 5m`);
    if (everyMs > MAX_EVERY_MS) {
      throw badRequest(
        `every=${every} is longer than the longest window (${MAX_EVERY_MS / DAY_MS}d, 1970 to 2200)`,
      );
    }
    const buckets = bucketCount(spanMs, everyMs);
    if (buckets > MAX_BUCKETS) {
      throw badRequest(
        `every=${every} gives ${buckets} buckets, more than ${MAX_BUCKETS}: choose a wider one`,
      );
    }
    return everyMs;
  }
  for (const step of EVERY_STEPS) {
    const stepMs = parseDuration(step) ?? 0;
    if (bucketCount(spanMs, stepMs) <= MAX_BUCKETS) return stepMs;
  }
  return Math.ceil(spanMs / MAX_BUCKETS);
}

/** A page as the list routes answer it: the items, the paging asked for, and the window used. */
export function windowedPage<P extends object>(
  page: P,
  paging: { limit: number; offset: number },
  window: { fromMs: number; toMs: number },
) {
  return {
    ...page,
    limit: paging.limit,
    offset: paging.offset,
    from: new Date(window.fromMs).toISOString(),
    to: new Date(window.toMs).toISOString(),
  };
}
