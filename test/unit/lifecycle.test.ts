import { describe, expect, it } from "vitest";
import {
  applyEvent,
  checkVerification,
  INITIAL_ISSUE_STATE,
  type IssueState,
  onOccurrence,
  reliesOnFix,
  replay,
  requestTransition,
  type TransitionRequest,
} from "../../analytics/lifecycle.js";
import {
  ISSUE_STATUSES,
  IssueEvent,
  type IssueStatus,
  TransitionTarget,
} from "../../contract/issue-events.js";

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 5, 9);

/** A state in `status`, reached by a valid history. */
function stateIn(status: IssueStatus, fixVersion = "2.4.0"): IssueState {
  const events: IssueEvent[] = [{ type: "first_seen", at: T0, actor: "system" }];
  const t = (to: TransitionTarget, extra: Partial<IssueEvent> = {}) =>
    events.push({
      type: "transition",
      to,
      actor: "ana",
      at: T0 + events.length * HOUR,
      ...extra,
    } as IssueEvent);
  const at = () => T0 + events.length * HOUR;
  switch (status) {
    case "new":
      break;
    case "acknowledged":
    case "investigating":
    case "muted":
      t(status, status === "muted" ? { reason: "noise" } : {});
      break;
    case "fix_released":
      t("fix_released", { fixVersion });
      break;
    case "verifying":
      t("fix_released", { fixVersion });
      t("verifying");
      break;
    case "closed":
      t("fix_released", { fixVersion });
      t("verifying");
      events.push({ type: "auto_close", exposureHours: 600, requiredHours: 500, at: at(), actor: "system" });
      break;
    case "regressed":
      t("fix_released", { fixVersion });
      events.push({ type: "regression", firmware: fixVersion, at: at(), actor: "system" });
      break;
  }
  const state = replay(events);
  expect(state.status).toBe(status);
  return state;
}

const request = (to: TransitionTarget, extra: Partial<TransitionRequest> = {}): TransitionRequest => ({
  to,
  actor: "ana",
  at: T0 + 100 * HOUR,
  reason: "because",
  ...(to === "fix_released" ? { fixVersion: "2.5.0" } : {}),
  ...extra,
});

// The lifecycle table, written out in full: every status against every target.
const ALLOWED: Record<IssueStatus, TransitionTarget[]> = {
  new: ["acknowledged", "investigating", "muted", "closed"],
  acknowledged: ["investigating", "fix_released", "muted", "closed"],
  investigating: ["fix_released", "muted", "closed"],
  fix_released: ["verifying", "investigating"],
  verifying: ["closed", "investigating"],
  regressed: ["acknowledged", "investigating", "fix_released", "muted", "closed"],
  muted: ["acknowledged", "investigating", "closed"],
  closed: ["acknowledged"],
};
const TABLE = ISSUE_STATUSES.flatMap((from) =>
  TransitionTarget.options.map((to) => [from, to, ALLOWED[from].includes(to)] as const),
);

describe("requestTransition", () => {
  it.each(TABLE)("from %s to %s is allowed: %s", (from, to, allowed) => {
    const result = requestTransition(stateIn(from), request(to));
    expect(result.ok).toBe(allowed);
    if (!result.ok) expect(result.error.code).toBe("INVALID_TRANSITION");
    else expect(applyEvent(stateIn(from), result.value).status).toBe(to);
  });

  it("refuses fix_released without the fixing firmware version", () => {
    const result = requestTransition(
      stateIn("investigating"),
      request("fix_released", { fixVersion: undefined }),
    );
    expect(result).toMatchObject({ ok: false, error: { code: "FIX_VERSION_REQUIRED" } });
  });

  it("refuses a fix version on any other transition", () => {
    const result = requestTransition(stateIn("new"), request("acknowledged", { fixVersion: "2.5.0" }));
    expect(result).toMatchObject({ ok: false, error: { code: "FIX_VERSION_NOT_ALLOWED" } });
  });

  it("refuses a fix version that is not a firmware label", () => {
    const result = requestTransition(
      stateIn("investigating"),
      request("fix_released", { fixVersion: "2,5" }),
    );
    expect(result).toMatchObject({ ok: false, error: { code: "INVALID_REQUEST" } });
  });

  it("records the fix version and when the fix was released", () => {
    const state = stateIn("investigating");
    const result = requestTransition(state, request("fix_released", { fixVersion: "2.5.0" }));
    if (!result.ok) throw new Error(result.error.message);
    const next = applyEvent(state, result.value);
    expect(next).toMatchObject({
      status: "fix_released",
      fixVersion: "2.5.0",
      fixReleasedAt: T0 + 100 * HOUR,
    });
  });

  it.each([
    ["new", "closed"],
    ["investigating", "muted"],
    ["verifying", "closed"],
    ["closed", "acknowledged"],
  ] as const)("needs a reason to go from %s to %s", (from, to) => {
    for (const reason of [undefined, "  "]) {
      const result = requestTransition(stateIn(from), request(to, { reason }));
      expect(result).toMatchObject({ ok: false, error: { code: "REASON_REQUIRED" } });
    }
  });

  it("acknowledges without a reason", () => {
    expect(requestTransition(stateIn("new"), request("acknowledged", { reason: undefined })).ok).toBe(true);
  });

  it("refuses a request without an actor", () => {
    const result = requestTransition(stateIn("new"), request("acknowledged", { actor: " " }));
    expect(result).toMatchObject({ ok: false, error: { code: "INVALID_REQUEST" } });
  });

  it("refuses to change an issue that was merged into another", () => {
    const merged = applyEvent(stateIn("acknowledged"), {
      type: "merge",
      into: "yL5ZpojYinkqPsDW",
      actor: "ana",
      at: T0 + 50 * HOUR,
    });
    expect(merged.mergedInto).toBe("yL5ZpojYinkqPsDW");
    const result = requestTransition(merged, request("investigating"));
    expect(result).toMatchObject({ ok: false, error: { code: "ISSUE_MERGED" } });
  });

  it("produces events that the IssueEvent schema accepts", () => {
    const result = requestTransition(stateIn("new"), request("closed", { reason: "won't fix: cosmetic" }));
    if (!result.ok) throw new Error(result.error.message);
    expect(IssueEvent.parse(result.value)).toEqual(result.value);
  });
});

describe("IssueEvent", () => {
  it.each([
    [{ type: "transition", to: "fix_released", actor: "ana", at: 1 }, "fixVersion"],
    [{ type: "transition", to: "regressed", actor: "ana", at: 1 }, "to"],
    [{ type: "transition", to: "new", actor: "ana", at: 1 }, "to"],
    [{ type: "regression", firmware: "2.4", at: 1, actor: "ana" }, "actor"],
    [{ type: "assign", assignee: "bo", at: 1 }, "actor"],
    [{ type: "note", text: "", actor: "ana", at: 1 }, "text"],
    [{ type: "reopen", actor: "ana", at: 1 }, "type"],
    [
      { type: "escalated", level: 1, levelName: "lead", alertId: "a1", rule: "r", at: 1, actor: "ana" },
      "actor",
    ],
    [
      { type: "escalated", level: 0, levelName: "team", alertId: "a1", rule: "r", at: 1, actor: "system" },
      "level",
    ],
  ])("refuses %j at %s", (event, path) => {
    const result = IssueEvent.safeParse(event);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.path.join("."))).toContain(path);
  });
});

describe("an escalation", () => {
  it.each(["new", "acknowledged", "fix_released", "closed", "regressed"] as const)(
    "is recorded in the history of an issue %s and changes nothing else",
    (status) => {
      const before = stateIn(status);
      const at = (before.updatedAt ?? T0) + HOUR;
      const event: IssueEvent = {
        type: "escalated",
        level: 1,
        levelName: "lead",
        alertId: "Qx3v0Qp9T2bY1aZc",
        rule: "new-issue",
        at,
        actor: "system",
      };
      expect(IssueEvent.parse(event)).toEqual(event);
      const after = applyEvent(before, event);
      expect(after.history.at(-1)).toEqual(event);
      expect({ ...after, history: before.history, updatedAt: before.updatedAt }).toEqual(before);
    },
  );
});

describe("the history", () => {
  const log: IssueEvent[] = [
    { type: "first_seen", at: T0, actor: "system", firmware: "2.3.1" },
    { type: "transition", to: "acknowledged", actor: "ana", at: T0 + HOUR },
    { type: "assign", assignee: "bo", actor: "ana", at: T0 + 2 * HOUR },
    { type: "note", text: "Only on long lines", actor: "bo", at: T0 + 3 * HOUR },
    { type: "transition", to: "investigating", actor: "bo", at: T0 + 4 * HOUR, reason: "reproduced" },
    { type: "transition", to: "fix_released", actor: "bo", at: T0 + 5 * HOUR, fixVersion: "2.4.0" },
    { type: "transition", to: "verifying", actor: "system", at: T0 + 6 * HOUR, reason: "2.4.0 in the field" },
    { type: "regression", firmware: "2.4.1", at: T0 + 7 * HOUR, actor: "system" },
    { type: "transition", to: "fix_released", actor: "bo", at: T0 + 8 * HOUR, fixVersion: "2.5.0" },
    { type: "transition", to: "verifying", actor: "system", at: T0 + 9 * HOUR },
    { type: "auto_close", exposureHours: 750, requiredHours: 500, at: T0 + 10 * HOUR, actor: "system" },
  ];

  it("records every change with who, when and why", () => {
    const state = replay(log);
    expect(state.history).toEqual(log);
    for (const event of state.history) {
      expect(event.actor).toBeTruthy();
      expect(event.at).toBeGreaterThanOrEqual(T0);
    }
    const why = state.history.map((event) => {
      switch (event.type) {
        case "transition":
          return event.reason ?? event.fixVersion ?? event.to;
        case "regression":
          return event.firmware;
        case "auto_close":
          return `${event.exposureHours}/${event.requiredHours}`;
        case "note":
          return event.text;
        case "assign":
          return event.assignee;
        default:
          return event.type;
      }
    });
    expect(why).toContain("Only on long lines");
    expect(why).toContain("2.4.1");
    expect(why).toContain("750/500");
  });

  it("folds the log into the current state", () => {
    expect(replay(log)).toMatchObject({
      status: "closed",
      assignee: "bo",
      fixVersion: "2.5.0",
      fixReleasedAt: T0 + 8 * HOUR,
      closure: "effective",
      closedEffective: true,
      regressedOn: "2.4.1",
      regressions: 1,
      firstSeenAt: T0,
      statusSince: T0 + 10 * HOUR,
      updatedAt: T0 + 10 * HOUR,
      mergedInto: null,
    });
  });

  it("gives the same state for a shuffled log", () => {
    const expected = replay(log);
    let seed = 7;
    for (let round = 0; round < 20; round++) {
      const shuffled = [...log];
      for (let i = shuffled.length - 1; i > 0; i--) {
        seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
        const j = seed % (i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j] as IssueEvent, shuffled[i] as IssueEvent];
      }
      expect(replay(shuffled)).toEqual(expected);
    }
  });

  it("gives the same state applying events one by one, even one that arrives late", () => {
    const late = log[3] as IssueEvent;
    const others = log.filter((event) => event !== late);
    const state = [...others, late].reduce(applyEvent, INITIAL_ISSUE_STATE);
    expect(state).toEqual(replay(log));
  });

  it("keeps the log order of events at the same time", () => {
    const at = T0 + HOUR;
    const state = replay([
      { type: "transition", to: "acknowledged", actor: "ana", at },
      { type: "transition", to: "investigating", actor: "ana", at },
    ]);
    expect(state.status).toBe("investigating");
  });

  it("starts new, unassigned and without a fix", () => {
    expect(replay([])).toEqual(INITIAL_ISSUE_STATE);
    expect(INITIAL_ISSUE_STATE).toMatchObject({ status: "new", assignee: null, fixVersion: null });
  });

  it("unassigns with a null assignee", () => {
    const state = replay([
      { type: "assign", assignee: "bo", actor: "ana", at: T0 },
      { type: "assign", assignee: null, actor: "ana", at: T0 + 1 },
    ]);
    expect(state.assignee).toBeNull();
  });

  it("notes the time a status began", () => {
    const state = stateIn("investigating");
    expect(state.statusSince).toBe(T0 + HOUR);
    const noted = applyEvent(state, { type: "note", text: "still on it", actor: "bo", at: T0 + 9 * HOUR });
    expect(noted.statusSince).toBe(T0 + HOUR);
  });
});

describe("reliesOnFix", () => {
  it.each<[IssueStatus, boolean]>([
    ["new", false],
    ["acknowledged", false],
    ["investigating", false],
    ["fix_released", true],
    ["verifying", true],
    ["closed", true],
    ["muted", false],
    ["regressed", false],
  ])("%s → %s", (status, relies) => {
    expect(reliesOnFix(stateIn(status))).toBe(relies);
  });

  it("is true for an issue closed by hand while verifying, false for one closed without a fix", () => {
    const verifying = stateIn("verifying");
    const closedByHand = applyEvent(verifying, {
      type: "transition",
      to: "closed",
      reason: "confirmed by the customer",
      actor: "ana",
      at: T0 + 50 * HOUR,
    });
    expect(closedByHand.closure).toBe("fixed");
    expect(reliesOnFix(closedByHand)).toBe(true);
    const wontFix = applyEvent(stateIn("new"), {
      type: "transition",
      to: "closed",
      reason: "not a defect",
      actor: "ana",
      at: T0 + 50 * HOUR,
    });
    expect(reliesOnFix(wontFix)).toBe(false);
  });
});

describe("onOccurrence", () => {
  const at = T0 + 200 * HOUR;

  it.each([
    ["fix_released", "2.4.0"],
    ["fix_released", "2.5.1"],
    ["verifying", "2.4.0"],
    ["verifying", "v2.4"],
    ["closed", "2.10.0"],
  ] as const)("reopens a %s issue as regressed when it recurs on %s (fix 2.4.0)", (status, firmware) => {
    const state = stateIn(status, "2.4.0");
    const event = onOccurrence(state, { firmware, at });
    expect(event).toEqual({ type: "regression", firmware, at, actor: "system" });
    if (!event) return;
    const next = applyEvent(state, event);
    expect(next).toMatchObject({
      status: "regressed",
      regressedOn: firmware,
      closedEffective: false,
      closure: null,
    });
  });

  it.each([
    ["fix_released", "2.3.9"],
    ["verifying", "2.4.0-rc3"],
    ["closed", "2.3.0"],
    ["closed", "unknown"],
  ] as const)(
    "leaves a %s issue alone when it recurs on older firmware %s (fix 2.4.0)",
    (status, firmware) => {
      expect(onOccurrence(stateIn(status, "2.4.0"), { firmware, at })).toBeUndefined();
    },
  );

  it.each(["new", "acknowledged", "investigating", "regressed", "muted"] as const)(
    "does not reopen an issue that is %s",
    (status) => {
      expect(onOccurrence(stateIn(status), { firmware: "9.9.9", at })).toBeUndefined();
    },
  );

  it("never reopens a muted issue, even one muted after a regression", () => {
    const regressed = stateIn("regressed");
    const muted = replay([
      ...regressed.history,
      { type: "transition", to: "muted", actor: "ana", at, reason: "known, accepted" },
    ]);
    expect(muted.fixVersion).toBe("2.4.0");
    expect(onOccurrence(muted, { firmware: "2.4.0", at: at + HOUR })).toBeUndefined();
  });

  it("does not reopen an issue closed without a fix", () => {
    const wontFix = replay([
      { type: "transition", to: "closed", actor: "ana", at: T0, reason: "won't fix: cosmetic" },
    ]);
    expect(wontFix.closure).toBe("without_fix");
    expect(onOccurrence(wontFix, { firmware: "9.9.9", at })).toBeUndefined();
  });

  it("does not reopen a regressed issue closed without a new fix", () => {
    const closed = replay([
      ...stateIn("regressed").history,
      { type: "transition", to: "closed", actor: "ana", at, reason: "model discontinued" },
    ]);
    expect(closed.closure).toBe("without_fix");
    expect(onOccurrence(closed, { firmware: "2.4.0", at: at + HOUR })).toBeUndefined();
  });

  it("reopens an issue closed by hand while verifying", () => {
    const closed = replay([
      ...stateIn("verifying").history,
      { type: "transition", to: "closed", actor: "ana", at, reason: "customer confirmed" },
    ]);
    expect(closed).toMatchObject({ closure: "fixed", closedEffective: false });
    expect(onOccurrence(closed, { firmware: "2.4.0", at: at + HOUR })?.type).toBe("regression");
  });

  it("leaves a merged issue to the issue it was merged into", () => {
    const merged = applyEvent(stateIn("verifying"), { type: "merge", into: "other", actor: "ana", at });
    expect(onOccurrence(merged, { firmware: "2.4.0", at: at + HOUR })).toBeUndefined();
  });
});

describe("checkVerification", () => {
  const required = 500;
  const check = (exposureHoursOnFix: number, at = T0 + 300 * HOUR) => ({
    exposureHoursOnFix,
    at,
    requiredHours: required,
  });

  it("moves a released fix to verifying once it runs in the field", () => {
    expect(checkVerification(stateIn("fix_released"), check(0))).toBeUndefined();
    const event = checkVerification(stateIn("fix_released"), check(3));
    expect(event).toMatchObject({ type: "transition", to: "verifying", actor: "system" });
    expect(event && IssueEvent.safeParse(event).success).toBe(true);
  });

  it.each([
    [0, false],
    [499.9, false],
    [Number.NaN, false],
    [500, true],
    [10_000, true],
  ])("with %s device-hours on the fix closes as effective: %s", (hours, closes) => {
    const state = stateIn("verifying");
    const event = checkVerification(state, check(hours));
    if (!closes) {
      expect(event).toBeUndefined();
      return;
    }
    expect(event).toEqual({
      type: "auto_close",
      exposureHours: hours,
      requiredHours: required,
      at: T0 + 300 * HOUR,
      actor: "system",
    });
    if (!event) return;
    expect(applyEvent(state, event)).toMatchObject({
      status: "closed",
      closedEffective: true,
      closure: "effective",
    });
  });

  it("takes two checks from fix_released to closed, through verifying", () => {
    let state = stateIn("fix_released");
    const first = checkVerification(state, check(900));
    if (!first) throw new Error("expected verifying");
    state = applyEvent(state, first);
    const second = checkVerification(state, check(900, T0 + 301 * HOUR));
    if (!second) throw new Error("expected auto_close");
    state = applyEvent(state, second);
    expect(state.history.map((event) => event.type).slice(-2)).toEqual(["transition", "auto_close"]);
    expect(state).toMatchObject({ status: "closed", closedEffective: true });
  });

  it("does not close an issue that regressed during verification", () => {
    const verifying = stateIn("verifying");
    const regression = onOccurrence(verifying, { firmware: "2.4.0", at: T0 + 250 * HOUR });
    if (!regression) throw new Error("expected a regression");
    const regressed = applyEvent(verifying, regression);
    expect(checkVerification(regressed, check(10_000))).toBeUndefined();
    expect(regressed.closedEffective).toBe(false);
  });

  it("does not mark a manual close as effective", () => {
    const state = stateIn("verifying");
    const result = requestTransition(state, request("closed", { reason: "good enough" }));
    if (!result.ok) throw new Error(result.error.message);
    expect(applyEvent(state, result.value)).toMatchObject({ status: "closed", closedEffective: false });
  });

  it.each(["new", "investigating", "closed", "muted", "regressed"] as const)(
    "does nothing for an issue that is %s",
    (status) => {
      expect(checkVerification(stateIn(status), check(10_000))).toBeUndefined();
    },
  );

  it("clears closedEffective when a closed issue is reopened", () => {
    const closed = stateIn("closed");
    expect(closed.closedEffective).toBe(true);
    const result = requestTransition(
      closed,
      request("acknowledged", { reason: "customer reports it again" }),
    );
    if (!result.ok) throw new Error(result.error.message);
    expect(applyEvent(closed, result.value)).toMatchObject({
      status: "acknowledged",
      closedEffective: false,
      closure: null,
    });
  });
});
