import { describe, expect, it } from "vitest";
import { oversizedPoint } from "../../ingest/ingest.js";
import { encodePoint, pointBytesAtMost } from "../../storage/line-protocol.js";
import type { FieldValue, Point } from "../../storage/schema.js";

// The size rule refuses a message whose stored point is over FIELDQ_MAX_POINT_BYTES; the bound lets it skip
// encoding points that cannot be, so the bound must never be below the encoded size.

const exact = (point: Point) => Buffer.byteLength(encodePoint(point));

/** mulberry32: a seeded source, so a failure can be replayed. */
function random(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NASTY = ['"', "\\", ",", "=", " ", "\n", "\t", "\u0001", "é", "€", "😀", "漢", "a", "\uFFFD"];
const NUMBERS: FieldValue[] = [
  -1.7976931348623157e308,
  5e-324,
  -0,
  0.1 + 0.2,
  -123456789.12345679,
  1e21,
  { int: Number.MIN_SAFE_INTEGER },
  { int: Number.MAX_SAFE_INTEGER },
  true,
  false,
];

function nastyPoint(next: () => number): Point {
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)] as T;
  const text = (max: number) =>
    Array.from({ length: 1 + Math.floor(next() * max) }, () => pick(NASTY)).join("");
  const tags = Object.fromEntries(Array.from({ length: Math.floor(next() * 6) }, () => [text(8), text(16)]));
  const fields = Object.fromEntries(
    Array.from({ length: 1 + Math.floor(next() * 8) }, () => [
      text(8),
      next() < 0.5 ? text(64) : pick(NUMBERS),
    ]),
  );
  return { measurement: text(6), rp: "raw", tags, fields, timeNs: "1736150400000000007" };
}

describe("pointBytesAtMost", () => {
  it("is never below the encoded size of a point full of escapes, multibyte and control characters", () => {
    const next = random(9);
    for (let n = 0; n < 5000; n++) {
      const point = nastyPoint(next);
      expect(pointBytesAtMost(point), JSON.stringify(point)).toBeGreaterThanOrEqual(exact(point));
    }
  });
});

describe("oversizedPoint", () => {
  const fault = (message: string): Point => ({
    measurement: "fault",
    rp: "long",
    tags: { device: "modem-0001", code: "X" },
    fields: { message, seq: { int: 1 } },
    timeNs: "1736150400000000001",
  });

  it("finds the first point over the limit and says how large it is", () => {
    const big = fault('"'.repeat(600));
    expect(oversizedPoint([{ point: fault("ok") }, { point: big }], 1000)).toEqual({
      measurement: "fault",
      bytes: exact(big),
    });
  });

  it("lets a point of exactly the limit through", () => {
    const point = fault('"'.repeat(600));
    expect(oversizedPoint([{ point }], exact(point))).toBeUndefined();
    expect(oversizedPoint([{ point }], exact(point) - 1)).toEqual({
      measurement: "fault",
      bytes: exact(point),
    });
  });
});
