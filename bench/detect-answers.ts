import { concentrationOf } from "../analytics/issue-stats.js";
import { regressionVerdictOf, scanWithTiming } from "../analytics/regression-scan.js";
import {
  DEFAULT_SILENCE,
  expectedInterval,
  type FirmwareUpdate,
  presenceStatus,
  type SeenDevice,
  silenceReport,
} from "../analytics/silence.js";
import { MAX_AFFECTED_DEVICES } from "../contract/api/issues.js";
import { UNKNOWN } from "../contract/messages.js";
import { floorHour, iso, type Window } from "../contract/time.js";
import { type DeviceAnswer, regressionAnswerOf, type ScoreApi } from "../device-sim/score.js";
import { GAP_SAMPLES } from "../ingest/device-state.js";
import { REGRESSION_SPAN_MS } from "../rollup/regression-runner.js";
import { type SimRun, talliesWithin } from "./detect-sim.js";

// The answers `sim score` would get from the API, computed in memory from a played run with the product's own
// rules: the regression scan and its timing (analytics/regression-scan.ts), the cohort ranking
// (analytics/cohort-ranking.ts), an issue's concentration (analytics/issue-stats.ts) and the silence rule
// (analytics/silence.ts). What the API adds (storage, paging, the HTTP shapes) is not exercised here.

/** The silence report and device statuses at `nowMs`, right after a backfill that delivered everything. */
function silence(run: SimRun, nowMs: number) {
  const options = DEFAULT_SILENCE;
  const seen: SeenDevice[] = [];
  const updates: FirmwareUpdate[] = [];
  const devices: DeviceAnswer[] = [];
  for (const d of run.devices) {
    const expected = expectedInterval(d.gapsMs.slice(-GAP_SAMPLES), undefined, options);
    // A backfill delivers every report moments before it ends, then the device disconnects (a goodbye, or
    // the broker's will for one that went silent): on the broker's clock all of them were just heard.
    const status =
      d.lastReportMs === null
        ? "silent"
        : presenceStatus({
            lastReportMs: nowMs,
            lastReportDeviceMs: d.lastReportMs,
            expectedMs: expected.ms,
            lastPresence: { state: "offline", atMs: nowMs },
            nowMs,
            factor: options.factor,
          });
    devices.push({
      id: d.id,
      kind: d.kind,
      model: d.model,
      isp: d.isp,
      status,
      lastReport: d.lastReportMs === null ? null : iso(d.lastReportMs),
      expectedIntervalS: expected.ms / 1000,
    });
    if (d.lastReportMs === null) continue;
    seen.push({
      device: d.id,
      model: d.model,
      firmware: d.firmware,
      silent: status === "silent",
      lastReportMs: d.lastReportMs,
    });
    const update = d.updates.at(-1);
    if (update !== undefined) updates.push({ device: d.id, model: d.model, ...update });
  }
  const report = silenceReport({
    fromMs: run.window.fromMs,
    toMs: nowMs,
    factor: options.factor,
    seen,
    updates,
  });
  return { report, devices };
}

/**
 * The fieldq API's answers right after the run's backfill, as a ScoreApi that computes each from the run in
 * memory: `sim score`'s own collectAnswers asks it what it asks the real API.
 */
export function memoryScoreApi(run: SimRun, judgedAtMs: number): ScoreApi {
  const tallies = (w: Window) => talliesWithin(run, w);
  const attributes = new Map(run.devices.map((d) => [d.id, { isp: d.isp, hardware: d.hardware }]));
  const issues = run.issues.map((i) => ({
    id: i.id,
    key: i.key,
    kind: i.kind,
    models: [`${i.kind}/${i.model}`],
    codes: [i.code],
  }));
  const { report, devices } = silence(run, judgedAtMs);
  const rejections = new Map<string, number>();
  const modelOf = new Map(run.devices.map((d) => [d.id, d.model]));
  for (const [device, n] of run.rejections) {
    const model = modelOf.get(device) ?? UNKNOWN;
    rejections.set(model, (rejections.get(model) ?? 0) + n);
  }
  const models = [...new Set(run.devices.map((d) => d.model))].sort();
  return {
    async regressions() {
      // The runner's scan ends at the newest complete hour: here the end of the history.
      const timed = await scanWithTiming({
        toMs: floorHour(judgedAtMs),
        spanMs: REGRESSION_SPAN_MS,
        tallies,
        attributesOf: (device) => attributes.get(device),
      });
      return timed.findings.map((f) => regressionAnswerOf(regressionVerdictOf(timed.scan, f)));
    },
    issues: async () => issues,
    async issue(id) {
      const i = run.issues.find((x) => x.id === id);
      if (i === undefined) return undefined;
      const affected = [...i.devices].map(([device, t]) => ({ device, ...t }));
      const items = affected
        .sort((a, b) => b.n - a.n || b.lastMs - a.lastMs || (a.device < b.device ? -1 : 1))
        .slice(0, MAX_AFFECTED_DEVICES)
        .map((d) => ({ id: d.device, occurrences: d.n }));
      return {
        id: i.id,
        key: i.key,
        kind: i.kind,
        models: [`${i.kind}/${i.model}`],
        codes: [i.code],
        concentration: concentrationOf(affected),
        devices: { total: affected.length, items },
      };
    },
    silence: async () => report,
    devices: async () => devices,
    fleetSummary: async () => ({
      groups: models.map((model) => ({
        group: { model },
        rejections: { count: rejections.get(model) ?? 0, per1000h: null },
      })),
    }),
  };
}
