import { describe, expect, test } from "vitest";
import type { Group } from "../../storage/influxql.js";
import {
  addDeviceCohort,
  type DeviceCohortEntry,
  decodeDeviceCohorts,
  emptyDeviceCohortEntry,
  encodeDeviceCohorts,
  PART_CHARS,
  RATINGS,
  storedDeviceCohortParts,
} from "../../storage/rollup-schema.js";

const ratings = (given: Record<number, number> = {}) =>
  Array.from({ length: RATINGS }, (_, r) => given[r] ?? 0);

const entry = (device: string, over: Partial<DeviceCohortEntry> = {}): DeviceCohortEntry => ({
  ...emptyDeviceCohortEntry(device),
  ...over,
});

describe("device_cohort entries", () => {
  test("decode to what was encoded, sorted by device", () => {
    const entries = [
      entry("printer-2", { hours: 3, reboots: 1, faults: [{ severity: "error", code: "E1", n: 2 }] }),
      entry("printer-1", { hours: 24, rejections: 4, ratings: ratings({ 0: 1, 10: 2 }) }),
    ];
    const parts = encodeDeviceCohorts(entries);
    expect(parts).toEqual(["printer-1|24|0|4|0=1;10=2,printer-2|3|1|0||error=E1=2"]);
    expect(parts.flatMap(decodeDeviceCohorts)).toEqual([entries[1], entries[0]]);
  });

  test.each([
    ["a code with colons", "NOZZLE:CLOG:2"],
    ["a code with a slash and parentheses", "temp/bed (drift)"],
    ["a code with spaces and a semicolon", "link down; retry"],
    ["an empty code", ""],
  ])("keep %s whole", (_, code) => {
    const original = entry("dev.1_a-b", {
      hours: 1,
      faults: [
        { severity: "critical", code, n: 3 },
        { severity: "info", code: "other:code", n: 1 },
      ],
    });
    const [decoded] = encodeDeviceCohorts([original]).flatMap(decodeDeviceCohorts);
    expect(decoded?.faults).toEqual(
      expect.arrayContaining([
        { severity: "critical", code, n: 3 },
        { severity: "info", code: "other:code", n: 1 },
      ]),
    );
    expect(decoded?.faults).toHaveLength(2);
  });

  test("leave out zero fault counts and keep fractional hours", () => {
    const parts = encodeDeviceCohorts([
      entry("d", { hours: 0.5, faults: [{ severity: "error", code: "X", n: 0 }] }),
    ]);
    expect(parts).toEqual(["d|0.5|0|0|"]);
    expect(decodeDeviceCohorts(parts[0] ?? "")).toEqual([entry("d", { hours: 0.5 })]);
  });

  test("split into parts under the string field limit without cutting an entry", () => {
    const many = Array.from({ length: 5_000 }, (_, i) =>
      entry(`modem-${String(i).padStart(5, "0")}`, {
        hours: 24,
        faults: [
          { severity: "error", code: "LINK:DOWN", n: i % 7 },
          { severity: "warning", code: "SNR (low)", n: 1 },
        ],
      }),
    );
    const parts = encodeDeviceCohorts(many);
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(PART_CHARS);
    const decoded = parts.flatMap(decodeDeviceCohorts);
    expect(decoded.map((e) => e.device)).toEqual(many.map((e) => e.device));
    expect(decoded[13]?.faults).toEqual([
      { severity: "error", code: "LINK:DOWN", n: 6 },
      { severity: "warning", code: "SNR (low)", n: 1 },
    ]);
    expect(encodeDeviceCohorts([])).toEqual([]);
    expect(decodeDeviceCohorts("")).toEqual([]);
  });

  test("skip what is malformed and keep the rest", () => {
    const part = ["", "x", "a|1|2", "|1|0|0|", "b|1|0|0|5=2;bad|warning=X=1|nofault|Y=2", "c|2|0|0|"].join(
      ",",
    );
    expect(decodeDeviceCohorts(part)).toEqual([
      entry("b", {
        hours: 1,
        ratings: ratings({ 5: 2 }),
        faults: [{ severity: "warning", code: "X", n: 1 }],
      }),
      entry("c", { hours: 2 }),
    ]);
  });
});

describe("adding device tallies across buckets", () => {
  test("sums every count and joins faults by severity and code", () => {
    const into = new Map<string, DeviceCohortEntry>();
    addDeviceCohort(
      into,
      entry("a", {
        hours: 2,
        reboots: 1,
        ratings: ratings({ 7: 1 }),
        faults: [{ severity: "error", code: "X:1", n: 2 }],
      }),
    );
    addDeviceCohort(
      into,
      entry("a", {
        hours: 3,
        rejections: 2,
        ratings: ratings({ 7: 1, 9: 1 }),
        faults: [
          { severity: "error", code: "X:1", n: 1 },
          { severity: "info", code: "X:1", n: 5 },
        ],
      }),
    );
    addDeviceCohort(into, entry("b", { hours: 1 }));
    expect(into.get("a")).toEqual(
      entry("a", {
        hours: 5,
        reboots: 1,
        rejections: 2,
        ratings: ratings({ 7: 2, 9: 1 }),
        faults: [
          { severity: "error", code: "X:1", n: 3 },
          { severity: "info", code: "X:1", n: 5 },
        ],
      }),
    );
    expect(into.get("b")).toEqual(entry("b", { hours: 1 }));
  });

  test("does not change the tally added", () => {
    const added = entry("a", { hours: 1, faults: [{ severity: "error", code: "X", n: 1 }] });
    const into = new Map<string, DeviceCohortEntry>();
    addDeviceCohort(into, added);
    addDeviceCohort(into, added);
    expect(added.faults).toEqual([{ severity: "error", code: "X", n: 1 }]);
    expect(into.get("a")?.faults).toEqual([{ severity: "error", code: "X", n: 2 }]);
  });
});

describe("stored device_cohort parts", () => {
  const at = new Date(Date.UTC(2024, 0, 1));
  const group = (part: string, entries: string, parts: number): Group => ({
    name: "device_cohort",
    tags: { kind: "printer", model: "Mk3", firmware: "1.0", region: "eu", part },
    rows: [{ time: at, entries, parts }],
  });

  test("name their cohort and bucket and skip a part left over from a longer encoding", () => {
    const found = [
      ...storedDeviceCohortParts([
        group("0", "a|1|0|0|,b|2|0|0|", 2),
        group("1", "c|3|0|0|", 2),
        group("2", "c|1|0|0|", 3),
      ]),
    ];
    expect(found.map((p) => decodeDeviceCohorts(p.part).map((e) => e.device))).toEqual([["a", "b"], ["c"]]);
    expect(found[0]?.cohort).toEqual({ kind: "printer", model: "Mk3", firmware: "1.0", region: "eu" });
    expect(found[0]?.startMs).toBe(at.getTime());
  });
});
