import { describe, expect, it } from "vitest";
import {
  DEFAULT_SILENCE,
  expectedInterval,
  median,
  type PresenceState,
  presenceStatus,
  silenceOptions,
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
    const lastSeenMs = minutesAgo === null ? null : NOW - minutesAgo * MINUTE;
    expect(presenceStatus({ lastSeenMs, expectedMs: 5 * MINUTE, lastPresence, nowMs: NOW, factor: 3 })).toBe(
      status,
    );
  });

  it("scales the allowance with the factor", () => {
    const input = { lastSeenMs: NOW - 20 * MINUTE, expectedMs: 5 * MINUTE, lastPresence: null, nowMs: NOW };
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
