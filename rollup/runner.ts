import { DAY_MS, isoDate } from "../contract/time.js";
import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import type { Rollups } from "./rollups.js";

// Keeps the rollups current in the ingest's process: the journal writer marks the hours it wrote to
// (durably, in the same batch that drops the written entries), and this loop recomputes them a moment
// later, newest day first so a long backfill does not hold back today's numbers. A crash loses nothing:
// the marks stay until their hour is recomputed.

/** The part of the journal the runner uses (ingest/journal.ts). */
export interface DirtyHours {
  dirty(): Map<number, number>;
  onDirty(listener: () => void): () => void;
  clearDirty(recomputed: ReadonlyMap<number, number>): Promise<void>;
}

export type RollupRunnerOptions = {
  source: DirtyHours;
  rollups: Rollups;
  logger: Logger;
  metrics?: Metrics;
  /** How long marked hours wait, so one recompute covers many batches. */
  intervalMs: number;
  maxBackoffMs?: number;
  /** Called with the hours (their starts) of each recompute, once their marks are cleared. */
  after?: (hours: number[]) => void | Promise<void>;
};

export class RollupRunner {
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Waiting for marks (rather than letting marked hours gather for an interval). */
  private idle = false;

  constructor(private readonly options: RollupRunnerOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.options.source.onDirty(() => {
      if (this.idle) this.wakeUp?.();
    });
    this.loop = this.run();
  }

  /** Stops after the day being recomputed; marks left stay for the next start. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.running = false;
    this.wakeUp?.();
    await this.loop;
  }

  /** Recomputes one day's marked hours, the newest day first; false when nothing was marked. */
  async runOnce(): Promise<boolean> {
    const marked = this.options.source.dirty();
    this.options.metrics?.rollupDirtyHours.set(marked.size);
    if (marked.size === 0) return false;
    const newestDay = Math.max(...[...marked.keys()].map((hour) => Math.floor(hour / DAY_MS)));
    const day = new Map([...marked].filter(([hour]) => Math.floor(hour / DAY_MS) === newestDay));
    const started = performance.now();
    await this.options.rollups.recompute(day.keys());
    await this.options.source.clearDirty(day);
    try {
      await this.options.after?.([...day.keys()]);
    } catch (error) {
      // The rollups are done and their marks cleared: a failing follower must not redo them.
      this.options.logger.warn({ err: error }, "the rollup runner's after hook failed");
    }
    this.options.metrics?.rollupHours.inc(day.size);
    this.options.logger.debug(
      {
        day: isoDate(newestDay * DAY_MS),
        hours: day.size,
        ms: Math.round(performance.now() - started),
      },
      "rollups recomputed",
    );
    return true;
  }

  private async run(): Promise<void> {
    let backoffMs = this.options.intervalMs;
    while (this.running) {
      try {
        // Wait first: batches written meanwhile share the recompute.
        if (this.options.source.dirty().size === 0) {
          this.idle = true;
          await this.sleep(Number.POSITIVE_INFINITY);
          this.idle = false;
        }
        await this.sleep(this.options.intervalMs);
        while (this.running && (await this.runOnce())) {}
        backoffMs = this.options.intervalMs;
      } catch (error) {
        this.options.logger.warn(
          { err: error, retryInMs: backoffMs },
          "rollup failed; the hours stay marked and are retried",
        );
        await this.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, this.options.maxBackoffMs ?? 60_000);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      timer?.unref();
      const self = this;
      function done() {
        if (timer !== undefined) clearTimeout(timer);
        if (self.wakeUp === done) self.wakeUp = undefined;
        resolve();
      }
      this.wakeUp = done;
    });
  }
}
