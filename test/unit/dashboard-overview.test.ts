import { describe, expect, it } from "vitest";
import type { IssueListItem } from "../../contract/api/issues.js";
import type { RegressionVerdict } from "../../contract/api/regressions.js";
import { paretoChart, sinceYesterday, TOP_ISSUES } from "../../dashboard/pages/overview-parts.js";

// The overview's judgements: what "since yesterday" lists, and the Pareto's bars and cumulative share.

const NOW = Date.parse("2025-03-02T12:00:00.000Z");
const DAY_AGO = NOW - 86_400_000;
const at = (hoursAgo: number) => new Date(NOW - hoursAgo * 3_600_000).toISOString();

const comparison = (ratio: number) =>
  ({
    rateRatio: ratio,
    ci: { lower: ratio / 2, upper: ratio * 2, upperUnbounded: false },
    verdict: "regression",
  }) as RegressionVerdict["overall"];

function finding(
  firmware: string,
  firstReached: string,
  verdict: "regression" | "improvement" = "regression",
) {
  return {
    model: "FQ-Print Mk3",
    deviceKind: "printer",
    subject: { kind: "firmware", firmware, baseline: "predecessor", baselineFirmware: ["3.13.2"] },
    verdict,
    firstReached,
    overall: comparison(4.1),
    codes: [],
  } as unknown as RegressionVerdict;
}

function issue(id: string, status: string, firstSeen: string, lastSeen: string) {
  return {
    id,
    codes: [`CODE_${id}`],
    model: "M1",
    status,
    firstSeen,
    lastSeen,
    occurrences: 9,
    affectedDevices: 3,
  } as unknown as IssueListItem;
}

describe("since yesterday", () => {
  it("lists only what fieldq judged in the last 24 h, newest first: verdicts, new and regressed issues, silences", () => {
    const rows = sinceYesterday(
      {
        findings: [
          finding("3.14.0", at(2)),
          finding("3.12.0", at(30)),
          finding("3.15.0", at(1), "improvement"),
        ],
        issues: [
          issue("new", "new", at(5), at(1)),
          issue("old", "acknowledged", at(50), at(0.5)),
          issue("back", "regressed", at(80), at(3)),
        ],
        silent: [
          { id: "printer-0007", model: "FQ-Print Mk3", firmware: "3.14.0", lastReport: at(4) },
          { id: "printer-0001", model: "FQ-Print Mk3", firmware: "3.13.2", lastReport: at(40) },
          { id: "printer-0002", model: "FQ-Print Mk3", firmware: "3.13.2", lastReport: null },
        ],
      },
      DAY_AGO,
    );
    expect(rows.map((r) => [r.what, r.href])).toEqual([
      ["regression", "/firmware?model=FQ-Print%20Mk3"],
      ["regressed issue", "/issues/back"],
      ["silent", "/devices/printer-0007"],
      ["new issue", "/issues/new"],
    ]);
    expect(rows[0]?.detail).toBe("all faults: rate ratio 4.1 (95% CI 2.1–8.2)");
  });

  it("has nothing to say on a quiet day: a raw rise in the fault rate is no line of its own", () => {
    expect(
      sinceYesterday({ findings: [], issues: [issue("old", "new", at(48), at(1))], silent: [] }, DAY_AGO),
    ).toEqual([]);
  });
});

describe("top issues Pareto", () => {
  const issue = (i: number, occurrences: number) =>
    ({ id: `id${i}`, codes: [`CODE_${i}`], model: "M1", occurrences }) as IssueListItem;

  it("keeps the top issues as bars and sums the rest into one bar", () => {
    const issues = Array.from({ length: TOP_ISSUES + 3 }, (_, i) => issue(i, 100 - i));
    const chart = paretoChart(issues, issues.length);
    if (chart.spec.kind !== "pareto") throw new Error("not a pareto");
    expect(chart.spec.labels).toHaveLength(TOP_ISSUES + 1);
    expect(chart.spec.labels[0]).toBe("CODE_0 · M1");
    expect(chart.spec.labels.at(-1)).toBe("3 other issues");
    expect(chart.spec.values.at(-1)).toBe(100 - TOP_ISSUES + (100 - TOP_ISSUES - 1) + (100 - TOP_ISSUES - 2));
    expect(chart.spec.values.reduce((a, v) => a + v, 0)).toBe(issues.reduce((a, i) => a + i.occurrences, 0));
  });

  it("says how many bars give 80% of the occurrences", () => {
    const chart = paretoChart([issue(0, 70), issue(1, 20), issue(2, 10)], 3);
    expect(chart.summary).toContain("the top 2 of 3 bars give 80%");
  });
});
