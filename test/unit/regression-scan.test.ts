import { describe, expect, test } from "vitest";
import {
  findingKey,
  findings,
  type ScanTally,
  scanRegressions,
  scanWithTiming,
  type TalliesOf,
} from "../../analytics/regression-scan.js";
import { HOUR_MS, type Window } from "../../contract/time.js";

// A fleet described hour by hour, so any window's per-device tallies can be computed exactly: each device
// runs one version from a start hour on, and faults of each code at a rate per device-hour, drawn from a
// seeded generator (the same fleet every run).

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

type Group = {
  model: string;
  firmware: string;
  devices: number;
  fromHour: number;
  rates: Record<string, number>;
};

/** Per device, per hour it ran: its faults by code (at most one a code an hour: rates stay well below 1). */
function fleet(groups: readonly Group[], hours: number, seed = 7) {
  const random = mulberry32(seed);
  const rows: Array<{ device: string; model: string; firmware: string; hour: number; codes: string[] }> = [];
  for (const g of groups) {
    for (let i = 0; i < g.devices; i++) {
      const device = `${g.model}-${g.firmware}-${i}`;
      for (let hour = g.fromHour; hour < hours; hour++) {
        const codes = Object.entries(g.rates)
          .filter(([, rate]) => random() < rate)
          .map(([code]) => code);
        rows.push({ device, model: g.model, firmware: g.firmware, hour, codes });
      }
    }
  }
  const talliesOf = (window: Window): ScanTally[] => {
    const byDevice = new Map<
      string,
      ScanTally & { faults: Array<{ severity: string; code: string; n: number }> }
    >();
    for (const r of rows) {
      const at = r.hour * HOUR_MS;
      if (at < window.fromMs || at >= window.toMs) continue;
      const key = `${r.device}|${r.firmware}`;
      let t = byDevice.get(key);
      if (t === undefined) {
        t = {
          device: r.device,
          kind: "printer",
          model: r.model,
          firmware: r.firmware,
          region: "eu",
          hours: 0,
          faults: [],
        };
        byDevice.set(key, t);
      }
      t.hours += 1;
      for (const code of r.codes) {
        const f = t.faults.find((x) => x.code === code);
        if (f === undefined) t.faults.push({ severity: "error", code, n: 1 });
        else f.n += 1;
      }
    }
    return [...byDevice.values()];
  };
  return talliesOf;
}

const HOURS = 96;
const SPAN = 48 * HOUR_MS;
const END = HOURS * HOUR_MS;
const alike = { A: 0.05, B: 0.02 };

/** M: 1.0 and 1.1 alike from the start, 1.2 from hour 40 with code B ten times as often; N: two alike versions. */
const GROUPS: Group[] = [
  { model: "M", firmware: "1.0", devices: 30, fromHour: 0, rates: alike },
  { model: "M", firmware: "1.1", devices: 30, fromHour: 0, rates: alike },
  { model: "M", firmware: "1.2", devices: 30, fromHour: 40, rates: { A: 0.05, B: 0.2 } },
  { model: "N", firmware: "2.0", devices: 30, fromHour: 0, rates: { A: 0.05 } },
  { model: "N", firmware: "2.1", devices: 30, fromHour: 0, rates: { A: 0.05 } },
];
const talliesOf = fleet(GROUPS, HOURS);
const lastSpan = { fromMs: END - SPAN, toMs: END };

describe("scanRegressions", () => {
  const scan = scanRegressions({ window: lastSpan, tallies: talliesOf(lastSpan) });

  test("finds a true regression against the predecessor and the rest, naming the code that regresses", () => {
    const found = findings(scan);
    expect(found.map((f) => [f.model, f.key, f.verdict])).toEqual([
      ["M", "firmware|1.2|predecessor", "regression"],
      ["M", "firmware|1.2|rest", "regression"],
    ]);
    expect(found[0]?.subject).toEqual({
      kind: "firmware",
      firmware: "1.2",
      baseline: "predecessor",
      baselineFirmware: ["1.1"],
    });
    expect(found[1]?.subject).toMatchObject({ baselineFirmware: ["1.0", "1.1"] });
    expect(found.map((f) => f.codes.map((c) => c.code))).toEqual([["B"], ["B"]]);
  });

  test("tells nothing of alike versions", () => {
    const alikeOnes = scan.subjects.filter(
      (s) => !s.key.startsWith("firmware|1.2|") && s.key.endsWith("|predecessor"),
    );
    expect(alikeOnes.map((s) => s.key)).toEqual(["firmware|1.1|predecessor", "firmware|2.1|predecessor"]);
    for (const s of alikeOnes) expect(["no_difference", "insufficient_evidence"]).toContain(s.verdict);
    // Beside 1.2, the older versions are better than the rest of the model: true, and not told.
    expect(findings(scan).every((f) => f.key.startsWith("firmware|1.2|"))).toBe(true);
  });

  test("compares each version with its predecessor, and with the rest when the rest is more than one version", () => {
    expect(scan.subjects.map((s) => `${s.model} ${s.key}`)).toEqual([
      "M firmware|1.0|rest",
      "M firmware|1.1|predecessor",
      "M firmware|1.1|rest",
      "M firmware|1.2|predecessor",
      "M firmware|1.2|rest",
      "N firmware|2.1|predecessor",
    ]);
  });

  test("judges every comparison of the scan, overall and per code, as one family", () => {
    // M: five subjects × (overall, A, B); N: one × (overall, A).
    expect(scan.familySize).toBe(5 * 3 + 2);
    for (const s of scan.subjects) {
      expect(s.overall.evidence.familySize).toBe(scan.familySize);
      for (const c of s.codes) expect(c.comparison.evidence.familySize).toBe(scan.familySize);
    }
  });

  test("skips the unknown version, as a subject and in the rest", () => {
    const unknown: ScanTally[] = Array.from({ length: 20 }, (_, i) => ({
      device: `u${i}`,
      kind: "printer",
      model: "M",
      firmware: "unknown",
      region: "eu",
      hours: 48,
      faults: [{ severity: "error", code: "B", n: 40 }],
    }));
    const withUnknown = scanRegressions({ window: lastSpan, tallies: [...talliesOf(lastSpan), ...unknown] });
    expect(withUnknown.subjects.map((s) => s.key)).toEqual(scan.subjects.map((s) => s.key));
    expect(
      withUnknown.subjects.flatMap((s) => (s.subject.kind === "firmware" ? s.subject.baselineFirmware : [])),
    ).not.toContain("unknown");
    expect(withUnknown.familySize).toBe(scan.familySize);
  });

  test("leaves comparisons that could never be called anything out of the family (a cohort too small)", () => {
    const small = fleet(
      [
        { model: "S", firmware: "1", devices: 5, fromHour: 0, rates: { A: 0.05 } },
        { model: "S", firmware: "2", devices: 5, fromHour: 0, rates: { A: 0.5 } },
      ],
      HOURS,
    )(lastSpan);
    const withSmall = scanRegressions({ window: lastSpan, tallies: [...talliesOf(lastSpan), ...small] });
    const s = withSmall.subjects.filter((x) => x.model === "S");
    expect(s.map((x) => [x.key, x.verdict, x.overall.evidence.refused])).toEqual([
      ["firmware|2|predecessor", "insufficient_evidence", "too_few_devices"],
    ]);
    expect(withSmall.familySize).toBe(scan.familySize);
  });

  test("finds an ISP worse than the rest of its model, in the same family as the versions", () => {
    const isps = fleet(
      ["a", "b", "c"].map((isp) => ({
        model: "D",
        firmware: isp,
        devices: 20,
        fromHour: 0,
        rates: { A: isp === "c" ? 0.2 : 0.05 },
      })),
      HOURS,
    )(lastSpan);
    // One version for all; the fleet helper's firmware stands for the ISP here.
    const rows = isps.map((t) => ({ ...t, firmware: "3.0", isp: t.firmware }));
    const ispOf = new Map(rows.map((t) => [t.device, t.isp]));
    const withIsps = scanRegressions({
      window: lastSpan,
      tallies: [...talliesOf(lastSpan), ...rows],
      attributesOf: (device) => ({ isp: ispOf.get(device) ?? null, hardware: "h1" }),
    });
    const d = withIsps.subjects.filter((x) => x.model === "D");
    expect(d.map((x) => x.key)).toEqual([
      "dimension|model|isp|a",
      "dimension|model|isp|b",
      "dimension|model|isp|c",
    ]);
    // The kind's models together (M's and N's devices of no known ISP are in every rest): c again.
    const kind = withIsps.subjects.filter((x) => x.model === null);
    expect(kind.map((x) => [x.deviceKind, x.key])).toEqual([
      ["printer", "dimension|kind|isp|a"],
      ["printer", "dimension|kind|isp|b"],
      ["printer", "dimension|kind|isp|c"],
    ]);
    expect(
      findings(withIsps)
        .filter((f) => f.subject.kind === "dimension")
        .map((f) => [f.model, f.key, f.verdict]),
    ).toEqual([
      ["D", "dimension|model|isp|c", "regression"],
      [null, "dimension|kind|isp|c", "regression"],
    ]);
    // Three ISPs × (overall, A) per scope join the family; one hardware revision and one region compare nothing.
    expect(withIsps.familySize).toBe(scan.familySize + 2 * 3 * 2);
    for (const x of withIsps.subjects) expect(x.overall.evidence.familySize).toBe(withIsps.familySize);
  });

  test("compares nothing without two versions of a model", () => {
    const one = scanRegressions({
      window: lastSpan,
      tallies: talliesOf(lastSpan).filter((t) => t.firmware === "2.0"),
    });
    expect(one).toEqual({ window: lastSpan, familySize: 0, subjects: [] });
  });
});

describe("scanWithTiming", () => {
  const everyHour = new Map<number, ReturnType<typeof scanRegressions>>();
  /** The first hour end at which a scan of [t − span, t) reaches the verdict: every hour tried. */
  function bruteForce(key: string, verdict: string): number | undefined {
    for (let hour = 1; hour <= HOURS; hour++) {
      const window = { fromMs: hour * HOUR_MS - SPAN, toMs: hour * HOUR_MS };
      const scan = everyHour.get(hour) ?? scanRegressions({ window, tallies: talliesOf(window) });
      everyHour.set(hour, scan);
      if (scan.subjects.find((x) => findingKey(x) === key)?.verdict === verdict) return hour * HOUR_MS;
    }
    return undefined;
  }

  test("dates a new regression at the first hour end the scan reaches it, on the data's clock", async () => {
    const timed = await scanWithTiming({ toMs: END, spanMs: SPAN, tallies: talliesOf });
    expect(timed.findings.map((f) => f.key)).toEqual(["firmware|1.2|predecessor", "firmware|1.2|rest"]);
    for (const f of timed.findings) {
      expect(f.firstReachedMs).toBe(bruteForce(findingKey(f), f.verdict));
      expect(f.firstReachedMs).toBeGreaterThan(40 * HOUR_MS);
    }
    // Bisection: a few scans, not one per hour.
    expect(timed.probes).toBeLessThan(20);
  });

  test("gives the same time whatever hour the scan runs at once the verdict holds", async () => {
    const early = await scanWithTiming({ toMs: 60 * HOUR_MS, spanMs: SPAN, tallies: talliesOf });
    const late = await scanWithTiming({ toMs: END, spanMs: SPAN, tallies: talliesOf });
    expect(early.findings.map((f) => f.firstReachedMs)).toEqual(late.findings.map((f) => f.firstReachedMs));
  });

  test("keeps the time of a verdict already known, without timing it again", async () => {
    const key = findingKey({ model: "M", deviceKind: "printer", key: "firmware|1.2|predecessor" });
    const known = new Map([[key, { verdict: "regression" as const, firstReachedMs: 12 * HOUR_MS }]]);
    const timed = await scanWithTiming({ toMs: END, spanMs: SPAN, tallies: talliesOf, known });
    expect(timed.findings.find((f) => findingKey(f) === key)?.firstReachedMs).toBe(12 * HOUR_MS);
  });

  test("dates a verdict no earlier than it may be (an hour after it was cleared)", async () => {
    const key = findingKey({ model: "M", deviceKind: "printer", key: "firmware|1.2|rest" });
    const notBeforeMs = new Map([[key, 80 * HOUR_MS + 1]]);
    const timed = await scanWithTiming({ toMs: END, spanMs: SPAN, tallies: talliesOf, notBeforeMs });
    expect(timed.findings.find((f) => findingKey(f) === key)?.firstReachedMs).toBe(81 * HOUR_MS);
  });

  test("reads the tallies through the accessor given, in memory or not", async () => {
    const asked: Window[] = [];
    const tallies: TalliesOf = async (window) => {
      asked.push(window);
      return talliesOf(window);
    };
    await scanWithTiming({ toMs: END, spanMs: SPAN, tallies });
    expect(asked[0]).toEqual(lastSpan);
    for (const w of asked) expect([w.toMs % HOUR_MS, w.toMs - w.fromMs]).toEqual([0, SPAN]);
  });
});
