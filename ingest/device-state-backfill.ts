import type { InfluxDB } from "influx";
import { UNKNOWN } from "../contract/messages.js";
import { WEEK_MS } from "../contract/time.js";
import type { Logger } from "../observe/logger.js";
import type { LastReport } from "../storage/device-queries.js";
import {
  type DeviceStateSources,
  deviceStateSources,
  type HelloRow,
  type SourcePresenceRow,
  type StatePointRow,
} from "../storage/device-state-sources.js";
import { type DeviceActivity, GAP_SAMPLES, HELLO_FIELDS, helloValue, type Presence } from "./device-state.js";
import type { AppendResult, DeviceMetaRecord, Journal } from "./journal.js";
import { unknownMeta } from "./to-points.js";

// device_state is written as devices send something, so after an upgrade from a version without it (or
// after the journal is lost) a device silent since then would have no point: missing from the directory,
// never reported silent. At start, in the background, the devices InfluxDB knows and device_state lacks get
// a point made from their raw data, written through the journal like every other (docs/storage.md).

/** What InfluxDB stored of one device, read for its state point. */
export type StoredFacts = {
  hello?: HelloRow;
  /** Its last successful firmware update: newer than the hello, it is the firmware. */
  firmwareUpdate?: { firmware: string; atMs: number };
  /** Broker time of its newest report in device, telemetry, fault, event, command. */
  lastReportMs?: number;
  /** The stored (device) time of its newest timestamped report: telemetry, fault, event, command. */
  lastReportDeviceMs?: number;
  /** Its newest presence change per source. */
  presence: readonly SourcePresenceRow[];
  /** Its newest gap samples, newest first. */
  gapsMs: readonly number[];
};

/** The devices known (journal records, raw series) that device_state has no point for, in id order. */
export function missingDevices(known: Iterable<string>, withState: ReadonlySet<string>): string[] {
  return [...new Set(known)].filter((id) => !withState.has(id)).sort();
}

const later = (a: number | undefined, b: number | undefined) =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b);

const PRESENCE_SOURCES = new Set(["broker", "device", "will"]);

/** The activity the stored points show: a status the device published itself is a report too. */
export function storedActivity(facts: StoredFacts): DeviceActivity {
  // A hello is a report too: the hello read is not bounded in time as the other reports' read is.
  let lastReportMs = later(facts.lastReportMs, facts.hello?.receivedMs);
  let lastSeenMs = lastReportMs;
  let presence: Presence | undefined;
  for (const p of facts.presence) {
    if (p.source === "device") lastReportMs = later(lastReportMs, p.atMs);
    lastSeenMs = later(lastSeenMs, p.atMs);
    if (presence === undefined || p.atMs > presence.atMs) {
      const source = PRESENCE_SOURCES.has(p.source) ? (p.source as Presence["source"]) : "broker";
      presence = { state: p.state, atMs: p.atMs, source };
    }
  }
  const { lastReportDeviceMs } = facts;
  return {
    ...(lastReportMs !== undefined ? { lastReportMs } : {}),
    ...(lastReportDeviceMs !== undefined ? { lastReportDeviceMs } : {}),
    ...(lastSeenMs !== undefined ? { lastSeenMs } : {}),
    ...(presence !== undefined ? { presence } : {}),
  };
}

const knowsHello = (record: DeviceMetaRecord | undefined) =>
  record !== undefined && HELLO_FIELDS.some((f) => helloValue(record, f) !== undefined);

/** The hello the stored points give, firmware from a later successful update. */
function storedHello(facts: StoredFacts): DeviceMetaRecord | undefined {
  const h = facts.hello;
  const update = facts.firmwareUpdate;
  if (h === undefined && update === undefined) return undefined;
  const firmware =
    update !== undefined && (h === undefined || update.atMs >= h.receivedMs)
      ? update.firmware
      : (h?.firmware ?? UNKNOWN);
  return {
    kind: h?.kind ?? UNKNOWN,
    model: h?.model ?? UNKNOWN,
    firmware,
    hardware: h?.hardware ?? UNKNOWN,
    region: h?.region ?? UNKNOWN,
    isp: h?.isp ?? UNKNOWN,
    serial: h?.serial ?? "",
  };
}

/**
 * A device's record and activity for its backfilled state point. What the ingest knows already (its
 * journaled record, what it saw since start) is newer than the stored points and wins; the stored points
 * fill what it lacks: the hello when the record knows none, the cadence when the record has no samples, the
 * last report and presence where they are later.
 */
export function filledState(
  current: { record?: DeviceMetaRecord | undefined; activity?: DeviceActivity | undefined },
  facts: StoredFacts,
): { record: DeviceMetaRecord; activity: DeviceActivity } {
  const { record, activity = {} } = current;
  const hello = knowsHello(record) ? undefined : storedHello(facts);
  const base: DeviceMetaRecord =
    hello !== undefined ? { ...(record ?? {}), ...hello } : (record ?? unknownMeta());
  const gapsMs =
    (record?.gapsMs?.length ?? 0) > 0
      ? record?.gapsMs
      : facts.gapsMs.length > 0
        ? [...facts.gapsMs].slice(0, GAP_SAMPLES).reverse()
        : undefined;
  const stored = storedActivity(facts);
  const presence =
    stored.presence !== undefined &&
    (activity.presence === undefined || stored.presence.atMs > activity.presence.atMs)
      ? stored.presence
      : activity.presence;
  const lastReportMs = later(activity.lastReportMs, stored.lastReportMs);
  const lastReportDeviceMs = later(activity.lastReportDeviceMs, stored.lastReportDeviceMs);
  const lastSeenMs = later(activity.lastSeenMs, stored.lastSeenMs);
  return {
    record: { ...base, ...(gapsMs !== undefined ? { gapsMs } : {}) },
    activity: {
      ...activity,
      ...(lastReportMs !== undefined ? { lastReportMs } : {}),
      ...(lastReportDeviceMs !== undefined ? { lastReportDeviceMs } : {}),
      ...(lastSeenMs !== undefined ? { lastSeenMs } : {}),
      ...(presence !== undefined ? { presence } : {}),
    },
  };
}

function setReport(facts: StoredFacts, report: LastReport) {
  facts.lastReportMs = report.receivedMs;
  if (report.deviceMs !== null) facts.lastReportDeviceMs = report.deviceMs;
}

/** Gathers the rows read for a group of devices into each device's facts. */
export function factsOf(
  ids: readonly string[],
  rows: {
    hellos: readonly HelloRow[];
    reports: ReadonlyMap<string, LastReport>;
    updates: readonly { device: string; to: string | null; atMs: number }[];
    presence: readonly SourcePresenceRow[];
    gaps: readonly { device: string; gapsMs: number[] }[];
  },
): Map<string, StoredFacts> {
  const facts = new Map<string, StoredFacts>(ids.map((id) => [id, { presence: [], gapsMs: [] }]));
  const of = (id: string) => facts.get(id);
  for (const hello of rows.hellos) {
    const f = of(hello.device);
    if (f !== undefined) f.hello = hello;
  }
  for (const [id, report] of rows.reports) {
    const f = of(id);
    if (f !== undefined) setReport(f, report);
  }
  for (const u of rows.updates) {
    const f = of(u.device);
    if (f !== undefined && u.to !== null) f.firmwareUpdate = { firmware: u.to, atMs: u.atMs };
  }
  for (const p of rows.presence) {
    const f = of(p.device);
    if (f !== undefined) f.presence = [...f.presence, p];
  }
  for (const g of rows.gaps) {
    const f = of(g.device);
    if (f !== undefined) f.gapsMs = g.gapsMs;
  }
  return facts;
}

/**
 * The devices in groups for the last-report read, each with the time it can start from: its devices'
 * oldest newest activity hour (a report is in an hour with activity), or 0 when one has no activity. Devices
 * are grouped by that hour, newest first, so one device silent for a month does not widen every group.
 */
export function reportBatches(
  ids: readonly string[],
  newestHourMs: ReadonlyMap<string, number>,
  size: number,
): Array<{ ids: string[]; fromMs: number }> {
  const order = (id: string) => newestHourMs.get(id) ?? Number.NEGATIVE_INFINITY;
  const sorted = [...ids].sort((a, b) => order(b) - order(a) || (a < b ? -1 : a > b ? 1 : 0));
  const batches: Array<{ ids: string[]; fromMs: number }> = [];
  for (let at = 0; at < sorted.length; at += size) {
    const batch = sorted.slice(at, at + size);
    const oldest = Math.min(...batch.map(order));
    batches.push({ ids: batch, fromMs: Number.isFinite(oldest) ? oldest : 0 });
  }
  return batches;
}

export type SlottedRecord = DeviceMetaRecord & { slot: number };

/**
 * What device_state tells a journal that lost its records (a lost data folder), or that shares device_state
 * with other journals (docs/scaling.md): every slot taken, so a new device does not take a slot another's
 * point holds, and each device it has no record of, at the slot
 * and with the hello its point holds, so the device keeps its point and its later points their tags.
 */
export function adoptedSlots(
  points: readonly StatePointRow[],
  hasRecord: (id: string) => boolean,
): { taken: number[]; records: Array<[string, SlottedRecord]> } {
  const taken: number[] = [];
  const records: Array<[string, SlottedRecord]> = [];
  for (const p of points) {
    taken.push(p.slot);
    if (hasRecord(p.device)) continue;
    records.push([
      p.device,
      {
        kind: p.kind ?? UNKNOWN,
        model: p.model ?? UNKNOWN,
        firmware: p.firmware ?? UNKNOWN,
        hardware: p.hardware ?? UNKNOWN,
        region: p.region ?? UNKNOWN,
        isp: p.isp ?? UNKNOWN,
        serial: p.serial === null || p.serial === UNKNOWN ? "" : p.serial,
        slot: p.slot,
      },
    ]);
  }
  return { taken, records };
}

/** What the backfill needs of the ingest (ingest/ingest.ts). */
export type StateFiller = {
  knownDevices(): string[];
  hasRecord(deviceId: string): boolean;
  adoptSlots(adopted: ReturnType<typeof adoptedSlots>): void;
  fillState(deviceId: string, facts: StoredFacts): Promise<AppendResult>;
};

export type BackfillOptions = {
  ingest: StateFiller;
  journal: Pick<Journal, "mark" | "drainedTo">;
  influx?: InfluxDB;
  /** Instead of influx (tests). */
  sources?: Pick<
    DeviceStateSources,
    | "statePoints"
    | "knownDevices"
    | "latestHellos"
    | "lastReports"
    | "firmwareUpdates"
    | "latestPresence"
    | "recentActivity"
  >;
  logger: Logger;
  /** Devices read per group of queries (an OR list each). */
  batchSize?: number;
  /** After a failure (InfluxDB away, journal full) the pass runs again this much later. */
  retryMs?: number;
  now?: () => number;
};

export type BackfillHandle = {
  /** Resolves with how many devices got a point, once a pass finds nothing more to do (or on stop). */
  done: Promise<number>;
  stop(): Promise<void>;
};

function sourcesOf(options: BackfillOptions): NonNullable<BackfillOptions["sources"]> {
  if (options.sources !== undefined) return options.sources;
  if (options.influx !== undefined) return deviceStateSources(options.influx);
  throw new Error("startDeviceStateBackfill needs influx or sources");
}

/** Points stored at a device's own time may be ahead of the clock by up to the skew allowed. */
const AHEAD_MS = WEEK_MS;

/**
 * Starts the backfill in the background: it waits until the journal's backlog at start has reached
 * InfluxDB (it may hold the very state points it would make), then fills every missing device once.
 * A failure is logged and the pass runs again retryMs later; it never throws and never blocks the ingest.
 */
export function startDeviceStateBackfill(options: BackfillOptions): BackfillHandle {
  const { ingest, journal, logger } = options;
  const sources = sourcesOf(options);
  const batchSize = options.batchSize ?? 200;
  const retryMs = options.retryMs ?? 30_000;
  const now = options.now ?? Date.now;
  let stopped = false;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  /** Devices given a point this process: a retry does not write them again before InfluxDB has them. */
  const filled = new Set<string>();

  /** One pass; false when something failed and it should run again. */
  async function pass(): Promise<boolean> {
    const [points, raw] = await Promise.all([sources.statePoints(), sources.knownDevices()]);
    const adopted = adoptedSlots(points, (id) => ingest.hasRecord(id));
    ingest.adoptSlots(adopted);
    if (adopted.records.length > 0)
      logger.info(
        { devices: adopted.records.length },
        "the journal had no record of devices device_state holds: their slots and hellos are taken from it",
      );
    const withState = new Set(points.map((p) => p.device));
    const missing = missingDevices([...ingest.knownDevices(), ...raw], withState).filter(
      (id) => !filled.has(id),
    );
    if (missing.length === 0) {
      logger.debug({ devices: withState.size }, "device_state has a point for every device");
      return true;
    }
    const started = now();
    logger.info({ devices: missing.length }, `filling device_state for ${missing.length} devices`);
    const toMs = now() + AHEAD_MS;
    const facts = new Map<string, StoredFacts>();
    const newestHourMs = new Map<string, number>();
    for (let at = 0; at < missing.length && !stopped; at += batchSize) {
      const ids = missing.slice(at, at + batchSize);
      const [hellos, updates, presence, activity] = await Promise.all([
        sources.latestHellos(ids),
        sources.firmwareUpdates(ids, toMs),
        sources.latestPresence(ids),
        sources.recentActivity(ids, GAP_SAMPLES),
      ]);
      for (const a of activity) newestHourMs.set(a.device, a.newestHourMs);
      const read = factsOf(ids, { hellos, reports: new Map(), updates, presence, gaps: activity });
      for (const [id, f] of read) facts.set(id, f);
    }
    for (const batch of reportBatches(missing, newestHourMs, batchSize)) {
      if (stopped) break;
      for (const [id, report] of await sources.lastReports(batch.ids, batch.fromMs, toMs)) {
        const f = facts.get(id);
        if (f !== undefined) setReport(f, report);
      }
    }
    let written = 0;
    for (let at = 0; at < missing.length && !stopped; at += batchSize) {
      const results = await Promise.all(
        missing.slice(at, at + batchSize).map(async (id) => {
          const appended = await ingest.fillState(id, facts.get(id) ?? { presence: [], gapsMs: [] });
          if (appended.ok) filled.add(id);
          return appended.ok;
        }),
      );
      written += results.filter((ok) => ok).length;
    }
    const failed = missing.length - written;
    logger.info(
      { devices: written, failed, ms: now() - started },
      `device_state filled for ${written} devices`,
    );
    return failed === 0;
  }

  async function run(): Promise<number> {
    // The backlog at start may hold state points (and raw points) InfluxDB has not got yet.
    const mark = journal.mark();
    while (!stopped && !journal.drainedTo(mark)) await pause(200);
    while (!stopped) {
      const done = await pass().catch((error: unknown) => {
        logger.warn({ err: error }, "device_state backfill failed; it runs again later");
        return false;
      });
      if (done || stopped) break;
      await pause(retryMs);
    }
    return filled.size;
  }

  const done = run();
  return {
    done,
    async stop() {
      stopped = true;
      wake?.();
      await done;
    },
  };
}
