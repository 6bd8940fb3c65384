import { describe, expect, it } from "vitest";
import { indexLog, membersByIssue } from "../../analytics/issue-log.js";
import {
  breakdown,
  byDeviceValue,
  type CountRow,
  concentrationOf,
  deviceIssue,
  emptyTally,
  type FingerprintMeta,
  fold,
  halvesOf,
  historyOf,
  type IssueFacts,
  matches,
  pageOf,
  rankDevices,
  sortSummaries,
  summarize,
  tallies,
  worstSeverity,
} from "../../analytics/issue-stats.js";
import { INITIAL_ISSUE_STATE, type IssueState, replay } from "../../analytics/lifecycle.js";
import type { IssueSort, IssueSummary } from "../../contract/api/issues.js";
import type { IssueEvent } from "../../contract/issue-events.js";
import { HOUR_MS, iso } from "../../contract/time.js";

const T0 = Date.UTC(2026, 0, 5);

const row = (fingerprint: string, n: number, half: 0 | 1, over: Partial<CountRow> = {}): CountRow => ({
  fingerprint,
  firmware: "1.0",
  severity: "warning",
  code: "X",
  n,
  half,
  ...over,
});

const meta = (id: string, over: Partial<FingerprintMeta> = {}): FingerprintMeta => ({
  id,
  key: `modem/M1/${id}`,
  kind: "modem",
  model: "M1",
  firstMs: T0,
  lastMs: T0 + HOUR_MS,
  ...over,
});

const stateWith = (...events: IssueEvent[]): IssueState => replay(events);

describe("halvesOf", () => {
  it.each([
    [4, [2, 2]],
    [3, [2, 1]],
    [1, [1]],
  ])("splits a %i-hour window at a whole hour, the first half taking the odd hour", (hours, halves) => {
    const parts = halvesOf({ fromMs: T0, toMs: T0 + hours * HOUR_MS });
    expect(parts.map((w) => (w.toMs - w.fromMs) / HOUR_MS)).toEqual(halves);
    expect(parts[0]?.fromMs).toBe(T0);
  });
});

describe("tallies and fold", () => {
  it("adds a fingerprint's rows up per half, with its severities, codes and firmwares", () => {
    const t = tallies([
      row("a", 2, 0),
      row("a", 3, 1, { severity: "critical", code: "Y", firmware: "1.1" }),
      row("a", 0, 1, { severity: "info" }),
      row("b", 1, 0),
    ]);
    expect(t.get("a")).toEqual({
      occurrences: 5,
      halves: [2, 3],
      severities: new Set(["warning", "critical"]),
      codes: new Set(["X", "Y"]),
      firmwares: new Set(["1.0", "1.1"]),
    });
    expect(t.get("b")?.occurrences).toBe(1);
  });

  it("keeps only the wanted fingerprints", () => {
    expect([...tallies([row("a", 1, 0), row("b", 1, 0)], new Set(["b"])).keys()]).toEqual(["b"]);
  });

  it("folds fingerprints into their issues and leaves out those without one", () => {
    const byFp = tallies([row("a", 2, 0), row("b", 3, 1, { code: "Y" }), row("c", 7, 0)]);
    const folded = fold(byFp, (fp) => (fp === "c" ? undefined : "a"));
    expect([...folded.keys()]).toEqual(["a"]);
    expect(folded.get("a")).toMatchObject({ occurrences: 5, halves: [2, 3], codes: new Set(["X", "Y"]) });
  });
});

describe("worstSeverity", () => {
  it.each<[string[], string | null]>([
    [["info", "critical", "warning"], "critical"],
    [["warning", "bogus"], "warning"],
    [["bogus"], null],
    [[], null],
  ])("of %o is %s", (severities, worst) => {
    expect(worstSeverity(severities)).toBe(worst);
  });
});

const facts = (over: Partial<IssueFacts> = {}): IssueFacts => ({
  id: "a",
  members: [
    meta("a"),
    meta("b", { kind: "router", model: "R1", firstMs: T0 - HOUR_MS, lastMs: T0 + 5 * HOUR_MS }),
  ],
  tally: tallies([row("a", 2, 0), row("b", 3, 1, { severity: "error", code: "Y" })]).get("a") ?? emptyTally(),
  affected: 3,
  state: INITIAL_ISSUE_STATE,
  ...over,
});

describe("summarize", () => {
  it("describes an issue from its members, tally, devices and state", () => {
    const tally = fold(
      tallies([row("a", 2, 0), row("b", 3, 1, { severity: "error", code: "Y" })]),
      () => "a",
    );
    const summary = summarize(
      facts({ tally: tally.get("a") ?? emptyTally() }),
      new Map([
        ["modem/M1", 4],
        ["router/R1", 2],
      ]),
    );
    expect(summary).toEqual({
      id: "a",
      key: "modem/M1/a",
      kind: "modem",
      model: "M1",
      models: ["modem/M1", "router/R1"],
      codes: ["X", "Y"],
      mergedIds: ["b"],
      status: "new",
      assignee: null,
      fixVersion: null,
      firstSeen: iso(T0 - HOUR_MS),
      lastSeen: iso(T0 + 5 * HOUR_MS),
      occurrences: 5,
      affectedDevices: 3,
      activeDevices: 6,
      fleetShare: 0.5,
      worstSeverity: "error",
      growth: { firstHalf: 2, secondHalf: 3, delta: 1 },
    });
  });

  it("has no fleet share when no device of its models was active", () => {
    expect(summarize(facts(), new Map()).fleetShare).toBeNull();
  });
});

describe("matches", () => {
  const issue = facts();
  it.each<[object, boolean]>([
    [{}, true],
    [{ kind: "router" }, true],
    [{ kind: "printer" }, false],
    [{ model: "R1" }, true],
    [{ firmware: "1.0" }, true],
    [{ firmware: "9.9" }, false],
    [{ severity: "warning" }, true],
    [{ severity: "critical" }, false],
    [{ status: "new" }, true],
    [{ status: "muted" }, false],
  ])("filter %o → %s", (filter, expected) => {
    expect(matches(issue, filter)).toBe(expected);
  });

  it("never lists an issue without fingerprints", () => {
    expect(matches(facts({ members: [] }), {})).toBe(false);
  });
});

describe("sortSummaries and pageOf", () => {
  const s = (id: string, devices: number, occurrences: number, lastHour: number, delta: number) =>
    ({
      id,
      affectedDevices: devices,
      occurrences,
      lastSeen: iso(T0 + lastHour * HOUR_MS),
      growth: { firstHalf: 0, secondHalf: delta, delta },
    }) as IssueSummary;
  const items = [s("b", 2, 5, 1, 3), s("a", 2, 9, 3, -1), s("c", 1, 9, 2, 0)];

  it.each<[IssueSort, string[]]>([
    ["devices", ["a", "b", "c"]],
    ["occurrences", ["a", "c", "b"]],
    ["last_seen", ["a", "c", "b"]],
    ["growth", ["b", "c", "a"]],
  ])("sorts by %s, descending, ties by id", (sort, ids) => {
    expect(sortSummaries(items, sort).map((i) => i.id)).toEqual(ids);
  });

  it("pages and says where the next page starts", () => {
    expect(pageOf([1, 2, 3], 0, 2)).toEqual({ items: [1, 2], total: 3, nextOffset: 2 });
    expect(pageOf([1, 2, 3], 2, 2)).toEqual({ items: [3], total: 3, nextOffset: null });
    expect(pageOf([1, 2, 3], 5, 2)).toEqual({ items: [], total: 3, nextOffset: null });
  });
});

describe("breakdown", () => {
  it("joins occurrences and devices per value, most devices first, then occurrences, then by value", () => {
    const result = breakdown(
      "firmware",
      new Map([
        ["1.0", 4],
        ["1.1", 2],
        ["0.9", 9],
        ["2.0", 0],
      ]),
      new Map([
        ["1.0", 2],
        ["1.1", 2],
        ["0.9", 1],
      ]),
    );
    expect(result).toEqual([
      { firmware: "1.0", occurrences: 4, affectedDevices: 2 },
      { firmware: "1.1", occurrences: 2, affectedDevices: 2 },
      { firmware: "0.9", occurrences: 9, affectedDevices: 1 },
    ]);
  });
});

describe("rankDevices", () => {
  it("orders by occurrences, then the latest, then id, and drops devices without any", () => {
    const ranked = rankDevices([
      { device: "d3", n: 1, lastMs: 5, firmware: "1" },
      { device: "d2", n: 2, lastMs: 1, firmware: "1" },
      { device: "d1", n: 2, lastMs: 1, firmware: "1" },
      { device: "d0", n: 2, lastMs: 9, firmware: "1" },
      { device: "dz", n: 0, lastMs: 9, firmware: "1" },
    ]);
    expect(ranked.map((d) => d.device)).toEqual(["d0", "d1", "d2", "d3"]);
  });
});

describe("historyOf", () => {
  it("merges the issue's events with those of the issues merged into it, in time order", () => {
    const own: IssueEvent = { type: "note", text: "x", actor: "ana", at: 30 };
    const merged: IssueEvent = { type: "merge", into: "a", actor: "ana", at: 20 };
    const unrelated: IssueEvent = { type: "note", text: "y", actor: "bo", at: 10 };
    const history = historyOf(
      "a",
      stateWith(own),
      [
        { issue: "a", event: own },
        { issue: "b", event: merged },
        { issue: "z", event: unrelated },
      ],
      new Set(["a", "b"]),
    );
    expect(history).toEqual([
      { issue: "b", event: merged },
      { issue: "a", event: own },
    ]);
  });
});

describe("deviceIssue", () => {
  const released = stateWith(
    { type: "transition", to: "acknowledged", actor: "ana", at: 1 },
    { type: "transition", to: "fix_released", fixVersion: "2.0", actor: "ana", at: 2 },
  );
  const issue = (state: IssueState) => ({ id: "a", key: "modem/M1/X", state });

  it("advises the update when the fix is newer than the device's firmware", () => {
    expect(deviceIssue(issue(released), "1.9")).toEqual({
      id: "a",
      key: "modem/M1/X",
      status: "fix_released",
      fixVersion: "2.0",
      advice: "fixed in firmware 2.0: advise the update",
    });
  });

  it("lists an open issue without advice when the device runs the fix or its firmware is unknown", () => {
    expect(deviceIssue(issue(released), "2.0")?.advice).toBeNull();
    expect(deviceIssue(issue(released), null)?.advice).toBeNull();
  });

  it("leaves out closed and muted issues unless their fix is ahead of the device", () => {
    const closedEffective = stateWith(
      ...released.history,
      { type: "transition", to: "verifying", actor: "system", at: 3 },
      { type: "auto_close", exposureHours: 5, requiredHours: 5, actor: "system", at: 4 },
    );
    expect(deviceIssue(issue(closedEffective), "2.1")).toBeUndefined();
    expect(deviceIssue(issue(closedEffective), "1.0")?.advice).toBe(
      "fixed in firmware 2.0: advise the update",
    );
    const muted = stateWith({ type: "transition", to: "muted", reason: "noise", actor: "ana", at: 1 });
    expect(deviceIssue(issue(muted), "1.0")).toBeUndefined();
  });
});

describe("indexLog and membersByIssue", () => {
  it("groups the log per issue and resolves merges, chains included", () => {
    const log = indexLog([
      { issue: "a", event: { type: "merge", into: "b", actor: "ana", at: 1 } },
      { issue: "b", event: { type: "merge", into: "c", actor: "ana", at: 2 } },
      { issue: "c", event: { type: "note", text: "root", actor: "ana", at: 3 } },
    ]);
    expect(log.merges).toEqual(
      new Map([
        ["a", "b"],
        ["b", "c"],
      ]),
    );
    expect(log.byIssue.get("c")).toHaveLength(1);
    const members = membersByIssue([{ id: "a" }, { id: "b" }, { id: "c" }, { id: "d" }], log.merges);
    expect(members).toEqual(
      new Map([
        ["c", [{ id: "a" }, { id: "b" }, { id: "c" }]],
        ["d", [{ id: "d" }]],
      ]),
    );
  });
});

describe("concentrationOf", () => {
  const d = (device: string, n: number) => ({ device, n });

  it("says how few devices give half and 80% of the occurrences, and which device gives the most", () => {
    // 100 occurrences: a lemon with 50, two with 15, then 20 devices with 1 each.
    const devices = [
      d("lemon", 50),
      d("b", 15),
      d("c", 15),
      ...Array.from({ length: 20 }, (_, i) => d(`x${i}`, 1)),
    ];
    expect(concentrationOf(devices)).toEqual({
      devices: 23,
      occurrences: 100,
      top: [
        { share: 0.5, devices: 1, occurrences: 50 },
        { share: 0.8, devices: 3, occurrences: 80 },
      ],
      topDevice: { id: "lemon", occurrences: 50, share: 0.5 },
    });
  });

  it("needs most devices when the occurrences are spread evenly", () => {
    const devices = Array.from({ length: 10 }, (_, i) => d(`d${i}`, 3));
    const c = concentrationOf(devices);
    expect(c.top.map((t) => t.devices)).toEqual([5, 8]);
    expect(c.topDevice).toEqual({ id: "d0", occurrences: 3, share: 0.1 });
  });

  it("reaches a share exactly without one device more, despite rounding (0.8 × 35)", () => {
    const devices = Array.from({ length: 35 }, (_, i) => d(`d${String(i).padStart(2, "0")}`, 1));
    expect(concentrationOf(devices).top).toEqual([
      { share: 0.5, devices: 18, occurrences: 18 },
      { share: 0.8, devices: 28, occurrences: 28 },
    ]);
  });

  it("breaks ties by device id and leaves out devices without occurrences", () => {
    const c = concentrationOf([d("b", 2), d("a", 2), d("z", 0)], [0.5]);
    expect(c).toEqual({
      devices: 2,
      occurrences: 4,
      top: [{ share: 0.5, devices: 1, occurrences: 2 }],
      topDevice: { id: "a", occurrences: 2, share: 0.5 },
    });
  });

  it("has no device and no top device without occurrences", () => {
    expect(concentrationOf([])).toEqual({
      devices: 0,
      occurrences: 0,
      top: [
        { share: 0.5, devices: 0, occurrences: 0 },
        { share: 0.8, devices: 0, occurrences: 0 },
      ],
      topDevice: null,
    });
  });
});

describe("byDeviceValue", () => {
  it("adds up occurrences and counts devices per value of what each device has, for breakdown()", () => {
    const isp: Record<string, string> = { a: "1und1", b: "1und1", c: "telekom" };
    const { occurrences, devices } = byDeviceValue(
      [
        { device: "a", n: 5 },
        { device: "b", n: 2 },
        { device: "c", n: 1 },
        { device: "d", n: 4 },
        { device: "e", n: 0 },
      ],
      (device) => isp[device] ?? "unknown",
    );
    expect(breakdown("isp", occurrences, devices)).toEqual([
      { isp: "1und1", occurrences: 7, affectedDevices: 2 },
      { isp: "unknown", occurrences: 4, affectedDevices: 1 },
      { isp: "telekom", occurrences: 1, affectedDevices: 1 },
    ]);
  });
});
