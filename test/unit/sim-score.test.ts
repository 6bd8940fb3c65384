import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareDeviceRates, type DeviceExposure, MIN_DEVICES } from "../../analytics/device-rates.js";
import { concentrationOf } from "../../analytics/issue-stats.js";
import type { Device, SilenceReport } from "../../contract/api/devices.js";
import type { FleetSummary, HealthMetrics, RateComparison } from "../../contract/api/fleet.js";
import type { IssueSummary } from "../../contract/api/issues.js";
import type { RegressionVerdict } from "../../contract/api/regressions.js";
import { iso } from "../../contract/time.js";
import {
  type Answers,
  collectAnswers,
  type IssueDetailAnswer,
  parseGroundTruth,
  type RegressionAnswer,
  regressionAnswerOf,
  type ScoreApi,
  scoreRun,
} from "../../device-sim/score.js";
import { scoreCommand } from "../../device-sim/score-command.js";
import type { GroundTruth, InjectedProblem } from "../../device-sim/script.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = Date.UTC(2025, 2, 1);
const END = START + 7 * DAY;
const ONSET = START + 2 * DAY;
const NOW = END + HOUR;
const MODEM = "FQ-Modem 7590";
const PRINTER = "FQ-Print Mk3";

const regression: InjectedProblem = {
  id: "resync-on-7.57",
  type: "fault_rate",
  kind: "modem",
  model: MODEM,
  baseline: "7.56",
  firmware: "7.57",
  code: "DSL_RESYNC",
  factor: 4,
  onsetMs: ONSET,
};

const flaky: InjectedProblem = {
  id: "flaky-isp-b",
  type: "flaky_isp",
  isp: "isp-b",
  factor: 5,
  devices: ["b1", "b2"],
  onsetMs: START,
};

const lemons: InjectedProblem = {
  id: "lemons-mk3",
  type: "lemons",
  kind: "printer",
  model: PRINTER,
  factor: 10,
  devices: ["p1", "p2"],
  onsetMs: START,
};

const truthOf = (...problems: InjectedProblem[]): GroundTruth => ({
  scenario: "test",
  seed: 7,
  startMs: START,
  endMs: END,
  devices: 10,
  problems,
});

/** Alike devices sharing a cohort's faults and hours: as many as the device-level test needs. */
const alike = (prefix: string, count: number, hours: number): DeviceExposure[] =>
  Array.from({ length: MIN_DEVICES }, (_, i) => ({
    device: `${prefix}${i}`,
    exposureHours: hours / MIN_DEVICES,
    count: Math.floor(count / MIN_DEVICES) + (i < count % MIN_DEVICES ? 1 : 0),
  }));

/** A comparison as the API computes it, from fault counts and exposure hours of each side. */
const rates = (baseline: [number, number], candidate: [number, number]): RateComparison =>
  compareDeviceRates({
    baseline: alike("b", ...baseline),
    candidate: alike("c", ...candidate),
  });

const WORSE = rates([20, 2000], [80, 2000]);

/** A verdict of GET /firmware/regressions. */
function verdict(
  over: Partial<Omit<RegressionVerdict, "subject">> & {
    firmware?: string;
    baseline?: string;
    rest?: boolean;
  } = {},
): RegressionVerdict {
  const { firmware = "7.57", baseline = "7.56", rest = false, ...fields } = over;
  return {
    model: MODEM,
    deviceKind: "modem",
    subject: rest
      ? { kind: "firmware", firmware, baseline: "rest", baselineFirmware: [baseline, "7.58"] }
      : { kind: "firmware", firmware, baseline: "predecessor", baselineFirmware: [baseline] },
    verdict: "regression",
    firstReached: iso(ONSET + 5 * HOUR),
    from: iso(END - 30 * DAY),
    to: iso(END),
    familySize: 12,
    overall: WORSE,
    codes: [{ code: "DSL_RESYNC", comparison: WORSE }],
    ...fields,
  };
}

const answerOf = (over: Parameters<typeof verdict>[0] = {}): RegressionAnswer =>
  regressionAnswerOf(verdict(over));

/**
 * A dimension verdict of GET /firmware/regressions: a value against the rest of its model, or with a kind
 * instead of a model against the rest of every model of that kind.
 */
const ispVerdict = (
  model: string,
  value: string,
  dimension: "isp" | "region" | "hardware" = "isp",
): RegressionAnswer => {
  const scope = model === "modem" || model === "printer" ? "kind" : "model";
  return regressionAnswerOf({
    ...verdict({ firstReached: iso(START + 9 * HOUR) }),
    model: scope === "kind" ? null : model,
    deviceKind: scope === "kind" ? model : "modem",
    subject: { kind: "dimension", scope, dimension, value },
  });
};

const issue = (key: string, over: Partial<IssueSummary> = {}): IssueSummary => {
  const [kind = "", model = "", code = ""] = key.split("/");
  return {
    id: `id-${code}`,
    key,
    kind,
    model,
    models: [`${kind}/${model}`],
    codes: [code],
    mergedIds: [],
    status: "new",
    assignee: null,
    fixVersion: null,
    firstSeen: iso(START),
    lastSeen: iso(END - HOUR),
    occurrences: 100,
    affectedDevices: 5,
    activeDevices: 10,
    fleetShare: 0.5,
    worstSeverity: "warning",
    growth: { firstHalf: 50, secondHalf: 50, delta: 0 },
    ...over,
  };
};

const device = (id: string, over: Partial<Device> = {}): Device => ({
  id,
  kind: "modem",
  model: MODEM,
  firmware: "7.57",
  hardware: "rev-a",
  serial: `SN-${id}`,
  region: "eu",
  isp: "isp-a",
  lastSeen: iso(NOW - 60_000),
  online: true,
  lastReport: iso(NOW - 60_000),
  status: "online",
  expectedIntervalS: 300,
  intervalSource: "learned",
  ...over,
});

function metrics(over: { rejections?: number } = {}): HealthMetrics {
  const none = { count: 0, per1000h: 0 };
  const rejections = over.rejections ?? 0;
  return {
    devices: 10,
    exposureHours: 1000,
    faults: { ...none, bySeverity: { info: none, warning: none, error: none, critical: none } },
    faultyDevices: 0,
    faultFreeShare: 1,
    reboots: { count: 0, perDeviceDay: 0 },
    rejections: { count: rejections, per1000h: rejections },
    feedback: { count: 0, mean: null, distribution: Array.from({ length: 11 }, () => 0) },
  };
}

const fleet = (rejectionsByModel: Record<string, number> = {}): FleetSummary => ({
  from: iso(START),
  to: iso(NOW),
  groupBy: ["model"],
  filter: {},
  groups: [MODEM, PRINTER].map((model) => ({
    group: { model },
    ...metrics({ rejections: rejectionsByModel[model] ?? 0 }),
  })),
  total: metrics(),
});

function silence(
  devices: Device[],
  named: Array<{ device: string; model?: string; to?: string; lastReportMs?: number }>,
): SilenceReport {
  const entries = named.map((n) => ({
    device: n.device,
    model: n.model ?? MODEM,
    from: "7.56",
    to: n.to ?? "7.57",
    updatedAt: iso((n.lastReportMs ?? NOW - 3 * HOUR) - 2 * HOUR),
    lastReport: iso(n.lastReportMs ?? NOW - 3 * HOUR),
  }));
  const groups = new Map<string, { model: string; firmware: string; count: number }>();
  for (const e of entries) {
    const key = `${e.model}|${e.to}`;
    const g = groups.get(key) ?? { model: e.model, firmware: e.to, count: 0 };
    groups.set(key, { ...g, count: g.count + 1 });
  }
  const silent = devices.filter((d) => d.status === "silent").length;
  return {
    from: iso(START),
    to: iso(NOW),
    factor: 3,
    byModel: [{ model: MODEM, seen: devices.length, silent, rate: silent / devices.length }],
    byFirmware: [],
    afterUpdate: {
      withinS: 86_400,
      devices: entries,
      byModel: [{ model: MODEM, count: entries.length }],
      byFirmware: [...groups.values()],
    },
  };
}

const answers = (over: Partial<Answers> = {}): Answers => ({
  judgedAtMs: NOW,
  regressions: [],
  issues: [],
  issueDetails: [],
  silence: silence([device("m1")], []),
  devices: [device("m1")],
  fleet: fleet(),
  ...over,
});

/** An issue's detail with its affected devices (id → occurrences) and their concentration. */
function detail(key: string, occurrences: Record<string, number>): IssueDetailAnswer {
  const [kind = "", model = "", code = ""] = key.split("/");
  const items = Object.entries(occurrences)
    .map(([id, n]) => ({ id, occurrences: n }))
    .sort((a, b) => b.occurrences - a.occurrences);
  return {
    id: `id-${code}`,
    key,
    kind,
    models: [`${kind}/${model}`],
    codes: [code],
    concentration: concentrationOf(items.map((d) => ({ device: d.id, n: d.occurrences }))),
    devices: { total: items.length, items },
  };
}

describe("parseGroundTruth", () => {
  it("accepts what a run writes", () => {
    const truth = truthOf(regression, {
      id: "isp",
      type: "flaky_isp",
      isp: "isp-b",
      factor: 5,
      devices: ["m1"],
      onsetMs: START,
    });
    expect(parseGroundTruth(JSON.stringify(truth))).toEqual({ ok: true, truth });
  });

  it.each([
    ["a field of the wrong type", { ...truthOf(), seed: "seven" }, "seed: "],
    [
      "a problem without its code",
      { ...truthOf(), problems: [{ ...regression, code: undefined }] },
      "problems[0].code: ",
    ],
    [
      "an unknown problem type",
      { ...truthOf(), problems: [{ ...regression, type: "slow" }] },
      "problems[0].type: ",
    ],
    ["an end before the start", { ...truthOf(), endMs: START - 1 }, "endMs: must be after startMs"],
    ["two problems with one id", truthOf(regression, regression), "problems[1].id: is a duplicate"],
  ])("names the field of %s", (_, file, message) => {
    const result = parseGroundTruth(JSON.stringify(file));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems.join("\n")).toContain(message);
  });

  it("says when the text is not JSON", () => {
    expect(parseGroundTruth("{ nope")).toMatchObject({
      ok: false,
      problems: [expect.stringMatching(/^not JSON/)],
    });
  });
});

/** A ScoreApi whose regressions list is the one given. */
function fakeApi(options: { regressions?: RegressionAnswer[] } = {}) {
  const issueQueries: string[] = [];
  const devices = [
    device("a1"),
    device("b1", { isp: "isp-b" }),
    device("b2", { isp: "isp-b" }),
    device("p1", { kind: "printer", model: PRINTER, isp: null }),
    device("p2", { kind: "printer", model: PRINTER, isp: null }),
  ];
  const api: ScoreApi = {
    regressions: async () => options.regressions ?? [answerOf()],
    issues: async () => [issue(`modem/${MODEM}/DSL_RESYNC`), issue(`printer/${PRINTER}/NOZZLE_CLOG`)],
    issue: async (id) => {
      issueQueries.push(id);
      return id === "id-NOZZLE_CLOG"
        ? detail(`printer/${PRINTER}/NOZZLE_CLOG`, { p1: 40, p2: 35, p3: 10, p4: 8, p5: 7 })
        : undefined;
    },
    silence: async () => silence(devices, []),
    devices: async () => devices,
    fleetSummary: async () => fleet(),
  };
  return { api, issueQueries };
}

describe("collectAnswers", () => {
  it("takes the automatic verdicts as they are, with no comparison asked", async () => {
    const { api } = fakeApi({ regressions: [answerOf(), ispVerdict(MODEM, "isp-b")] });
    const collected = await collectAnswers(truthOf(regression, flaky), api, { nowMs: NOW });
    expect(collected.regressions.map((r) => `${r.dimension} ${r.value}`)).toEqual([
      "firmware 7.57",
      "isp isp-b",
    ]);
    const score = scoreRun(truthOf(regression, flaky), collected);
    expect(score.problems.map((p) => [p.id, p.status, p.timeToDetectMs])).toEqual([
      [regression.id, "found", 5 * HOUR],
      [flaky.id, "found", 9 * HOUR],
    ]);
  });

  it("reads the details of the issues on a lemons problem's model only", async () => {
    const { api, issueQueries } = fakeApi();
    const collected = await collectAnswers(truthOf(lemons), api, { nowMs: NOW });
    expect(issueQueries).toEqual(["id-NOZZLE_CLOG"]);
    expect(scoreRun(truthOf(lemons), collected).problems[0]?.status).toBe("found");
  });
});

describe("scoreRun", () => {
  const found = (over: Partial<Answers> = {}) =>
    answers({ regressions: [answerOf()], issues: [issue(`modem/${MODEM}/DSL_RESYNC`)], ...over });

  describe("fault_rate", () => {
    it("is found by an automatic regression on its firmware, timed from when it was first reached", () => {
      const score = scoreRun(truthOf(regression), found());
      expect(score.problems).toEqual([
        expect.objectContaining({
          id: regression.id,
          status: "found",
          detectedAt: iso(ONSET + 5 * HOUR),
          timeToDetectMs: 5 * HOUR,
          detail: expect.objectContaining({
            verdicts: [expect.objectContaining({ baseline: "7.56", verdict: "regression" })],
            codeNamed: true,
            issue: { id: "id-DSL_RESYNC", key: `modem/${MODEM}/DSL_RESYNC` },
          }),
        }),
      ]);
      expect(score.problems[0]?.evidence).toContain(
        "7.57 vs 7.56: regression in DSL_RESYNC; all faults: regression, rate ratio 4.00",
      );
      expect(score).toMatchObject({
        precision: 1,
        recall: 1,
        falseAlarms: 0,
        timeToDetect: { count: 1, medianMs: 5 * HOUR, maxMs: 5 * HOUR },
      });
    });

    it("is found by a regression overall even when its code is not among the regressing ones, and says so", () => {
      const score = scoreRun(
        truthOf(regression),
        found({ regressions: [answerOf({ codes: [{ code: "WAN_DOWN", comparison: WORSE }] })] }),
      );
      expect(score.problems[0]).toMatchObject({ status: "found", detail: { codeNamed: false } });
      expect(score.problems[0]?.evidence).toContain("DSL_RESYNC not among the regressing codes");
    });

    it.each([
      ["no verdict on its firmware", { regressions: [] }, "no automatic verdict on it"],
      [
        "only an improvement",
        { regressions: [answerOf({ verdict: "improvement", overall: rates([80, 2000], [20, 2000]) })] },
        "7.57 vs 7.56: improvement",
      ],
      ["no issue of its code", { issues: [issue(`modem/${MODEM}/WAN_DOWN`)] }, "no issue for DSL_RESYNC"],
    ])("is missed with %s", (_, over, evidence) => {
      const score = scoreRun(truthOf(regression), found(over));
      expect(score.problems[0]).toMatchObject({ status: "missed", detectedAt: null, timeToDetectMs: null });
      expect(score.problems[0]?.evidence).toContain(evidence);
    });

    it("takes the earliest of its verdicts against the predecessor and the rest", () => {
      const score = scoreRun(
        truthOf(regression),
        found({
          regressions: [answerOf(), answerOf({ rest: true, firstReached: iso(ONSET + 3 * HOUR) })],
        }),
      );
      expect(score.problems[0]?.timeToDetectMs).toBe(3 * HOUR);
      // One firmware, however many baselines flag it: one alarm.
      expect(score.alarms).toHaveLength(1);
    });
  });

  describe("alarms", () => {
    it("counts a regression on a firmware nobody injected as false, an improvement not at all", () => {
      const score = scoreRun(
        truthOf(regression),
        found({
          regressions: [
            answerOf(),
            regressionAnswerOf({ ...verdict({ firmware: "1.9.1", baseline: "1.9.0" }), model: PRINTER }),
            answerOf({ firmware: "7.56", baseline: "7.55", verdict: "improvement", codes: [] }),
          ],
        }),
      );
      expect(score.falseAlarms).toBe(1);
      expect(score.precision).toBe(0.5);
      expect(score.alarms.find((x) => !x.injected)).toMatchObject({
        signal: "regression",
        subject: `${PRINTER} 1.9.1`,
        evidence: expect.stringContaining("1.9.1 vs 1.9.0: regression"),
      });
    });

    it("counts an ISP named worse than the rest true only on the models the flaky ISP's devices belong to", () => {
      const devices = [
        device("b1", { isp: "isp-b" }),
        device("m1", { model: "FQ-Modem 5530", isp: "isp-b" }),
      ];
      const score = scoreRun(
        truthOf(flaky),
        answers({
          devices,
          regressions: [
            ispVerdict(MODEM, "isp-b"),
            ispVerdict("FQ-Modem 5530", "isp-b"),
            ispVerdict(MODEM, "isp-c"),
          ],
        }),
      );
      expect(score.alarms.map((a) => [a.subject, a.injected])).toEqual([
        [`${MODEM} isp isp-b`, true],
        ["FQ-Modem 5530 isp isp-b", false],
        [`${MODEM} isp isp-c`, false],
      ]);
    });

    it("counts a region or hardware value named worse as false: nothing injects one", () => {
      const score = scoreRun(
        truthOf(regression),
        found({ regressions: [answerOf(), ispVerdict(MODEM, "eu-west", "region")] }),
      );
      expect(score.alarms.map((a) => [a.subject, a.injected])).toEqual([
        [`${MODEM} 7.57`, true],
        [`${MODEM} region eu-west`, false],
      ]);
    });
  });

  describe("flaky_isp", () => {
    const devices = [device("a1"), device("b1", { isp: "isp-b" }), device("b2", { isp: "isp-b" })];

    it("is found by an automatic verdict naming the ISP worse than the rest of its model", () => {
      const score = scoreRun(truthOf(flaky), answers({ devices, regressions: [ispVerdict(MODEM, "isp-b")] }));
      expect(score.problems[0]).toMatchObject({
        status: "found",
        timeToDetectMs: 9 * HOUR,
        detail: { models: [{ model: MODEM, verdict: "regression", regressedCodes: ["DSL_RESYNC"] }] },
      });
      expect(score.problems[0]?.evidence).toContain(`${MODEM} isp-b vs the rest: regression`);
    });

    it("is found by a verdict naming the ISP worse across every model of its devices' kind", () => {
      const score = scoreRun(
        truthOf(flaky),
        answers({ devices, regressions: [ispVerdict("modem", "isp-b")] }),
      );
      expect(score.problems[0]).toMatchObject({
        status: "found",
        timeToDetectMs: 9 * HOUR,
        detail: { models: expect.arrayContaining([expect.objectContaining({ model: "every modem" })]) },
      });
      expect(score.alarms).toEqual([
        expect.objectContaining({ subject: "every modem isp isp-b", injected: true }),
      ]);
    });

    it("is missed when no verdict names the ISP worse", () => {
      const score = scoreRun(truthOf(flaky), answers({ devices, regressions: [ispVerdict(MODEM, "isp-a")] }));
      expect(score.problems[0]).toMatchObject({ status: "missed", timeToDetectMs: null });
      expect(score.problems[0]?.evidence).toBe(`${MODEM} isp-b vs the rest: no automatic verdict`);
    });
  });

  describe("lemons", () => {
    const clog = `printer/${PRINTER}/NOZZLE_CLOG`;

    it("is found when most lemons are among the few devices that give half an issue's occurrences", () => {
      const score = scoreRun(
        truthOf(lemons),
        answers({ issueDetails: [detail(clog, { p1: 40, p2: 35, p3: 10, p4: 8, p5: 7 })] }),
      );
      expect(score.problems[0]).toMatchObject({
        status: "found",
        timeToDetectMs: null,
        detail: { named: ["p1", "p2"], issues: [{ key: clog, topDevices: 2, affected: 5, lemons: 2 }] },
      });
      expect(score.problems[0]?.evidence).toContain("2 of 2 lemons");
      expect(score.notes.join(" ")).toContain("not timed");
    });

    it("is missed when the lemons do not stand out", () => {
      const score = scoreRun(
        truthOf(lemons),
        answers({ issueDetails: [detail(clog, { p1: 5, p2: 5, p3: 30, p4: 28, p5: 27 })] }),
      );
      expect(score.problems[0]).toMatchObject({ status: "missed", detail: { named: [] } });
    });

    it("looks only at the issues of its code when it names one", () => {
      const score = scoreRun(
        truthOf({ ...lemons, code: "LAYER_SHIFT" } as InjectedProblem),
        answers({ issueDetails: [detail(clog, { p1: 40, p2: 35, p3: 10 })] }),
      );
      expect(score.problems[0]).toMatchObject({ status: "missed", detail: { issues: [] } });
    });
  });

  describe("silent devices", () => {
    const silenced: InjectedProblem = {
      id: "silent-after-7.57",
      type: "silent_after_update",
      kind: "modem",
      model: MODEM,
      firmware: "7.57",
      devices: ["m1", "m2", "m3", "m4"],
      onsetMs: ONSET,
    };
    const fleetOf = (silentIds: string[], others = 20) => [
      ...silenced.devices.map((id) => device(id, { status: silentIds.includes(id) ? "silent" : "online" })),
      ...Array.from({ length: others }, (_, i) =>
        device(`x${i}`, { status: silentIds.includes(`x${i}`) ? "silent" : "online" }),
      ),
    ];

    it("finds them partly, per device, timed from each device's update", () => {
      const devices = fleetOf(["m1", "m2", "m3", "m4", "x0"]);
      const score = scoreRun(
        truthOf(silenced),
        answers({
          devices,
          silence: silence(devices, [{ device: "m1" }, { device: "m2" }, { device: "m3" }, { device: "x0" }]),
        }),
      );
      expect(score.problems[0]).toMatchObject({
        status: "found",
        // 2 h from update to last report, then 3 × 300 s until the API calls it silent.
        timeToDetectMs: 2 * HOUR + 900_000,
        detail: {
          named: ["m1", "m2", "m3"],
          missed: ["m4"],
          pending: [],
          namedNotInjected: ["x0"],
          recall: 0.75,
        },
      });
      expect(score.problems[0]?.evidence).toBe(
        "3 of 4 overdue devices named silent within 24 h of an update; 1 named that nobody silenced",
      );
      expect(score.alarms).toEqual([
        expect.objectContaining({ signal: "silent_after_update", injected: true }),
      ]);
    });

    it("misses them when fewer than half are named, and flags another firmware's silent devices", () => {
      const devices = fleetOf([...silenced.devices, "x0"]);
      const score = scoreRun(
        truthOf(silenced),
        answers({ devices, silence: silence(devices, [{ device: "m1" }, { device: "x0", to: "7.58" }]) }),
      );
      expect(score.problems[0]).toMatchObject({ status: "missed", detail: { recall: 0.25 } });
      expect(score.alarms).toEqual([
        expect.objectContaining({ subject: `${MODEM} → 7.57`, injected: true }),
        expect.objectContaining({ subject: `${MODEM} → 7.58`, injected: false }),
      ]);
      expect(score.precision).toBe(0.5);
    });

    it("counts devices not overdue yet as neither found nor missed", () => {
      const devices = fleetOf(["m1", "m2"]);
      const score = scoreRun(
        truthOf(silenced),
        answers({ devices, silence: silence(devices, [{ device: "m1" }]) }),
      );
      expect(score.problems[0]).toMatchObject({
        status: "found",
        detail: { named: ["m1"], missed: ["m2"], pending: ["m3", "m4"], recall: 0.5 },
      });
      expect(score.problems[0]?.evidence).toContain("; 2 not overdue yet");
    });

    it("does not score them before any is overdue, as right after a backfill", () => {
      const devices = fleetOf([]);
      const score = scoreRun(truthOf(silenced), answers({ devices, silence: silence(devices, []) }));
      expect(score.problems[0]).toMatchObject({
        status: "not_scored",
        detail: { pending: silenced.devices },
      });
      expect(score.problems[0]?.evidence).toMatch(/^not scored: too early: none of its 4 devices is overdue/);
      expect(score.problems[0]?.evidence).toContain(`the first at ${iso(NOW - 60_000 + 900_000)}`);
      expect(score.recall).toBeNull();
    });

    it("does not score them once the whole fleet has stopped reporting", () => {
      const devices = fleetOf([...silenced.devices, ...Array.from({ length: 15 }, (_, i) => `x${i}`)]);
      const named = devices.filter((d) => d.status === "silent").map((d) => ({ device: d.id }));
      const score = scoreRun(truthOf(silenced), answers({ devices, silence: silence(devices, named) }));
      expect(score.problems[0]?.status).toBe("not_scored");
      expect(score.problems[0]?.evidence).toContain("15 of the 20 devices nobody silenced are silent too");
      expect(score).toMatchObject({ recall: null, alarms: [] });
    });
  });

  it("finds malformed payloads by their models' rejections, and flags rejections nobody caused", () => {
    const malformed: InjectedProblem = {
      id: "garbage",
      type: "malformed",
      perHour: 2,
      devices: ["m1"],
      onsetMs: START,
    };
    const score = scoreRun(truthOf(malformed), answers({ fleet: fleet({ [MODEM]: 40, [PRINTER]: 3 }) }));
    expect(score.problems[0]).toMatchObject({
      status: "found",
      timeToDetectMs: null,
      detail: { models: [{ model: MODEM, rejections: 40 }] },
    });
    expect(score.alarms).toEqual([
      expect.objectContaining({ signal: "rejections", subject: MODEM, injected: true }),
      expect.objectContaining({ signal: "rejections", subject: PRINTER, injected: false }),
    ]);
    expect(score.notes.join(" ")).toContain("not timed");
  });
});

describe("fieldq sim score", () => {
  let dir: string;
  let truthPath: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "fieldq-score-"));
    truthPath = join(dir, "truth.json");
    await writeFile(truthPath, JSON.stringify(truthOf(regression)));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  /** A fetch that answers like the API, from fakeApi's answers. */
  function fakeFetch(status = 200) {
    const { api } = fakeApi();
    const regressions = { items: [verdict({ firstReached: iso(ONSET + 12 * HOUR) })] };
    const paths: string[] = [];
    const json = (body: unknown, code = status) =>
      new Response(JSON.stringify(body), { status: code, headers: { "content-type": "application/json" } });
    const fetcher = async (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(input instanceof Request ? input.url : input);
      paths.push(url.pathname);
      const q = Object.fromEntries(url.searchParams);
      const window = { fromMs: Date.parse(q.from ?? ""), toMs: Date.parse(q.to ?? "") };
      if (url.pathname === "/api/v1/health") {
        return json(
          {
            status: "ok",
            influx: { reachable: true, latencyMs: 1 },
            journalBacklog: null,
            connectedDevices: null,
          },
          200,
        );
      }
      if (new Headers(init?.headers).get("authorization") !== "Bearer viewer-token-1") {
        return json({ error: { code: "UNAUTHORIZED", message: "no" } }, 401);
      }
      if (status !== 200) return json({ error: { code: "UNAVAILABLE", message: "InfluxDB is down" } });
      const page = <T>(items: T[]) => ({
        items,
        total: items.length,
        limit: 1000,
        offset: 0,
        nextOffset: null,
        from: q.from,
        to: q.to,
      });
      switch (url.pathname) {
        case "/api/v1/firmware/regressions":
          return json(regressions);
        case "/api/v1/issues":
          return json(page(await api.issues(window)));
        case "/api/v1/devices":
          return json(page(await api.devices()));
        case "/api/v1/silence":
          return json(await api.silence(window));
        case "/api/v1/fleet/summary":
          return json(await api.fleetSummary(window));
      }
      return json({ error: { code: "NOT_FOUND", message: "no route" } }, 404);
    };
    return { fetch: fetcher as typeof fetch, paths };
  }

  function io(fetcher?: typeof fetch) {
    const out: string[] = [];
    const err: string[] = [];
    return {
      out,
      err,
      io: {
        out: (l: string) => out.push(l),
        err: (l: string) => err.push(l),
        now: () => NOW,
        ...(fetcher ? { fetch: fetcher } : {}),
      },
    };
  }

  const env = { FIELDQ_API_TOKEN: "viewer-token-1" };

  it("prints its usage, with the API's default address, on --help", async () => {
    const t = io();
    expect(await scoreCommand(["--help"], { FIELDQ_HTTP_PORT: "9090" }, t.io)).toBe(0);
    expect(t.out.join("\n")).toContain("Usage: fieldq sim score <ground-truth.json>");
    expect(t.out.join("\n")).toContain("http://127.0.0.1:9090");
  });

  it.each([
    ["no file", [], "give one ground-truth file"],
    ["an unknown flag", ["t.json", "--nope"], "Unknown option"],
    ["an API address that is not http", ["t.json", "--api", "mqtt://x"], "--api"],
  ])("refuses %s with status 2", async (_, argv, message) => {
    const t = io();
    expect(await scoreCommand(argv, env, t.io)).toBe(2);
    expect(t.err.join("\n")).toContain(message);
  });

  it("refuses to run without a token", async () => {
    const t = io();
    expect(await scoreCommand([truthPath], {}, t.io)).toBe(2);
    expect(t.err.join("\n")).toContain("no API token");
  });

  it("refuses a missing or invalid ground-truth file with status 2 and the field at fault", async () => {
    const bad = join(dir, "bad.json");
    await writeFile(bad, JSON.stringify({ ...truthOf(regression), startMs: "yesterday" }));
    const missing = io();
    expect(await scoreCommand([join(dir, "absent.json")], env, missing.io)).toBe(2);
    expect(missing.err.join("\n")).toContain("ENOENT");
    const invalid = io();
    expect(await scoreCommand([bad], env, invalid.io)).toBe(2);
    expect(invalid.err.join("\n")).toContain("startMs: ");
  });

  it("exits 1 when the API cannot be reached", async () => {
    const t = io(async () => {
      throw new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED 127.0.0.1:1") });
    });
    expect(await scoreCommand([truthPath, "--api", "http://127.0.0.1:1"], env, t.io)).toBe(1);
    expect(t.err.join("\n")).toContain(
      "cannot reach the fieldq API at http://127.0.0.1:1: connect ECONNREFUSED",
    );
  });

  it("exits 2 when the API refuses the token, 1 when it fails", async () => {
    const refused = io(fakeFetch().fetch);
    expect(await scoreCommand([truthPath], { FIELDQ_API_TOKEN: "wrong-token" }, refused.io)).toBe(2);
    expect(refused.err.join("\n")).toContain("refused the token (401)");
    const failing = io(fakeFetch(503).fetch);
    expect(await scoreCommand([truthPath], env, failing.io)).toBe(1);
    expect(failing.err.join("\n")).toContain("503: InfluxDB is down");
  });

  it("waits its turn when the API answers 429, then scores", async () => {
    const { fetch: inner } = fakeFetch();
    let refusals = 0;
    const rationed = (async (input: URL, init?: RequestInit) => {
      if (refusals < 3 && !String(input).endsWith("/health")) {
        refusals += 1;
        return new Response(JSON.stringify({ error: { code: "RATE_LIMITED", message: "slow down" } }), {
          status: 429,
          headers: { "retry-after": "0", "content-type": "application/json" },
        });
      }
      return inner(input, init);
    }) as typeof fetch;
    const t = io(rationed);
    expect(await scoreCommand([truthPath, "--json"], env, t.io), t.err.join("\n")).toBe(0);
    expect(refusals).toBe(3);
    expect(JSON.parse(t.out.join("\n"))).toMatchObject({ recall: 1 });
  });

  it("scores a run over HTTP: a table by default, the score as JSON with --json", async () => {
    const table = io(fakeFetch().fetch);
    const status = await scoreCommand([truthPath, "--api", "http://fieldq.test/api/v1"], env, table.io);
    expect(table.err).toEqual([]);
    expect(status).toBe(0);
    const text = table.out.join("\n");
    expect(text).toMatch(/resync-on-7\.57 +fault_rate +found +12h +FQ-Modem 7590 7\.57 vs 7\.56: regression/);
    expect(text).toContain("precision 1.00 (1 of 1 alarm true) · recall 1.00 (1 of 1 problem scored)");

    const json = io(fakeFetch().fetch);
    // The token may also come from the stack's own list, lowest role first.
    const tokens = { FIELDQ_API_TOKENS: "admin:admin-token-1,viewer:viewer-token-1" };
    expect(await scoreCommand([truthPath, "--json", "--api", "http://fieldq.test"], tokens, json.io)).toBe(0);
    const score = JSON.parse(json.out.join("\n"));
    expect(score).toMatchObject({
      scenario: "test",
      recall: 1,
      precision: 1,
      problems: [{ id: regression.id, status: "found", timeToDetectMs: 12 * HOUR }],
    });
  });
});
