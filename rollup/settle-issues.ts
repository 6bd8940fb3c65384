import type { InfluxDB } from "influx";
import { indexLog, membersByIssue } from "../analytics/issue-log.js";
import { type IssueState, reliesOnFix, replay } from "../analytics/lifecycle.js";
import { type SystemEvent, settle } from "../analytics/settle.js";
import { floorHour } from "../contract/time.js";
import type { Logger } from "../observe/logger.js";
import type { PointWriter } from "../storage/influx.js";
import {
  appendIssueEvents,
  issueEventPoint,
  readFingerprints,
  readFirstFaults,
  readHourlyExposure,
  readIssueEvents,
} from "../storage/issue-queries.js";
import { PassLoop } from "./pass-loop.js";

// Settles the issues that rely on a released fix, in the ingest process, after the rollups they read
// (issue_1h, cohort_1h) were recomputed: regressions, verifying, closed as effective (analytics/settle.ts).
// Reads never do this. Each system event is written at a time computed from the data and with nanos 0, so
// two runners at once (two ingest processes, a restart mid-run) write the same point and the log holds it
// once (docs/storage.md, issue_event).

export type SettleOptions = {
  influx: InfluxDB;
  write: PointWriter;
  /** Device-hours on the fixing firmware, without a recurrence, that close an issue as effective. */
  requiredHours: number;
  /** Hours that end after now are still filling; tests pin it. */
  now?: () => number;
};

export type SettleResult = {
  /** Issues that rely on a fix, checked against the data. */
  checked: number;
  appended: Array<{ issue: string; event: SystemEvent }>;
};

const waitsForField = (state: IssueState) =>
  state.mergedInto === null &&
  state.fixVersion !== null &&
  state.fixReleasedAt !== null &&
  reliesOnFix(state);

/** One pass over every issue that relies on a fix; returns the events it appended. */
export async function settleIssues(options: SettleOptions): Promise<SettleResult> {
  const { influx } = options;
  const completeBeforeMs = floorHour((options.now ?? Date.now)());
  const log = indexLog(await readIssueEvents(influx));
  const waiting = [...log.byIssue]
    .map(([issue, events]) => ({ issue, state: replay(events) }))
    .filter(({ state }) => waitsForField(state));
  const result: SettleResult = { checked: waiting.length, appended: [] };
  if (waiting.length === 0) return result;
  const members = membersByIssue(await readFingerprints(influx), log.merges);
  for (const { issue, state } of waiting) {
    const group = members.get(issue) ?? [];
    const since = state.fixReleasedAt;
    if (group.length === 0 || since === null) continue;
    const [recurrences, exposure] = await Promise.all([
      readFirstFaults(
        influx,
        group.map((m) => m.id),
        since,
      ),
      // A closed issue can only regress: its exposure (months of hours, maybe) is not read.
      state.status === "closed" ? [] : readHourlyExposure(influx, group, since, completeBeforeMs),
    ]);
    const { events } = settle({
      state,
      recurrences,
      exposure,
      requiredHours: options.requiredHours,
      completeBeforeMs,
    });
    await appendIssueEvents(
      options.write,
      events.map((event) => issueEventPoint(issue, event, 0)),
    );
    for (const event of events) result.appended.push({ issue, event });
  }
  return result;
}

export type SettleRunnerOptions = SettleOptions & {
  logger: Logger;
  /** A pass at least this often, so hours that complete without new data still count. */
  intervalMs: number;
};

/**
 * Runs settleIssues one pass at a time: after each rollup recompute (`poke`, e.g. from RollupRunner) and
 * every intervalMs. A poke during a pass asks for one more pass after it.
 */
export class SettleRunner extends PassLoop {
  constructor(private readonly options: SettleRunnerOptions) {
    super(options.intervalMs);
  }

  /** One pass, now; errors are thrown to the caller. */
  runOnce(): Promise<SettleResult> {
    return settleIssues(this.options);
  }

  protected async pass(): Promise<void> {
    try {
      const { checked, appended } = await this.runOnce();
      for (const { issue, event } of appended) {
        this.options.logger.info(
          { issue, type: event.type, at: event.at },
          "issue %s settled: %s",
          issue,
          event.type,
        );
      }
      this.options.logger.debug({ checked, appended: appended.length }, "issues settled");
    } catch (error) {
      this.options.logger.warn({ err: error }, "settling issues failed; the next pass retries");
    }
  }
}
