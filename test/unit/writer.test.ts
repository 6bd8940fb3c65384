import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { test as base, describe, expect, vi } from "vitest";
import { Journal, type JournalRecord } from "../../ingest/journal.js";
import { JournalWriter, type WriterOptions } from "../../ingest/writer.js";
import { type Logger, silentLogger } from "../../observe/logger.js";
import { createMetrics, type Metrics } from "../../observe/metrics.js";
import { PointsRefused, type PointWriter } from "../../storage/influx.js";
import { type Point, pointTimeNs } from "../../storage/schema.js";

const R = 1_736_150_400_000;

/** An in-memory InfluxDB: records each successful write; fails while told to, refuses points marked bad. */
function fakeInflux() {
  const writes: Point[][] = [];
  const failures: Error[] = [];
  let calls = 0;
  const write: PointWriter = async (points) => {
    calls += 1;
    const failure = failures.shift();
    if (failure) throw failure;
    if (points.some((p) => p.fields.bad === true)) throw new PointsRefused(400, "field type conflict");
    writes.push([...points]);
  };
  return {
    write,
    writes,
    failures,
    calls: () => calls,
    written: () => writes.flat().map((p) => p.fields.n),
  };
}
type FakeInflux = ReturnType<typeof fakeInflux>;

const record = (n: number, options: { dedupe?: string; bad?: boolean } = {}): JournalRecord => ({
  point: {
    measurement: "telemetry",
    rp: "raw",
    tags: { device: "modem-0001", kind: "modem" },
    fields: { n, ...(options.bad ? { bad: true } : {}) },
    timeNs: pointTimeNs(R + n, n),
  },
  ...(options.dedupe !== undefined ? { dedupe: options.dedupe } : {}),
});

type Fixture = {
  journal: Journal;
  influx: FakeInflux;
  metrics: Metrics;
  makeWriter: (options?: Partial<WriterOptions>) => JournalWriter;
};

const test = base.extend<Fixture>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  journal: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), "fieldq-writer-"));
    const journal = await Journal.open({ dir, maxBytes: 1024 ** 2, logger: silentLogger });
    await use(journal);
    vi.useRealTimers();
    await journal.close();
    await rm(dir, { recursive: true, force: true });
  },
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  influx: async ({}, use) => use(fakeInflux()),
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  metrics: async ({}, use) => use(createMetrics()),
  makeWriter: async ({ journal, influx, metrics }, use) => {
    const writers: JournalWriter[] = [];
    await use((options) => {
      const writer = new JournalWriter({
        journal,
        write: influx.write,
        logger: silentLogger,
        metrics,
        batchPoints: 100,
        flushIntervalMs: 10_000,
        now: () => R,
        ...options,
      });
      writers.push(writer);
      return writer;
    });
    vi.useRealTimers();
    for (const writer of writers) await writer.stop(0);
  },
});

async function appendEach(journal: Journal, records: JournalRecord[]) {
  for (const r of records) expect(await journal.append([r])).toEqual({ ok: true });
}

/** Lets real I/O (LevelDB) run until the condition holds; timers stay wherever the test put them. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** Gives real I/O a moment, for checking that something did not happen. */
const idle = async () => {
  for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
};

function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

const counter = async (metric: { get(): Promise<{ values: Array<{ value: number; labels: object }> }> }) =>
  (await metric.get()).values.map(({ value, labels }) => ({ value, labels }));

describe("JournalWriter.drainOnce", () => {
  test("writes batches of at most batchPoints, oldest first, and empties the journal", async ({
    journal,
    influx,
    metrics,
    makeWriter,
  }) => {
    await appendEach(
      journal,
      [1, 2, 3, 4, 5].map((n) => record(n)),
    );
    const writer = makeWriter({ batchPoints: 2 });
    const results: boolean[] = [];
    for (let i = 0; i < 4; i++) results.push(await writer.drainOnce());
    expect(results).toEqual([true, true, true, false]);
    expect(influx.writes.map((w) => w.map((p) => p.fields.n))).toEqual([[1, 2], [3, 4], [5]]);
    expect(journal.backlog).toEqual({ entries: 0, bytes: 0 });
    expect(await counter(metrics.pointsWritten)).toEqual([{ value: 5, labels: {} }]);
  });

  test("keeps the journal when InfluxDB cannot take the batch", async ({
    journal,
    influx,
    metrics,
    makeWriter,
  }) => {
    await appendEach(journal, [record(1), record(2)]);
    influx.failures.push(new Error("connect ECONNREFUSED"));
    const writer = makeWriter();
    await expect(writer.drainOnce()).rejects.toThrow("ECONNREFUSED");
    expect(journal.backlog.entries).toBe(2);
    expect(await counter(metrics.influxWriteFailures)).toEqual([{ value: 1, labels: { kind: "retryable" } }]);
    expect(await writer.drainOnce()).toBe(true);
    expect(influx.written()).toEqual([1, 2]);
  });

  test("writes the other points of a batch when InfluxDB refuses one, and records the refusal", async ({
    journal,
    influx,
    metrics,
    makeWriter,
  }) => {
    await appendEach(journal, [record(1), record(2), record(3, { bad: true }), record(4), record(5)]);
    expect(await makeWriter().drainOnce()).toBe(true);

    const rejections = influx.writes.flat().filter((p) => p.measurement === "rejection");
    expect(
      influx.writes
        .flat()
        .filter((p) => p.measurement === "telemetry")
        .map((p) => p.fields.n),
    ).toEqual([1, 2, 4, 5]);
    expect(rejections).toEqual([
      {
        measurement: "rejection",
        rp: "long",
        tags: {
          device: "modem-0001",
          kind: "modem",
          model: "unknown",
          firmware: "unknown",
          region: "unknown",
          reason: "storage_refused",
        },
        fields: {
          topic: "telemetry",
          detail: "field type conflict",
          bytes: { int: 0 },
          received_ms: { int: R },
        },
        timeNs: pointTimeNs(R, 0),
      },
    ]);
    expect(journal.backlog.entries).toBe(0);
    expect(await counter(metrics.messagesRefused)).toEqual([
      { value: 1, labels: { reason: "storage_refused" } },
    ]);
  });

  test("marks dirty the hours of the rolled-up points it wrote and of refusal records, not of telemetry", async ({
    journal,
    makeWriter,
  }) => {
    const HOUR = 3_600_000;
    const fault = (ms: number): JournalRecord => ({
      point: {
        measurement: "fault",
        rp: "long",
        tags: { device: "modem-0001" },
        fields: { seq: 1 },
        timeNs: pointTimeNs(ms, 1),
      },
    });
    // R is a UTC midnight: the fault two hours and a minute later lies in the hour starting R + 2 h.
    await appendEach(journal, [record(1), fault(R + 2 * HOUR + 60_000), record(2, { bad: true })]);
    expect(await makeWriter().drainOnce()).toBe(true);
    // The telemetry point's hour (R) is marked only through the refusal record stamped at R.
    expect([...journal.dirty().keys()].sort((a, b) => a - b)).toEqual([R, R + 2 * HOUR]);
  });

  test("gives each refused point a record of its own", async ({ journal, influx, makeWriter }) => {
    await appendEach(journal, [record(1, { bad: true }), record(2), record(3, { bad: true })]);
    await makeWriter().drainOnce();
    const rejections = influx.writes.flat().filter((p) => p.measurement === "rejection");
    expect(rejections.map((p) => p.timeNs)).toEqual([pointTimeNs(R, 0), pointTimeNs(R, 1)]);
    expect(influx.written().filter((n) => n !== undefined)).toEqual([2]);
  });

  test("writes a message repeated within one batch once", async ({ journal, influx, makeWriter }) => {
    await journal.append([record(1, { dedupe: "m/telemetry/1/1" }), record(2)]);
    await journal.append([record(3, { dedupe: "m/telemetry/1/1" })]);
    await makeWriter().drainOnce();
    expect(influx.written()).toEqual([1, 2]);
    expect(journal.backlog.entries).toBe(0);
  });

  test("skips a redelivery of a message it already wrote", async ({ journal, influx, makeWriter }) => {
    const writer = makeWriter();
    await journal.append([record(1, { dedupe: "m/fault/7/1" })]);
    await writer.drainOnce();
    await journal.append([record(2, { dedupe: "m/fault/7/1" }), record(3, { dedupe: "m/fault/8/1" })]);
    await writer.drainOnce();
    expect(influx.written()).toEqual([1, 3]);
    await journal.append([record(4, { dedupe: "m/fault/7/1" })]);
    expect(await writer.drainOnce()).toBe(true);
    expect(influx.calls()).toBe(2);
    expect(journal.backlog.entries).toBe(0);
  });
});

describe("JournalWriter running", () => {
  test("retries with doubling backoff while InfluxDB is down, keeping the journal", async ({
    journal,
    influx,
    makeWriter,
  }) => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    vi.spyOn(Math, "random").mockReturnValue(0.5); // no jitter
    const { logger, lines } = captureLogger();
    await appendEach(journal, [record(1), record(2), record(3)]);
    for (let i = 0; i < 3; i++) influx.failures.push(new Error("connect ECONNREFUSED"));
    makeWriter({ logger, minBackoffMs: 100, maxBackoffMs: 300 }).start();

    const sleeping = (calls: number) => () => influx.calls() === calls && vi.getTimerCount() === 1;
    await until(sleeping(1), "the first write failed");
    for (const [calls, backoff] of [
      [1, 100],
      [2, 200],
      [3, 300],
    ] as const) {
      expect(journal.backlog.entries).toBe(3);
      await vi.advanceTimersByTimeAsync(backoff - 1);
      await idle();
      expect(influx.calls()).toBe(calls);
      await vi.advanceTimersByTimeAsync(1);
      await until(() => influx.calls() === calls + 1, `write ${calls + 1}`);
      if (calls < 3) await until(sleeping(calls + 1), `write ${calls + 1} failed`);
    }
    await until(() => journal.backlog.entries === 0, "the journal drained");
    expect(influx.written()).toEqual([1, 2, 3]);
    expect(lines.filter((l) => l.retryInMs !== undefined).map((l) => l.retryInMs)).toEqual([100, 200, 300]);
    vi.mocked(Math.random).mockRestore();
  });

  test("writes a full batch at once and a partial one after the flush interval", async ({
    journal,
    influx,
    makeWriter,
  }) => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    makeWriter({ batchPoints: 3, flushIntervalMs: 1000 }).start();
    await until(() => vi.getTimerCount() === 1, "the writer found nothing and sleeps");

    await appendEach(journal, [record(1), record(2), record(3)]);
    await until(() => influx.calls() === 1, "the full batch was written");
    await until(() => journal.backlog.entries === 0 && vi.getTimerCount() === 1, "the writer sleeps again");

    await appendEach(journal, [record(4), record(5)]);
    await idle();
    expect(influx.calls()).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    await until(() => influx.calls() === 2, "the partial batch was written");
    expect(influx.writes.map((w) => w.map((p) => p.fields.n))).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
  });
});

describe("JournalWriter.stop", () => {
  test("flushes what is left before it returns", async ({ journal, influx, makeWriter }) => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const writer = makeWriter({ batchPoints: 2, flushIntervalMs: 60_000 });
    writer.start();
    await until(() => vi.getTimerCount() === 1, "the writer sleeps");
    await journal.append([record(1)]);
    await idle();
    expect(influx.calls()).toBe(0);
    await writer.stop();
    expect(influx.written()).toEqual([1]);
    expect(journal.backlog.entries).toBe(0);
  });

  test("flushes several batches", async ({ journal, influx, makeWriter }) => {
    await appendEach(
      journal,
      [1, 2, 3, 4, 5].map((n) => record(n)),
    );
    await makeWriter({ batchPoints: 2 }).stop();
    expect(influx.writes.map((w) => w.length)).toEqual([2, 2, 1]);
    expect(journal.backlog.entries).toBe(0);
  });

  test("leaves the rest in the journal when InfluxDB is down", async ({ journal, influx, makeWriter }) => {
    await appendEach(journal, [record(1), record(2)]);
    for (let i = 0; i < 10; i++) influx.failures.push(new Error("connect ECONNREFUSED"));
    await makeWriter().stop();
    expect(influx.calls()).toBe(1);
    expect(journal.backlog.entries).toBe(2);
  });
});
