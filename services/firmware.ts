import type { InfluxDB } from "influx";
import { compareCohorts, devicesByVersion, type Side } from "../analytics/firmware-cohorts.js";
import type { FirmwareComparison } from "../contract/api/fleet.js";
import type { JudgedVerdict, RegressionList } from "../contract/api/regressions.js";
import type { Severity } from "../contract/messages.js";
import type { Result } from "../contract/result.js";
import { alignHours, DAY_MS, type Window } from "../contract/time.js";
import { createRollupReader, type RollupReader } from "../storage/rollup-reader.js";
import { readVerdictStates } from "../storage/verdict-queries.js";
import { answers } from "./answers.js";

// Firmware verdicts: two versions of a model compared device by device on request (from the per-device
// cohort tallies of the rollups, device_cohort), and the verdicts the regression runner found without
// being asked (rollup/regression-runner.ts), read from its log. Windows are widened to whole UTC hours.

type Maybe<T> = T | undefined;
export type FirmwareCompareInput = Window & {
  model: string;
  baseline: string;
  candidate: string;
  severity?: Maybe<Severity>;
};
export type NoExposure = { reason: "no_exposure"; cohorts: Side[] };
export type RegressionsInput = {
  model?: Maybe<string>;
  kind?: Maybe<string>;
  verdict?: Maybe<JudgedVerdict>;
};

export interface FirmwareService {
  /** Fault rates of two cohorts of one model; not ok when a cohort has no device with exposure in the window. */
  compare(q: FirmwareCompareInput): Promise<Result<FirmwareComparison, NoExposure>>;
  /** The verdicts that hold now, newest first reached first. */
  regressions(q: RegressionsInput): Promise<RegressionList>;
  /** Reads what the default compare needs (the last 30 days of per-device tallies). */
  warm(): Promise<void>;
}

export type FirmwareServiceOptions = {
  /** Share one reader (and its cache) with the other services. */
  rollups?: RollupReader;
  now?: () => number;
};

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function createFirmwareService(
  influx: InfluxDB,
  options: FirmwareServiceOptions = {},
): FirmwareService {
  const rollups = options.rollups ?? createRollupReader(influx);
  const comparisons = answers<Result<FirmwareComparison, NoExposure>>();

  return {
    async compare(q) {
      const window = alignHours(q);
      const view = await rollups.load([window], [], { sets: [], deviceCohorts: true });
      const key = JSON.stringify([window, q.model, q.baseline, q.candidate, q.severity ?? null]);
      return comparisons(key, view.version, () => {
        const versions = devicesByVersion(view.deviceCohorts(window).filter((t) => t.model === q.model)).get(
          q.model,
        );
        const cohort = (firmware: string) => ({ firmware, devices: versions?.get(firmware) ?? [] });
        return compareCohorts({
          model: q.model,
          window,
          severity: q.severity ?? undefined,
          baseline: cohort(q.baseline),
          candidate: cohort(q.candidate),
        });
      });
    },

    async regressions(q) {
      const states = await readVerdictStates(influx, q.model ?? undefined);
      const items = states
        .filter((s) => s.event === "raised")
        .filter(
          (s) =>
            (q.verdict === undefined || s.verdict === q.verdict) &&
            (q.kind === undefined || s.kind === q.kind),
        )
        .sort(
          (a, b) =>
            b.atMs - a.atMs ||
            byText(a.kind, b.kind) ||
            byText(a.model ?? "", b.model ?? "") ||
            byText(a.subject, b.subject),
        )
        .flatMap((s) => (s.event === "raised" ? [s.detail] : []));
      return { items };
    },

    async warm() {
      const at = (options.now ?? Date.now)();
      await rollups.load([alignHours({ fromMs: at - 30 * DAY_MS, toMs: at })], [], {
        sets: [],
        deviceCohorts: true,
      });
    },
  };
}
