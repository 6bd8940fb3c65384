import { describe, expect, it } from "vitest";
import { type IssueState, replay } from "../../analytics/lifecycle.js";
import { type HourExposure, type SettleInput, settle } from "../../analytics/settle.js";
import type { IssueEvent } from "../../contract/issue-events.js";
import { HOUR_MS } from "../../contract/time.js";

const T0 = Date.UTC(2026, 0, 5, 9);
const RELEASED = T0 + 2 * HOUR_MS + 17 * 60_000;

const released: IssueEvent[] = [
  { type: "first_seen", at: T0, actor: "system" },
  { type: "transition", to: "acknowledged", actor: "ana", at: T0 + HOUR_MS },
  { type: "transition", to: "fix_released", fixVersion: "2.0", actor: "ana", at: RELEASED },
];
const stateOf = (...more: IssueEvent[]): IssueState => replay([...released, ...more]);

const hour = (n: number, firmware = "2.0", hours = 1): HourExposure => ({
  hourMs: T0 + n * HOUR_MS,
  firmware,
  hours,
});

const input = (over: Partial<SettleInput> = {}): SettleInput => ({
  state: stateOf(),
  recurrences: [],
  exposure: [],
  requiredHours: 3,
  completeBeforeMs: T0 + 100 * HOUR_MS,
  ...over,
});

const VERIFYING = (at: number): IssueEvent => ({
  type: "transition",
  to: "verifying",
  actor: "system",
  at,
  reason: "firmware 2.0 is running in the field",
});

describe("settle", () => {
  it("appends nothing while no device runs the fix", () => {
    expect(settle(input({ exposure: [hour(3, "1.9", 50)] })).events).toEqual([]);
  });

  it("moves fix_released to verifying at the end of the first hour on the fix", () => {
    const { events, state } = settle(input({ exposure: [hour(4), hour(3)] }));
    expect(events).toEqual([VERIFYING(T0 + 4 * HOUR_MS)]);
    expect(state.status).toBe("verifying");
  });

  it("goes from fix_released through verifying to closed in one step when the hours are there", () => {
    const { events, state } = settle(input({ exposure: [hour(3, "2.0", 2), hour(4, "2.1", 1), hour(5)] }));
    expect(events).toEqual([
      VERIFYING(T0 + 4 * HOUR_MS),
      { type: "auto_close", exposureHours: 3, requiredHours: 3, actor: "system", at: T0 + 5 * HOUR_MS },
    ]);
    expect(state).toMatchObject({ status: "closed", closure: "effective", closedEffective: true });
  });

  it("dates the close one millisecond after verifying when both fall in the same hour", () => {
    const { events } = settle(input({ exposure: [hour(3, "2.0", 10)] }));
    expect(events.map((e) => [e.type, e.at])).toEqual([
      ["transition", T0 + 4 * HOUR_MS],
      ["auto_close", T0 + 4 * HOUR_MS + 1],
    ]);
  });

  it("counts neither hours that started before the fix was released nor hours still filling", () => {
    // Hour 2 contains the release (it starts before it); hour 6 ends after completeBeforeMs.
    const exposure = [hour(2, "2.0", 50), hour(3), hour(4), hour(6, "2.0", 50)];
    const { events } = settle(input({ exposure, completeBeforeMs: T0 + 6 * HOUR_MS + 30 * 60_000 }));
    expect(events).toEqual([VERIFYING(T0 + 4 * HOUR_MS)]);
  });

  it("closes a verifying issue at the hour the required hours were reached, never before its latest event", () => {
    const verifying = stateOf(VERIFYING(T0 + 4 * HOUR_MS), {
      type: "note",
      text: "watching",
      actor: "ana",
      at: T0 + 9 * HOUR_MS,
    });
    const { events } = settle(input({ state: verifying, exposure: [hour(3), hour(4), hour(5)] }));
    expect(events).toEqual([
      { type: "auto_close", exposureHours: 3, requiredHours: 3, actor: "system", at: T0 + 9 * HOUR_MS + 1 },
    ]);
  });

  it("regresses on the first recurrence at or above the fix, ignoring older firmware and faults before the fix", () => {
    const recurrences = [
      { firmware: "1.9", at: T0 + 3 * HOUR_MS },
      { firmware: "2.1", at: RELEASED - 1 },
      { firmware: "2.1", at: T0 + 7 * HOUR_MS },
      { firmware: "2.0", at: T0 + 6 * HOUR_MS },
    ];
    const { events, state } = settle(input({ recurrences }));
    expect(events).toEqual([{ type: "regression", firmware: "2.0", at: T0 + 6 * HOUR_MS, actor: "system" }]);
    expect(state).toMatchObject({ status: "regressed", regressions: 1, regressedOn: "2.0" });
  });

  it("verifies first and then regresses when the fix ran an hour before the fault recurred", () => {
    const { events } = settle(
      input({ exposure: [hour(3)], recurrences: [{ firmware: "2.0", at: T0 + 5 * HOUR_MS }] }),
    );
    expect(events.map((e) => [e.type, e.at])).toEqual([
      ["transition", T0 + 4 * HOUR_MS],
      ["regression", T0 + 5 * HOUR_MS],
    ]);
  });

  it("regresses without verifying when the fault recurs within the first hour on the fix", () => {
    const { events } = settle(
      input({ exposure: [hour(3, "2.0", 5)], recurrences: [{ firmware: "2.0", at: T0 + 3 * HOUR_MS + 1 }] }),
    );
    expect(events.map((e) => e.type)).toEqual(["regression"]);
  });

  it("regresses a closed-as-effective issue after its close, even for a fault that came late", () => {
    const closed = stateOf(VERIFYING(T0 + 4 * HOUR_MS), {
      type: "auto_close",
      exposureHours: 3,
      requiredHours: 3,
      actor: "system",
      at: T0 + 6 * HOUR_MS,
    });
    const { events } = settle(
      input({ state: closed, recurrences: [{ firmware: "2.0", at: T0 + 5 * HOUR_MS }] }),
    );
    expect(events).toEqual([
      { type: "regression", firmware: "2.0", at: T0 + 6 * HOUR_MS + 1, actor: "system" },
    ]);
  });

  it.each<[string, IssueEvent]>([
    ["merged", { type: "merge", into: "other", actor: "ana", at: T0 + 3 * HOUR_MS }],
    [
      "whose fix was withdrawn",
      { type: "transition", to: "investigating", actor: "ana", at: T0 + 3 * HOUR_MS },
    ],
  ])("leaves an issue %s alone", (_, event) => {
    const result = settle(
      input({
        state: stateOf(event),
        exposure: [hour(4, "2.0", 10)],
        recurrences: [{ firmware: "2.0", at: T0 + 5 * HOUR_MS }],
      }),
    );
    expect(result.events).toEqual([]);
  });

  it("computes the same events whatever the order of its inputs, so two runners agree", () => {
    const exposure = [hour(3), hour(4, "2.1"), hour(5), hour(4, "1.0", 9)];
    const recurrences = [
      { firmware: "2.1", at: T0 + 8 * HOUR_MS },
      { firmware: "2.0", at: T0 + 8 * HOUR_MS },
    ];
    const a = settle(input({ exposure, recurrences }));
    const b = settle(input({ exposure: [...exposure].reverse(), recurrences: [...recurrences].reverse() }));
    expect(b.events).toEqual(a.events);
    expect(a.events.map((e) => e.type)).toEqual(["transition", "auto_close", "regression"]);
    expect(a.events.at(-1)).toMatchObject({ firmware: "2.0" });
  });

  it("appends nothing to an issue that was settled already", () => {
    const once = settle(input({ exposure: [hour(3), hour(4), hour(5)] }));
    expect(settle(input({ state: once.state, exposure: [hour(3), hour(4), hour(5)] })).events).toEqual([]);
  });
});
