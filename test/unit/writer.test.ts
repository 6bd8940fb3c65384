import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { test as base, describe, expect, it, vi } from "vitest";
import { Journal, type JournalRecord } from "../../ingest/journal.js";
import { bodiesOf, JournalWriter, setAsideFile, type WriterOptions } from "../../ingest/writer.js";
import { type Logger, silentLogger } from "../../observe/logger.js";
import { createMetrics, type Metrics } from "../../observe/metrics.js";
import { BodyTooLarge, PointsRefused, PointUnencodable, type PointWriter } from "../../storage/influx.js";
import { encodePoint, tryEncodePoint } from "../../storage/line-protocol.js";
import { type Point, pointTimeNs } from "../../storage/schema.js";

const R = 1_736_150_400_000;

/**
 * An in-memory InfluxDB: records each successful write; fails while told to, refuses points marked bad,
 * and will not read a body over maxBodyBytes (HTTP 413).
 */
function fakeInflux() {
  const writes: Point[][] = [];
  const failures: Error[] = [];
  const limits = { maxBodyBytes: Number.POSITIVE_INFINITY };
  let calls = 0;
  const write: PointWriter = async (points) => {
    calls += 1;
    const failure = failures.shift();
    if (failure) throw failure;
    const lines = points.map(tryEncodePoint);
    for (const line of lines) if (!line.ok) throw new PointUnencodable(line.error);
    if (Buffer.byteLength(lines.map((l) => (l.ok ? l.line : "")).join("\n")) > limits.maxBodyBytes)
      throw new BodyTooLarge('{"error":"Request Entity Too Large"}');
    if (points.some((p) => p.fields.bad === true)) throw new PointsRefused(400, "field type conflict");
    writes.push([...points]);
  };
  return {
    write,
    writes,
    failures,
    limits,
    calls: () => calls,
    written: () => writes.flat().map((p) => p.fields.n),
  };
}
type FakeInflux = ReturnType<typeof fakeInflux>;

const record = (
  n: number,
  options: { dedupe?: string; bad?: boolean; padding?: number } = {},
): JournalRecord => ({
  point: {
    measurement: "telemetry",
    rp: "raw",
    tags: { device: "modem-0001", kind: "modem" },
    fields: {
      n,
      ...(options.bad ? { bad: true } : {}),
      ...(options.padding ? { pad: "x".repeat(options.padding) } : {}),
    },
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
        batchBytes: 1024 ** 2,
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
  // Generous: LevelDB's I/O runs on other threads and takes many turns on a loaded machine.
  for (let i = 0; i < 200_000; i++) {
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

  test("writes the other points of a batch when InfluxDB refuses one, sets it aside and records it", async ({
    journal,
    influx,
    metrics,
    makeWriter,
  }) => {
    await appendEach(journal, [record(1), record(2), record(3, { bad: true }), record(4), record(5)]);
    const writer = makeWriter();
    expect(await writer.drainOnce()).toBe(true);
    expect(influx.written()).toEqual([1, 2, 4, 5]);
    expect(await counter(metrics.pointsSetAside)).toEqual([{ value: 1, labels: { reason: "refused" } }]);
    expect(await counter(metrics.pointsWritten)).toEqual([{ value: 4, labels: {} }]);
    // The data-quality record goes through the journal like any point, with the next batch.
    expect(journal.backlog.entries).toBe(1);
    expect(await writer.drainOnce()).toBe(true);
    const rejections = influx.writes.flat().filter((p) => p.measurement === "rejection");
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
          bytes: { int: Buffer.byteLength(encodePoint(record(3, { bad: true }).point)) },
          received_ms: { int: R },
        },
        timeNs: pointTimeNs(R, 0),
      },
    ]);
    expect(journal.backlog.entries).toBe(0);
    expect(await counter(metrics.messagesRefused)).toEqual([]);
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
    const writer = makeWriter();
    expect(await writer.drainOnce()).toBe(true);
    expect([...journal.dirty().keys()]).toEqual([R + 2 * HOUR]);
    // The telemetry point's hour (R) is marked only through the refusal record stamped at R.
    expect(await writer.drainOnce()).toBe(true);
    expect([...journal.dirty().keys()].sort((a, b) => a - b)).toEqual([R, R + 2 * HOUR]);
  });

  test("gives each refused point a record of its own", async ({ journal, influx, makeWriter }) => {
    await appendEach(journal, [record(1, { bad: true }), record(2), record(3, { bad: true })]);
    const writer = makeWriter();
    await writer.drainOnce();
    await writer.drainOnce();
    const rejections = influx.writes.flat().filter((p) => p.measurement === "rejection");
    expect(rejections.map((p) => p.timeNs)).toEqual([pointTimeNs(R, 0), pointTimeNs(R, 1)]);
    expect(influx.written().filter((n) => n !== undefined)).toEqual([2]);
  });

  test("sends what it read in bodies of at most batchBytes bytes, in journal order", async ({
    journal,
    influx,
    makeWriter,
  }) => {
    // Each point encodes to about 1,100 bytes; sized by a bound of about 3,200 (3 bytes a character),
    // three go in a body of 10,000 and a fourth does not.
    await appendEach(
      journal,
      [1, 2, 3, 4, 5, 6, 7].map((n) => record(n, { padding: 1000 })),
    );
    expect(await makeWriter({ batchBytes: 10_000 }).drainOnce()).toBe(true);
    expect(influx.writes.map((w) => w.map((p) => p.fields.n))).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    for (const body of influx.writes)
      expect(Buffer.byteLength(body.map(encodePoint).join("\n"))).toBeLessThanOrEqual(10_000);
    expect(journal.backlog.entries).toBe(0);
  });

  test("splits a body InfluxDB will not read (413) in halves down to what it takes, and sets aside a point too large alone", async ({
    journal,
    influx,
    metrics,
    makeWriter,
  }) => {
    influx.limits.maxBodyBytes = 2500;
    await appendEach(journal, [
      record(1, { padding: 1000 }),
      record(2, { padding: 1000 }),
      record(3, { padding: 3000 }),
      record(4, { padding: 1000 }),
    ]);
    // A batchBytes above InfluxDB's own limit, as with a misconfigured max-body-size.
    expect(await makeWriter({ batchBytes: 1024 ** 2 }).drainOnce()).toBe(true);
    expect(influx.written()).toEqual([1, 2, 4]);
    expect(await counter(metrics.pointsSetAside)).toEqual([{ value: 1, labels: { reason: "too_large" } }]);
    expect(journal.backlog.entries).toBe(1); // the data-quality record of point 3
  });

  test("sets aside a point that has no line protocol (a non-finite number) instead of retrying it forever", async ({
    journal,
    influx,
    metrics,
    makeWriter,
  }) => {
    const broken = record(2);
    broken.point.fields.n = Number.NaN;
    await appendEach(journal, [record(1), broken, record(3)]);
    expect(await makeWriter().drainOnce()).toBe(true);
    expect(influx.written()).toEqual([1, 3]);
    expect(await counter(metrics.pointsSetAside)).toEqual([{ value: 1, labels: { reason: "unencodable" } }]);
  });

  test("sets nothing aside twice when InfluxDB goes away while it isolates a refused point", async ({
    journal,
    influx,
    metrics,
    makeWriter,
  }) => {
    await appendEach(journal, [record(1, { bad: true }), record(2)]);
    const writer = makeWriter();
    // The whole batch is refused, then the first half is refused alone, then InfluxDB is gone.
    influx.failures.push(new PointsRefused(400, "field type conflict"));
    influx.failures.push(new PointsRefused(400, "field type conflict"));
    influx.failures.push(new Error("connect ECONNREFUSED"));
    await expect(writer.drainOnce()).rejects.toThrow("ECONNREFUSED");
    expect(await counter(metrics.pointsSetAside)).toEqual([]);
    expect(journal.backlog.entries).toBe(2);
    expect(await writer.drainOnce()).toBe(true);
    expect(influx.written()).toEqual([2]);
    expect(await counter(metrics.pointsSetAside)).toEqual([{ value: 1, labels: { reason: "refused" } }]);
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

describe("set-aside points", () => {
  const withDir = async (run: (dir: string) => Promise<void>) => {
    const dir = await mkdtemp(join(tmpdir(), "fieldq-set-aside-"));
    try {
      await run(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  test("a refused point's line goes to its policy's file after a comment saying when and why, ready for /write", async ({
    journal,
    makeWriter,
  }) =>
    withDir(async (dir) => {
      const bad = record(3, { bad: true });
      const fault: JournalRecord = {
        point: {
          measurement: "fault",
          rp: "long",
          tags: { device: "modem-0001" },
          fields: { seq: { int: 4 }, message: 'say "hi"\n# not a comment', bad: true },
          timeNs: "1736150400000000004",
        },
      };
      await appendEach(journal, [record(1), bad, fault]);
      expect(await makeWriter({ setAsideDir: dir }).drainOnce()).toBe(true);
      expect(await readFile(setAsideFile(dir, "raw"), "utf8")).toBe(
        "# set-aside 2025-01-06T08:00:00.000Z reason=refused\n" +
          `telemetry,device=modem-0001,kind=modem n=3,bad=true ${pointTimeNs(R + 3, 3)}\n`,
      );
      expect(await readFile(setAsideFile(dir, "long"), "utf8")).toBe(
        "# set-aside 2025-01-06T08:00:00.000Z reason=refused\n" +
          'fault,device=modem-0001 seq=4i,message="say \\"hi\\"\n# not a comment",bad=true 1736150400000000004\n',
      );
    }));

  test("logs one bounded line per set-aside point, never the point itself", async ({ journal, makeWriter }) =>
    withDir(async (dir) => {
      const { logger, lines } = captureLogger();
      await appendEach(journal, [record(1, { bad: true, padding: 100_000 })]);
      await makeWriter({ logger, setAsideDir: dir }).drainOnce();
      const logged = lines.filter((l) => l.msg === "set aside a point InfluxDB would not take");
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({
        measurement: "telemetry",
        device: "modem-0001",
        reason: "refused",
        kept: "file",
      });
      expect(JSON.stringify(logged[0]).length).toBeLessThan(1000);
    }));

  test("past the file's bound a point is only counted and logged, and the writer goes on", async ({
    journal,
    influx,
    metrics,
    makeWriter,
  }) =>
    withDir(async (dir) => {
      await writeFile(setAsideFile(dir, "raw"), "x".repeat(900));
      const { logger, lines } = captureLogger();
      await appendEach(journal, [record(1, { bad: true }), record(2)]);
      expect(await makeWriter({ logger, setAsideDir: dir, setAsideMaxBytes: 1000 }).drainOnce()).toBe(true);
      expect(await readFile(setAsideFile(dir, "raw"), "utf8")).toBe("x".repeat(900));
      expect(lines.find((l) => l.msg === "set aside a point InfluxDB would not take")).toMatchObject({
        kept: "file_full",
      });
      expect(await counter(metrics.pointsSetAside)).toEqual([{ value: 1, labels: { reason: "refused" } }]);
      expect(influx.written()).toEqual([2]);
    }));

  test("a set-aside file that cannot be written costs the writer nothing", async ({
    journal,
    influx,
    makeWriter,
  }) =>
    withDir(async (dir) => {
      await appendEach(journal, [record(1, { bad: true }), record(2)]);
      const missing = join(dir, "no", "such", "folder");
      expect(await makeWriter({ setAsideDir: missing }).drainOnce()).toBe(true);
      expect(influx.written()).toEqual([2]);
      expect(journal.backlog.entries).toBe(1); // the data-quality record
    }));
});

describe("bodiesOf", () => {
  const sized = (...bytes: number[]) => bytes.map((b, i) => ({ i, bytes: b }));
  const ids = (bodies: Array<Array<{ i: number }>>) => bodies.map((b) => b.map((x) => x.i));

  it.each([
    ["nothing", [], 10, []],
    ["one that fits", [5], 10, [[0]]],
    ["items with their newlines up to the bound", [4, 4, 4], 10, [[0, 1], [2]]],
    ["an item that exactly fills a body with its newline", [9, 9], 10, [[0], [1]]],
    ["an item larger than the bound, alone", [3, 30, 3], 10, [[0], [1], [2]]],
  ])("cuts %s", (_case, bytes, maxBytes, expected) => {
    expect(ids(bodiesOf(sized(...(bytes as number[])), maxBytes as number))).toEqual(expected);
  });

  it("cuts at maxItems too", () => {
    expect(ids(bodiesOf(sized(1, 1, 1, 1, 1), 100, 2))).toEqual([[0, 1], [2, 3], [4]]);
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

describe("JournalWriter in flight", () => {
  /** Holds each write until released, so two can be in flight at once. */
  function gatedWrites(influx: FakeInflux) {
    const gates: Array<() => void> = [];
    const write: PointWriter = async (points) => {
      await new Promise<void>((resolve) => gates.push(resolve));
      await influx.write(points);
    };
    return { write, gates };
  }

  test("keeps two writes in flight, each with entries the other does not hold", async ({
    journal,
    influx,
    makeWriter,
  }) => {
    const { write, gates } = gatedWrites(influx);
    await appendEach(
      journal,
      [1, 2, 3, 4, 5, 6].map((n) => record(n)),
    );
    makeWriter({ write, batchPoints: 2 }).start();
    await until(() => gates.length === 2, "two writes are in flight");
    await idle();
    expect(gates).toHaveLength(2);
    gates.shift()?.();
    await until(() => gates.length === 2, "a third write took the first one's place");
    for (let released = 0; released < 2; released++) {
      gates.shift()?.();
      await until(() => influx.writes.length === 2 + released, `write ${2 + released}`);
    }
    await until(() => journal.backlog.entries === 0, "the journal drained");
    expect(influx.written().sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(influx.writes).toHaveLength(3);
  });

  test("writes a message redelivered while its first delivery is in flight once", async ({
    journal,
    influx,
    makeWriter,
  }) => {
    const { write, gates } = gatedWrites(influx);
    await appendEach(journal, [record(1, { dedupe: "m1" }), record(2), record(1, { dedupe: "m1" })]);
    makeWriter({ write, batchPoints: 2 }).start();
    await until(() => gates.length === 1, "the first write is in flight");
    await idle();
    expect(gates).toHaveLength(1);
    gates.shift()?.();
    await until(() => journal.backlog.entries === 0, "the journal drained");
    expect(influx.written()).toEqual([1, 2]);
  });

  test("writes a device's state points in journal order when two writes hold them", async ({
    journal,
    influx,
    makeWriter,
  }) => {
    const { write, gates } = gatedWrites(influx);
    const state = (n: number): JournalRecord => ({
      point: { measurement: "device_state", rp: "long", tags: {}, fields: { n }, timeNs: "4503599627370497" },
    });
    await appendEach(journal, [state(1), record(2), state(3), record(4)]);
    makeWriter({ write, batchPoints: 2 }).start();
    await until(() => gates.length === 1, "the first write is in flight");
    // The second batch holds the same slot: it waits for the first to land instead of racing it.
    await idle();
    expect(gates).toHaveLength(1);
    gates.shift()?.();
    await until(() => gates.length === 1, "the second write is in flight");
    gates.shift()?.();
    await until(() => journal.backlog.entries === 0, "the journal drained");
    expect(influx.writes.map((w) => w.map((p) => p.fields.n))).toEqual([
      [1, 2],
      [3, 4],
    ]);
  });

  test("retries a failed write while the other one goes through", async ({ journal, influx, makeWriter }) => {
    const { write, gates } = gatedWrites(influx);
    await appendEach(
      journal,
      [1, 2, 3, 4].map((n) => record(n)),
    );
    influx.failures.push(new Error("connect ECONNREFUSED"));
    makeWriter({ write, batchPoints: 2, minBackoffMs: 1 }).start();
    for (let i = 0; journal.backlog.entries > 0; i++) {
      await until(() => gates.length > 0 || journal.backlog.entries === 0, `write ${i}`);
      gates.shift()?.();
    }
    expect(influx.written().sort()).toEqual([1, 2, 3, 4]);
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
