import { describe, expect, it } from "vitest";
import type { FirmwareComparison, RateComparison } from "../../contract/api/fleet.js";
import type { RegressionVerdict } from "../../contract/api/regressions.js";
import { comparePair, parseFirmwareQuery } from "../../dashboard/pages/firmware.js";
import {
  adoptionChart,
  ComparisonCell,
  compareChart,
  comparisonRatio,
  settleText,
  subjectText,
  verdictSentence,
} from "../../dashboard/pages/firmware-parts.js";

// The firmware page's words and pictures from hand-made answers: which pair is compared, how a verdict and its
// evidence read, what the interval chart is given.

function comparison(over: Partial<RateComparison> = {}): RateComparison {
  return {
    baseline: { count: 20, exposureHours: 1000, ratePer1000h: 20 },
    candidate: { count: 60, exposureHours: 1000, ratePer1000h: 60 },
    rateRatio: 3,
    rateRatioMissing: null,
    ci: { lower: 1.8, upper: 5.2, upperUnbounded: false, level: 0.95 },
    pValue: 0.0001,
    equivalenceMargin: 1.5,
    verdict: "regression",
    moreExposureNeeded: null,
    evidence: {
      method: "quasi_poisson",
      dispersion: 1.6,
      dispersionUsed: 1.6,
      df: 40,
      devices: { baseline: 22, candidate: 30 },
      refused: null,
      adjustedPValue: null,
      familySize: 1,
      minDevices: 20,
    },
    ...over,
  };
}

const open = (over: Partial<RateComparison> = {}) =>
  comparison({
    verdict: "insufficient_evidence",
    ci: { lower: 0.6, upper: 2.1, upperUnbounded: false, level: 0.95 },
    rateRatio: 1.1,
    ...over,
  });

function compared(overall: RateComparison, byCode: FirmwareComparison["byCode"]): FirmwareComparison {
  return {
    model: "FQ-Print Mk3",
    from: "2025-05-01T00:00:00.000Z",
    to: "2025-05-31T00:00:00.000Z",
    severity: null,
    baseline: { firmware: "3.13.2", devices: 22, exposureHours: 1000 },
    candidate: { firmware: "3.14.0", devices: 30, exposureHours: 1000 },
    overall,
    critical: overall,
    byCode,
  };
}

const model = (versions: string[]) => ({
  model: "FQ-Print Mk3",
  devicesByDay: [],
  versions: versions.map((firmware) => ({
    firmware,
    firstSeen: "2025-05-01T00:00:00.000Z",
    devicesNow: 10,
    devices: 10,
    exposureHours: 100,
    adoption: [],
  })),
});

describe("the firmware page's query", () => {
  it("reads model, pair, window and dimension, refusing what it does not know", () => {
    const query = new URLSearchParams("model=FQ-Print+Mk3&a=3.13.2&b=&window=90&dimension=moon");
    expect(parseFirmwareQuery((n) => query.get(n) ?? undefined)).toEqual({
      model: "FQ-Print Mk3",
      a: "3.13.2",
      b: undefined,
      windowDays: 30,
      dimension: "isp",
    });
  });
});

describe("the pair compared", () => {
  it("is the URL's when both are versions of the model", () => {
    expect(comparePair(model(["3.12", "3.13.2", "3.14.0"]), "3.12", "3.14.0")).toEqual({
      baseline: "3.12",
      candidate: "3.14.0",
      note: null,
    });
  });

  it("is the newest against its predecessor by default, without a note", () => {
    expect(comparePair(model(["3.12", "3.13.2", "3.14.0"]), undefined, undefined)).toEqual({
      baseline: "3.13.2",
      candidate: "3.14.0",
      note: null,
    });
  });

  it("says which asked version the model has no exposure on, and falls back", () => {
    const pair = comparePair(model(["3.13.2", "3.14.0"]), "7.29", "3.14.0");
    expect(pair).toMatchObject({ baseline: "3.13.2", candidate: "3.14.0" });
    expect(pair?.note).toContain("no exposure on 7.29");
  });

  it("is nothing when the model has a single version", () => {
    expect(comparePair(model(["8.02"]), undefined, undefined)).toBeNull();
  });
});

describe("a comparison in words", () => {
  it("gives the ratio with its interval, and says when the interval has no upper end", () => {
    expect(comparisonRatio(comparison())).toBe("3 (95% CI 1.8–5.2)");
    expect(
      comparisonRatio(
        comparison({
          rateRatio: null,
          rateRatioMissing: "no_baseline_events",
          ci: { lower: 0.08, upper: null, upperUnbounded: true, level: 0.95 },
        }),
      ),
    ).toBe("above 0.08 (no faults in the baseline)");
    expect(comparisonRatio(comparison({ rateRatio: null, rateRatioMissing: "no_events", ci: null }))).toBe(
      "no faults on either side",
    );
  });

  it.each([
    [
      {
        moreExposureNeeded: {
          reachable: true as const,
          factor: 2.4,
          baselineHours: 2400,
          candidateHours: 2400,
        },
      },
      /about 2\.4× the exposure/,
    ],
    [
      { moreExposureNeeded: { reachable: false as const, reason: "no_events" as const, maxFactor: 1000 } },
      /only faults can settle it/,
    ],
    [
      { moreExposureNeeded: { reachable: false as const, reason: "beyond_cap" as const, maxFactor: 1000 } },
      /even 1,000× the exposure/,
    ],
  ])("says what would settle an open verdict (%#)", (over, text) => {
    expect(settleText(open(over))).toMatch(text);
  });

  it("says more devices, not more hours, settle a comparison refused for too few devices", () => {
    const refused = open({ evidence: { ...comparison().evidence, refused: "too_few_devices" } });
    expect(settleText(refused)).toBe(
      "too few devices for a verdict (at least 20 a side): more devices would settle it, not more hours",
    );
    expect(settleText(comparison())).toBeNull();
  });

  it("calls a version worse when a code regresses though the overall verdict is open", () => {
    const sentence = verdictSentence(
      compared(open(), [
        { code: "NOZZLE_CLOG", comparison: comparison() },
        { code: "LAYER_SHIFT", comparison: open() },
      ]),
    );
    expect(sentence).toBe(
      "Not enough evidence yet to tell 3.14.0 from 3.13.2 overall (ratio 1.1 (95% CI 0.6–2.1)). Worse on NOZZLE_CLOG.",
    );
  });

  it("shows a cell with a regressing code as a regression, the open overall beside it", async () => {
    const html = String(await ComparisonCell({ comparison: open(), worseOn: ["NOZZLE_CLOG"], missing: "–" }));
    expect(html).toContain(">regression<");
    expect(html).toContain("worse on NOZZLE_CLOG");
    expect(html).toContain("overall 1.1 (95% CI 0.6–2.1), insufficient evidence");
  });
});

describe("the compare chart", () => {
  it("draws overall then each code, an unbounded interval without its upper end, and names both versions", () => {
    const chart = compareChart(
      compared(comparison(), [
        {
          code: "THERMAL_RUNAWAY",
          comparison: open({
            rateRatio: null,
            rateRatioMissing: "no_baseline_events",
            ci: { lower: 0.2, upper: null, upperUnbounded: true, level: 0.95 },
          }),
        },
      ]),
    );
    expect(chart.title).toContain("3.14.0 against 3.13.2");
    expect(chart.spec).toEqual({
      kind: "interval",
      rows: [
        { label: "Overall", ratio: 3, low: 1.8, high: 5.2, verdict: "regression" },
        { label: "THERMAL_RUNAWAY", ratio: null, low: 0.2, high: null, verdict: "insufficient evidence" },
      ],
    });
  });

  it("draws adoption from the first day the model was active, in percent", () => {
    const day = (d: number) => `2025-05-0${d}T00:00:00.000Z`;
    const chart = adoptionChart({
      model: "M",
      versions: [
        { firmware: "1", adoption: [1, 2, 3].map((d) => ({ day: day(d), share: d === 1 ? null : 0.75 })) },
        { firmware: "2", adoption: [1, 2, 3].map((d) => ({ day: day(d), share: d === 1 ? null : 0.25 })) },
      ],
    });
    expect(chart.spec).toMatchObject({
      kind: "series",
      x: [Date.parse(day(2)), Date.parse(day(3))],
      series: [
        { label: "1", values: [75, 75] },
        { label: "2", values: [25, 25] },
      ],
    });
  });
});

describe("a finding of the scan", () => {
  const finding = (subject: RegressionVerdict["subject"], model: string | null): RegressionVerdict => ({
    model,
    deviceKind: "modem",
    subject,
    verdict: "regression",
    firstReached: "2025-05-03T14:00:00.000Z",
    from: "2025-04-03T14:00:00.000Z",
    to: "2025-05-03T14:00:00.000Z",
    familySize: 31,
    overall: comparison(),
    codes: [],
  });

  it.each([
    [
      finding(
        { kind: "firmware", firmware: "7.57", baseline: "predecessor", baselineFirmware: ["7.29"] },
        "FQ-Modem 7590",
      ),
      "FQ-Modem 7590 firmware 7.57 against predecessor 7.29",
    ],
    [
      finding({ kind: "dimension", scope: "kind", dimension: "isp", value: "1und1" }, null),
      "ISP 1und1 (all modem models) against every other modem",
    ],
    [
      finding({ kind: "dimension", scope: "model", dimension: "hardware", value: "rev-b" }, "FQ-Modem 7590"),
      "hardware rev-b (FQ-Modem 7590) against the rest of FQ-Modem 7590",
    ],
  ])("names what was judged against what (%#)", (item, text) => {
    expect(subjectText(item)).toBe(text);
  });
});
