import { describe, expect, test } from "vitest";
import { bucketsOf, decodeIds, dirtyHoursOf, encodeIds, PART_CHARS } from "../../storage/rollup-schema.js";
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
