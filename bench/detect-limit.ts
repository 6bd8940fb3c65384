import { compareRates } from "../analytics/rate-ratio.js";
import { HOUR_MS } from "../contract/time.js";
import { LINE_FAULT_CODES } from "../device-sim/score.js";
import type { InjectedProblem } from "../device-sim/script.js";
import type { HourTally, SimRun } from "./detect-sim.js";

// The statistical limit of a scenario's detection: the first window [start, t) at which the exact Poisson
// rate-ratio test (analytics/rate-ratio.ts compareRates, the test fieldq used before it knew devices differ)
// on the pooled counts of the TRUE cohorts calls a regression, uncorrected. The detector does not know which
// cohorts and code are the true ones, corrects for the many comparisons it makes and allows for devices that
// differ, so no honest detector can beat this time on the same data; it is a floor, not a target.

type Side = "baseline" | "candidate";
/** Which side of the comparison a device-hour tally is on, or undefined when it is on neither. */
type Split = (tally: HourTally) => Side | undefined;

/** The first hour-aligned window end after `onsetMs` at which the pooled exact test says regression. */
function firstPooledRegression(
  run: SimRun,
  onsetMs: number,
  split: Split,
  codes: readonly string[],
): number | null {
  const hourly = new Map<number, Record<Side, { count: number; hours: number }>>();
  for (const tally of run.hours) {
    const side = split(tally);
    if (side === undefined) continue;
    let hour = hourly.get(tally.hourMs);
    if (hour === undefined) {
      hour = { baseline: { count: 0, hours: 0 }, candidate: { count: 0, hours: 0 } };
      hourly.set(tally.hourMs, hour);
    }
    hour[side].hours += tally.hours;
    for (const f of tally.faults) if (codes.includes(f.code)) hour[side].count += f.n;
  }
  const sum = { baseline: { count: 0, hours: 0 }, candidate: { count: 0, hours: 0 } };
  for (let t = run.window.fromMs; t < run.window.toMs; t += HOUR_MS) {
    const hour = hourly.get(t);
    if (hour !== undefined) {
      for (const side of ["baseline", "candidate"] as const) {
        sum[side].count += hour[side].count;
        sum[side].hours += hour[side].hours;
      }
    }
    const endMs = t + HOUR_MS;
    if (endMs <= onsetMs || sum.baseline.hours === 0 || sum.candidate.hours === 0) continue;
    const result = compareRates({
      baseline: { count: sum.baseline.count, exposureHours: sum.baseline.hours },
      candidate: { count: sum.candidate.count, exposureHours: sum.candidate.hours },
    });
    if (result.ok && result.comparison.verdict === "regression") return endMs;
  }
  return null;
}

/** The limit for one injected problem, as a time after its onset; null when it has none or is never reached. */
export function statisticalLimit(run: SimRun, problem: InjectedProblem): number | null {
  switch (problem.type) {
    case "fault_rate": {
      const at = firstPooledRegression(
        run,
        problem.onsetMs,
        (t) =>
          t.model !== problem.model
            ? undefined
            : t.firmware === problem.baseline
              ? "baseline"
              : t.firmware === problem.firmware
                ? "candidate"
                : undefined,
        [problem.code],
      );
      return at === null ? null : at - problem.onsetMs;
    }
    case "flaky_isp": {
      // Each model the ISP's devices belong to, its line codes one at a time and pooled: the earliest.
      const isp = new Map(run.devices.map((d) => [d.id, d.isp]));
      const affected = new Set(problem.devices);
      const models = new Set(run.devices.filter((d) => affected.has(d.id)).map((d) => d.model));
      const codeSets = [...LINE_FAULT_CODES.map((c) => [c]), [...LINE_FAULT_CODES]];
      let best: number | null = null;
      for (const model of models) {
        for (const codes of codeSets) {
          const at = firstPooledRegression(
            run,
            problem.onsetMs,
            (t) =>
              t.model !== model ? undefined : isp.get(t.device) === problem.isp ? "candidate" : "baseline",
            codes,
          );
          if (at !== null && (best === null || at < best)) best = at;
        }
      }
      return best === null ? null : best - problem.onsetMs;
    }
    default:
      // Silence is a rule, not a test; lemons and malformed payloads are not timed.
      return null;
  }
}
