import { describe, expect, it } from "vitest";
import {
  feedbackBesideFaults,
  issueFlow,
  overdueActions,
  pareto,
  promiseRows,
} from "../../analytics/review.js";
import { csvCell, reviewCsv, toCsv } from "../../api/review-csv.js";
import { reviewHtml } from "../../api/review-html.js";
import type { PromiseDay, PromiseReport } from "../../contract/api/promises.js";
import type { ReviewReport } from "../../contract/api/reports.js";
import type { IssueEvent } from "../../contract/issue-events.js";

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 2, 1);
const window = { fromMs: T0, toMs: T0 + 30 * DAY };
const keyOf = (id: string) => `key-${id}`;

const issue = (id: string, occurrences: number, affectedDevices = 1) => ({
  id,
  key: keyOf(id),
  status: "new" as const,
  worstSeverity: "error" as const,
  occurrences,
  affectedDevices,
});

describe("the Pareto of fault families", () => {
  it("ranks issues by occurrences with each share and the cumulative share, the vital few up to 80%", () => {
    // 50 + 30 + 15 + 5 = 100: shares .5 .3 .15 .05, cumulative .5 .8 .95 1; the second reaches 80%.
    const result = pareto([issue("c", 15), issue("a", 50), issue("d", 5), issue("b", 30), issue("z", 0)]);
    expect(result.issues).toBe(4);
    expect(result.occurrences).toBe(100);
    expect(result.rows.map((r) => [r.rank, r.issue, r.share, r.cumulativeShare, r.vitalFew])).toEqual([
      [1, "a", 0.5, 0.5, true],
      [2, "b", 0.3, 0.8, true],
      [3, "c", 0.15, 0.95, false],
      [4, "d", 0.05, 1, false],
    ]);
  });

  it("breaks ties by affected devices, then by id", () => {
    const result = pareto([issue("b", 10, 2), issue("a", 10, 2), issue("c", 10, 5)]);
    expect(result.rows.map((r) => r.issue)).toEqual(["c", "a", "b"]);
    // 10/30 each: the first reaches a third, the second two thirds (< 80%), so the third is vital too.
    expect(result.rows.map((r) => r.vitalFew)).toEqual([true, true, true]);
  });

  it("has no rows and no shares without occurrences", () => {
    expect(pareto([])).toEqual({ issues: 0, occurrences: 0, rows: [] });
  });
});

const at = (days: number) => T0 + days * DAY;
const ev = (issueId: string, event: IssueEvent) => ({ issue: issueId, event });
const op = "operator:ana";

describe("issues opened, closed and verified effective", () => {
  const log = [
    // closed by the field inside the window: closed and verified effective
    ev("a", { type: "transition", to: "acknowledged", actor: op, at: at(-10) }),
    ev("a", { type: "transition", to: "fix_released", fixVersion: "2.0", actor: op, at: at(-5) }),
    ev("a", { type: "transition", to: "verifying", actor: op, at: at(2) }),
    ev("a", { type: "auto_close", exposureHours: 500, requiredHours: 400, actor: "system", at: at(10) }),
    // closed by hand in the window, then reopened in it
    ev("b", { type: "transition", to: "closed", reason: "not a defect", actor: op, at: at(3) }),
    ev("b", { type: "transition", to: "acknowledged", reason: "it is one", actor: op, at: at(4) }),
    // closed before the window: not counted
    ev("c", { type: "transition", to: "closed", reason: "dup", actor: op, at: at(-1) }),
    // a regression in the window
    ev("d", { type: "regression", firmware: "3.1", actor: "system", at: at(29) }),
    // closed exactly at the window's end: outside (end exclusive)
    ev("e", { type: "transition", to: "closed", reason: "late", actor: op, at: at(30) }),
  ];
  const firstSeen = new Map([
    ["a", at(-20)],
    ["b", at(0)],
    ["f", at(29.9)],
    ["g", at(30)],
  ]);

  it("counts each kind of event inside [from, to) and lists them in time order", () => {
    const flow = issueFlow({ window, log, firstSeen, keyOf });
    expect({
      opened: flow.opened,
      closed: flow.closed,
      verified: flow.verifiedEffective,
      reopened: flow.reopened,
    }).toEqual({ opened: 2, closed: 2, verified: 1, reopened: 2 });
    expect(flow.rows.map((r) => `${r.event}:${r.issue}`)).toEqual([
      "opened:b",
      "closed:b",
      "reopened:b",
      "closed:a",
      "verified_effective:a",
      "reopened:d",
      "opened:f",
    ]);
    expect(flow.rows.find((r) => r.event === "closed" && r.issue === "b")).toMatchObject({
      key: "key-b",
      actor: op,
      detail: "not a defect",
    });
  });
});

describe("overdue actions", () => {
  const asOfMs = at(30);
  const log = [
    // acknowledged 20 days before the end, nothing since: overdue by 20 days
    ev("a", { type: "transition", to: "acknowledged", actor: op, at: at(10) }),
    // investigating since 10 days before the end: open, not overdue
    ev("b", { type: "transition", to: "investigating", actor: op, at: at(20) }),
    // new and assigned 15 days before the end: overdue
    ev("c", { type: "first_seen", actor: "system", at: at(1) }),
    ev("c", { type: "assign", assignee: "ana", actor: op, at: at(15) }),
    // fix released long ago: the field's turn, not an action
    ev("d", { type: "transition", to: "fix_released", fixVersion: "2", actor: op, at: at(0) }),
    // new, never assigned: nobody's action
    ev("e", { type: "first_seen", actor: "system", at: at(0) }),
    // acknowledged long ago but merged into another: not counted
    ev("f", { type: "transition", to: "acknowledged", actor: op, at: at(0) }),
    ev("f", { type: "merge", into: "a", actor: op, at: at(1) }),
    // acknowledged after the window's end: not open as of it
    ev("g", { type: "transition", to: "acknowledged", actor: op, at: at(31) }),
    // acknowledged exactly 14 days before: not more than the limit
    ev("h", { type: "transition", to: "acknowledged", actor: op, at: at(16) }),
  ];

  it("flags open actions without progress for more than the limit, longest waiting first", () => {
    const overdue = overdueActions({ asOfMs, limitDays: 14, log, keyOf });
    expect(overdue.openActions).toBe(4);
    expect(overdue.rows.map((r) => [r.issue, r.status, r.assignee, r.daysWithoutProgress])).toEqual([
      ["a", "acknowledged", null, 20],
      ["c", "new", "ana", 15],
    ]);
    expect(overdue.asOf).toBe(new Date(asOfMs).toISOString());
  });
});

describe("promise compliance", () => {
  const day = (d: number, state: PromiseDay["state"], online: number): PromiseDay => ({
    day: new Date(at(d)).toISOString(),
    value: online / 10,
    target: 0.95,
    met: state === "met" ? true : state === "missed" ? false : null,
    state,
    sample: { devices: 10, online },
  });
  const promise = (days: PromiseDay[]): PromiseReport => ({
    model: "M1",
    name: "availability",
    kind: "availability",
    severity: null,
    summary: "95% online",
    target: 0.95,
    objective: 0.9,
    periodDays: 30,
    period: { from: new Date(at(0)).toISOString(), to: new Date(at(30)).toISOString() },
    judgedDays: 4,
    compliance: 0.75,
    budget: { allowedDays: 3, spentDays: 1, leftDays: 2, leftShare: 2 / 3 },
    burnRate: { long: { days: 6, rate: 1 }, short: { days: 1, rate: 0 }, fast: 6 },
    status: "ok",
    reason: "within budget",
    days,
  });

  it("judges the window's days: met over judged against the objective, with the sample summed", () => {
    // Days -1 and 30 lie outside the window; day 2 was not judged. 3 of 4 judged days met: 75% < 90%.
    const answer = {
      from: new Date(at(-1)).toISOString(),
      to: new Date(at(31)).toISOString(),
      asOf: new Date(at(31)).toISOString(),
      file: "promises.yaml",
      message: null,
      models: [
        {
          model: "M1",
          promises: [
            promise([
              day(-1, "missed", 1),
              day(0, "met", 10),
              day(1, "missed", 9),
              day(2, "insufficient", 0),
              day(3, "met", 10),
              day(4, "met", 10),
              day(30, "missed", 2),
            ]),
          ],
        },
      ],
    };
    const section = promiseRows(answer, window);
    expect(section.available).toBe(true);
    expect(section.rows).toEqual([
      {
        model: "M1",
        promise: "availability: 95% online",
        target: "≥ 95% of devices online a day, on 90% of days",
        actual: "3 of 4 days met (75%)",
        compliant: false,
        budgetLeft: 2 / 3,
        sample: "4 judged of 5 days; 39 of 50 device-days online; now ok (within budget)",
      },
    ]);
  });

  it("says why nothing is shown when no promises file is configured", () => {
    const section = promiseRows(
      { from: "", to: "", asOf: "", file: null, message: "set FIELDQ_PROMISES", models: [] },
      window,
    );
    expect(section).toEqual({ available: false, note: "set FIELDQ_PROMISES", rows: [] });
  });
});

describe("feedback beside fault rates", () => {
  it("joins the desk's records to each cohort's exposure and faults, and keeps cohorts of either alone", () => {
    const rows = feedbackBesideFaults(
      [
        { model: "M1", firmware: "1.0", category: "complaint", rating: 2 },
        { model: "M1", firmware: "1.0", category: "complaint", rating: null },
        { model: "M1", firmware: "1.0", category: "praise", rating: 5 },
        { model: "M9", firmware: "0.1", category: "return", rating: 1 },
      ],
      [
        {
          model: "M1",
          firmware: "1.0",
          devices: 4,
          exposureHours: 200,
          faults: 6,
          deviceRatings: { count: 3, mean: 7 },
        },
        {
          model: "M1",
          firmware: "1.1",
          devices: 2,
          exposureHours: 0,
          faults: 0,
          deviceRatings: { count: 0, mean: null },
        },
      ],
    );
    expect(rows.map((r) => `${r.model}/${r.firmware}`)).toEqual(["M1/1.0", "M1/1.1", "M9/0.1"]);
    expect(rows[0]).toMatchObject({
      feedback: {
        total: 3,
        byCategory: { complaint: 2, praise: 1, return: 0, question: 0, suggestion: 0 },
        ratings: 2,
        meanRating: 3.5,
        per1000Devices: 750,
      },
      faultsPer1000h: 30,
      deviceRatings: { count: 3, mean: 7 },
    });
    expect(rows[1]).toMatchObject({ faultsPer1000h: null, feedback: { total: 0, meanRating: null } });
    expect(rows[2]).toMatchObject({ devices: 0, feedback: { total: 1, per1000Devices: null } });
  });
});

describe("CSV", () => {
  it.each([
    ["plain", "plain"],
    ["a,b", '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ["two\nlines", '"two\nlines"'],
    ['=HYPERLINK("http://x")', '"\'=HYPERLINK(""http://x"")"'],
    ["+1", "'+1"],
    ["-2+3", "'-2+3"],
    ["@SUM(A1)", "'@SUM(A1)"],
    ["\t=1", "'\t=1"],
  ])("quotes %j as %j", (value, expected) => {
    expect(csvCell(value)).toBe(expected);
  });

  it("writes numbers as numbers (a negative one too), null as empty, and ends every line with CRLF", () => {
    expect(toCsv(["a", "b", "c"], [[-1.5, null, true]])).toBe("a,b,c\r\n-1.5,,true\r\n");
  });
});

const report: ReviewReport = {
  from: "2026-03-01T00:00:00.000Z",
  to: "2026-03-31T00:00:00.000Z",
  generatedAt: "2026-03-31T01:00:00.000Z",
  pareto: pareto([issue("a", 3)]),
  promises: { available: false, note: "not yet", rows: [] },
  issues: { opened: 0, closed: 0, verifiedEffective: 0, reopened: 0, rows: [] },
  overdue: { limitDays: 14, asOf: "2026-03-31T00:00:00.000Z", openActions: 0, rows: [] },
  firmware: { note: "none", rows: [] },
  feedback: {
    records: 1,
    groups: feedbackBesideFaults([{ model: "M1", firmware: "1.0", category: "complaint", rating: 1 }], []),
    latest: [
      {
        at: "2026-03-02T00:00:00.000Z",
        device: "modem-0001",
        model: "M1",
        firmware: "1.0",
        category: "complaint",
        rating: 1,
        text: '</td><script>alert("x")</script><img src=x onerror=alert(1)> & "quoted"',
      },
    ],
  },
};

describe("the printable report", () => {
  it("keeps what people and devices wrote as text: no tag, no script, no handler gets through", () => {
    const html = reviewHtml(report);
    expect(html.startsWith("<!doctype html><html")).toBe(true);
    expect(html).not.toContain("<script");
    expect(html).not.toContain("<img");
    expect(html).toContain("&lt;/td&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    expect(html).toContain("&amp; &quot;quoted&quot;");
    // Self-contained: no external resource.
    expect(html).not.toMatch(/<link|src="http|href="http/);
    expect(html).toContain("@media print");
  });

  it("states each section's window and sample size", () => {
    const html = reviewHtml(report);
    expect(html).toContain(
      "3 fault occurrences of 1 issues in 2026-03-01T00:00:00.000Z to 2026-03-31T00:00:00.000Z",
    );
    expect(html).toContain("Not available: not yet.");
  });

  it("exports the feedback table as CSV with the window on every row", () => {
    const csv = reviewCsv(report, "feedback").split("\r\n");
    expect(csv[0]).toBe(
      "from,to,model,firmware,feedback,complaint,return,question,suggestion,praise,ratings,mean_rating_1_5,feedback_per_1000_devices,devices,exposure_hours,faults,faults_per_1000h,device_ratings,device_mean_rating_0_10",
    );
    expect(csv[1]).toBe(`${report.from},${report.to},M1,1.0,1,1,0,0,0,0,1,1,,0,0,0,,0,`);
  });
});
