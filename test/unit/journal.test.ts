import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClassicLevel } from "classic-level";
import { pino } from "pino";
import { test as base, describe, expect } from "vitest";
import {
  type DeviceMetaRecord,
  Journal,
  type JournalOptions,
  type JournalRecord,
} from "../../ingest/journal.js";
import { type Logger, silentLogger } from "../../observe/logger.js";
import { HASHED_SLOT_BASE, hashedSlot, pointTimeNs } from "../../storage/schema.js";

type LogLine = { level: number; msg: string } & Record<string, unknown>;
const WARN = 40;
const ERROR = 50;

/** A pino logger whose lines land in an array. */
function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: "info" },
    { write: (line: string) => lines.push(JSON.parse(line) as LogLine) },
  );
  return { logger, lines };
}

type Open = (options?: Partial<JournalOptions>) => Promise<Journal>;

const test = base.extend<{ dir: string; open: Open }>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  dir: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), "fieldq-journal-"));
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
  open: async ({ dir }, use) => {
    const opened: Journal[] = [];
    await use(async (options) => {
      const journal = await Journal.open({ dir, maxBytes: 1024 ** 2, logger: silentLogger, ...options });
      opened.push(journal);
      return journal;
    });
    // Closing twice is harmless; tests close some journals themselves to reopen them.
    for (const journal of opened) await journal.close().catch(() => {});
  },
});

const record = (n: number, dedupe?: string): JournalRecord => ({
  point: {
    measurement: "telemetry",
    rp: "raw",
    tags: { device: "modem-0001" },
    fields: { n },
    timeNs: pointTimeNs(1_736_150_400_000 + n, n),
  },
  ...(dedupe !== undefined ? { dedupe } : {}),
});
const entryBytes = (records: JournalRecord[]) => Buffer.byteLength(JSON.stringify(records));
const ns = (records: JournalRecord[]) => records.map((r) => r.point.fields.n);

const META: DeviceMetaRecord = {
  kind: "modem",
  model: "FQ-M200",
  firmware: "2.4.1",
  hardware: "rev C",
  region: "eu-west",
  isp: "unknown",
  serial: "S-1",
};

describe("Journal", () => {
  test("returns appended records in order", async ({ open }) => {
    const journal = await open();
    for (const n of [1, 2, 3]) expect(await journal.append([record(n)])).toEqual({ ok: true });
    await journal.append([record(4), record(5)]);
    const batch = await journal.readBatch(100);
    expect(ns(batch.records)).toEqual([1, 2, 3, 4, 5]);
    expect(batch.keys).toHaveLength(4);
    expect([...batch.keys].sort()).toEqual(batch.keys);
  });

  test("returns an empty batch when it is empty", async ({ open }) => {
    const journal = await open();
    expect(await journal.readBatch(10)).toEqual({ keys: [], records: [] });
  });

  test("reads whole entries up to the point budget, and at least one entry", async ({ open }) => {
    const journal = await open();
    await journal.append([record(1), record(2)]);
    await journal.append([record(3), record(4)]);
    await journal.append([record(5)]);
    expect(ns((await journal.readBatch(3)).records)).toEqual([1, 2]);
    expect(ns((await journal.readBatch(5)).records)).toEqual([1, 2, 3, 4, 5]);
    expect(ns((await journal.readBatch(1)).records)).toEqual([1, 2]);
  });

  test("reads whole entries up to the byte budget too, and at least one entry", async ({ open }) => {
    const journal = await open();
    const entries = [[record(1), record(2)], [record(3)], [record(4)]];
    for (const entry of entries) await journal.append(entry);
    const [first, second] = entries.map(entryBytes) as [number, number];
    expect(ns((await journal.readBatch(100, first + second)).records)).toEqual([1, 2, 3]);
    expect(ns((await journal.readBatch(100, first + second - 1)).records)).toEqual([1, 2]);
    expect(ns((await journal.readBatch(100, 1)).records)).toEqual([1, 2]);
  });

  test("syncs concurrent appends together, in the order they were made", async ({ open }) => {
    const journal = await open();
    let syncs = 0;
    journal.onAppend(() => syncs++);
    const results = await Promise.all(Array.from({ length: 200 }, (_, n) => journal.append([record(n)])));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(syncs).toBe(1);
    expect(ns((await journal.readBatch(1000)).records)).toEqual(Array.from({ length: 200 }, (_, n) => n));
  });

  test("stores a group commit's appends as one entry, read back as the appends were made", async ({
    open,
  }) => {
    const journal = await open();
    const appends = Array.from({ length: 50 }, (_, n) =>
      n % 2 === 0 ? [record(n)] : [record(n), record(-n)],
    );
    await Promise.all(appends.map((records) => journal.append(records)));
    const bytes = appends.reduce((sum, records) => sum + entryBytes(records), 0);
    expect(journal.backlog).toEqual({ entries: 50, bytes });
    const batch = await journal.readBatch(1000);
    expect(batch.keys).toHaveLength(1);
    expect(batch.records).toEqual(appends.flat());
    await journal.commit(batch.keys, []);
    expect(journal.backlog).toEqual({ entries: 0, bytes: 0 });
  });

  test("replays a group commit's entry after a reopen", async ({ open }) => {
    const first = await open();
    await Promise.all([first.append([record(1)]), first.append([]), first.append([record(2), record(3)])]);
    await first.close();
    const second = await open();
    const batch = await second.readBatch(10);
    expect(ns(batch.records)).toEqual([1, 2, 3]);
    await second.commit(batch.keys, []);
    expect(second.backlog).toEqual({ entries: 0, bytes: 0 });
  });

  test("replays a data folder of the previous version, one entry per message", async ({ dir, open }) => {
    const db = new ClassicLevel<string, string>(dir);
    const entries = db.sublevel<string, string>("j", {});
    const key = (n: number) => n.toString(16).padStart(16, "0");
    await entries.batch([
      { type: "put", key: key(0), value: JSON.stringify([record(1, "a")]) },
      { type: "put", key: key(1), value: JSON.stringify([record(2), record(3)]) },
    ]);
    await db.close();
    const journal = await open();
    expect(journal.backlog.entries).toBe(2);
    await journal.append([record(4)]);
    const batch = await journal.readBatch(10);
    expect(batch.records).toEqual([record(1, "a"), record(2), record(3), record(4)]);
    await journal.commit(batch.keys, []);
    expect(journal.backlog).toEqual({ entries: 0, bytes: 0 });
  });

  test("counts its backlog in entries and bytes and reports each change", async ({ open }) => {
    const reports: Array<{ entries: number; bytes: number }> = [];
    const journal = await open({ onBacklog: (b) => reports.push(b) });
    const entries = [[record(1)], [record(2), record(3)]];
    for (const e of entries) await journal.append(e);
    const bytes = entries.reduce((sum, e) => sum + entryBytes(e), 0);
    expect(journal.backlog).toEqual({ entries: 2, bytes });
    expect(reports).toEqual([
      { entries: 0, bytes: 0 },
      { entries: 1, bytes: entryBytes([record(1)]) },
      { entries: 2, bytes },
    ]);
  });

  test("replays its backlog after a reopen and appends after it", async ({ open }) => {
    const first = await open();
    await first.append([record(1)]);
    await first.append([record(2)]);
    const backlog = first.backlog;
    await first.close();

    const { logger, lines } = captureLogger();
    const second = await open({ logger });
    expect(second.backlog).toEqual(backlog);
    expect(lines).toEqual([expect.objectContaining({ msg: "journal replays its backlog", entries: 2 })]);
    await second.append([record(3)]);
    expect(ns((await second.readBatch(100)).records)).toEqual([1, 2, 3]);
  });

  test("passes over the entries a write in flight holds", async ({ open }) => {
    const journal = await open();
    for (const n of [1, 2, 3, 4]) await journal.append([record(n)]);
    const first = await journal.readBatch(2);
    expect(ns(first.records)).toEqual([1, 2]);
    expect(ns((await journal.readBatch(2, Number.POSITIVE_INFINITY, new Set(first.keys))).records)).toEqual([
      3, 4,
    ]);
  });

  test.for([
    ["held in memory", 64 * 1024 ** 2],
    ["past its memory bound, read from LevelDB", 0],
  ] as const)("returns the same entries %s", async ([, memoryBytes], { open }) => {
    const journal = await open({ memoryBytes });
    for (const n of [1, 2, 3]) await journal.append([record(n, `d${n}`)]);
    const skip = new Set((await journal.readBatch(1)).keys);
    expect((await journal.readBatch(10, Number.POSITIVE_INFINITY, skip)).records).toEqual([
      record(2, "d2"),
      record(3, "d3"),
    ]);
    await journal.commit([...skip], []);
    expect(ns((await journal.readBatch(10)).records)).toEqual([2, 3]);
  });

  test("reads a replayed backlog from LevelDB, then what it synced since from memory, in order", async ({
    open,
  }) => {
    const first = await open();
    await first.append([record(1)]);
    await first.append([record(2)]);
    await first.close();
    const second = await open();
    await second.append([record(3)]);
    const skip = new Set((await second.readBatch(1)).keys);
    expect(ns((await second.readBatch(10, Number.POSITIVE_INFINITY, skip)).records)).toEqual([2, 3]);
  });

  test("keeps appends that were still syncing when it closed", async ({ open }) => {
    const first = await open();
    const pending = first.append([record(1)]);
    await first.close();
    expect(await pending).toEqual({ ok: true });
    const second = await open();
    expect(ns((await second.readBatch(10)).records)).toEqual([1]);
  });

  test("refuses an append beyond its bound and keeps what it stored", async ({ open }) => {
    const size = entryBytes([record(1)]);
    const { logger, lines } = captureLogger();
    const journal = await open({ maxBytes: 3 * size, logger });
    for (const n of [1, 2, 3]) expect(await journal.append([record(n)])).toEqual({ ok: true });
    expect(await journal.append([record(4)])).toEqual({ ok: false, reason: "full" });
    expect(journal.backlog).toEqual({ entries: 3, bytes: 3 * size });
    expect(ns((await journal.readBatch(10)).records)).toEqual([1, 2, 3]);
    expect(lines.filter((l) => l.level === ERROR)).toHaveLength(1);
  });

  test("counts appends still syncing against its bound", async ({ open }) => {
    const size = entryBytes([record(1)]);
    const journal = await open({ maxBytes: 3 * size });
    const results = await Promise.all([1, 2, 3, 4].map((n) => journal.append([record(n)])));
    expect(results).toEqual([{ ok: true }, { ok: true }, { ok: true }, { ok: false, reason: "full" }]);
  });

  test("warns once when it passes 80% of its bound, and again after it drained", async ({ open }) => {
    const size = entryBytes([record(1)]);
    const { logger, lines } = captureLogger();
    const journal = await open({ maxBytes: 5 * size, logger });
    const warnings = () => lines.filter((l) => l.level === WARN);
    for (const n of [1, 2, 3]) await journal.append([record(n)]);
    expect(warnings()).toHaveLength(0);
    await journal.append([record(4)]); // 4 of 5: 80%
    expect(warnings()).toEqual([expect.objectContaining({ backlogBytes: 4 * size, maxBytes: 5 * size })]);
    await journal.append([record(5)]);
    expect(warnings()).toHaveLength(1);

    await journal.commit((await journal.readBatch(10)).keys, []);
    for (const n of [6, 7, 8, 9]) await journal.append([record(n)]);
    expect(warnings()).toHaveLength(2);
  });

  test("deletes committed entries from the batch and the backlog", async ({ open }) => {
    const journal = await open();
    for (const n of [1, 2, 3]) await journal.append([record(n)]);
    const batch = await journal.readBatch(2);
    await journal.commit(batch.keys, []);
    expect(journal.backlog).toEqual({ entries: 1, bytes: entryBytes([record(3)]) });
    expect(ns((await journal.readBatch(10)).records)).toEqual([3]);
  });

  describe("remembers written message identities", () => {
    const WINDOW = 1000;
    const NOW = 10_000_500;

    test("within the de-duplication window, and not after two", async ({ open }) => {
      const journal = await open({ dedupeWindowMs: WINDOW });
      await journal.append([record(1, "a"), record(2, "b")]);
      await journal.commit((await journal.readBatch(10)).keys, ["a", "b"], NOW);
      const found = async (now: number) => [...(await journal.alreadyWritten(["a", "b", "c"], now))].sort();
      expect(await found(NOW)).toEqual(["a", "b"]);
      expect(await found(NOW + WINDOW - 1)).toEqual(["a", "b"]);
      expect(await found(NOW + 2 * WINDOW)).toEqual([]);
    });

    test("for the default window of six hours", async ({ open }) => {
      const journal = await open();
      await journal.commit([], ["a"], NOW);
      expect(await journal.alreadyWritten(["a"], NOW + 6 * 3_600_000 - 1)).toEqual(new Set(["a"]));
      expect(await journal.alreadyWritten(["a"], NOW + 12 * 3_600_000)).toEqual(new Set());
    });

    test("and forgets old ones when it commits later", async ({ open }) => {
      const journal = await open({ dedupeWindowMs: WINDOW });
      await journal.commit([], ["a"], NOW);
      await journal.commit([], ["b"], NOW + 2 * WINDOW);
      expect(await journal.alreadyWritten(["a", "b"], NOW)).toEqual(new Set());
      expect(await journal.alreadyWritten(["a", "b"], NOW + 2 * WINDOW)).toEqual(new Set(["b"]));
    });

    test("across a reopen", async ({ open }) => {
      const first = await open({ dedupeWindowMs: WINDOW });
      await first.commit([], ["a"], NOW);
      await first.close();
      const second = await open({ dedupeWindowMs: WINDOW });
      expect(await second.alreadyWritten(["a"], NOW)).toEqual(new Set(["a"]));
    });

    test("and answers an empty question without a lookup", async ({ open }) => {
      const journal = await open();
      expect(await journal.alreadyWritten([], NOW)).toEqual(new Set());
    });
  });

  test("keeps the hours a commit marks dirty across a reopen, and clears only marks not renewed since", async ({
    open,
  }) => {
    const H = 3_600_000;
    const first = await open();
    const seen: number[] = [];
    first.onDirty(() => seen.push(first.dirty().size));
    await first.commit([], [], 0, [10 * H, 11 * H]);
    expect(seen).toEqual([2]);
    const snapshot = first.dirty();
    // Hour 11 is written to again while its rollup is being recomputed: its mark must stay.
    await first.commit([], [], 0, [11 * H]);
    await first.clearDirty(snapshot);
    expect([...first.dirty().keys()]).toEqual([11 * H]);
    await first.close();

    const reopened = await open();
    expect([...reopened.dirty().keys()]).toEqual([11 * H]);
    await reopened.clearDirty(reopened.dirty());
    expect(reopened.dirty().size).toBe(0);
    await reopened.close();
    expect((await open()).dirty().size).toBe(0);
  });

  test("keeps device metadata across a reopen, the latest per device", async ({ open }) => {
    const first = await open();
    await first.append([record(1)], { meta: ["modem-0001", META] });
    await first.append([record(2)], { meta: ["modem-0002", { ...META, model: "FQ-M300" }] });
    await first.append([record(3)], { meta: ["modem-0001", { ...META, firmware: "2.5.0" }] });
    await first.close();
    const second = await open();
    // Records from before slots existed get their device's hashed slot on the first load.
    expect(await second.loadDeviceMeta()).toEqual(
      new Map([
        ["modem-0001", { ...META, firmware: "2.5.0", slot: hashedSlot("modem-0001") }],
        ["modem-0002", { ...META, model: "FQ-M300", slot: hashedSlot("modem-0002") }],
      ]),
    );
  });

  test("gives records without a slot their device's hashed slot, stores it at once, and never changes it", async ({
    open,
  }) => {
    const first = await open();
    await first.append([record(1)], { meta: ["b-device", { ...META, slot: 7 }] });
    await first.append([record(2)], { meta: ["c-device", META] });
    await first.append([record(3)], { meta: ["a-device", META] });
    await first.close();
    const second = await open();
    const slots = (m: Map<string, { slot?: number }>) => [...m].map(([id, r]) => [id, r.slot]);
    const expected = [
      ["a-device", hashedSlot("a-device")],
      ["b-device", 7],
      ["c-device", hashedSlot("c-device")],
    ];
    expect(slots(await second.loadDeviceMeta())).toEqual(expected);
    expect(second.assignSlot("d-device")).toBe(hashedSlot("d-device"));
    await second.close();
    const third = await open();
    expect(slots(await third.loadDeviceMeta())).toEqual(expected);
    // A slot handed out but never stored (its append failed, the process died) is handed out again to the
    // same device: none of its points were journaled either.
    expect(third.assignSlot("d-device")).toBe(hashedSlot("d-device"));
  });

  test("gives a device the same slot in every journal, and another attempt where its own journal holds it", async ({
    open,
  }) => {
    const journal = await open();
    await journal.loadDeviceMeta();
    journal.takeSlots([hashedSlot("modem-0001")]);
    expect(journal.assignSlot("modem-0001")).toBe(hashedSlot("modem-0001", 1));
    expect(journal.assignSlot("modem-0002")).toBe(hashedSlot("modem-0002"));
    expect(hashedSlot("modem-0002")).toBeGreaterThanOrEqual(HASHED_SLOT_BASE);
    expect(hashedSlot("modem-0002")).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
    expect(hashedSlot("modem-0002")).not.toBe(hashedSlot("modem-0003"));
  });

  test("hands out no slot before it knows the slots in use", async ({ open }) => {
    const journal = await open();
    expect(() => journal.assignSlot("modem-0001")).toThrow(/loadDeviceMeta/);
  });

  test("keeps no device metadata for an append without it", async ({ open }) => {
    const journal = await open();
    await journal.append([record(1)]);
    expect(await journal.loadDeviceMeta()).toEqual(new Map());
  });

  test("keeps the metric names and label values appends introduced across a reopen, even once drained", async ({
    open,
  }) => {
    const first = await open();
    await first.append([record(1)], {
      introduced: [
        { dimension: "metric", value: "snr_margin_db", device: "modem-0001" },
        { dimension: "firmware", value: "2.5.0 (beta)", device: "modem-0001" },
      ],
    });
    await first.append([record(2)], {
      introduced: [{ dimension: "metric", value: "crc", device: "modem-0002" }],
    });
    await first.commit((await first.readBatch(10)).keys, []);
    await first.close();
    const second = await open();
    expect(second.backlog.entries).toBe(0);
    expect(await second.loadIntroduced()).toEqual(
      expect.arrayContaining([
        { dimension: "metric", value: "snr_margin_db", device: "modem-0001" },
        { dimension: "firmware", value: "2.5.0 (beta)", device: "modem-0001" },
        { dimension: "metric", value: "crc", device: "modem-0002" },
      ]),
    );
    expect(await second.loadIntroduced()).toHaveLength(3);
  });

  test("keeps nothing an append refused for a full journal introduced", async ({ open }) => {
    const journal = await open({ maxBytes: 10 });
    const refused = await journal.append([record(1)], {
      introduced: [{ dimension: "metric", value: "snr", device: "modem-0001" }],
    });
    expect(refused).toEqual({ ok: false, reason: "full" });
    expect(await journal.loadIntroduced()).toEqual([]);
  });
});
