import type { InfluxDB } from "influx";
import {
  findingKey,
  type Judged,
  regressionVerdictOf,
  scanWithTiming,
  type TalliesOf,
} from "../analytics/regression-scan.js";
import type { RegressionVerdict } from "../contract/api/regressions.js";
import { DAY_MS, floorHour, HOUR_MS, iso } from "../contract/time.js";
import type { Logger } from "../observe/logger.js";
import { deviceQueries } from "../storage/device-queries.js";
import type { PointWriter } from "../storage/influx.js";
import { createRollupReader, type RollupReader } from "../storage/rollup-reader.js";
import type { Point } from "../storage/schema.js";
import {
  clearedPoint,
  newestRolledUpHour,
  raisedPoint,
  readVerdictStates,
  type VerdictScope,
  writeVerdicts,
} from "../storage/verdict-queries.js";
import { PassLoop } from "./pass-loop.js";

// Finds regressions without being asked, in the ingest's process, after the rollups it reads (device_cohort)
// were recomputed: the regression scan (analytics/regression-scan.ts) over the 30 days up to the newest
// complete hour of data, and only what changed written to the verdict log (storage/verdict-queries.ts): a
// new verdict at the hour it was first reached, one that no longer holds cleared at the scan's end. Both
// times come from the data, so two runners (two ingest processes, a restart mid-pass) write the same points.
// Reads never do this.

export const REGRESSION_SPAN_MS = 30 * DAY_MS;

export type RegressionScanOptions = {
  influx: InfluxDB;
  write: PointWriter;
  /** The runner keeps one reader, so a pass reads only the buckets recomputed since the last. */
  rollups?: RollupReader;
  /** How far back a scan reads; 30 days unless given. */
  spanMs?: number;
  /** Hours that end after now are still filling; tests pin it. */
  now?: () => number;
  /** Hours (their starts) still to be rolled up: no scan while one lies before its end (a backfill under way). */
  pending?: () => Iterable<number>;
  /**
   * What the last pass scanned (its end and the rollups' version), kept by the caller: a pass over the same
   * data again is skipped. A device's new ISP or hardware counts from the next change of data.
   */
  memo?: { scanned?: string | undefined };
};

export type RegressionPass =
  | { scanned: false; reason: "no_data" | "rollups_pending" | "unchanged"; toMs: number | null }
  | {
      scanned: true;
      toMs: number;
      familySize: number;
      /** Scans the timing of new verdicts ran besides the one at toMs. */
      probes: number;
      raised: RegressionVerdict[];
      cleared: Array<VerdictScope & { verdict: Judged }>;
    };

/** One pass: scan, compare with the verdicts kept, write what changed. */
export async function scanForRegressions(options: RegressionScanOptions): Promise<RegressionPass> {
  const { influx } = options;
  const spanMs = options.spanMs ?? REGRESSION_SPAN_MS;
  const newest = await newestRolledUpHour(influx);
  if (newest === undefined) return { scanned: false, reason: "no_data", toMs: null };
  // The newest complete hour of data: a live hour still filling is left to the next pass.
  const toMs = Math.min(newest + HOUR_MS, floorHour((options.now ?? Date.now)()));
  for (const hour of options.pending?.() ?? []) {
    if (hour < toMs) return { scanned: false, reason: "rollups_pending", toMs };
  }
  const rollups = options.rollups ?? createRollupReader(influx);
  const tallies: TalliesOf = async (window) =>
    (await rollups.load([window], [], { sets: [], deviceCohorts: true })).deviceCohorts(window);
  const { version } = await rollups.load([{ fromMs: toMs - spanMs, toMs }], [], {
    sets: [],
    deviceCohorts: true,
  });
  const scanned = version === undefined ? undefined : `${toMs}|${version}`;
  if (scanned !== undefined && options.memo?.scanned === scanned)
    return { scanned: false, reason: "unchanged", toMs };
  // ISP and hardware are each device's latest hello's (device_state, one series: one query).
  const attributes = new Map(
    (await deviceQueries(influx).deviceStates()).map((d) => [d.device, { isp: d.isp, hardware: d.hardware }]),
  );

  const states = new Map(
    (await readVerdictStates(influx)).map((s) => [
      findingKey({ model: s.model, deviceKind: s.kind, key: s.subject }),
      s,
    ]),
  );
  const known = new Map<string, { verdict: Judged; firstReachedMs: number }>();
  const notBeforeMs = new Map<string, number>();
  for (const [key, s] of states) {
    if (s.event === "raised") known.set(key, { verdict: s.verdict, firstReachedMs: s.atMs });
    // A verdict raised anew (after a clear, or turned the other way) is dated after the entry it follows.
    notBeforeMs.set(key, s.atMs + HOUR_MS);
  }
  const timed = await scanWithTiming({
    toMs,
    spanMs,
    tallies,
    attributesOf: (device) => attributes.get(device),
    known,
    notBeforeMs,
  });

  const points: Point[] = [];
  const raised: RegressionVerdict[] = [];
  const found = new Set<string>();
  for (const f of timed.findings) {
    const key = findingKey(f);
    found.add(key);
    const held = states.get(key);
    if (held?.event === "raised" && held.verdict === f.verdict) continue;
    const detail = regressionVerdictOf(timed.scan, f);
    raised.push(detail);
    points.push(raisedPoint(f.key, detail));
  }
  const cleared: Array<VerdictScope & { verdict: Judged }> = [];
  for (const [key, s] of states) {
    // A verdict raised on newer data than this scan's (another runner ahead of this one) is not judged here.
    if (s.event !== "raised" || found.has(key) || s.atMs >= toMs) continue;
    cleared.push({ model: s.model, kind: s.kind, subject: s.subject, verdict: s.verdict });
    points.push(
      clearedPoint({ model: s.model, kind: s.kind, subject: s.subject, verdict: s.verdict, atMs: toMs }),
    );
  }
  await writeVerdicts(options.write, points);
  if (options.memo !== undefined) options.memo.scanned = scanned;
  return { scanned: true, toMs, familySize: timed.scan.familySize, probes: timed.probes, raised, cleared };
}

export type RegressionRunnerOptions = RegressionScanOptions & {
  logger: Logger;
  /** A pass at least this often, so hours that complete without new data still count. */
  intervalMs: number;
};

/**
 * Runs scanForRegressions one pass at a time: after each rollup recompute (`poke`, e.g. from RollupRunner's
 * after hook) and every intervalMs. A poke during a pass asks for one more pass after it.
 */
export class RegressionRunner extends PassLoop {
  private readonly options: RegressionRunnerOptions & { rollups: RollupReader };

  constructor(options: RegressionRunnerOptions) {
    super(options.intervalMs);
    this.options = {
      ...options,
      rollups: options.rollups ?? createRollupReader(options.influx),
      memo: options.memo ?? {},
    };
  }

  /** One pass, now; errors are thrown to the caller. */
  runOnce(): Promise<RegressionPass> {
    return scanForRegressions(this.options);
  }

  protected async pass(): Promise<void> {
    const { logger } = this.options;
    try {
      const result = await this.runOnce();
      if (!result.scanned) {
        logger.debug({ reason: result.reason }, "no regression scan");
        return;
      }
      for (const v of result.raised) {
        logger.info(
          { model: v.model, subject: v.subject, verdict: v.verdict, firstReached: v.firstReached },
          "%s %s: %s",
          v.model ?? `every ${v.deviceKind}`,
          v.subject.kind === "firmware" ? v.subject.firmware : `${v.subject.dimension} ${v.subject.value}`,
          v.verdict,
        );
      }
      for (const v of result.cleared)
        logger.info(v, "%s %s: %s no longer holds", v.model, v.subject, v.verdict);
      logger.debug(
        { to: iso(result.toMs), familySize: result.familySize, probes: result.probes },
        "regressions scanned",
      );
    } catch (error) {
      logger.warn({ err: error }, "scanning for regressions failed; the next pass retries");
    }
  }
}
