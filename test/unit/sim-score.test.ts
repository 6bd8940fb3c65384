import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareRates } from "../../analytics/rate-ratio.js";
import type { Device, SilenceReport } from "../../contract/api/devices.js";
import type {
  FirmwareComparison,
  FirmwareVersions,
  FleetSummary,
  HealthMetrics,
  RateComparison,
} from "../../contract/api/fleet.js";
import type { IssueDetail, IssueSummary } from "../../contract/api/issues.js";
import { iso } from "../../contract/time.js";
import {
  type Answers,
  type CompareQuery,
  collectAnswers,
  detectionGrid,
  firstHolding,
  parseGroundTruth,
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

const truthOf = (...problems: InjectedProblem[]): GroundTruth => ({
  scenario: "test",
  seed: 7,
  startMs: START,
  endMs: END,
  devices: 10,
  problems,
});

/** A comparison as the API computes it, from fault counts and exposure hours per code. */
type Counts = { baseline: [number, number]; candidate: [number, number] };

function rates({ baseline, candidate }: Counts): RateComparison {
  const result = compareRates({
    baseline: { count: baseline[0], exposureHours: baseline[1] },
    candidate: { count: candidate[0], exposureHours: candidate[1] },
  });
  if (!result.ok) throw new Error(result.problem.message);
  const evidence = {
    method: "exact_poisson",
    dispersion: null,
    dispersionUsed: 1,
    df: null,
    devices: { baseline: 10, candidate: 10 },
    refused: null,
    adjustedPValue: null,
    familySize: 1,
  } as const;
  return { ...result.comparison, evidence };
}

function comparison(
  q: { model: string; baseline: string; candidate: string; toMs?: number },
  byCode: Record<string, Counts>,
): FirmwareComparison {
  const codes = Object.values(byCode);
  const hours = (side: "baseline" | "candidate") => codes[0]?.[side][1] ?? 100;
  const sum = (side: "baseline" | "candidate") => codes.reduce((n, c) => n + c[side][0], 0);
  return {
    model: q.model,
    from: iso(START),
    to: iso(q.toMs ?? END),
    severity: null,
    baseline: { firmware: q.baseline, devices: 10, exposureHours: hours("baseline") },
    candidate: { firmware: q.candidate, devices: 10, exposureHours: hours("candidate") },
    overall: rates({
      baseline: [sum("baseline"), hours("baseline")],
      candidate: [sum("candidate"), hours("candidate")],
    }),
    critical: rates({ baseline: [0, hours("baseline")], candidate: [0, hours("candidate")] }),
    byCode: Object.entries(byCode).map(([code, counts]) => ({ code, comparison: rates(counts) })),
  };
}

const WORSE: Counts = { baseline: [20, 2000], candidate: [80, 2000] };
const SAME: Counts = { baseline: [60, 2000], candidate: [62, 2000] };

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

const versions = (byModel: Record<string, string[]>): FirmwareVersions => ({
  from: iso(START),
  to: iso(END),
  models: Object.entries(byModel).map(([model, list]) => ({
    model,
    devicesByDay: [],
    versions: list.map((firmware) => ({
      firmware,
      firstSeen: iso(START),
      devicesNow: 5,
      devices: 5,
      exposureHours: 500,
      adoption: [],
    })),
  })),
});

const answers = (over: Partial<Answers> = {}): Answers => ({
  judgedAtMs: NOW,
  comparisons: [],
  detections: {},
  issues: [],
  lineIssues: [],
  silence: silence([device("m1")], []),
  devices: [device("m1")],
  fleet: fleet(),
  ...over,
});

const pair = { model: MODEM, baseline: "7.56", candidate: "7.57" };

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

describe("firstHolding", () => {
  it("bisects to the first grid point where the verdict holds", async () => {
    const grid = Array.from({ length: 100 }, (_, i) => i);
    const asked: number[] = [];
    const detection = await firstHolding(grid, async (at) => {
      asked.push(at);
      return at >= 37;
    });
    expect(detection.atMs).toBe(37);
    expect(detection.probes).toBe(asked.length);
    expect(asked.length).toBeLessThanOrEqual(1 + Math.ceil(Math.log2(100)));
  });

  it("asks once and gives null when the verdict does not hold at the end", async () => {
    let probes = 0;
    const detection = await firstHolding([1, 2, 3], async () => {
      probes += 1;
      return false;
    });
    expect(detection).toEqual({ atMs: null, probes: 1 });
    expect(probes).toBe(1);
  });

  it("lays the grid on whole hours from the onset's hour to the end raised to an hour", () => {
    expect(detectionGrid(START + 90 * 60_000, START + 4 * HOUR + 1, HOUR)).toEqual([
      START + 2 * HOUR,
      START + 3 * HOUR,
      START + 4 * HOUR,
      START + 5 * HOUR,
    ]);
  });
});

/** A ScoreApi whose compare says regression for 7.57 once the window reaches `regressedFromMs`. */
function fakeApi(regressedFromMs: number) {
  const compares: CompareQuery[] = [];
  const api: ScoreApi = {
    firmwareVersions: async () => versions({ [MODEM]: ["7.55", "7.56", "7.57"] }),
    compare: async (q) => {
      compares.push(q);
      const worse = q.candidate === "7.57" && q.toMs >= regressedFromMs;
      return comparison({ ...q }, { DSL_RESYNC: worse ? WORSE : SAME });
    },
    issues: async () => [issue(`modem/${MODEM}/DSL_RESYNC`)],
    issue: async () => undefined,
    silence: async () => silence([device("m1")], []),
    devices: async () => [device("m1")],
    fleetSummary: async () => fleet(),
  };
  return { api, compares };
}

describe("collectAnswers", () => {
  it("times a regression by bisecting windows that all start at the run's start", async () => {
    const { api, compares } = fakeApi(ONSET + 30 * HOUR);
    const collected = await collectAnswers(truthOf(regression), api, { nowMs: NOW, stepMs: HOUR });
    expect(collected.detections[regression.id]?.atMs).toBe(ONSET + 30 * HOUR);
    const probes = compares.filter((q) => q.toMs !== END);
    expect(probes.length).toBe(collected.detections[regression.id]?.probes);
    expect(probes.length).toBeLessThanOrEqual(Math.ceil(Math.log2(detectionGrid(ONSET, END, HOUR).length)));
    expect(probes.every((q) => q.fromMs === START && q.candidate === "7.57" && q.baseline === "7.56")).toBe(
      true,
    );
    // Adjacent versions as false-alarm checks, besides the injected pair.
    expect(collected.comparisons.map((c) => `${c.baseline}→${c.candidate}`).sort()).toEqual([
      "7.55→7.56",
      "7.56→7.57",
    ]);
    const score = scoreRun(truthOf(regression), collected);
    expect(score.problems[0]).toMatchObject({ status: "found", timeToDetectMs: 30 * HOUR });
  });

  it("asks nothing more when the whole run shows no regression", async () => {
    const { api, compares } = fakeApi(Number.POSITIVE_INFINITY);
    const collected = await collectAnswers(truthOf(regression), api, { nowMs: NOW, stepMs: HOUR });
    expect(collected.detections[regression.id]).toEqual({ atMs: null, probes: 0 });
    expect(compares.every((q) => q.toMs === END)).toBe(true);
  });
});

describe("scoreRun", () => {
  const found = () =>
    answers({
      comparisons: [{ ...pair, comparison: comparison(pair, { DSL_RESYNC: WORSE, WAN_DOWN: SAME }) }],
      detections: { [regression.id]: { atMs: ONSET + 5 * HOUR, probes: 6 } },
      issues: [issue(`modem/${MODEM}/DSL_RESYNC`)],
    });

  it("finds an injected regression, with its time to detect after the onset", () => {
    const score = scoreRun(truthOf(regression), found());
    expect(score.problems).toEqual([
      expect.objectContaining({
        id: regression.id,
        status: "found",
        detectedAt: iso(ONSET + 5 * HOUR),
        timeToDetectMs: 5 * HOUR,
        detail: expect.objectContaining({
          overall: "regression",
          codeVerdict: "regression",
          issue: { id: "id-DSL_RESYNC", key: `modem/${MODEM}/DSL_RESYNC` },
        }),
      }),
    ]);
    expect(score).toMatchObject({
      precision: 1,
      recall: 1,
      falseAlarms: 0,
      timeToDetect: { count: 1, medianMs: 5 * HOUR, maxMs: 5 * HOUR },
    });
  });

  it("misses a regression the comparison does not show", () => {
    const score = scoreRun(
      truthOf(regression),
      answers({
        comparisons: [{ ...pair, comparison: comparison(pair, { DSL_RESYNC: SAME }) }],
        issues: [issue(`modem/${MODEM}/DSL_RESYNC`)],
      }),
    );
    expect(score.problems[0]).toMatchObject({ status: "missed", detectedAt: null, timeToDetectMs: null });
    expect(score.problems[0]?.evidence).toContain("DSL_RESYNC: no_difference");
    expect(score).toMatchObject({ recall: 0, precision: null, timeToDetect: { count: 0, medianMs: null } });
  });

  it("misses a regression whose breakdown blames another code", () => {
    const blamed = comparison(pair, {
      DSL_RESYNC: SAME,
      WIFI_RADIO_CRASH: { baseline: [5, 2000], candidate: [200, 2000] },
    });
    expect(blamed.overall.verdict).toBe("regression");
    const score = scoreRun(
      truthOf(regression),
      answers({
        comparisons: [{ ...pair, comparison: blamed }],
        issues: [issue(`modem/${MODEM}/DSL_RESYNC`)],
      }),
    );
    expect(score.problems[0]?.status).toBe("missed");
    // The firmware itself was injected, so the alarm is a true one.
    expect(score.alarms).toEqual([expect.objectContaining({ subject: `${MODEM} 7.57`, injected: true })]);
  });

  it("misses a regression when a cohort had no activity", () => {
    const score = scoreRun(truthOf(regression), answers({ comparisons: [{ ...pair, comparison: null }] }));
    expect(score.problems[0]).toMatchObject({ status: "missed", detail: { overall: null } });
  });

  it("counts a regression on a firmware nobody injected as a false alarm", () => {
    const other = { model: PRINTER, baseline: "1.9.0", candidate: "1.9.1" };
    const a = found();
    a.comparisons.push({ ...other, comparison: comparison(other, { THERMAL_RUNAWAY: WORSE }) });
    const score = scoreRun(truthOf(regression), a);
    expect(score.falseAlarms).toBe(1);
    expect(score.precision).toBe(0.5);
    expect(score.recall).toBe(1);
    expect(score.alarms.find((x) => !x.injected)).toMatchObject({
      signal: "firmware_regression",
      subject: `${PRINTER} 1.9.1`,
      evidence: expect.stringContaining("vs 1.9.0: regression"),
    });
  });

  it("counts a bad firmware once, however many baselines flag it", () => {
    const older = { ...pair, baseline: "7.55" };
    const a = found();
    a.comparisons.push({ ...older, comparison: comparison(older, { DSL_RESYNC: WORSE }) });
    expect(scoreRun(truthOf(regression), a).alarms).toHaveLength(1);
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

  it("does not score a flaky ISP, and shows where its data ranks it", () => {
    const flaky: InjectedProblem = {
      id: "flaky-isp-b",
      type: "flaky_isp",
      isp: "isp-b",
      factor: 5,
      devices: ["b1", "b2"],
      onsetMs: START,
    };
    const devices = [
      device("a1"),
      device("a2"),
      device("a3"),
      device("b1", { isp: "isp-b" }),
      device("b2", { isp: "isp-b" }),
      device("p1", { kind: "printer", model: PRINTER, isp: "isp-c" }),
    ];
    const detail: IssueDetail = {
      ...issue(`modem/${MODEM}/DSL_RESYNC`),
      from: iso(START),
      to: iso(END),
      closure: null,
      regressions: 0,
      statusSince: null,
      byFirmware: [],
      byRegion: [],
      trend: { bucketMs: DAY, buckets: [] },
      devices: {
        total: 4,
        offset: 0,
        nextOffset: null,
        items: [
          { id: "b1", occurrences: 30, lastSeen: iso(END), firmware: "7.57" },
          { id: "b2", occurrences: 20, lastSeen: iso(END), firmware: "7.57" },
          { id: "a1", occurrences: 6, lastSeen: iso(END), firmware: "7.57" },
          { id: "a2", occurrences: 3, lastSeen: iso(END), firmware: "7.57" },
        ],
      },
      history: [],
    };
    const score = scoreRun(truthOf(flaky), answers({ devices, lineIssues: [detail] }));
    expect(score.problems[0]).toMatchObject({
      status: "not_scored",
      detail: {
        rank: 1,
        truncated: false,
        ranking: [
          { isp: "isp-b", devices: 2, faults: 50, perDevice: 25 },
          { isp: "isp-a", devices: 3, faults: 9, perDevice: 3 },
        ],
      },
    });
    expect(score.problems[0]?.evidence).toMatch(/^not scored: fieldq does not group by ISP/);
    expect(score.problems[0]?.evidence).toContain(
      "puts isp-b at rank 1 of 2 ISPs by DSL_RESYNC faults per device (25.0 vs 3.00 for the others)",
    );
    expect(score.recall).toBeNull();
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
    const { api } = fakeApi(ONSET + 12 * HOUR);
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
        case "/api/v1/firmware":
          return json(await api.firmwareVersions(window));
        case "/api/v1/firmware/compare":
          return json(
            await api.compare({
              model: q.model ?? "",
              baseline: q.baseline ?? "",
              candidate: q.candidate ?? "",
              ...window,
            }),
          );
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
    ["a step that is not whole hours", ["t.json", "--step", "90m"], "--step"],
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
    expect(text).toMatch(/resync-on-7\.57 +fault_rate +found +12h +FQ-Modem 7590 7\.56 → 7\.57: regression/);
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
