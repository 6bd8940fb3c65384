import { z } from "zod";
import { parseDuration } from "../config/duration.js";
import type {
  DayState,
  PromiseDay,
  PromiseKind,
  PromiseSample,
  PromiseStatus,
} from "../contract/api/promises.js";
import { SEVERITIES, type Severity } from "../contract/messages.js";
import { DAY_MS, floorDay, formatDuration, iso } from "../contract/time.js";

// Service promises (ISO 10001, docs/promises.md): the file's format, and the rules that judge a promise per
// UTC day, its error budget, burn rate and status. Pure: the service gives the days' samples.

// ---- the file ----

/** A period and lookback are read from the rollups day by day: a year of days at most, and a quarter. */
export const MAX_PERIOD_DAYS = 366;
export const MAX_LOOKBACK_DAYS = 90;

const days = (what: string, least: number, most: number) =>
  z
    .string()
    .refine((text) => {
      const ms = parseDuration(text);
      return ms !== undefined && ms % DAY_MS === 0 && ms / DAY_MS >= least && ms / DAY_MS <= most;
    }, `${what} must be a whole number of days from ${least} to ${most} (e.g. 30d)`)
    .transform((text) => (parseDuration(text) ?? 0) / DAY_MS);

const Objective = z
  .number()
  .gt(0, "objective must be above 0")
  .lt(1, "objective must be below 1 (1 leaves no error budget)");
const Share = z.number().min(0).max(1);

const Judged = { objective: Objective.optional(), period: days("period", 1, MAX_PERIOD_DAYS).optional() };

const Availability = z.strictObject({
  target: Share.meta({ description: "Least share of the model's devices online each day" }),
  lookback: days("lookback", 0, MAX_LOOKBACK_DAYS).optional(),
  minDevices: z.number().int().min(1).optional(),
  ...Judged,
});
const FaultRate = z.strictObject({
  max: z.number().min(0).meta({ description: "Most faults per 1,000 device-hours a day" }),
  minDeviceHours: z.number().min(0).optional(),
  ...Judged,
});
const Response = z.strictObject({
  within: z
    .string()
    .refine((text) => (parseDuration(text) ?? 0) > 0, "within must be a duration such as 4h")
    .transform((text) => parseDuration(text) ?? 0),
  share: Share.optional(),
  ...Judged,
});
const BySeverity = <T extends z.ZodType>(schema: T) => z.partialRecord(z.enum(SEVERITIES), schema);

export const PromisesFile = z.strictObject({
  defaults: z
    .strictObject({
      objective: Objective.optional(),
      period: days("period", 1, MAX_PERIOD_DAYS).optional(),
      lookback: days("lookback", 0, MAX_LOOKBACK_DAYS).optional(),
      minDevices: z.number().int().min(1).optional(),
      minDeviceHours: z.number().min(0).optional(),
    })
    .optional(),
  models: z.record(
    z.string().min(1),
    z.strictObject({
      availability: Availability.optional(),
      faultRates: BySeverity(FaultRate).optional(),
      response: BySeverity(Response).optional(),
    }),
  ),
});
export type PromisesFile = z.infer<typeof PromisesFile>;

export const PROMISE_DEFAULTS = {
  objective: 0.95,
  periodDays: 30,
  lookbackDays: 7,
  minDevices: 10,
  minDeviceHours: 100,
} as const;

type Common = { model: string; name: string; objective: number; periodDays: number };
export type ServicePromise =
  | (Common & { kind: "availability"; target: number; lookbackDays: number; minDevices: number })
  | (Common & { kind: "fault_rate"; severity: Severity; target: number; minDeviceHours: number })
  | (Common & { kind: "response"; severity: Severity; target: number; withinMs: number });

/** The file's promises, one per model and measure, defaults filled in; in the file's order. */
export function promisesOf(file: PromisesFile): ServicePromise[] {
  const d = { ...PROMISE_DEFAULTS, ...definedOf(file.defaults) };
  const objective = file.defaults?.objective ?? d.objective;
  const periodDays = file.defaults?.period ?? d.periodDays;
  const judged = (p: { objective?: number | undefined; period?: number | undefined }) => ({
    objective: p.objective ?? objective,
    periodDays: p.period ?? periodDays,
  });
  const out: ServicePromise[] = [];
  for (const [model, promised] of Object.entries(file.models)) {
    const a = promised.availability;
    if (a !== undefined) {
      out.push({
        kind: "availability",
        model,
        name: "availability",
        target: a.target,
        lookbackDays: a.lookback ?? file.defaults?.lookback ?? d.lookbackDays,
        minDevices: a.minDevices ?? d.minDevices,
        ...judged(a),
      });
    }
    for (const severity of SEVERITIES) {
      const f = promised.faultRates?.[severity];
      if (f === undefined) continue;
      out.push({
        kind: "fault_rate",
        model,
        name: `fault rate ${severity}`,
        severity,
        target: f.max,
        minDeviceHours: f.minDeviceHours ?? d.minDeviceHours,
        ...judged(f),
      });
    }
    for (const severity of SEVERITIES) {
      const r = promised.response?.[severity];
      if (r === undefined) continue;
      out.push({
        kind: "response",
        model,
        name: `response ${severity}`,
        severity,
        target: r.share ?? 1,
        withinMs: r.within,
        ...judged(r),
      });
    }
  }
  return out;
}

function definedOf(defaults: PromisesFile["defaults"]) {
  return {
    ...(defaults?.minDevices === undefined ? {} : { minDevices: defaults.minDevices }),
    ...(defaults?.minDeviceHours === undefined ? {} : { minDeviceHours: defaults.minDeviceHours }),
  };
}

/** The promise in words, with what it assumes. */
export function describePromise(p: ServicePromise): string {
  const over = `on ${pct(p.objective)} of days over ${p.periodDays} days`;
  switch (p.kind) {
    case "availability":
      return (
        `At least ${pct(p.target)} of ${p.model} devices online each UTC day, ${over}. Online: reported ` +
        `activity that day; counted: reported on that day or in the ${p.lookbackDays} days before. ` +
        `Days with fewer than ${p.minDevices} devices counted are not judged.`
      );
    case "fault_rate":
      return (
        `At most ${p.target} ${p.severity} faults per 1,000 device-hours each UTC day, ${over}. ` +
        `Days with less than ${p.minDeviceHours} device-hours are not judged.`
      );
    case "response":
      return (
        `${p.target === 1 ? "Every" : `At least ${pct(p.target)} of`} new ${p.model} issue of ` +
        `${p.severity} severity or worse answered within ${formatDuration(p.withinMs)} (its first ` +
        `transition by a person after it was first seen), ${over}; a day counts the issues first seen ` +
        "in it, and a day without one is not judged."
      );
  }
}

const pct = (share: number) => `${Math.round(share * 10_000) / 100}%`;

// ---- daily verdicts ----

export type DayVerdict = {
  day: number;
  value: number | null;
  target: number;
  state: DayState;
  sample: PromiseSample;
};

const judgedState = (ok: boolean): DayState => (ok ? "met" : "missed");

/**
 * Availability per day: online = devices that reported (activity) that day; counted = devices that reported
 * that day or in the lookback days before. A device that stops reporting counts as offline for the lookback
 * days, then leaves the fleet (retired, returned); a new device counts from its first day. `online` holds
 * each day's devices, oldest first, preceded by the lookback days; `complete` says which days are over.
 */
export function availabilityDays(
  p: { target: number; lookbackDays: number; minDevices: number },
  online: ReadonlyArray<{ day: number; devices: ReadonlySet<string>; complete: boolean }>,
): DayVerdict[] {
  const out: DayVerdict[] = [];
  for (let i = p.lookbackDays; i < online.length; i++) {
    const today = online[i];
    if (today === undefined) continue;
    const counted = new Set<string>();
    for (let j = i - p.lookbackDays; j <= i; j++) for (const d of online[j]?.devices ?? []) counted.add(d);
    const sample = { devices: counted.size, online: today.devices.size };
    const value = counted.size === 0 ? null : today.devices.size / counted.size;
    const state: DayState = !today.complete
      ? "pending"
      : counted.size < p.minDevices || value === null
        ? "insufficient"
        : judgedState(value >= p.target);
    out.push({ day: today.day, value, target: p.target, state, sample });
  }
  return out;
}

/** Faults of one severity per 1,000 device-hours per day; a day under minDeviceHours is not judged. */
export function faultRateDays(
  p: { target: number; minDeviceHours: number },
  sums: ReadonlyArray<{ day: number; deviceHours: number; faults: number; complete: boolean }>,
): DayVerdict[] {
  return sums.map(({ day, deviceHours, faults, complete }) => {
    const value = deviceHours > 0 ? (faults / deviceHours) * 1000 : null;
    const state: DayState = !complete
      ? "pending"
      : deviceHours < p.minDeviceHours || deviceHours === 0 || value === null
        ? "insufficient"
        : judgedState(value <= p.target);
    return { day, value, target: p.target, state, sample: { deviceHours, faults } };
  });
}

export type NewIssue = { id: string; firstSeenMs: number; answeredMs: number | null };

/**
 * Response per day: the issues first seen that day, each answered in time when its first transition by a
 * person came within `withinMs` of its first occurrence. One not answered and not yet due waits: the day
 * stays pending until every issue of it is answered or due.
 */
export function responseDays(
  p: { target: number; withinMs: number },
  dayStarts: readonly number[],
  issues: readonly NewIssue[],
  asOfMs: number,
): DayVerdict[] {
  return dayStarts.map((day) => {
    let n = 0;
    let late = 0;
    let waiting = 0;
    for (const issue of issues) {
      if (floorDay(issue.firstSeenMs) !== day) continue;
      n++;
      const due = issue.firstSeenMs + p.withinMs;
      const answered = issue.answeredMs !== null && issue.answeredMs <= asOfMs ? issue.answeredMs : null;
      if (answered !== null) {
        if (answered > due) late++;
      } else if (asOfMs >= due) late++;
      else waiting++;
    }
    const judged = n - waiting;
    const value = judged === 0 ? null : (judged - late) / judged;
    const state: DayState =
      n === 0
        ? "none"
        : waiting > 0 || day + DAY_MS > asOfMs
          ? "pending"
          : judgedState((value ?? 0) >= p.target);
    return { day, value, target: p.target, state, sample: { issues: n, late, waiting } };
  });
}

// ---- budget, burn rate, status ----

/** The burn-rate windows (days) and the rate both must reach to call it a fast burn: see docs/promises.md. */
export const BURN = { longDays: 7, shortDays: 3, fast: 2 } as const;

export type Judgement = {
  period: { fromMs: number; toMs: number };
  judgedDays: number;
  compliance: number | null;
  budget: { allowedDays: number; spentDays: number; leftDays: number; leftShare: number | null };
  burnRate: {
    long: { days: number; rate: number | null };
    short: { days: number; rate: number | null };
    fast: number;
  };
  status: PromiseStatus;
  reason: string;
};

/**
 * A promise judged at asOfMs over its period: the periodDays complete UTC days before asOf's day. Budget:
 * (1 − objective) × periodDays missed days allowed. Burn rate over a window: the share of its judged days
 * missed ÷ (1 − objective), so 1 spends the budget exactly over the period. Breached: the last complete day
 * missed, or more days missed than the budget allows; burning: the burn rate at least BURN.fast over the long
 * window and over the short one (still burning); insufficient data: no day of the period judged (response:
 * no new issue in it is "ok", nothing waited).
 */
export function judgePromise(
  p: { kind: PromiseKind; objective: number; periodDays: number; name: string },
  verdicts: readonly DayVerdict[],
  asOfMs: number,
): Judgement {
  const toMs = floorDay(asOfMs);
  const fromMs = toMs - p.periodDays * DAY_MS;
  const byDay = new Map(verdicts.map((v) => [v.day, v]));
  const inPeriod = (from: number) => {
    const list: DayVerdict[] = [];
    for (let day = Math.max(from, fromMs); day < toMs; day += DAY_MS) {
      const v = byDay.get(day);
      if (v !== undefined) list.push(v);
    }
    return list;
  };
  const period = inPeriod(fromMs);
  const met = period.filter((v) => v.state === "met").length;
  const missed = period.filter((v) => v.state === "missed").length;
  const judgedDays = met + missed;
  // Rounded: (1 − 0.9) × 10 is 0.9999999999999998 in floating point, which one missed day would overspend.
  const allowedDays = Math.round((1 - p.objective) * p.periodDays * 1e9) / 1e9;
  const leftDays = allowedDays - missed;
  const burn = (windowDays: number) => {
    const days = Math.min(windowDays, p.periodDays);
    const list = inPeriod(toMs - days * DAY_MS);
    const judged = list.filter((v) => v.state === "met" || v.state === "missed").length;
    const bad = list.filter((v) => v.state === "missed").length;
    return { days, rate: judged === 0 ? null : bad / judged / (1 - p.objective) };
  };
  const long = burn(BURN.longDays);
  const short = burn(BURN.shortDays);
  const last = byDay.get(toMs - DAY_MS);

  let status: PromiseStatus;
  let reason: string;
  if (judgedDays === 0) {
    const quiet = p.kind === "response" && period.every((v) => v.state === "none");
    status = quiet ? "ok" : "insufficient_data";
    reason = quiet
      ? `no new issue in the last ${p.periodDays} days: nothing waited for an answer`
      : `no day of the last ${p.periodDays} had a sample large enough to judge`;
  } else if (last?.state === "missed") {
    status = "breached";
    reason = `${iso(last.day).slice(0, 10)} out of promise: ${formatValue(p.kind, last.value)} against ${formatValue(p.kind, last.target)}`;
  } else if (leftDays < 0) {
    status = "breached";
    reason = `error budget exhausted: ${missed} days missed of ${round(allowedDays)} allowed in ${p.periodDays} days`;
  } else if ((long.rate ?? 0) >= BURN.fast && (short.rate ?? 0) >= BURN.fast) {
    status = "burning";
    reason = `burning the error budget ${round(long.rate ?? 0)}× as fast as it lasts (last ${long.days} days; ${round(short.rate ?? 0)}× over the last ${short.days})`;
  } else {
    status = "ok";
    reason = `${met} of ${judgedDays} judged days met; ${round(leftDays)} of ${round(allowedDays)} days of error budget left`;
  }
  return {
    period: { fromMs, toMs },
    judgedDays,
    compliance: judgedDays === 0 ? null : met / judgedDays,
    budget: {
      allowedDays,
      spentDays: missed,
      leftDays,
      leftShare: allowedDays === 0 ? null : leftDays / allowedDays,
    },
    burnRate: { long, short, fast: BURN.fast },
    status,
    reason,
  };
}

const round = (x: number) => Math.round(x * 100) / 100;

export function formatValue(kind: PromiseKind, value: number | null): string {
  if (value === null) return "no sample";
  return kind === "fault_rate" ? `${round(value)} per 1,000 device-hours` : pct(value);
}

/** A verdict as the API shows it. */
export const dayRow = (v: DayVerdict): PromiseDay => ({
  day: iso(v.day),
  value: v.value,
  target: v.target,
  met: v.state === "met" ? true : v.state === "missed" ? false : null,
  state: v.state,
  sample: v.sample,
});
