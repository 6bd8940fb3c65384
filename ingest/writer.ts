import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../observe/logger.js";
import type { Metrics } from "../observe/metrics.js";
import { BodyTooLarge, PointsRefused, PointUnencodable, type PointWriter } from "../storage/influx.js";
import { pointBytesAtMost, tryEncodePoint } from "../storage/line-protocol.js";
import { dirtyHoursOf } from "../storage/rollup-schema.js";
import { MEASUREMENTS, type Point } from "../storage/schema.js";
import type { Journal, JournalRecord } from "./journal.js";
import { deviceTagsOf, rejectionPoint } from "./to-points.js";

// Drains the journal into InfluxDB in bodies of at most batchPoints points and batchBytes encoded bytes.
// While InfluxDB is down or slow it retries with backoff and the journal holds everything. A body InfluxDB
// refuses (400) or will not read (413) is split in halves down to single points; a single point it still
// refuses is set aside (docs/storage.md "Set-aside points"): counted, logged, appended to a file for replay
// and recorded as data quality, so no other point ever waits on it.
// Up to two writes are in flight (InfluxDB takes more that way), each with entries the other does not hold.
// A full batch goes at once; when a write returns, what gathered meanwhile goes at once too; otherwise a
// partial batch waits the flush interval for company.

export type SetAsideReason = "refused" | "too_large" | "unencodable";

export type WriterOptions = {
  journal: Journal;
  write: PointWriter;
  logger: Logger;
  metrics: Metrics;
  batchPoints: number;
  /**
   * Line-protocol bytes per InfluxDB write, well under InfluxDB's max-body-size; counted by a bound on each
   * point's encoded size, so a body holds at most this many and often fewer.
   */
  batchBytes: number;
  flushIntervalMs: number;
  /** Where set-aside points are appended, one file per retention policy; none: counted and logged only. */
  setAsideDir?: string;
  /** Each set-aside file's bound; past it points are only counted and logged. */
  setAsideMaxBytes?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  now?: () => number;
};

/** `set-aside.<rp>.lp`: line protocol InfluxDB reads as is (it skips the `#` comment lines). */
export const setAsideFile = (dir: string, rp: string) => join(dir, `set-aside.${rp}.lp`);
export const SET_ASIDE_MAX_BYTES = 64 * 1024 ** 2;

type Sized = { point: Point; bytes: number };
type Batch = Awaited<ReturnType<Journal["readBatch"]>>;

const IN_FLIGHT = 2;

/** What two writes in flight must not both hold: a message's identity, a device_state point's slot. */
const heldKeys = (r: JournalRecord): string[] => {
  const keys = r.dedupe ? [r.dedupe] : [];
  if (r.point.measurement === MEASUREMENTS.deviceState.name)
    keys.push(`${MEASUREMENTS.deviceState.name} ${r.point.timeNs}`);
  return keys;
};
/** line: the point's line protocol, encoded once when it was refused; undefined when it has none. */
type SetAside = Sized & { reason: SetAsideReason; detail: string; line: string | undefined };
/** What became of a set-aside point's line: in its file, or only counted and logged, and why. */
type Kept = "file" | "file_full" | "file_failed" | "no_file";

/**
 * Consecutive runs of items whose bytes, with a newline each, stay within maxBytes and whose count stays
 * within maxItems; an item larger than maxBytes alone makes a run of its own.
 */
export function bodiesOf<T extends { bytes: number }>(
  items: readonly T[],
  maxBytes: number,
  maxItems = Number.POSITIVE_INFINITY,
): T[][] {
  const bodies: T[][] = [];
  let body: T[] = [];
  let size = 0;
  for (const item of items) {
    if (body.length > 0 && (size + item.bytes + 1 > maxBytes || body.length >= maxItems)) {
      bodies.push(body);
      body = [];
      size = 0;
    }
    body.push(item);
    size += item.bytes + 1;
  }
  if (body.length > 0) bodies.push(body);
  return bodies;
}

/** Why InfluxDB will never take this body as sent, so that splitting it may get the rest through. */
function refusalOf(error: unknown): { reason: SetAsideReason; detail: string } | undefined {
  if (error instanceof PointsRefused) return { reason: "refused", detail: error.body };
  if (error instanceof BodyTooLarge) return { reason: "too_large", detail: error.body };
  if (error instanceof PointUnencodable) return { reason: "unencodable", detail: error.body };
  return undefined;
}

export class JournalWriter {
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private readonly unsubscribe: () => void;
  private backoffMs: number;
  private refusedSeq = 0;
  /** The writes in flight, the journal keys they hold, and their heldKeys (message identities, state slots). */
  private readonly flights = new Set<Promise<void>>();
  private readonly taken = new Set<string>();
  private readonly heldByWrites = new Set<string>();
  /** A write just returned: what gathered meanwhile goes without waiting out the flush interval. */
  private wroteLast = false;
  /** A write failed: the next waits this long. */
  private retryInMs: number | undefined;

  constructor(private readonly options: WriterOptions) {
    this.backoffMs = options.minBackoffMs ?? 500;
    this.unsubscribe = options.journal.onAppend(() => {
      if (this.waiting() >= options.batchPoints) this.wake();
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
    await Promise.allSettled([...this.flights]);
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
    const batch = await this.take();
    if (batch === undefined) return false;
    await this.write(batch);
    return true;
  }

  /** Journaled entries no write holds yet. */
  private waiting(): number {
    return this.options.journal.backlog.entries - this.options.journal.messagesIn(this.taken);
  }

  /** The oldest entries no other write holds, now held by the caller until write() settles. */
  private async take(): Promise<Batch | undefined> {
    const { journal, batchPoints, batchBytes } = this.options;
    const batch = await journal.readBatch(batchPoints, batchBytes, this.taken);
    if (batch.keys.length === 0) return undefined;
    for (const key of batch.keys) this.taken.add(key);
    return batch;
  }

  private async write(batch: Batch): Promise<void> {
    const { journal, metrics } = this.options;
    const others = [...this.flights];
    const held = batch.records.flatMap(heldKeys);
    try {
      // A redelivery of a message another write holds: once that one settled, the journal knows if it went. A
      // device_state point at a slot another write holds: that older one must land first (points at one slot
      // merge, the last write winning each field).
      if (held.some((k) => this.heldByWrites.has(k))) await Promise.allSettled(others);
      for (const k of held) this.heldByWrites.add(k);
      const fresh = await this.withoutDuplicates(batch.records);
      // The bound, not the encoding: the point writer encodes each point once, and most are far below it.
      const sized = fresh.map(({ point }) => ({ point, bytes: pointBytesAtMost(point) }));
      const setAside: SetAside[] = [];
      const started = process.hrtime.bigint();
      try {
        for (const body of bodiesOf(sized, this.options.batchBytes, this.options.batchPoints))
          await this.writeIsolatingRefusals(body, setAside);
      } catch (error) {
        metrics.influxWriteFailures.inc({ kind: "retryable" });
        throw error;
      }
      metrics.influxWriteSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
      metrics.pointsWritten.inc(fresh.length - setAside.length);
      // Only once the whole batch is through, so a retried batch sets nothing aside twice.
      await this.putAside(setAside);
      await journal.commit(
        batch.keys,
        fresh.flatMap((r) => (r.dedupe ? [r.dedupe] : [])),
        this.now(),
        dirtyHoursOf(fresh.map((r) => r.point)),
      );
    } finally {
      for (const key of batch.keys) this.taken.delete(key);
      for (const k of held) this.heldByWrites.delete(k);
    }
  }

  private async run(): Promise<void> {
    const { batchPoints, flushIntervalMs } = this.options;
    /** At start (a replayed backlog) or once the flush interval ran out, what waits goes, full or not. */
    let due = true;
    while (this.running) {
      if (this.retryInMs !== undefined) {
        const ms = this.retryInMs;
        this.retryInMs = undefined;
        await this.sleep(ms);
        due = true;
        continue;
      }
      const waiting = this.waiting();
      const idle = this.flights.size === 0;
      if (waiting > 0 && this.flights.size < IN_FLIGHT) {
        if (waiting >= batchPoints || (idle && (this.wroteLast || due))) {
          this.wroteLast = false;
          due = false;
          const batch = await this.take();
          if (batch !== undefined) {
            this.launch(batch);
            continue;
          }
        }
      }
      if (waiting === 0) this.wroteLast = false;
      // Woken early by a full batch, a write's return or stop(); otherwise the interval ran out.
      const ranOut = await this.sleep(flushIntervalMs);
      due = ranOut && idle;
    }
  }

  private launch(batch: Batch): void {
    const { logger } = this.options;
    const flight: Promise<void> = this.write(batch)
      .then(
        () => {
          this.backoffMs = this.options.minBackoffMs ?? 500;
          this.wroteLast = true;
        },
        (error: unknown) => {
          logger.warn(
            { err: error, retryInMs: this.backoffMs, backlog: this.options.journal.backlog },
            "InfluxDB write failed; the journal keeps the points and the writer retries",
          );
          this.retryInMs = this.backoffMs * (0.75 + Math.random() * 0.5);
          this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 30_000);
        },
      )
      .finally(() => {
        this.flights.delete(flight);
        this.wake();
      });
    this.flights.add(flight);
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

  private async writeIsolatingRefusals(body: Sized[], setAside: SetAside[]): Promise<void> {
    if (body.length === 0) return;
    try {
      await this.options.write(body.map((s) => s.point));
    } catch (error) {
      const refusal = refusalOf(error);
      if (refusal === undefined) throw error;
      if (body.length > 1) {
        const half = Math.ceil(body.length / 2);
        await this.writeIsolatingRefusals(body.slice(0, half), setAside);
        await this.writeIsolatingRefusals(body.slice(half), setAside);
        return;
      }
      const { point } = body[0] as Sized;
      const encoded = tryEncodePoint(point);
      const line = encoded.ok ? encoded.line : undefined;
      setAside.push({ point, bytes: line === undefined ? 0 : Buffer.byteLength(line), line, ...refusal });
    }
  }

  /** Counts, logs, files and records points InfluxDB would not take; never throws, never waits on InfluxDB. */
  private async putAside(items: SetAside[]): Promise<void> {
    if (items.length === 0) return;
    const { journal, logger, metrics } = this.options;
    const filed = await this.file(items);
    const records: JournalRecord[] = [];
    for (const [i, item] of items.entries()) {
      const { point, reason, detail, bytes } = item;
      metrics.pointsSetAside.inc({ reason });
      metrics.influxWriteFailures.inc({ kind: "refused" });
      logger.warn(
        {
          measurement: point.measurement.slice(0, 64),
          device: deviceTagsOf(point).device,
          timeNs: point.timeNs,
          bytes,
          reason,
          kept: filed[i],
          influx: detail.slice(0, 300),
        },
        "set aside a point InfluxDB would not take",
      );
      // The record of a refused record would be refused in turn.
      if (point.measurement === MEASUREMENTS.rejection.name) continue;
      const time = { receivedMs: this.now(), discriminator: this.refusedSeq++ % 1_000_000 };
      records.push({
        point: rejectionPoint(deviceTagsOf(point), time, {
          reason: "storage_refused",
          topic: point.measurement,
          detail,
          bytes,
        }),
      });
    }
    // Through the journal like any point: durable now, in InfluxDB with the next batch.
    const appended = records.length > 0 ? await journal.append(records).catch(() => undefined) : { ok: true };
    if (!appended?.ok)
      logger.error({ records: records.length }, "could not journal the records of set-aside points");
  }

  /** Appends each point to its policy's set-aside file while the file stays within its bound. */
  private async file(items: SetAside[]): Promise<Kept[]> {
    const dir = this.options.setAsideDir;
    if (dir === undefined) return items.map(() => "no_file");
    const maxBytes = this.options.setAsideMaxBytes ?? SET_ASIDE_MAX_BYTES;
    const at = new Date(this.now()).toISOString();
    const byFile = new Map<string, number[]>();
    items.forEach((item, i) => {
      const path = setAsideFile(dir, item.point.rp);
      byFile.set(path, [...(byFile.get(path) ?? []), i]);
    });
    const kept: Kept[] = items.map(() => "file_full");
    for (const [path, indices] of byFile) {
      try {
        let size = await stat(path).then(
          (s) => s.size,
          () => 0,
        );
        const entries: string[] = [];
        for (const i of indices) {
          const entry = setAsideEntry(items[i] as SetAside, at);
          const bytes = Buffer.byteLength(entry);
          if (size + bytes > maxBytes) continue;
          size += bytes;
          entries.push(entry);
          kept[i] = "file";
        }
        if (entries.length === 0) continue;
        const handle = await open(path, "a");
        try {
          await handle.writeFile(entries.join(""));
          await handle.sync();
        } finally {
          await handle.close();
        }
      } catch (error) {
        this.options.logger.error({ err: error, path }, "could not append to the set-aside file");
        for (const i of indices) kept[i] = "file_failed";
      }
    }
    return kept;
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private wake(): void {
    this.wakeUp?.();
  }

  /** True when the time ran out, false when woken (or stopped) before. */
  private sleep(ms: number): Promise<boolean> {
    if (!this.running) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(true), ms);
      timer.unref();
      function done(ranOut: boolean) {
        clearTimeout(timer);
        resolve(ranOut);
      }
      this.wakeUp = () => done(false);
    });
  }
}

/** A comment InfluxDB skips, then the point's line; a point without a line is kept as JSON in the comment. */
function setAsideEntry(item: SetAside, at: string): string {
  const comment = `# set-aside ${at} reason=${item.reason}`;
  if (item.line === undefined) return `${comment} point=${JSON.stringify(item.point)}\n`;
  return `${comment}\n${item.line}\n`;
}
