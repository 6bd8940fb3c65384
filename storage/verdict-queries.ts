import type { InfluxDB } from "influx";
import { JudgedVerdict, RegressionVerdict } from "../contract/api/regressions.js";
import type { PointWriter } from "./influx.js";
import { from, queryGroups, tagIs, text, writeOrUnavailable } from "./influxql.js";
import { MEASUREMENTS, type Point, pointTimeNs } from "./schema.js";

// The verdicts of the regression runner ("long"."verdict", docs/storage.md "Verdicts"): per model and
// subject a short log of points, each "raised" (at the hour the verdict was first reached, with the
// verdict and its evidence) or "cleared" (at the end of the data of the scan in which it no longer held).
// Point times come from the data alone: two runners over the same data write the same points.

/** Who a verdict is about: a model's subject, or (model null) one spanning every model of a kind. */
export type VerdictScope = { model: string | null; kind: string; subject: string };

/** One subject's newest entry: what holds now (raised) or since when nothing does (cleared). */
export type VerdictState =
  | (VerdictScope & { event: "raised"; atMs: number; verdict: JudgedVerdict; detail: RegressionVerdict })
  | (VerdictScope & { event: "cleared"; atMs: number; verdict: JudgedVerdict });

/** Tags kind, subject and, unless the subject spans a kind, model (InfluxDB keeps no empty tag). */
const tagsOf = (v: VerdictScope) => ({
  kind: v.kind,
  ...(v.model === null ? {} : { model: v.model }),
  subject: v.subject,
});

/** A raised verdict's point: at its first-reached hour, nanos 0. */
export function raisedPoint(subject: string, detail: RegressionVerdict): Point {
  return {
    measurement: MEASUREMENTS.verdict.name,
    rp: MEASUREMENTS.verdict.rp,
    tags: tagsOf({ model: detail.model, kind: detail.deviceKind, subject }),
    fields: { event: "raised", verdict: detail.verdict, detail: JSON.stringify(detail) },
    timeNs: pointTimeNs(Date.parse(detail.firstReached), 0),
  };
}

/** A cleared verdict's point: at the end of the scan's data, nanos 1 (after a raise in the same ms). */
export function clearedPoint(v: VerdictScope & { verdict: JudgedVerdict; atMs: number }): Point {
  return {
    measurement: MEASUREMENTS.verdict.name,
    rp: MEASUREMENTS.verdict.rp,
    tags: tagsOf(v),
    fields: { event: "cleared", verdict: v.verdict, detail: "" },
    timeNs: pointTimeNs(v.atMs, 1),
  };
}

export const writeVerdicts = (write: PointWriter, points: readonly Point[]): Promise<void> =>
  writeOrUnavailable(write, points);

/** Each subject's newest entry (of one model, or all); entries that do not parse are skipped. */
export async function readVerdictStates(influx: InfluxDB, model?: string): Promise<VerdictState[]> {
  const where = model === undefined ? "" : ` WHERE ${tagIs("model", model)}`;
  const [groups = []] = await queryGroups(influx, [
    `SELECT "event", "verdict", "detail" FROM ${from("verdict")}${where} GROUP BY "kind", "model", "subject"`,
  ]);
  const states: VerdictState[] = [];
  for (const group of groups) {
    const { kind, model: m, subject } = group.tags;
    if (kind === undefined || kind === "" || subject === undefined || subject === "") continue;
    const scope = { model: m === undefined || m === "" ? null : m, kind, subject };
    // Rows come in time order; the newest that parses decides.
    for (const row of [...group.rows].reverse()) {
      const state = stateOf(scope, row.time.getTime(), row);
      if (state === undefined) continue;
      states.push(state);
      break;
    }
  }
  return states;
}

function stateOf(scope: VerdictScope, atMs: number, row: Record<string, unknown>): VerdictState | undefined {
  const verdict = JudgedVerdict.safeParse(row.verdict);
  if (!verdict.success) return undefined;
  if (text(row.event) === "cleared") return { ...scope, event: "cleared", atMs, verdict: verdict.data };
  if (text(row.event) !== "raised") return undefined;
  let detail: ReturnType<typeof RegressionVerdict.safeParse>;
  try {
    detail = RegressionVerdict.safeParse(JSON.parse(text(row.detail) ?? ""));
  } catch {
    return undefined;
  }
  if (!detail.success) return undefined;
  return { ...scope, event: "raised", atMs, verdict: verdict.data, detail: detail.data };
}

/** The start of the newest hour the rollups hold (the regression scan's data end is the hour after it). */
export async function newestRolledUpHour(influx: InfluxDB): Promise<number | undefined> {
  const [groups = []] = await queryGroups(influx, [
    `SELECT last("rev") FROM ${from("rollupRev")} WHERE ${tagIs("span", "1h")}`,
  ]);
  return groups[0]?.rows[0]?.time.getTime();
}
