import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import { dirtyHoursOf } from "../rollup/sets.js";
import { PointsRefused, type PointWriter } from "../storage/influx.js";
import type { Point } from "../storage/schema.js";
import type { Journal, JournalRecord } from "./journal.js";
import { deviceTagsOf, rejectionPoint } from "./to-points.js";

// Drains the journal into InfluxDB in batches. While InfluxDB is down or slow it retries with backoff and
// the journal holds everything; points InfluxDB refuses (a field type conflict, say) are isolated by
// halving the batch, and each refused one becomes a data-quality record instead of blocking the rest.

export type WriterOptions = {
  journal: Journal;
  write: PointWriter;
  logger: Logger;
  metrics: Metrics;
  batchPoints: number;
  flushIntervalMs: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  now?: () => number;
};

export class JournalWriter {
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private readonly unsubscribe: () => void;
  private backoffMs: number;
  private refusedSeq = 0;
  /** Hours of data-quality records written for refused points, marked dirty with the batch's commit. */
  private readonly refusalHours = new Set<number>();

  constructor(private readonly options: WriterOptions) {
    this.backoffMs = options.minBackoffMs ?? 500;
    this.unsubscribe = options.journal.onAppend(() => {
      if (options.journal.backlog.entries >= options.batchPoints) this.wake();
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops the loop, then gives what is left one bounded chance to reach InfluxDB; the rest stays journaled. */
  async stop(flushTimeoutMs = 5_000): Promise<void> {
    this.unsubscribe();
    this.running = false;
    this.wake();
    await this.loop;
    const deadline = Date.now() + flushTimeoutMs;
    while (this.options.journal.backlog.entries > 0 && Date.now() < deadline) {
      const flushed = await this.drainOnce().catch((error: unknown) => {
        this.options.logger.warn(
          { err: error },
          "final flush failed; the journal keeps the rest for the next start",
        );
        return false;
      });
      if (!flushed) break;
    }
  }

  /** Writes one batch; false when there was nothing to write or InfluxDB could not take it. */
  async drainOnce(): Promise<boolean> {
    const { journal, metrics } = this.options;
    const batch = await journal.readBatch(this.options.batchPoints);
    if (batch.keys.length === 0) return false;
    const fresh = await this.withoutDuplicates(batch.records);
    const started = process.hrtime.bigint();
    try {
      await this.writeIsolatingRefusals(fresh.map((r) => r.point));
    } catch (error) {
      metrics.influxWriteFailures.inc({ kind: "retryable" });
      throw error;
    }
    metrics.influxWriteSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    metrics.pointsWritten.inc(fresh.length);
    const dirty = new Set([...dirtyHoursOf(fresh.map((r) => r.point)), ...this.refusalHours]);
    this.refusalHours.clear();
    await journal.commit(
      batch.keys,
      fresh.flatMap((r) => (r.dedupe ? [r.dedupe] : [])),
      this.now(),
      dirty,
    );
    return true;
  }

  private async run(): Promise<void> {
    const { logger } = this.options;
    while (this.running) {
      try {
        const wrote = await this.drainOnce();
        this.backoffMs = this.options.minBackoffMs ?? 500;
        if (!wrote) await this.sleep(this.options.flushIntervalMs);
        else if (this.options.journal.backlog.entries < this.options.batchPoints) {
          // A partial batch waits a flush interval for company; a full one goes at once.
          await this.sleep(this.options.flushIntervalMs);
        }
      } catch (error) {
        logger.warn(
          { err: error, retryInMs: this.backoffMs, backlog: this.options.journal.backlog },
          "InfluxDB write failed; the journal keeps the points and the writer retries",
        );
        await this.sleep(this.backoffMs * (0.75 + Math.random() * 0.5));
        this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 30_000);
      }
    }
  }

  /** Drops records whose message was already written (a redelivery), and repeats within the batch. */
  private async withoutDuplicates(records: JournalRecord[]): Promise<JournalRecord[]> {
    const keys = records.flatMap((r) => (r.dedupe ? [r.dedupe] : []));
    const written = await this.options.journal.alreadyWritten(keys, this.now());
    const inBatch = new Set<string>();
    return records.filter((r) => {
      if (!r.dedupe) return true;
      if (written.has(r.dedupe) || inBatch.has(r.dedupe)) return false;
      inBatch.add(r.dedupe);
      return true;
    });
  }

  private async writeIsolatingRefusals(points: Point[]): Promise<void> {
    if (points.length === 0) return;
    try {
      await this.options.write(points);
    } catch (error) {
      if (!(error instanceof PointsRefused)) throw error;
      if (points.length > 1) {
        const half = Math.ceil(points.length / 2);
        await this.writeIsolatingRefusals(points.slice(0, half));
        await this.writeIsolatingRefusals(points.slice(half));
        return;
      }
      await this.recordRefusal(points[0] as Point, error);
    }
  }

  private async recordRefusal(point: Point, error: PointsRefused): Promise<void> {
    const { logger, metrics } = this.options;
    metrics.influxWriteFailures.inc({ kind: "refused" });
    metrics.messagesRefused.inc({ reason: "storage_refused" });
    logger.warn(
      { measurement: point.measurement, tags: point.tags, error: error.body },
      "InfluxDB refused a point",
    );
    const record = rejectionPoint(
      deviceTagsOf(point),
      { receivedMs: this.now(), discriminator: this.refusedSeq++ },
      { reason: "storage_refused", topic: point.measurement, detail: error.body, bytes: 0 },
    );
    try {
      await this.options.write([record]);
      for (const hour of dirtyHoursOf([record])) this.refusalHours.add(hour);
    } catch (recordError) {
      logger.error({ err: recordError }, "could not store the data-quality record of a refused point");
    }
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private wake(): void {
    this.wakeUp?.();
  }

  private sleep(ms: number): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = done;
    });
  }
}
