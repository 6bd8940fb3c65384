import { describe, expect, it } from "vitest";
import { ageFactorOf, impactOf, SEVERITY_WEIGHTS } from "../../analytics/impact.js";

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 1);

describe("impactOf", () => {
  it("multiplies severity weight, affected devices, fleet share and age factor", () => {
    // error (9) × 30 devices × 30/300 × (1 + 3.5/7) = 9 × 30 × 0.1 × 1.5 = 40.5
    const impact = impactOf({
      worstSeverity: "error",
      affectedDevices: 30,
      activeDevices: 300,
      firstSeenMs: NOW - 3.5 * DAY,
      nowMs: NOW,
    });
    expect(impact).toEqual({
      score: 40.5,
      severityWeight: 9,
      affectedDevices: 30,
      fleetShare: 0.1,
      ageDays: 3.5,
      ageFactor: 1.5,
    });
  });

  it("ranks a small model's 30 devices above a large fleet's 30, and one device of a tiny fleet below both", () => {
    const at = (affected: number, active: number) =>
      impactOf({
        worstSeverity: "error",
        affectedDevices: affected,
        activeDevices: active,
        firstSeenMs: NOW,
        nowMs: NOW,
      }).score;
    expect(at(30, 100)).toBe(9 * 30 * 0.3);
    expect(at(30, 10_000)).toBeCloseTo(9 * 30 * 0.003, 6);
    expect(at(1, 1)).toBe(9);
    expect(at(30, 100)).toBeGreaterThan(at(1, 1));
    expect(at(1, 1)).toBeGreaterThan(at(30, 10_000));
  });

  it("weighs each severity step three times the one below", () => {
    expect(Object.values(SEVERITY_WEIGHTS)).toEqual([1, 3, 9, 27]);
    const of = (s: "warning" | "critical") =>
      impactOf({ worstSeverity: s, affectedDevices: 5, activeDevices: 10, firstSeenMs: NOW, nowMs: NOW })
        .score;
    expect(of("critical") / of("warning")).toBe(9);
  });

  it.each([
    [0, 1],
    [7 * DAY, 2],
    [14 * DAY, 3],
    [21 * DAY, 4],
    [90 * DAY, 4],
    [-DAY, 1],
  ])("gives an issue first seen %d ms ago the age factor %d", (ageMs, factor) => {
    expect(ageFactorOf(ageMs)).toBe(factor);
  });

  it("scores 0 without an occurrence in the window, and caps the share at 1", () => {
    expect(
      impactOf({ worstSeverity: null, affectedDevices: 4, activeDevices: 4, firstSeenMs: NOW, nowMs: NOW })
        .score,
    ).toBe(0);
    const noActivity = impactOf({
      worstSeverity: "warning",
      affectedDevices: 4,
      activeDevices: 0,
      firstSeenMs: NOW,
      nowMs: NOW,
    });
    expect(noActivity.fleetShare).toBe(1);
    expect(noActivity.score).toBe(12);
  });
});
