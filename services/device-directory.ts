import type { LivenessInput } from "../analytics/liveness.js";
import { UNKNOWN } from "../contract/messages.js";
import { MINUTE_MS, SECOND_MS } from "../contract/time.js";
import type { Logger } from "../observe/logger.js";
import type { DeviceStateRow } from "../storage/device-queries.js";

// Every device the API process knows, in memory: loaded from device_state (one series, one point per
// device: ~30 ms at 10,000 devices) in the background at start, then refreshed with what changed. Lists,
// filters, search and "does this device exist?" are answered from here without a query; status is judged
// per request from the liveness inputs kept here (analytics/liveness.ts).

export type Hello = {
  kind: string;
  model: string;
  firmware: string;
  hardware: string | null;
  serial: string | null;
  region: string;
  isp: string | null;
};

export type DirectoryEntry = {
  readonly id: string;
  hello: Hello;
  live: LivenessInput;
  /** Its newest successful firmware update, when the ingest recorded one. */
  lastUpdate: DeviceStateRow["lastUpdate"];
  /** When the ingest first stored anything of it; null for a device first seen before device_state. */
  firstMs: number | null;
  /** Newest device_state write taken in. */
  updatedMs: number;
  /** id, serial and model, lower case, for the free-text search. */
  search: string;
};

export type DirectoryFilter = {
  kind?: string | undefined;
  model?: string | undefined;
  firmware?: string | undefined;
  /** Exact serial. */
  serial?: string | undefined;
  /** Case-insensitive substring of id, serial or model. */
  q?: string | undefined;
};

export type DirectoryOptions = {
  /** device_state rows: every device's, or those written after updatedAfterMs. */
  load: (updatedAfterMs?: number) => Promise<DeviceStateRow[]>;
  /** The newest write's updated_ms: when it has not moved, a refresh reads nothing more. */
  newest?: () => Promise<number | null>;
  /** How often what changed is read; 0: never on a timer (tests call refresh()). */
  refreshEveryMs?: number;
  /**
   * How far before the newest write seen a refresh reads again: a point reaches InfluxDB some time after
   * its updated_ms (the writer's batching and backoff).
   */
  marginMs?: number;
  /** How often the whole directory is read again, for points that reached InfluxDB later than the margin. */
  fullEveryMs?: number;
  /** A lookup that misses reads what changed first, unless a read began less than this ago. */
  missRefreshMs?: number;
  now?: () => number;
  logger?: Logger;
};

const DEFAULTS = {
  refreshEveryMs: 5 * SECOND_MS,
  marginMs: MINUTE_MS,
  fullEveryMs: 5 * MINUTE_MS,
  missRefreshMs: SECOND_MS,
};

/** "unknown" in device_state clears a value an earlier hello had (a rewrite keeps the fields it leaves out). */
const unlessUnknown = (value: string | null) => (value === UNKNOWN ? null : value);

export function helloOf(row: DeviceStateRow): Hello {
  return {
    kind: row.kind ?? UNKNOWN,
    model: row.model ?? UNKNOWN,
    firmware: row.firmware ?? UNKNOWN,
    hardware: unlessUnknown(row.hardware),
    serial: unlessUnknown(row.serial),
    region: row.region ?? UNKNOWN,
    isp: unlessUnknown(row.isp),
  };
}

export function livenessInputOf(row: DeviceStateRow): LivenessInput {
  return {
    model: row.model ?? UNKNOWN,
    lastReportMs: row.lastReportMs,
    lastReportDeviceMs: row.lastReportDeviceMs ?? null,
    lastSeenMs: row.lastSeenMs,
    presence:
      row.presence === null ? null : { state: row.presence, atMs: row.presenceMs ?? row.lastSeenMs ?? 0 },
    cadence:
      row.gapMedianMs === null || row.gapSamples === null
        ? undefined
        : { medianMs: row.gapMedianMs, samples: row.gapSamples },
  };
}

export const searchText = (id: string, hello: Pick<Hello, "serial" | "model">) =>
  [id, hello.serial ?? "", hello.model].join("\n").toLowerCase();

const byId = (a: DirectoryEntry, b: DirectoryEntry) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * The device index: entries by id, and sorted lists per kind, model, firmware and serial, rebuilt only
 * when a device appears or its hello changes (liveness changes in place). Pure: no I/O, no clock.
 */
export class DeviceIndex {
  readonly #entries = new Map<string, DirectoryEntry>();
  #sorted: DirectoryEntry[] = [];
  #by = new Map<keyof DirectoryFilter, Map<string, DirectoryEntry[]>>();
  #stale = false;
  #helloRevision = 0;

  get size() {
    return this.#entries.size;
  }

  get(id: string): DirectoryEntry | undefined {
    return this.#entries.get(id);
  }

  /** Moves whenever a device appears or its hello (ISP, hardware, …) changes. */
  get helloRevision(): number {
    return this.#helloRevision;
  }

  /** Takes in a device_state row unless an entry newer than it is already held. */
  apply(row: DeviceStateRow): void {
    const known = this.#entries.get(row.device);
    const updatedMs = row.updatedMs ?? 0;
    if (known !== undefined && updatedMs < known.updatedMs) return;
    const hello = helloOf(row);
    const live = livenessInputOf(row);
    if (known === undefined) {
      this.#entries.set(row.device, {
        id: row.device,
        hello,
        live,
        lastUpdate: row.lastUpdate ?? null,
        firstMs: row.firstMs,
        updatedMs,
        search: searchText(row.device, hello),
      });
      this.#stale = true;
      this.#helloRevision += 1;
      return;
    }
    known.live = live;
    known.lastUpdate = row.lastUpdate ?? known.lastUpdate;
    known.firstMs = row.firstMs ?? known.firstMs;
    known.updatedMs = updatedMs;
    if (JSON.stringify(known.hello) !== JSON.stringify(hello)) {
      known.hello = hello;
      known.search = searchText(known.id, hello);
      this.#stale = true;
      this.#helloRevision += 1;
    }
  }

  #rebuild() {
    this.#sorted = [...this.#entries.values()].sort(byId);
    const fields = ["kind", "model", "firmware", "serial"] as const;
    this.#by = new Map(fields.map((f) => [f, new Map<string, DirectoryEntry[]>()]));
    for (const entry of this.#sorted) {
      for (const field of fields) {
        const value = entry.hello[field];
        if (value === null) continue;
        const index = this.#by.get(field);
        const list = index?.get(value);
        if (list === undefined) index?.set(value, [entry]);
        else list.push(entry);
      }
    }
    this.#stale = false;
  }

  /** The devices that match every given filter, sorted by id. */
  list(filter: DirectoryFilter = {}): DirectoryEntry[] {
    if (this.#stale) this.#rebuild();
    let candidates = this.#sorted;
    const exact = (["serial", "kind", "model", "firmware"] as const).filter((f) => filter[f] !== undefined);
    for (const field of exact) {
      const list = this.#by.get(field)?.get(filter[field] ?? "") ?? [];
      if (list.length < candidates.length) candidates = list;
    }
    const q = filter.q?.toLowerCase();
    if (exact.length === 0 && q === undefined) return candidates;
    return candidates.filter(
      (e) =>
        exact.every((field) => e.hello[field] === filter[field]) && (q === undefined || e.search.includes(q)),
    );
  }
}

export type DeviceDirectory = {
  /** Settles once the first full load has (a failed load is tried again by the next request). */
  ready(): Promise<void>;
  /** The device, after the first load; a miss reads what changed first (at most once per missRefreshMs). */
  lookup(id: string): Promise<DirectoryEntry | undefined>;
  /** What is held of the device now: no load, no refresh. */
  get(id: string): DirectoryEntry | undefined;
  /** Moves whenever a device appears or its hello changes: answers that name ISP or hardware key on it. */
  helloRevision(): number;
  /** The devices matching the filter, sorted by id, after the first load. */
  list(filter?: DirectoryFilter): Promise<DirectoryEntry[]>;
  /** Reads what changed since the newest write seen (less the margin); the whole directory when due. */
  refresh(): Promise<void>;
  close(): void;
};

export function createDeviceDirectory(options: DirectoryOptions): DeviceDirectory {
  const opts = Object.assign({}, DEFAULTS, options);
  const now = opts.now ?? Date.now;
  const index = new DeviceIndex();
  let newestMs: number | undefined;
  let loaded = false;
  let lastFullMs = 0;
  let lastReadMs = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<void> | undefined;

  async function read(full: boolean) {
    const started = now();
    lastReadMs = started;
    if (!full && newestMs !== undefined && opts.newest !== undefined) {
      const newest = await opts.newest();
      if (newest === null || newest <= newestMs) return;
    }
    const rows = await opts.load(full || newestMs === undefined ? undefined : newestMs - opts.marginMs);
    for (const row of rows) {
      index.apply(row);
      if (row.updatedMs !== null && (newestMs === undefined || row.updatedMs > newestMs))
        newestMs = row.updatedMs;
    }
    if (full) lastFullMs = started;
    loaded = true;
  }

  /** One read at a time; callers that come while one runs share it. */
  function refresh(): Promise<void> {
    if (inFlight === undefined) {
      const full = !loaded || now() - lastFullMs >= opts.fullEveryMs;
      inFlight = read(full).finally(() => {
        inFlight = undefined;
      });
    }
    return inFlight;
  }

  function ready(): Promise<void> {
    return loaded ? Promise.resolve() : refresh();
  }

  const timer =
    opts.refreshEveryMs > 0
      ? setInterval(() => {
          refresh().catch((error: unknown) =>
            opts.logger?.warn({ err: error }, "device directory not refreshed"),
          );
        }, opts.refreshEveryMs)
      : undefined;
  timer?.unref();
  // Loads at once, so the first request finds it ready; a failure here is the first request's to see.
  ready().catch((error: unknown) => opts.logger?.warn({ err: error }, "device directory not loaded yet"));

  return {
    ready,
    async lookup(id) {
      await ready();
      const found = index.get(id);
      if (found !== undefined || now() - lastReadMs < opts.missRefreshMs) return found;
      await refresh();
      return index.get(id);
    },
    get: (id) => index.get(id),
    helloRevision: () => index.helloRevision,
    async list(filter) {
      await ready();
      return index.list(filter);
    },
    refresh,
    close() {
      if (timer !== undefined) clearInterval(timer);
    },
  };
}
