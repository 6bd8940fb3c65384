import { afterEach, describe, expect, it, vi } from "vitest";
import {
  createDeviceDirectory,
  DeviceIndex,
  helloOf,
  livenessInputOf,
} from "../../services/device-directory.js";
import type { DeviceStateRow } from "../../storage/device-queries.js";

const NOW = Date.parse("2025-03-01T12:00:00.000Z");

const state = (device: string, fields: Partial<DeviceStateRow> = {}): DeviceStateRow => ({
  device,
  kind: "modem",
  model: "M7590",
  firmware: "1.0",
  hardware: "rev-a",
  serial: `SN-${device.toUpperCase()}`,
  region: "eu",
  isp: "isp1",
  firstMs: NOW - 86_400_000,
  lastReportMs: NOW - 60_000,
  lastReportDeviceMs: NOW - 90_000,
  lastSeenMs: NOW - 60_000,
  presence: "online",
  presenceMs: NOW - 3_600_000,
  presenceSource: "broker",
  gapMedianMs: 300_000,
  gapSamples: 12,
  updatedMs: NOW - 60_000,
  ...fields,
});

const ids = (entries: Array<{ id: string }>) => entries.map((e) => e.id);

function indexOf(rows: DeviceStateRow[]) {
  const index = new DeviceIndex();
  for (const row of rows) index.apply(row);
  return index;
}

const FLEET = [
  state("modem-0002", { model: "M7590", firmware: "2.0", serial: "M7590-FB05945B" }),
  state("modem-0001"),
  state("router-0001", { kind: "router", model: "R1", serial: "R1-0001" }),
  state("printer-0001", { kind: "printer", model: "P-fb05", serial: null }),
];

describe("DeviceIndex", () => {
  it("lists every device sorted by id", () => {
    expect(ids(indexOf(FLEET).list())).toEqual(["modem-0001", "modem-0002", "printer-0001", "router-0001"]);
  });

  it.each([
    [{ kind: "modem" }, ["modem-0001", "modem-0002"]],
    [{ model: "R1" }, ["router-0001"]],
    [{ firmware: "2.0" }, ["modem-0002"]],
    [{ kind: "modem", firmware: "1.0" }, ["modem-0001"]],
    [{ kind: "nothing" }, []],
    [{ serial: "M7590-FB05945B" }, ["modem-0002"]],
    [{ serial: "m7590-fb05945b" }, []],
    [{ serial: "M7590-FB05945" }, []],
    [{ q: "fb0594" }, ["modem-0002"]],
    [{ q: "FB05" }, ["modem-0002", "printer-0001"]],
    [{ q: "router" }, ["router-0001"]],
    [{ q: "m7590" }, ["modem-0001", "modem-0002"]],
    [{ q: "fb05", kind: "printer" }, ["printer-0001"]],
    [{ q: "nowhere" }, []],
  ])("filters by %j", (filter, expected) => {
    expect(ids(indexOf(FLEET).list(filter))).toEqual(expected);
  });

  it("moves a device between indexes when its hello changes", () => {
    const index = indexOf(FLEET);
    expect(ids(index.list({ firmware: "2.0" }))).toEqual(["modem-0002"]);
    const revision = index.helloRevision;
    index.apply(state("modem-0001", { firmware: "2.0", updatedMs: NOW }));
    expect(index.helloRevision).toBe(revision + 1);
    expect(ids(index.list({ firmware: "2.0" }))).toEqual(["modem-0001", "modem-0002"]);
    expect(ids(index.list({ firmware: "1.0" }))).toEqual(["printer-0001", "router-0001"]);
  });

  it("keeps the newer state when an older point arrives late", () => {
    const index = indexOf(FLEET);
    index.apply(state("modem-0001", { firmware: "3.0", lastReportMs: NOW, updatedMs: NOW }));
    index.apply(state("modem-0001", { firmware: "1.0", lastReportMs: NOW - 5000, updatedMs: NOW - 5000 }));
    expect(index.get("modem-0001")?.hello.firmware).toBe("3.0");
    expect(index.get("modem-0001")?.live.lastReportMs).toBe(NOW);
  });

  it("updates liveness in place", () => {
    const index = indexOf(FLEET);
    const revision = index.helloRevision;
    index.apply(state("modem-0001", { lastReportMs: NOW, updatedMs: NOW }));
    expect(index.get("modem-0001")?.live.lastReportMs).toBe(NOW);
    // Liveness alone leaves answers that name ISP or hardware valid.
    expect(index.helloRevision).toBe(revision);
    expect(index.size).toBe(4);
  });
});

describe("a device_state row", () => {
  it("gives unknown hello fields their defaults", () => {
    const row = state("ghost-0001", {
      kind: null,
      model: null,
      firmware: null,
      hardware: null,
      serial: null,
      region: null,
      isp: null,
    });
    expect(helloOf(row)).toEqual({
      kind: "unknown",
      model: "unknown",
      firmware: "unknown",
      hardware: null,
      serial: null,
      region: "unknown",
      isp: null,
    });
  });

  it("reads a hello field cleared to unknown as absent", () => {
    const row = state("a", { hardware: "unknown", serial: "unknown", isp: "unknown", region: "unknown" });
    expect(helloOf(row)).toMatchObject({ hardware: null, serial: null, isp: null, region: "unknown" });
  });

  it("gives the liveness rule its inputs: presence, cadence", () => {
    expect(livenessInputOf(state("a"))).toEqual({
      model: "M7590",
      lastReportMs: NOW - 60_000,
      lastReportDeviceMs: NOW - 90_000,
      lastSeenMs: NOW - 60_000,
      presence: { state: "online", atMs: NOW - 3_600_000 },
      cadence: { medianMs: 300_000, samples: 12 },
    });
    const bare = livenessInputOf(state("a", { presence: null, gapMedianMs: null, gapSamples: null }));
    expect(bare).toMatchObject({ presence: null, cadence: undefined });
    // A point written before device times were kept.
    const { lastReportDeviceMs: _, ...old } = state("a");
    expect(livenessInputOf(old)).toMatchObject({ lastReportMs: NOW - 60_000, lastReportDeviceMs: null });
  });
});

describe("createDeviceDirectory", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("loads everything first, then reads only what was written since the newest write less the margin", async () => {
    const calls: Array<number | undefined> = [];
    const rows = [state("a", { updatedMs: 1000 }), state("b", { updatedMs: 5000 })];
    const directory = createDeviceDirectory({
      load: async (after) => {
        calls.push(after);
        return after === undefined ? rows : [state("c", { updatedMs: 6000 })];
      },
      refreshEveryMs: 0,
      marginMs: 500,
      now: () => NOW,
    });
    await directory.ready();
    expect(ids(await directory.list())).toEqual(["a", "b"]);
    await directory.refresh();
    expect(calls).toEqual([undefined, 4500]);
    expect(ids(await directory.list())).toEqual(["a", "b", "c"]);
    directory.close();
  });

  it("reads nothing more when the newest write has not moved", async () => {
    const calls: Array<number | undefined> = [];
    let newest = 5000;
    const directory = createDeviceDirectory({
      load: async (after) => {
        calls.push(after);
        return [state("a", { updatedMs: newest })];
      },
      newest: async () => newest,
      refreshEveryMs: 0,
      marginMs: 500,
      now: () => NOW,
    });
    await directory.ready();
    await directory.refresh();
    expect(calls).toEqual([undefined]);
    newest = 6000;
    await directory.refresh();
    expect(calls).toEqual([undefined, 4500]);
    directory.close();
  });

  it("reads what changed when a lookup misses, at most once per missRefreshMs", async () => {
    let clock = NOW;
    let loads = 0;
    const directory = createDeviceDirectory({
      load: async () => {
        loads += 1;
        return loads === 1 ? [state("a")] : [state("a"), state("new")];
      },
      refreshEveryMs: 0,
      missRefreshMs: 1000,
      now: () => clock,
    });
    await directory.ready();
    expect(await directory.lookup("a")).toBeDefined();
    // The load just happened: a miss within a second asks nothing.
    expect(await directory.lookup("new")).toBeUndefined();
    expect(loads).toBe(1);
    clock += 1000;
    expect((await directory.lookup("new"))?.id).toBe("new");
    expect(loads).toBe(2);
    directory.close();
  });

  it("tries a failed first load again on the next request", async () => {
    let fail = true;
    const directory = createDeviceDirectory({
      load: async () => {
        if (fail) throw new Error("InfluxDB down");
        return [state("a")];
      },
      refreshEveryMs: 0,
      now: () => NOW,
    });
    await expect(directory.ready()).rejects.toThrow("InfluxDB down");
    fail = false;
    expect(ids(await directory.list())).toEqual(["a"]);
    directory.close();
  });

  it("refreshes on its timer, reading the whole directory again when fullEveryMs has passed", async () => {
    vi.useFakeTimers({ now: NOW });
    const calls: Array<number | undefined> = [];
    const directory = createDeviceDirectory({
      load: async (after) => {
        calls.push(after);
        return [state("a", { updatedMs: NOW })];
      },
      refreshEveryMs: 2000,
      marginMs: 1000,
      fullEveryMs: 5000,
    });
    await directory.ready();
    await vi.advanceTimersByTimeAsync(6000);
    expect(calls).toEqual([undefined, NOW - 1000, NOW - 1000, undefined]);
    directory.close();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toHaveLength(4);
  });
});
