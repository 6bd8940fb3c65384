import { describe, expect, it } from "vitest";
import { type LivenessInput, liveness, livenessInputs, statusAt } from "../../analytics/liveness.js";
import { silenceOptions } from "../../analytics/silence.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const NOW = Date.parse("2025-03-01T12:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();
const options = silenceOptions({ expectedIntervals: new Map([["R1", 10 * MINUTE]]) });

const input = (fields: Partial<LivenessInput> = {}): LivenessInput => ({
  model: "M1",
  lastReportMs: NOW - MINUTE,
  lastSeenMs: NOW - MINUTE,
  presence: { state: "online", atMs: NOW - HOUR },
  cadence: { medianMs: 5 * MINUTE, samples: 10 },
  ...fields,
});

describe("liveness", () => {
  it("reports a device heard a minute ago as online, with its learned interval", () => {
    expect(liveness(input(), NOW, options)).toEqual({
      lastSeen: iso(NOW - MINUTE),
      online: true,
      lastReport: iso(NOW - MINUTE),
      status: "online",
      expectedIntervalS: 300,
      intervalSource: "learned",
    });
  });

  it("judges silence against factor × the interval: 3 × 5 min", () => {
    expect(liveness(input({ lastReportMs: NOW - 15 * MINUTE }), NOW, options).status).toBe("online");
    expect(liveness(input({ lastReportMs: NOW - 16 * MINUTE }), NOW, options).status).toBe("silent");
  });

  it("takes the model's configured interval before the device's cadence", () => {
    const live = liveness(input({ model: "R1", lastReportMs: NOW - 20 * MINUTE }), NOW, options);
    expect(live).toMatchObject({ status: "online", expectedIntervalS: 600, intervalSource: "configured" });
  });

  it("falls back to the default interval with too few cadence samples", () => {
    const live = liveness(input({ cadence: { medianMs: MINUTE, samples: 2 } }), NOW, options);
    expect(live).toMatchObject({ expectedIntervalS: 3600, intervalSource: "default" });
  });

  it("says offline when its newest presence change is an offline no report followed", () => {
    const live = liveness(input({ presence: { state: "offline", atMs: NOW - 30_000 } }), NOW, options);
    expect(live).toMatchObject({ status: "offline", online: false });
  });

  it("shows the newest of report, presence and last seen as lastSeen", () => {
    const live = liveness(
      input({ lastSeenMs: NOW - 2 * MINUTE, presence: { state: "offline", atMs: NOW - 10_000 } }),
      NOW,
      options,
    );
    expect(live.lastSeen).toBe(iso(NOW - 10_000));
  });

  it("judges a device that never reported from its presence, and one never heard of as silent", () => {
    const presenceOnly = input({
      lastReportMs: null,
      lastSeenMs: null,
      presence: { state: "online", atMs: NOW - MINUTE },
    });
    expect(liveness(presenceOnly, NOW, options)).toMatchObject({ status: "online", lastReport: null });
    const nothing = input({ lastReportMs: null, lastSeenMs: null, presence: null, cadence: undefined });
    expect(liveness(nothing, NOW, options)).toMatchObject({ status: "silent", lastSeen: null, online: null });
  });

  it("shows and judges the last report on the device's clock once it has disconnected", () => {
    // A history imported a minute ago whose last report is 12 h old on the device's clock.
    const imported = input({
      lastReportMs: NOW - MINUTE,
      lastReportDeviceMs: NOW - 12 * HOUR,
      presence: { state: "offline", atMs: NOW - 30_000 },
    });
    expect(liveness(imported, NOW, options)).toMatchObject({
      status: "silent",
      lastReport: iso(NOW - 12 * HOUR),
      lastSeen: iso(NOW - 30_000),
    });
    expect(statusAt(imported, NOW, options)).toBe("silent");
    // Still connected and delivering that history: not silent yet.
    const delivering = { ...imported, presence: { state: "online" as const, atMs: NOW - 2 * MINUTE } };
    expect(statusAt(delivering, NOW, options)).toBe("online");
  });

  it("judges at the instant asked, not the present", () => {
    expect(liveness(input({ lastReportMs: NOW - 2 * HOUR }), NOW - 2 * HOUR + MINUTE, options).status).toBe(
      "online",
    );
  });
});

describe("statusAt", () => {
  it.each([
    ["reported a minute ago", input(), "online"],
    ["overdue", input({ lastReportMs: NOW - 16 * MINUTE }), "silent"],
    [
      "disconnected after its last report",
      input({ presence: { state: "offline", atMs: NOW - 30_000 } }),
      "offline",
    ],
    ["configured per model", input({ model: "R1", lastReportMs: NOW - 20 * MINUTE }), "online"],
  ] as const)("agrees with liveness for a device %s", (_name, device, status) => {
    expect(statusAt(device, NOW, options)).toBe(status);
    expect(liveness(device, NOW, options).status).toBe(status);
  });
});

describe("livenessInputs", () => {
  it("folds raw reports, presence per source and cadences into one input per device", () => {
    const inputs = livenessInputs({
      reports: new Map([
        ["a", { atMs: NOW - 10 * MINUTE, deviceMs: NOW - 10 * MINUTE }],
        // Only a hello before the instant: no timestamped report.
        ["c", { atMs: NOW - 2 * MINUTE, deviceMs: null }],
      ]),
      presence: [
        { device: "a", source: "broker", state: "online", atMs: NOW - HOUR },
        { device: "a", source: "will", state: "offline", atMs: NOW - 20 * MINUTE },
        // A status message is a report too.
        { device: "b", source: "device", state: "online", atMs: NOW - 5 * MINUTE },
      ],
      cadences: new Map([["a", { medianMs: MINUTE, samples: 4 }]]),
      models: new Map([["a", "M1"]]),
      unknownModel: "unknown",
    });
    expect(inputs.get("a")).toEqual({
      model: "M1",
      lastReportMs: NOW - 10 * MINUTE,
      lastReportDeviceMs: NOW - 10 * MINUTE,
      lastSeenMs: NOW - 10 * MINUTE,
      presence: { state: "offline", atMs: NOW - 20 * MINUTE },
      cadence: { medianMs: MINUTE, samples: 4 },
    });
    expect(inputs.get("b")).toEqual({
      model: "unknown",
      lastReportMs: NOW - 5 * MINUTE,
      lastReportDeviceMs: null,
      lastSeenMs: NOW - 5 * MINUTE,
      presence: { state: "online", atMs: NOW - 5 * MINUTE },
      cadence: undefined,
    });
    expect(inputs.get("c")).toMatchObject({ lastReportMs: NOW - 2 * MINUTE, lastReportDeviceMs: null });
    expect([...inputs.keys()].sort()).toEqual(["a", "b", "c"]);
  });
});
