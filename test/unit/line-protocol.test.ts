import { describe, expect, it } from "vitest";
import { encodeFieldValue, encodePoint, quoteString, tryEncodePoint } from "../../storage/line-protocol.js";
import {
  type FieldValue,
  messageIdentity,
  metricValue,
  type Point,
  pointTimeNs,
} from "../../storage/schema.js";

const point = (p: Partial<Point> = {}): Point => ({
  measurement: "m",
  rp: "raw",
  tags: {},
  fields: { f: 1 },
  timeNs: "123",
  ...p,
});

describe("encodePoint", () => {
  it("writes measurement, tags, fields and time", () => {
    expect(encodePoint(point({ tags: { a: "1" } }))).toBe("m,a=1 f=1 123");
  });

  it("writes a point without tags", () => {
    expect(encodePoint(point())).toBe("m f=1 123");
  });

  it("sorts tags by key and keeps fields in their given order", () => {
    expect(encodePoint(point({ tags: { b: "2", c: "3", a: "1" }, fields: { z: 1, y: 2 } }))).toBe(
      "m,a=1,b=2,c=3 z=1,y=2 123",
    );
  });

  it("drops tags whose value is empty", () => {
    expect(encodePoint(point({ tags: { a: "", b: "x" } }))).toBe("m,b=x f=1 123");
  });

  it.each([
    ["a comma", "my,meas", "my\\,meas f=1 123"],
    ["a space", "my meas", "my\\ meas f=1 123"],
    ["an equals sign, which needs no escape there", "a=b", "a=b f=1 123"],
    ["a backslash", "a\\b", "a\\\\b f=1 123"],
    ["a newline, replaced", "a\nb", "a\uFFFDb f=1 123"],
  ])("escapes %s in the measurement", (_case, measurement, expected) => {
    expect(encodePoint(point({ measurement }))).toBe(expected);
  });

  it.each([
    ["a comma", { "a,b": "x,y" }, "m,a\\,b=x\\,y f=1 123"],
    ["a space", { "a b": "x y" }, "m,a\\ b=x\\ y f=1 123"],
    ["an equals sign", { "a=b": "x=y" }, "m,a\\=b=x\\=y f=1 123"],
    ["a backslash", { "a\\b": "x\\y" }, "m,a\\\\b=x\\\\y f=1 123"],
    ["a quote, which needs no escape there", { a: 'x"y' }, 'm,a=x"y f=1 123'],
    ["a newline, replaced", { "a\nb": "x\ny" }, "m,a\uFFFDb=x\uFFFDy f=1 123"],
    ["a carriage return and tab, replaced", { a: "x\ry\tz" }, "m,a=x\uFFFDy\uFFFDz f=1 123"],
    [
      "other control characters, replaced",
      { a: "x\u0000y\u001fz\u007f" },
      "m,a=x\uFFFDy\uFFFDz\uFFFD f=1 123",
    ],
  ])("escapes %s in tag keys and values", (_case, tags, expected) => {
    expect(encodePoint(point({ tags }))).toBe(expected);
  });

  it.each([
    ["a comma", "a,b", "m a\\,b=1 123"],
    ["a space", "a b", "m a\\ b=1 123"],
    ["an equals sign", "a=b", "m a\\=b=1 123"],
    ["a newline, replaced", "a\nb", "m a\uFFFDb=1 123"],
  ])("escapes %s in field keys", (_case, key, expected) => {
    expect(encodePoint(point({ fields: { [key]: 1 } }))).toBe(expected);
  });

  it.each([
    ["a plain string", "hello world", 's="hello world"'],
    ["quotes", 'say "hi"', 's="say \\"hi\\""'],
    ["backslashes", "C:\\dir\\", 's="C:\\\\dir\\\\"'],
    ["a backslash before a quote", '\\"', 's="\\\\\\""'],
    ["commas, spaces and equals signs unescaped", "a,b c=d", 's="a,b c=d"'],
    ["a newline kept as is", "line 1\nline 2", 's="line 1\nline 2"'],
    ["an empty string", "", 's=""'],
  ])("quotes string fields holding %s", (_case, value, expected) => {
    expect(encodePoint(point({ fields: { s: value } }))).toBe(`m ${expected} 123`);
  });

  it.each<[string, FieldValue, string]>([
    ["a float", 1.5, "1.5"],
    ["a whole number as a float", 3, "3"],
    ["a negative float", -0.25, "-0.25"],
    ["an integer with the i suffix", { int: 42 }, "42i"],
    ["a negative integer", { int: -7 }, "-7i"],
    ["the largest safe integer", { int: Number.MAX_SAFE_INTEGER }, "9007199254740991i"],
    ["true", true, "true"],
    ["false", false, "false"],
  ])("encodes %s", (_case, value, expected) => {
    expect(encodeFieldValue(value)).toBe(expected);
    expect(encodePoint(point({ fields: { v: value } }))).toBe(`m v=${expected} 123`);
  });

  it("writes several fields of mixed types", () => {
    expect(
      encodePoint(
        point({
          measurement: "telemetry",
          tags: { device: "modem-0001", model: "FQ M200" },
          fields: { snr: 7.5, up: true, seq: { int: 12 }, note: "ok" },
          timeNs: "1736150400000000012",
        }),
      ),
    ).toBe(
      'telemetry,device=modem-0001,model=FQ\\ M200 snr=7.5,up=true,seq=12i,note="ok" 1736150400000000012',
    );
  });

  it.each<[string, FieldValue]>([
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["-Infinity", Number.NEGATIVE_INFINITY],
    ["an unsafe integer", { int: 2 ** 53 }],
    ["a fractional integer", { int: 1.5 }],
    ["null, as NaN comes back from JSON", null as unknown as FieldValue],
    ["an object without int", {} as unknown as FieldValue],
  ])("throws a RangeError on %s, which tryEncodePoint returns as a value", (_case, value) => {
    expect(() => encodePoint(point({ fields: { v: value } }))).toThrow(RangeError);
    expect(tryEncodePoint(point({ fields: { v: value } }))).toMatchObject({ ok: false });
  });

  it("returns the line of a point it can encode", () => {
    expect(tryEncodePoint(point())).toEqual({ ok: true, line: "m f=1 123" });
  });

  it("throws on a point without fields", () => {
    expect(() => encodePoint(point({ fields: {} }))).toThrow(RangeError);
  });

  it("never lets a device string start a line of its own outside a quoted field", () => {
    const nasty = 'x\ny\r\nz\u2028 ,=\\"';
    const line = encodePoint(
      point({ measurement: nasty, tags: { [nasty]: nasty }, fields: { [nasty]: 1, s: nasty } }),
    );
    const value = quoteString(nasty);
    expect(line).toContain(`,s=${value} 123`);
    expect(line.replace(value, "")).not.toMatch(/[\r\n]/);
  });
});

describe("pointTimeNs", () => {
  it.each([
    [0, 0, "0"],
    [1, 1, "1000001"],
    [1_736_150_400_000, 42, "1736150400000000042"],
    [1_736_150_400_000, 999_999, "1736150400000999999"],
    [1_736_150_400_000, 1_000_000, "1736150400000000000"],
    [1_736_150_400_000, 1_234_567, "1736150400000234567"],
    [1_736_150_400_000, Number.MAX_SAFE_INTEGER, "1736150400000740991"],
    [8_640_000_000_000_000, 999_999, "8640000000000000999999"],
    [1.9, 0, "1000000"],
  ])("stamps %d ms with discriminator %d as %s ns", (ms, discriminator, expected) => {
    expect(pointTimeNs(ms, discriminator)).toBe(expected);
  });
});

describe("messageIdentity", () => {
  const ms = 1_736_150_400_000;
  it.each<[number, string, Record<string, string>]>([
    [0, "1736150400000000000", {}],
    [7, "1736150400000000007", {}],
    [999_999, "1736150400000999999", {}],
    [1_000_000, "1736150400000000000", { seq_hi: "1" }],
    [1_000_007, "1736150400000000007", { seq_hi: "1" }],
    [1_234_567, "1736150400000234567", { seq_hi: "1" }],
    [Number.MAX_SAFE_INTEGER, "1736150400000740991", { seq_hi: "9007199254" }],
  ])("places seq %d at %s ns with tags %o", (seq, timeNs, tags) => {
    expect(messageIdentity(ms, seq)).toEqual({ timeNs, tags });
  });

  it("gives every seq in one millisecond its own identity", () => {
    const seqs = [7, 1_000_007, 2_000_007, 1_000_000_007, Number.MAX_SAFE_INTEGER - 999_999 * 2, 8];
    const identities = seqs.map((seq) => JSON.stringify(messageIdentity(ms, seq)));
    expect(new Set(identities).size).toBe(seqs.length);
  });
});

describe("metricValue", () => {
  it.each<[number | boolean, number]>([
    [true, 1],
    [false, 0],
    [5, 5],
    [-0.5, -0.5],
  ])("stores %s as the float %s", (value, stored) => {
    expect(metricValue(value)).toBe(stored);
  });
});
