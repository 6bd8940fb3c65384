import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  availabilityDays,
  BURN,
  type DayVerdict,
  faultRateDays,
  judgePromise,
  PromisesFile,
  promisesOf,
  responseDays,
} from "../../analytics/promises.js";
import { parseYamlAs } from "../../config/yaml-file.js";
import type { DayState } from "../../contract/api/promises.js";
import { DAY_MS, HOUR_MS } from "../../contract/time.js";

const D0 = Date.UTC(2026, 0, 1);
const day = (i: number) => D0 + i * DAY_MS;
const ids = (...n: number[]) => new Set(n.map((i) => `d${i}`));
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe("availability per day", () => {
  const p = { target: 0.9, lookbackDays: 2, minDevices: 3 };

  it("counts a device from its first report until lookback days after its last, and online on days it reported", () => {
    // d0..d9 report on days 0-2; d9 stops after day 0, d8 after day 1; day 4 sees d0..d7.
    const online = [
      { day: day(0), devices: ids(...range(0, 10)), complete: true },
      { day: day(1), devices: ids(...range(0, 9)), complete: true },
      { day: day(2), devices: ids(...range(0, 8)), complete: true },
      { day: day(3), devices: ids(...range(0, 8)), complete: true },
      { day: day(4), devices: ids(...range(0, 8)), complete: true },
    ];
    const v = availabilityDays(p, online);
    // The first two days only serve as lookback.
    expect(v.map((x) => x.day)).toEqual([day(2), day(3), day(4)]);
    // Day 2: counted d0..d9 (days 0-2), online 8 → 0.8 missed.
    expect(v[0]).toMatchObject({ value: 0.8, state: "missed", sample: { devices: 10, online: 8 } });
    // Day 3: counted days 1-3 → d0..d8 (9), online 8 → 0.888… missed.
    expect(v[1]?.value).toBeCloseTo(8 / 9, 12);
    expect(v[1]?.state).toBe("missed");
    // Day 4: days 2-4 → d0..d7, all online → met.
    expect(v[2]).toMatchObject({ value: 1, state: "met", sample: { devices: 8, online: 8 } });
  });

  it("judges no day with fewer devices than minDevices, nor a day not over yet", () => {
    const v = availabilityDays({ ...p, lookbackDays: 0 }, [
      { day: day(0), devices: ids(1, 2), complete: true },
      { day: day(1), devices: ids(1, 2, 3), complete: false },
      { day: day(2), devices: new Set(), complete: true },
    ]);
    expect(v.map((x) => x.state)).toEqual(["insufficient", "pending", "insufficient"]);
    expect(v[2]?.value).toBeNull();
  });
});

describe("fault rate per day", () => {
  it("is faults per 1,000 device-hours against the ceiling, unjudged below the exposure minimum", () => {
    const v = faultRateDays({ target: 2, minDeviceHours: 500 }, [
      { day: day(0), deviceHours: 1000, faults: 2, complete: true },
      { day: day(1), deviceHours: 800, faults: 2, complete: true },
      { day: day(2), deviceHours: 400, faults: 0, complete: true },
      { day: day(3), deviceHours: 0, faults: 0, complete: true },
      { day: day(4), deviceHours: 900, faults: 9, complete: false },
    ]);
    expect(v.map((x) => x.value)).toEqual([2, 2.5, 0, null, 10]);
    expect(v.map((x) => x.state)).toEqual(["met", "missed", "insufficient", "insufficient", "pending"]);
    expect(v[1]?.sample).toEqual({ deviceHours: 800, faults: 2 });
  });
});

describe("response per day", () => {
  const p = { target: 1, withinMs: 4 * HOUR_MS };
  const at = (d: number, h: number) => day(d) + h * HOUR_MS;

  it("counts each issue on the day it was first seen, answered in time when its first transition came within the limit", () => {
    const asOf = at(5, 0);
    const v = responseDays(
      p,
      [day(0), day(1), day(2), day(3)],
      [
        { id: "a", firstSeenMs: at(0, 1), answeredMs: at(0, 5) }, // exactly 4 h: in time
        { id: "b", firstSeenMs: at(1, 1), answeredMs: at(1, 6) }, // 5 h: late
        { id: "c", firstSeenMs: at(1, 2), answeredMs: at(1, 3) },
        { id: "d", firstSeenMs: at(2, 10), answeredMs: null }, // never answered, due long ago: late
      ],
      asOf,
    );
    expect(v.map((x) => x.state)).toEqual(["met", "missed", "missed", "none"]);
    expect(v[1]).toMatchObject({ value: 0.5, sample: { issues: 2, late: 1, waiting: 0 } });
    expect(v[2]).toMatchObject({ value: 0, sample: { issues: 1, late: 1 } });
    expect(v[3]?.value).toBeNull();
  });

  it("keeps a day pending while an issue of it is neither answered nor due, and ignores answers after asOf", () => {
    const asOf = at(1, 2);
    const v = responseDays(
      p,
      [day(0), day(1)],
      [
        { id: "a", firstSeenMs: at(0, 23), answeredMs: at(1, 5) }, // answered after asOf; due at 03:00 day 1
        { id: "b", firstSeenMs: at(1, 0), answeredMs: null },
      ],
      asOf,
    );
    expect(v[0]).toMatchObject({ state: "pending", sample: { issues: 1, late: 0, waiting: 1 } });
    expect(v[1]?.state).toBe("pending");
  });
});

const verdicts = (states: DayState[], firstDay = 0): DayVerdict[] =>
  states.map((state, i) => ({ day: day(firstDay + i), value: null, target: 1, state, sample: {} }));

describe("error budget, burn rate and status", () => {
  const p = { kind: "availability" as const, objective: 0.9, periodDays: 10, name: "availability" };
  const asOf = day(10) + 5 * HOUR_MS; // the period is days 0-9

  it("allows (1 − objective) × period missed days and counts compliance over the judged days", () => {
    const j = judgePromise(
      p,
      verdicts(["met", "missed", "met", "insufficient", "met", "met", "met", "met", "met", "met"]),
      asOf,
    );
    expect(j.period).toEqual({ fromMs: day(0), toMs: day(10) });
    expect(j.judgedDays).toBe(9);
    expect(j.compliance).toBeCloseTo(8 / 9, 12);
    expect(j.budget.allowedDays).toBeCloseTo(1, 12);
    expect(j.budget.spentDays).toBe(1);
    expect(j.budget.leftDays).toBeCloseTo(0, 12);
    // Last 7 days (3-9): 6 judged, none missed; last 3: none missed.
    expect(j.burnRate.long).toEqual({ days: 7, rate: 0 });
    expect(j.status).toBe("ok");
  });

  it("is breached when the last complete day missed", () => {
    const j = judgePromise(p, verdicts([...Array<DayState>(9).fill("met"), "missed"]), asOf);
    expect(j.status).toBe("breached");
    expect(j.reason).toContain("2026-01-10 out of promise");
  });

  it("is breached when more days missed than the budget allows, even if yesterday met", () => {
    const j = judgePromise(p, verdicts(["missed", "missed", ...Array<DayState>(8).fill("met")]), asOf);
    expect(j.budget.leftDays).toBeCloseTo(-1, 12);
    expect(j.budget.leftShare).toBeCloseTo(-1, 12);
    expect(j.status).toBe("breached");
    expect(j.reason).toContain("error budget exhausted");
  });

  it("burns fast when both windows spend the budget at least BURN.fast times as fast as it lasts", () => {
    // objective 0.8 over 30 days (6 days of budget); days 20-29: one miss on day 27 (3-day window: 27-29).
    const q = { ...p, objective: 0.8, periodDays: 30 };
    const states: DayState[] = Array<DayState>(30).fill("met");
    states[27] = "missed";
    states[24] = "missed";
    const j = judgePromise(q, verdicts(states), day(30) + HOUR_MS);
    // Long (days 23-29): 2 of 7 missed → (2/7)/0.2 = 1.43; short (27-29): 1 of 3 → 1.67: not fast.
    expect(j.burnRate.long.rate).toBeCloseTo(2 / 7 / 0.2, 12);
    expect(j.burnRate.short.rate).toBeCloseTo(1 / 3 / 0.2, 12);
    expect(j.status).toBe("ok");
    states[23] = "missed";
    const faster = judgePromise(q, verdicts(states), day(30) + HOUR_MS);
    // Long: 3 of 7 → 2.14 ≥ 2; short: 1.67 < 2: it burnt, but is not burning now.
    expect(faster.status).toBe("ok");
    states[28] = "missed";
    const now = judgePromise(q, verdicts(states), day(30) + HOUR_MS);
    // Long: 4 of 7 → 2.86; short: 2 of 3 → 3.33; budget 6 − 4 = 2 left; day 29 met.
    expect(now.burnRate.long.rate).toBeGreaterThanOrEqual(BURN.fast);
    expect(now.status).toBe("burning");
    expect(now.budget.leftDays).toBeCloseTo(2, 12);
  });

  it("says insufficient data when no day of the period could be judged", () => {
    const j = judgePromise(p, verdicts(Array<DayState>(10).fill("insufficient")), asOf);
    expect(j.status).toBe("insufficient_data");
    expect(j.compliance).toBeNull();
    expect(j.burnRate.long.rate).toBeNull();
  });

  it("calls a response promise without a new issue in the period ok, not a verdict on data", () => {
    const j = judgePromise({ ...p, kind: "response" }, verdicts(Array<DayState>(10).fill("none")), asOf);
    expect(j.status).toBe("ok");
    expect(j.reason).toContain("no new issue");
  });

  it("judges only the period's days: a miss before it spends nothing", () => {
    const j = judgePromise(p, verdicts(["missed", ...Array<DayState>(10).fill("met")], -1), asOf);
    expect(j.budget.spentDays).toBe(0);
    expect(j.judgedDays).toBe(10);
  });
});

describe("the promises file", () => {
  it("reads the example file, defaults filled in", () => {
    const text = readFileSync("docs/promises.example.yaml", "utf8");
    const parsed = parseYamlAs(PromisesFile, text, "docs/promises.example.yaml");
    if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.text).join("\n"));
    const list = promisesOf(parsed.value);
    expect(list.map((p) => `${p.model}: ${p.name}`)).toContain("FQ-Modem 7590: response critical");
    expect(list.find((p) => p.model === "FQ-Modem 7590" && p.kind === "availability")).toEqual({
      kind: "availability",
      model: "FQ-Modem 7590",
      name: "availability",
      target: 0.95,
      lookbackDays: 7,
      minDevices: 10,
      objective: 0.9,
      periodDays: 30,
    });
    const mk3 = list.find((p) => p.model === "FQ-Print Mk3" && p.kind === "response");
    expect(mk3).toMatchObject({ target: 0.9, withinMs: DAY_MS, severity: "error" });
    const mini = list.find((p) => p.model === "FQ-Print Mini");
    expect(mini).toMatchObject({ kind: "fault_rate", target: 120, minDeviceHours: 50 });
  });

  it.each([
    [
      "an objective of 1",
      "models:\n  M:\n    availability:\n      target: 0.9\n      objective: 1\n",
      "f.yaml:5:18: models.M.availability.objective: objective must be below 1 (1 leaves no error budget)",
    ],
    [
      "a period not in whole days",
      "defaults:\n  period: 36h\nmodels: {}\n",
      "f.yaml:2:11: defaults.period: period must be a whole number of days from 1 to 366 (e.g. 30d)",
    ],
    [
      "an unknown severity",
      "models:\n  M:\n    faultRates:\n      fatal: { max: 1 }\n",
      "f.yaml:4:7: models.M.faultRates.fatal:",
    ],
    [
      "an unknown field",
      "models:\n  M:\n    availabilty:\n      target: 0.9\n",
      "f.yaml:3:5: models.M.availabilty: unknown field",
    ],
    [
      "a JSON file's bad target",
      '{\n  "models": {\n    "M": { "availability": { "target": 1.5 } }\n  }\n}\n',
      "f.yaml:3:40: models.M.availability.target:",
    ],
    [
      "a response without within",
      "models:\n  M:\n    response:\n      critical: { share: 0.5 }\n",
      "f.yaml:4:17: models.M.response.critical.within: is required",
    ],
  ])("refuses %s with its file and line", (_, text, expected) => {
    const parsed = parseYamlAs(PromisesFile, text, "f.yaml");
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.errors[0]?.text.startsWith(expected)).toBe(true);
  });
});
