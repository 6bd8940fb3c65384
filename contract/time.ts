// Time as every part of fieldq counts it: UTC, milliseconds since the epoch, ISO 8601 for people.

export const SECOND_MS = 1000;
export const MINUTE_MS = 60 * SECOND_MS;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;
export const WEEK_MS = 7 * DAY_MS;

/** A half-open span of time, [fromMs, toMs). */
export type Window = { fromMs: number; toMs: number };

export const iso = (ms: number) => new Date(ms).toISOString();
/** The UTC date of a time, as 2026-12-02. */
export const isoDate = (ms: number) => iso(ms).slice(0, 10);

export const floorHour = (ms: number) => Math.floor(ms / HOUR_MS) * HOUR_MS;
export const floorDay = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;

/** The window widened to whole UTC hours, the rollups' grain. */
export const alignHours = (w: Window): Window => ({
  fromMs: floorHour(w.fromMs),
  toMs: Math.ceil(w.toMs / HOUR_MS) * HOUR_MS,
});

/** The starts of the UTC days the window touches. */
export function dayStarts(w: Window): number[] {
  const days: number[] = [];
  for (let day = floorDay(w.fromMs); day < w.toMs; day += DAY_MS) days.push(day);
  return days;
}

/** The part of the window inside the UTC day starting at `day`. */
export const dayPart = (day: number, w: Window): Window => ({
  fromMs: Math.max(day, w.fromMs),
  toMs: Math.min(day + DAY_MS, w.toMs),
});

/** A duration as people read it: 30s, 45m, 5h 20m, 3d 4h (two units at most, the larger first). */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / SECOND_MS));
  const [d, h, m] = [Math.floor(s / 86_400), Math.floor((s % 86_400) / 3600), Math.floor((s % 3600) / 60)];
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  if (m > 0) return s % 60 > 0 ? `${m}m ${s % 60}s` : `${m}m`;
  return `${s}s`;
}
