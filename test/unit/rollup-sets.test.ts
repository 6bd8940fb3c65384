import { describe, expect, test } from "vitest";
import {
  addTally,
  bucketsOf,
  type DeviceTally,
  decodeIds,
  decodeTallies,
  dirtyHoursOf,
  encodeIds,
  encodeTallies,
  PART_CHARS,
} from "../../storage/rollup-schema.js";
import { pointTimeNs } from "../../storage/schema.js";

const H = 3_600_000;
const D = 24 * H;
const DAY = Date.UTC(2024, 0, 10);

describe("device set parts", () => {
  test("hold the ids sorted, each part under the string field limit, and decode to the same ids", () => {
    const ids = Array.from({ length: 9_000 }, (_, i) => `modem-${String(8_999 - i).padStart(5, "0")}`);
    const parts = encodeIds(ids);
    // 9,000 ids of 11 characters and a comma: 108,000 characters, so two parts.
    expect(parts).toHaveLength(2);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(PART_CHARS);
    const decoded = parts.flatMap(decodeIds);
    expect(decoded).toEqual([...ids].sort());
    expect(encodeIds([])).toEqual([]);
    expect(decodeIds("")).toEqual([]);
  });
});

describe("a window's buckets", () => {
  const window = { fromMs: DAY - 2 * H, toMs: DAY + 2 * D + 3 * H };
  test("take whole UTC days as days and the edges as hours", () => {
    const buckets = bucketsOf(window);
    expect(buckets.filter((b) => b.span === "1d").map((b) => b.startMs)).toEqual([DAY, DAY + D]);
    expect(buckets.filter((b) => b.span === "1h").map((b) => (b.startMs - DAY) / H)).toEqual([
      -2, -1, 48, 49, 50,
    ]);
  });

  test("are hours alone for a window within one day, and days alone for whole days", () => {
    expect(bucketsOf({ fromMs: DAY + H, toMs: DAY + 4 * H })).toEqual(
      [1, 2, 3].map((h) => ({ span: "1h", startMs: DAY + h * H })),
    );
    expect(bucketsOf({ fromMs: DAY, toMs: DAY + D })).toEqual([{ span: "1d", startMs: DAY }]);
  });
});

test("dirty hours are those of the points the rollups read, not of telemetry", () => {
  const at = (measurement: string, ms: number) => ({ measurement, timeNs: pointTimeNs(ms, 7) });
  const hours = dirtyHoursOf([
    at("activity", DAY + 5 * H),
    at("fault", DAY + 5 * H + 59 * 60_000),
    at("event", DAY + 7 * H + 1),
    at("rejection", DAY - 1),
    at("telemetry", DAY + 9 * H),
  ]);
  expect([...hours].sort((a, b) => a - b)).toEqual([DAY - H, DAY + 5 * H, DAY + 7 * H]);
});

describe("per-device tallies", () => {
  test("encode sorted by device in parts under the limit and decode to the same tallies", () => {
    const tallies: DeviceTally[] = Array.from({ length: 3_000 }, (_, i) => ({
      device: `printer-${String(2_999 - i).padStart(5, "0")}`,
      n: i + 1,
      lastMs: DAY + i,
      firmware: "4.2.0-rc:1 (beta)",
    }));
    const parts = encodeTallies(tallies);
    // 3,000 entries of about 45 characters: three parts.
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(PART_CHARS);
    const decoded = parts.flatMap(decodeTallies);
    expect(decoded).toEqual([...tallies].sort((a, b) => (a.device < b.device ? -1 : 1)));
    expect(encodeTallies([])).toEqual([]);
    expect(decodeTallies("")).toEqual([]);
  });

  test.each([
    ["a firmware with colons", "d1:3:1700000000000:1.0:rc2", { n: 3, firmware: "1.0:rc2" }],
    ["an empty firmware", "d1:1:1700000000000:", { n: 1, firmware: "" }],
  ])("decode %s", (_, part, expected) => {
    expect(decodeTallies(part)).toEqual([{ device: "d1", lastMs: 1_700_000_000_000, ...expected }]);
  });

  test("add up counts and keep the newest fault's time and firmware, in any order", () => {
    const inputs: DeviceTally[] = [
      { device: "a", n: 2, lastMs: DAY + H, firmware: "1.0" },
      { device: "a", n: 1, lastMs: DAY + 3 * H, firmware: "1.1" },
      { device: "b", n: 4, lastMs: DAY, firmware: "1.0" },
      { device: "a", n: 5, lastMs: DAY + 2 * H, firmware: "1.0" },
      // A tie on time: the greater firmware wins, whichever comes first.
      { device: "b", n: 1, lastMs: DAY, firmware: "1.2" },
    ];
    for (const order of [inputs, [...inputs].reverse()]) {
      const into = new Map<string, DeviceTally>();
      for (const t of order) addTally(into, t);
      expect(Object.fromEntries(into)).toEqual({
        a: { device: "a", n: 8, lastMs: DAY + 3 * H, firmware: "1.1" },
        b: { device: "b", n: 5, lastMs: DAY, firmware: "1.2" },
      });
    }
    // The first tally added is copied, not kept.
    expect(inputs[0]?.n).toBe(2);
  });
});
