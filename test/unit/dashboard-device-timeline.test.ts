import { describe, expect, it } from "vitest";
import type { BandSpec } from "../../dashboard/chart-spec.js";
import {
  adviceFor,
  chosenMetrics,
  markersOf,
  presenceBands,
  presenceChart,
  reportingBands,
  windowOf,
} from "../../dashboard/pages/device-timeline.js";

const H = 3_600_000;
const at = (ms: number) => new Date(ms).toISOString();

describe("presenceBands", () => {
  it("spans each state from its change on; before the first change the state is unknown", () => {
    const bands = presenceBands({
      fromMs: 0,
      toMs: 10 * H,
      records: [
        { time: at(6 * H), state: "online" },
        { time: at(2 * H), state: "online" },
        { time: at(4 * H), state: "offline" },
        { time: at(4 * H + 1), state: "offline" },
      ],
      online: true,
      silentSinceMs: null,
    });
    expect(bands.map((b) => [b.label, b.fromMs / H, b.toMs / H])).toEqual([
      ["online", 2, 4],
      ["offline", 4, 6],
      ["online", 6, 10],
    ]);
  });

  it("is the current state throughout without a change in the window, and nothing when never reported", () => {
    const base = { fromMs: 0, toMs: 4 * H, records: [], silentSinceMs: null };
    expect(presenceBands({ ...base, online: false })).toEqual([
      { fromMs: 0, toMs: 4 * H, label: "offline", tone: "muted" },
    ]);
    expect(presenceBands({ ...base, online: null })).toEqual([]);
  });

  it("ends in silence from the last report on, cutting what presence said", () => {
    const bands = presenceBands({
      fromMs: 0,
      toMs: 10 * H,
      records: [{ time: at(1 * H), state: "online" }],
      online: true,
      silentSinceMs: 3 * H,
    });
    expect(bands.map((b) => [b.label, b.fromMs / H, b.toMs / H])).toEqual([
      ["online", 1, 3],
      ["silent", 3, 10],
    ]);
  });

  it("charts the whole window: a null at each end no span covers", () => {
    const spec = presenceChart([{ fromMs: 2 * H, toMs: 4 * H, label: "online", tone: "good" }], 0, 10 * H);
    if (spec.kind !== "series") throw new Error(spec.kind);
    expect(spec.x[0]).toBe(0);
    expect(spec.x[spec.x.length - 1]).toBe(10 * H);
    expect(spec.series[0]?.values).toEqual([null, 1, 1, null]);
    expect([...spec.x].sort((a, b) => a - b)).toEqual(spec.x);
  });
});

describe("markersOf", () => {
  it("marks faults by severity and events, inside the window only, oldest first", () => {
    const markers = markersOf({
      fromMs: H,
      toMs: 5 * H,
      faults: [
        { ts: at(3 * H), code: "WAN_DOWN", severity: "error" },
        { ts: at(0), code: "OLD", severity: "critical" },
      ],
      events: [{ ts: at(2 * H), type: "reboot" }],
    });
    expect(markers).toEqual([
      { atMs: 2 * H, label: "reboot", tone: "event" },
      { atMs: 3 * H, label: "WAN_DOWN (error)", tone: "major" },
    ]);
  });
});

describe("chosenMetrics and windowOf", () => {
  it("prefers the known metrics, then other numbers, never strings or uptime", () => {
    expect(chosenMetrics({ zeta: 1, uptime_s: 5, snr_margin_db: 7, label: "x", alpha: 2 }, 3)).toEqual([
      "snr_margin_db",
      "alpha",
      "zeta",
    ]);
  });
  it("falls back to 24h for an unknown window", () => {
    expect(windowOf("7d")).toBe("7d");
    expect(windowOf("toString")).toBe("24h");
    expect(windowOf(undefined)).toBe("24h");
  });
});

describe("adviceFor", () => {
  it("advises the update when a fix is released in another firmware", () => {
    expect(adviceFor({ status: "fix_released", fixVersion: "7.62", advice: null }, "7.57")).toMatch(
      /Fixed in firmware 7\.62: advise the update/,
    );
    expect(
      adviceFor({ status: "fix_released", advice: "fixed in firmware 2.0: advise the update" }, "1.0"),
    ).toMatch(/^Fixed in firmware 2\.0: advise the update\./);
  });
  it("says the problem is known when no fix exists", () => {
    expect(adviceFor({ status: "new", fixVersion: null }, "7.57")).toMatch(/No fix released yet/);
  });
});

describe("reporting spans where presence says nothing", () => {
  const Q = 15 * 60_000;
  const quarter = (fromMs: number, n: number) => Array.from({ length: n }, (_, i) => fromMs + i * Q);

  it("joins reported buckets into spans, splits at a gap, and stops where presence takes over", () => {
    const from = 0;
    const to = 10 * H;
    const online: BandSpec = { fromMs: 8 * H, toMs: to, label: "online", tone: "good" };
    const bands = reportingBands({
      bands: [online],
      fromMs: from,
      toMs: to,
      // Reports 0–2 h, nothing 2–5 h, reports 5–9 h (the last hour under presence's own span).
      reportedMs: [...quarter(0, 8), ...quarter(5 * H, 16)],
      bucketMs: Q,
      gapMs: 2 * Q,
    });
    expect(bands.map((b) => [b.label, b.fromMs / H, b.toMs / H])).toEqual([
      ["reporting", 0, 2],
      ["reporting", 5, 8],
      ["online", 8, 10],
    ]);
  });

  it("adds nothing where the device sent nothing", () => {
    expect(reportingBands({ bands: [], fromMs: 0, toMs: H, reportedMs: [], bucketMs: Q, gapMs: Q })).toEqual(
      [],
    );
  });
});
