import { describe, expect, it } from "vitest";
import { compareVersions, isAtLeast } from "../../analytics/versions.js";

describe("compareVersions", () => {
  it.each([
    ["2.10.0", "2.9.3"],
    ["7.57", "7.31"],
    ["1.0.1", "1.0"],
    ["10.0", "9.99.99"],
    ["2.4.0", "2.4.0-rc1"],
    ["2.4.0-rc2", "2.4.0-rc1"],
    ["2.4.0-rc10", "2.4.0-rc9"],
    ["2.4.0-rc", "2.4.0-beta"],
    ["1.0-rc.1", "1.0-rc"],
    ["1.0-rc.2", "1.0-rc.1"],
    ["2.4.1-rc1", "2.4.0"],
    ["7.57b", "7.57"],
    ["7.57b", "7.57a"],
    ["7.58", "7.57b"],
    ["1.0.a", "1.0"],
    ["1.12345678901234567890", "1.12345678901234567889"],
    ["0.1", "unknown"],
    ["0.0.0-alpha", "R7.57"],
    ["R7.57", "R7.31"],
    ["unknown", "beta"],
  ])("orders %s after %s", (newer, older) => {
    expect(compareVersions(newer, older)).toBe(1);
    expect(compareVersions(older, newer)).toBe(-1);
  });

  it.each([
    ["1.0", "1.0.0"],
    ["1", "1.0.0.0"],
    ["1.01", "1.1"],
    ["v2.4", "2.4.0"],
    ["V2.4", "v2.4"],
    ["2.4.0+build7", "2.4.0"],
    ["2.4.0-RC1", "2.4.0-rc1"],
    [" 2.4 ", "2.4"],
    ["unknown", "Unknown"],
  ])("holds %s and %s equal", (a, b) => {
    expect(compareVersions(a, b)).toBe(0);
    expect(compareVersions(b, a)).toBe(0);
  });

  it("sorts a mixed list deterministically", () => {
    const labels = ["2.10.0", "unknown", "2.9.3", "2.4.0", "v2.4.0-rc1", "7.31", "beta", "2.4.0-rc2", "7.57"];
    const sorted = [...labels].sort(compareVersions);
    expect(sorted).toEqual([
      "beta",
      "unknown",
      "v2.4.0-rc1",
      "2.4.0-rc2",
      "2.4.0",
      "2.9.3",
      "2.10.0",
      "7.31",
      "7.57",
    ]);
    expect([...labels].reverse().sort(compareVersions)).toEqual(sorted);
  });
});

describe("isAtLeast", () => {
  it.each([
    ["2.4.0", "2.4.0", true],
    ["2.4", "2.4.0", true],
    ["2.4.1", "2.4.0", true],
    ["2.10.0", "2.9.0", true],
    ["2.3.9", "2.4.0", false],
    ["2.4.0-rc1", "2.4.0", false],
    ["unknown", "2.4.0", false],
  ])("says %s is at least %s: %s", (version, floor, expected) => {
    expect(isAtLeast(version, floor)).toBe(expected);
  });
});
