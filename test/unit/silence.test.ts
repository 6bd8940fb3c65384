import { describe, expect, it } from "vitest";
import {
  AFTER_UPDATE_MS,
  countBy,
  DEFAULT_SILENCE,
  expectedInterval,
  median,
  type PresenceState,
  presenceStatus,
  silenceOptions,
  silenceReport,
} from "../../analytics/silence.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const NOW = Date.parse("2025-03-01T12:00:00.000Z");
const options = { floorMs: MINUTE, defaultMs: HOUR, minSamples: 3 };

describe("median", () => {
  it.each([
    [[], undefined],
    [[5], 5],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
    [[1, Number.NaN, 3], 2],
  ])("of %j is %s", (samples, expected) => {
    expect(median(samples)).toBe(expected);
  });
});

describe("expectedInterval", () => {
  it.each([
    [
      "a configured interval beats the learned one",
      [MINUTE, MINUTE, MINUTE],
      10 * MINUTE,
      10 * MINUTE,
      "configured",
    ],
    [
      "the median of the samples, unmoved by one long outage",
      [2 * MINUTE, 2 * MINUTE, 48 * HOUR],
      undefined,
      2 * MINUTE,
      "learned",
    ],
    ["the floor under a chatty device", [1000, 2000, 3000], undefined, MINUTE, "learned"],
    ["the default below minSamples", [5 * MINUTE, 5 * MINUTE], undefined, HOUR, "default"],
    ["the default without samples", [], undefined, HOUR, "default"],
    ["the default without any cadence", undefined, undefined, HOUR, "default"],
    ["a configured interval of 0 as none", [5 * MINUTE, 5 * MINUTE, 5 * MINUTE], 0, 5 * MINUTE, "learned"],
  ] as const)("takes %s", (_name, samples, configured, ms, source) => {
    expect(expectedInterval(samples, configured, options)).toEqual({ ms, source });
  });

  it("accepts a median and count computed by InfluxDB", () => {
    expect(expectedInterval({ medianMs: 90_000, samples: 40 }, undefined, options)).toEqual({
      ms: 90_000,
      source: "learned",
    });
    expect(expectedInterval({ medianMs: 90_000, samples: 2 }, undefined, options).source).toBe("default");
  });
});

describe("presenceStatus", () => {
  const online = (minutesAgo: number): PresenceState => ({
    state: "online",
    atMs: NOW - minutesAgo * MINUTE,
  });
  const offline = (minutesAgo: number): PresenceState => ({
    state: "offline",
    atMs: NOW - minutesAgo * MINUTE,
  });

  it.each<[string, number | null, PresenceState | null, string]>([
    ["reporting in time and connected", 1, online(30), "online"],
    ["reporting in time without any presence record", 1, null, "online"],
    ["exactly factor × interval old: not yet overdue", 15, online(30), "online"],
    ["just past factor × interval, though presence says online", 15.01, online(1), "silent"],
    ["overdue after its will said offline", 60, offline(58), "silent"],
    ["disconnected cleanly a moment ago, not yet overdue", 3, offline(2), "offline"],
    ["reporting again after a disconnect no connect followed", 1, offline(2), "online"],
    ["offline at the same instant as its last report", 2, offline(2), "offline"],
    ["never reported, connected a minute ago", null, online(1), "online"],
    ["never reported, will said offline a minute ago", null, offline(1), "offline"],
    ["never reported, connected long ago", null, online(60), "silent"],
    ["never heard of at all", null, null, "silent"],
  ])("is %s → %s", (_name, minutesAgo, lastPresence, status) => {
    const lastReportMs = minutesAgo === null ? null : NOW - minutesAgo * MINUTE;
    expect(
      presenceStatus({ lastReportMs, expectedMs: 5 * MINUTE, lastPresence, nowMs: NOW, factor: 3 }),
    ).toBe(status);
  });

  // Received (broker clock) and stored (device clock) minutes ago; allowance 15 min.
  it.each<[string, number, number, PresenceState | null, string]>([
    [
      "imported just now, stopped 12 h before the end of its history, disconnected",
      1,
      720,
      offline(0.5),
      "silent",
    ],
    ["imported just now, reported to the end of its history, disconnected", 1, 2, offline(0.5), "offline"],
    ["delivering an old backlog: connected, received just now", 0, 600, online(1), "online"],
    ["delivering an old backlog without any presence record", 0, 600, null, "online"],
    ["a backlog delivered, but a report followed its disconnect", 0, 600, offline(1), "online"],
    ["its device clock a few minutes ahead, overdue by the broker's", 16, 10, offline(15), "silent"],
    ["its device clock a few minutes ahead, disconnected", 2, -5, offline(1), "offline"],
    ["live, reports stored at their receive time", 1, 1, offline(0.5), "offline"],
  ])("is %s → %s", (_name, receivedAgo, storedAgo, lastPresence, status) => {
    expect(
      presenceStatus({
        lastReportMs: NOW - receivedAgo * MINUTE,
        lastReportDeviceMs: NOW - storedAgo * MINUTE,
        expectedMs: 5 * MINUTE,
        lastPresence,
        nowMs: NOW,
        factor: 3,
      }),
    ).toBe(status);
  });

  it("judges on the broker's clock where the device's is not known", () => {
    const input = { lastReportMs: NOW - MINUTE, expectedMs: 5 * MINUTE, nowMs: NOW, factor: 3 };
    expect(presenceStatus({ ...input, lastReportDeviceMs: null, lastPresence: offline(0.5) })).toBe(
      "offline",
    );
    expect(presenceStatus({ ...input, lastPresence: offline(0.5) })).toBe("offline");
  });

  it("scales the allowance with the factor", () => {
    const input = { lastReportMs: NOW - 20 * MINUTE, expectedMs: 5 * MINUTE, lastPresence: null, nowMs: NOW };
    expect(presenceStatus({ ...input, factor: 3 })).toBe("silent");
    expect(presenceStatus({ ...input, factor: 5 })).toBe("online");
  });
});

describe("silenceOptions", () => {
  it("merges the given options over the defaults once", () => {
    const intervals = new Map([["M1", 5 * MINUTE]]);
    expect(silenceOptions({ factor: 4, expectedIntervals: intervals })).toEqual({
      ...DEFAULT_SILENCE,
      factor: 4,
      expectedIntervals: intervals,
    });
    expect(silenceOptions()).toEqual(DEFAULT_SILENCE);
  });
});

describe("silenceReport", () => {
  const FROM = NOW - 7 * 24 * HOUR;
  const seen = (device: string, model: string, firmware: string, silent: boolean, lastReportMs: number) => ({
    device,
    model,
    firmware,
    silent,
    lastReportMs,
  });
  const SEEN = [
    seen("b-2", "M1", "2.0", true, NOW - 20 * HOUR),
    seen("a-1", "M1", "2.0", false, NOW - MINUTE),
    seen("c-3", "M1", "1.0", true, NOW - 30 * HOUR),
    seen("d-4", "R1", "5", true, NOW - 50 * HOUR),
  ];
  const update = (device: string, model: string, atMs: number) => ({
    device,
    model,
    from: "1.0",
    to: "2.0",
    atMs,
  });

  it("counts seen and silent devices per model and per model and firmware, sorted", () => {
    const report = silenceReport({ fromMs: FROM, toMs: NOW, factor: 3, seen: SEEN, updates: [] });
    expect(report.byModel).toEqual([
      { model: "M1", seen: 3, silent: 2, rate: 2 / 3 },
      { model: "R1", seen: 1, silent: 1, rate: 1 },
    ]);
    expect(report.byFirmware).toEqual([
      { model: "M1", firmware: "1.0", seen: 1, silent: 1, rate: 1 },
      { model: "M1", firmware: "2.0", seen: 2, silent: 1, rate: 0.5 },
      { model: "R1", firmware: "5", seen: 1, silent: 1, rate: 1 },
    ]);
    expect(report).toMatchObject({
      from: new Date(FROM).toISOString(),
      to: new Date(NOW).toISOString(),
      factor: 3,
    });
  });

  it("names the silent devices whose last report came within a day after their last update, and only those", () => {
    const report = silenceReport({
      fromMs: FROM,
      toMs: NOW,
      factor: 3,
      seen: SEEN,
      updates: [
        update("b-2", "M1", NOW - 30 * HOUR), // last report 10 h after: named
        update("a-1", "M1", NOW - 2 * HOUR), // not silent
        update("c-3", "M1", NOW - 20 * HOUR), // last report before the update
        update("d-4", "R1", NOW - 75 * HOUR), // last report 25 h after
        update("zz-9", "M1", NOW - 30 * HOUR), // not seen in the window
      ],
    });
    expect(report.afterUpdate).toEqual({
      withinS: AFTER_UPDATE_MS / 1000,
      devices: [
        {
          device: "b-2",
          model: "M1",
          from: "1.0",
          to: "2.0",
          updatedAt: new Date(NOW - 30 * HOUR).toISOString(),
          lastReport: new Date(NOW - 20 * HOUR).toISOString(),
        },
      ],
      byModel: [{ model: "M1", count: 1 }],
      byFirmware: [{ model: "M1", firmware: "2.0", count: 1 }],
    });
  });

  it("answers empty rates for a window nobody reported in", () => {
    const report = silenceReport({ fromMs: FROM, toMs: NOW, factor: 3, seen: [], updates: [] });
    expect(report.byModel).toEqual([]);
    expect(report.afterUpdate.devices).toEqual([]);
  });
});

describe("countBy", () => {
  it("counts items per distinct key, sorted by key", () => {
    const items = [{ m: "b" }, { m: "a" }, { m: "b" }];
    expect(countBy(items, (i) => ({ model: i.m }))).toEqual([
      { model: "a", count: 1 },
      { model: "b", count: 2 },
    ]);
  });
});
