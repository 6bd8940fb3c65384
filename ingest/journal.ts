import { mkdir } from "node:fs/promises";
import { type BatchOperation, ClassicLevel } from "classic-level";
import type { Logger } from "../observe/logger.js";
import { hashedSlot, type Point } from "../storage/schema.js";

// The durable journal between the broker and InfluxDB. A message is acknowledged to its device only once
// its entry is fsync'd here (group commit: appends that arrive while one sync runs share the next one, and
// are stored as one entry, a JSON array of their records under the first one's key, as a single append is).
// The writer drains entries in key order and deletes them once InfluxDB has them. The entries synced by this
// process stay in memory (up to memoryBytes) and the writer takes them from there: LevelDB is read back only
// for a backlog replayed after a restart, or past that bound.

/** One point with the identity of the message it came from, for de-duplication of redeliveries. */
export type JournalRecord = { point: Point; dedupe?: string };

/** What the ingest keeps of a device: its latest hello (unknown before one), and its device_state bookkeeping. */
export type DeviceMetaRecord = {
  kind: string;
  model: string;
  firmware: string;
  hardware: string;
  region: string;
  isp: string;
  serial: string;
  /** Its device_state point's time in ns (Journal.assignSlot): fixed for good, never shared knowingly. */
  slot?: number;
  /** Broker time of the first message or presence change stored; absent for devices seen before it was kept. */
  firstMs?: number;
  /** Its most recent gap samples (activity gap_ms), oldest first: its cadence. */
  gapsMs?: number[];
};

export type AppendResult = { ok: true } | { ok: false; reason: "full" };

/** A metric name ("metric") or the value of a label tag, and the device that sent it first. */
export type IntroducedValue = { dimension: string; value: string; device: string };

/** Written with an entry, in the same sync: what the entry's message changed about its device and the fleet. */
export type AppendExtras = {
  meta?: [deviceId: string, DeviceMetaRecord];
  /** Metric names and label values the message is the first to send (ingest/cardinality.ts). */
  introduced?: readonly IntroducedValue[];
};

export type JournalBatch = { keys: string[]; records: JournalRecord[] };

export type JournalOptions = {
  dir: string;
  maxBytes: number;
  logger: Logger;
  /** Redeliveries are recognised for at least this long after the first delivery was written. */
  dedupeWindowMs?: number;
  /** Synced entries kept in memory for the writer, counted as their stored JSON bytes. */
  memoryBytes?: number;
  onBacklog?: (backlog: { entries: number; bytes: number }) => void;
};

const WARN_AT = 0.8;
const MEMORY_BYTES = 64 * 1024 ** 2;
const KEY_WIDTH = 16;
const toKey = (n: number) => n.toString(16).padStart(KEY_WIDTH, "0");

type Pending = {
  key: string;
  value: string;
  size: number;
  records: JournalRecord[];
  extras: AppendExtras;
  resolve: () => void;
  reject: (e: unknown) => void;
};

/** One entry of several appends' entries: their JSON arrays' elements in one array. */
function joinEntries(values: string[]): string {
  const parts: string[] = [];
  for (const value of values) if (value !== "[]") parts.push(value.slice(1, -1));
  return `[${parts.join(",")}]`;
}

export class Journal {
  private readonly db: ClassicLevel<string, string>;
  private readonly entries;
  private readonly seen;
  private readonly meta;
  private readonly dirtyLevel;
  /** Known metric names and label values: "<dimension>!<value>" → the device that introduced it. */
  private readonly introducedLevel;
  /** Hours (their start, ms) whose rollups are out of date → a generation that grows with each mark. */
  private readonly dirtyHours = new Map<number, number>();
  private dirtyGeneration = 0;
  private readonly dirtyListeners = new Set<() => void>();
  private readonly dedupeWindowMs: number;
  private next = 0;
  /** device_state slots in use, known once loadDeviceMeta has read every record. */
  private slots: Set<number> | undefined;
  private backlogEntries = 0;
  private backlogBytes = 0;
  /** Bytes accepted but not yet synced count against the bound too. */
  private pendingBytes = 0;
  private pending: Pending[] = [];
  private syncing = false;
  private warned = false;
  /** Dedupe buckets below this one are cleared already; clearing runs once per bucket, not per batch. */
  private prunedBelow = -1;
  private readonly sizes = new Map<string, number>();
  /** Messages (appends) per entry where more than one: a group commit's. */
  private readonly groupSizes = new Map<string, number>();
  /** The records of synced entries, by key, while they fit in memoryBytes. */
  private readonly inMemory = new Map<string, JournalRecord[]>();
  private inMemoryBytes = 0;
  private readonly listeners = new Set<() => void>();

  private constructor(private readonly options: JournalOptions) {
    this.db = new ClassicLevel<string, string>(options.dir);
    this.entries = this.db.sublevel<string, string>("j", {});
    this.seen = this.db.sublevel<string, string>("s", {});
    this.meta = this.db.sublevel<string, string>("m", {});
    this.dirtyLevel = this.db.sublevel<string, string>("r", {});
    this.introducedLevel = this.db.sublevel<string, string>("c", {});
    this.dedupeWindowMs = options.dedupeWindowMs ?? 6 * 3_600_000;
  }

  static async open(options: JournalOptions): Promise<Journal> {
    await mkdir(options.dir, { recursive: true });
    const journal = new Journal(options);
    await journal.db.open();
    let last = -1;
    for await (const [key, value] of journal.entries.iterator()) {
      const size = Buffer.byteLength(value);
      journal.sizes.set(key, size);
      journal.backlogEntries += 1;
      journal.backlogBytes += size;
      last = Number.parseInt(key, 16);
    }
    journal.next = last + 1;
    for await (const [key, value] of journal.dirtyLevel.iterator()) {
      const generation = Number(value);
      journal.dirtyHours.set(Number.parseInt(key, 16), generation);
      journal.dirtyGeneration = Math.max(journal.dirtyGeneration, generation);
    }
    journal.report();
    if (journal.backlogEntries > 0) {
      options.logger.info(
        { entries: journal.backlogEntries, bytes: journal.backlogBytes },
        "journal replays its backlog",
      );
    }
    return journal;
  }

  get backlog(): { entries: number; bytes: number } {
    return { entries: this.backlogEntries, bytes: this.backlogBytes };
  }

  /** A mark of every entry appended so far, for drainedTo. */
  mark(): number {
    return this.next;
  }

  /** Every entry appended before the mark has reached InfluxDB (or was never stored). */
  drainedTo(mark: number): boolean {
    // sizes holds the stored entries in key order: the first is the oldest.
    for (const key of this.sizes.keys()) return Number.parseInt(key, 16) >= mark;
    return true;
  }

  /** Called after each sync that added entries; the writer listens to wake up. */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once the records are on disk; refuses when the bound is reached, keeping what is stored. */
  append(records: JournalRecord[], extras: AppendExtras = {}): Promise<AppendResult> {
    const value = JSON.stringify(records);
    const size = Buffer.byteLength(value);
    const total = this.backlogBytes + this.pendingBytes + size;
    if (total > this.options.maxBytes) {
      this.options.logger.error(
        { backlogBytes: this.backlogBytes, maxBytes: this.options.maxBytes },
        "journal is full: new messages go unacknowledged until InfluxDB drains it",
      );
      return Promise.resolve({ ok: false, reason: "full" });
    }
    this.warnIfNear(total);
    this.pendingBytes += size;
    const key = toKey(this.next++);
    return new Promise<AppendResult>((resolve, reject) => {
      this.pending.push({
        key,
        value,
        size,
        records,
        extras,
        resolve: () => resolve({ ok: true }),
        reject,
      });
      if (!this.syncing) setImmediate(() => void this.sync());
    });
  }

  private async sync(): Promise<void> {
    if (this.syncing || this.pending.length === 0) return;
    this.syncing = true;
    const group = this.pending;
    this.pending = [];
    const first = group[0] as Pending;
    const key = first.key;
    const records = group.length === 1 ? first.records : group.flatMap((p) => p.records);
    const value = group.length === 1 ? first.value : joinEntries(group.map((p) => p.value));
    // Counted as the appends were, so the bound and the backlog add up whatever the grouping.
    let size = 0;
    for (const p of group) size += p.size;
    try {
      const ops: BatchOperation<ClassicLevel<string, string>, string, string>[] = [
        { type: "put", sublevel: this.entries, key, value },
      ];
      for (const { extras } of group) {
        const { meta, introduced = [] } = extras;
        if (meta)
          ops.push({ type: "put", sublevel: this.meta, key: meta[0], value: JSON.stringify(meta[1]) });
        for (const i of introduced)
          ops.push({
            type: "put",
            sublevel: this.introducedLevel,
            key: `${i.dimension}!${i.value}`,
            value: i.device,
          });
      }
      await this.db.batch(ops, { sync: true });
      this.sizes.set(key, size);
      if (group.length > 1) this.groupSizes.set(key, group.length);
      if (this.inMemoryBytes + size <= (this.options.memoryBytes ?? MEMORY_BYTES)) {
        this.inMemory.set(key, records);
        this.inMemoryBytes += size;
      }
      this.pendingBytes -= size;
      this.backlogBytes += size;
      this.backlogEntries += group.length;
      for (const p of group) p.resolve();
      this.report();
      for (const listener of this.listeners) listener();
    } catch (error) {
      this.pendingBytes -= size;
      for (const p of group) p.reject(error);
    } finally {
      this.syncing = false;
      if (this.pending.length > 0) setImmediate(() => void this.sync());
    }
  }

  /** The messages (appends) these entries hold. */
  messagesIn(keys: Iterable<string>): number {
    let messages = 0;
    for (const key of keys) messages += this.groupSizes.get(key) ?? 1;
    return messages;
  }

  /**
   * The oldest entries, up to about maxPoints points and maxBytes of stored JSON (at least one entry), so
   * a backlog of large points (faults full of escaped text, say) is not read into memory all at once.
   * Entries under `skip` (taken by a write in flight) are passed over.
   */
  async readBatch(
    maxPoints: number,
    maxBytes = Number.POSITIVE_INFINITY,
    skip: ReadonlySet<string> = new Set(),
  ): Promise<JournalBatch> {
    const batch: JournalBatch = { keys: [], records: [] };
    let bytes = 0;
    /** Adds the entry unless the batch is full; false when it is. */
    const add = (key: string, records: JournalRecord[], size: number) => {
      const full = batch.records.length + records.length > maxPoints || bytes + size > maxBytes;
      if (batch.keys.length > 0 && full) return false;
      batch.keys.push(key);
      for (const r of records) batch.records.push(r);
      bytes += size;
      return true;
    };
    let fromDisk: string | undefined;
    for (const [key, size] of this.sizes) {
      if (skip.has(key)) continue;
      const records = this.inMemory.get(key);
      if (records === undefined) {
        fromDisk = key;
        break;
      }
      if (!add(key, records, size)) return batch;
    }
    if (fromDisk === undefined) return batch;
    for await (const [key, value] of this.entries.iterator({ gte: fromDisk })) {
      // Not in sizes: committed since the iterator's snapshot was taken.
      const size = this.sizes.get(key);
      if (skip.has(key) || size === undefined) continue;
      const records = this.inMemory.get(key) ?? (JSON.parse(value) as JournalRecord[]);
      if (!add(key, records, size)) break;
    }
    return batch;
  }

  /** Which of these message identities were already written within the de-duplication window. */
  async alreadyWritten(dedupeKeys: string[], now = Date.now()): Promise<Set<string>> {
    if (dedupeKeys.length === 0) return new Set();
    const bucket = Math.floor(now / this.dedupeWindowMs);
    const lookups = [bucket, bucket - 1].flatMap((b) => dedupeKeys.map((k) => `${toKey(b)}!${k}`));
    const found = await this.seen.getMany(lookups);
    const written = new Set<string>();
    found.forEach((value, i) => {
      if (value !== undefined) written.add(dedupeKeys[i % dedupeKeys.length] as string);
    });
    return written;
  }

  /**
   * InfluxDB has these entries: delete them, remember their message identities and mark the hours whose
   * rollups they change, in one atomic batch.
   */
  async commit(
    keys: string[],
    writtenDedupeKeys: string[],
    now = Date.now(),
    dirtyHours: Iterable<number> = [],
  ): Promise<void> {
    const bucket = toKey(Math.floor(now / this.dedupeWindowMs));
    const marks = [...dirtyHours].map((hour) => {
      this.dirtyGeneration += 1;
      this.dirtyHours.set(hour, this.dirtyGeneration);
      return {
        type: "put" as const,
        sublevel: this.dirtyLevel,
        key: toKey(hour),
        value: String(this.dirtyGeneration),
      };
    });
    const batch = this.db.batch([
      ...marks,
      ...keys.map((key) => ({ type: "del" as const, sublevel: this.entries, key })),
      ...writtenDedupeKeys.map((k) => ({
        type: "put" as const,
        sublevel: this.seen,
        key: `${bucket}!${k}`,
        value: "",
      })),
    ]);
    if (marks.length > 0) for (const listener of this.dirtyListeners) listener();
    await batch;
    for (const key of keys) {
      const size = this.sizes.get(key);
      if (size === undefined) continue;
      this.backlogBytes -= size;
      this.backlogEntries -= this.groupSizes.get(key) ?? 1;
      this.groupSizes.delete(key);
      this.sizes.delete(key);
      if (this.inMemory.delete(key)) this.inMemoryBytes -= size;
    }
    if (this.backlogBytes < this.options.maxBytes * WARN_AT) this.warned = false;
    this.report();
    // Buckets older than the previous one can no longer match a lookup.
    const oldest = Math.floor(now / this.dedupeWindowMs) - 1;
    if (oldest > this.prunedBelow) {
      await this.seen.clear({ lt: toKey(oldest) });
      this.prunedBelow = oldest;
    }
  }

  /** The hours whose rollups are out of date, with their generation (for clearDirty). */
  dirty(): Map<number, number> {
    return new Map(this.dirtyHours);
  }

  /** Called when commit() marks hours dirty; the rollup runner listens. */
  onDirty(listener: () => void): () => void {
    this.dirtyListeners.add(listener);
    return () => this.dirtyListeners.delete(listener);
  }

  /** The rollups of these hours were recomputed: unmarks those not marked again since. */
  async clearDirty(recomputed: ReadonlyMap<number, number>): Promise<void> {
    const done = [...recomputed].filter(([hour, generation]) => this.dirtyHours.get(hour) === generation);
    for (const [hour] of done) this.dirtyHours.delete(hour);
    if (done.length === 0) return;
    await this.db.batch(
      done.map(([hour]) => ({ type: "del" as const, sublevel: this.dirtyLevel, key: toKey(hour) })),
    );
  }

  /**
   * Every device's record. Records without a slot (written before slots existed) get one here and are stored
   * with it at once, so it never changes again.
   */
  async loadDeviceMeta(): Promise<Map<string, DeviceMetaRecord>> {
    const all = new Map<string, DeviceMetaRecord>();
    this.slots = new Set();
    for await (const [deviceId, meta] of this.meta.iterator()) {
      const record = JSON.parse(meta) as DeviceMetaRecord;
      all.set(deviceId, record);
      if (record.slot !== undefined) this.slots.add(record.slot);
    }
    const slotless = [...all].filter(([, record]) => record.slot === undefined);
    for (const [deviceId, record] of slotless) record.slot = this.assignSlot(deviceId);
    if (slotless.length > 0) {
      await this.db.batch(
        slotless.map(([deviceId, record]) => ({
          type: "put" as const,
          sublevel: this.meta,
          key: deviceId,
          value: JSON.stringify(record),
        })),
        { sync: true },
      );
    }
    return all;
  }

  /**
   * The device's slot (storage/schema.ts hashedSlot: the same in every process), or the next of its attempts
   * when another device of this journal holds it. The caller stores it in the device's record with its next
   * append (the record and the entry holding its first device_state point land in one batch). Needs
   * loadDeviceMeta first.
   */
  assignSlot(deviceId: string): number {
    if (this.slots === undefined) throw new Error("assignSlot before loadDeviceMeta");
    let attempt = 0;
    let slot = hashedSlot(deviceId);
    while (this.slots.has(slot)) slot = hashedSlot(deviceId, ++attempt);
    this.slots.add(slot);
    return slot;
  }

  /** Slots device_state already holds points at (adopted from InfluxDB): assignSlot hands out none of them. */
  takeSlots(slots: Iterable<number>): void {
    if (this.slots === undefined) throw new Error("takeSlots before loadDeviceMeta");
    for (const slot of slots) this.slots.add(Math.trunc(slot));
  }

  /** Every metric name and label value stored so far, with the device that introduced it. */
  async loadIntroduced(): Promise<IntroducedValue[]> {
    const all: IntroducedValue[] = [];
    for await (const [key, device] of this.introducedLevel.iterator()) {
      const at = key.indexOf("!");
      all.push({ dimension: key.slice(0, at), value: key.slice(at + 1), device });
    }
    return all;
  }

  async close(): Promise<void> {
    while (this.syncing || this.pending.length > 0) await new Promise((r) => setTimeout(r, 5));
    await this.db.close();
  }

  private warnIfNear(total: number): void {
    if (this.warned || total < this.options.maxBytes * WARN_AT) return;
    this.warned = true;
    this.options.logger.warn(
      { backlogBytes: total, maxBytes: this.options.maxBytes },
      "journal is over 80% of its bound: InfluxDB is not keeping up or is down",
    );
  }

  private report(): void {
    this.options.onBacklog?.(this.backlog);
  }
}
