import { describe, expect, it } from "vitest";
import {
  type Acknowledgement,
  type AlertDecision,
  type AlertPolicy,
  type AlertState,
  alertIdOf,
  type ObservedCondition,
  stepAlerts,
  targetsUpTo,
} from "../../analytics/alerting.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const T0 = Date.UTC(2026, 5, 1, 8);

type P = { devices: number };

const policy: AlertPolicy = {
  name: "new-issue",
  levels: [
    { name: "team", afterMs: 2 * HOUR, targets: ["webhook"] },
    { name: "lead", afterMs: 6 * HOUR, targets: ["webhook", "lead"] },
    { name: "management", afterMs: null, targets: ["board"] },
  ],
  repeatMs: HOUR,
  holdMs: 15 * MINUTE,
};
const policies = new Map([[policy.name, policy]]);

const cond = (devices = 3, key = "new-issue:issue:a"): ObservedCondition<P> => ({
  key,
  rule: "new-issue",
  payload: { devices },
});

/** Runs steps on a fake clock, carrying the state from one to the next. */
function simulator() {
  let state = new Map<string, AlertState<P>>();
  const acks = new Map<string, Acknowledgement>();
  return {
    step(at: number, observed: ObservedCondition<P>[]): AlertDecision<P>[] {
      const result = stepAlerts({ previous: state, observed, acknowledgements: acks, policies, now: at });
      const next = new Map(state);
      for (const [key, value] of result.changes) {
        if (value === null) next.delete(key);
        else next.set(key, value);
      }
      state = next;
      return result.decisions;
    },
    ack(alertId: string, by: string, at: number) {
      acks.set(alertId, { by, at });
    },
    get state() {
      return state;
    },
  };
}

const events = (ds: AlertDecision<P>[]) => ds.map((d) => d.event);

describe("stepAlerts", () => {
  it("raises one alert when a condition appears, and nothing more while it holds", () => {
    const sim = simulator();
    const raised = sim.step(T0, [cond()]);
    expect(events(raised)).toEqual(["raised"]);
    expect(raised[0]).toMatchObject({
      alertId: alertIdOf("new-issue:issue:a", T0),
      sequence: 1,
      idempotencyKey: `${alertIdOf("new-issue:issue:a", T0)}/raised/1`,
      level: 0,
      levelName: "team",
      targets: ["webhook"],
      payload: { devices: 3 },
    });
    for (let m = 1; m < 60; m += 5) expect(sim.step(T0 + m * MINUTE, [cond(3 + m)])).toEqual([]);
    expect(sim.state.get("new-issue:issue:a")?.payload).toEqual({ devices: 59 });
  });

  it("keeps one alert per key and raises another key's separately", () => {
    const sim = simulator();
    const ds = sim.step(T0, [cond(3, "k1"), cond(4, "k2")]);
    expect(ds.map((d) => d.alertId)).toEqual([alertIdOf("k1", T0), alertIdOf("k2", T0)]);
    expect(new Set(ds.map((d) => d.alertId)).size).toBe(2);
  });

  it("suppresses flapping: a condition back within the hold time is the same alert, with no notice", () => {
    const sim = simulator();
    const [raised] = sim.step(T0, [cond()]);
    expect(sim.step(T0 + 5 * MINUTE, [])).toEqual([]);
    expect(sim.state.get("new-issue:issue:a")?.clearedAt).toBe(T0 + 5 * MINUTE);
    expect(sim.step(T0 + 10 * MINUTE, [cond()])).toEqual([]);
    expect(sim.step(T0 + 15 * MINUTE, [])).toEqual([]);
    expect(sim.step(T0 + 25 * MINUTE, [cond()])).toEqual([]);
    expect(sim.state.get("new-issue:issue:a")).toMatchObject({ alertId: raised?.alertId, clearedAt: null });
  });

  it("resolves once, after the condition stayed away for the hold time, to every level reached", () => {
    const sim = simulator();
    const [raised] = sim.step(T0, [cond()]);
    sim.step(T0 + 2 * HOUR, [cond()]); // escalated to "lead"
    expect(sim.step(T0 + 2 * HOUR + MINUTE, [])).toEqual([]);
    expect(sim.step(T0 + 2 * HOUR + 15 * MINUTE, [])).toEqual([]);
    const resolved = sim.step(T0 + 2 * HOUR + 16 * MINUTE, []);
    expect(events(resolved)).toEqual(["resolved"]);
    expect(resolved[0]).toMatchObject({ alertId: raised?.alertId, sequence: 3, level: 1 });
    expect(resolved[0]?.targets).toEqual(["webhook", "lead"]);
    expect(sim.state.size).toBe(0);
    expect(sim.step(T0 + 3 * HOUR, [])).toEqual([]);
    const again = sim.step(T0 + 4 * HOUR, [cond()]);
    expect(events(again)).toEqual(["raised"]);
    expect(again[0]?.alertId).not.toBe(raised?.alertId);
  });

  it("repeats every interval while unacknowledged, and not after an acknowledgement", () => {
    const once: AlertPolicy = { ...policy, levels: [{ name: "team", afterMs: null, targets: ["webhook"] }] };
    policies.set("once", once);
    const sim = simulator();
    const c = { ...cond(), rule: "once" };
    const [raised] = sim.step(T0, [c]);
    expect(sim.step(T0 + 59 * MINUTE, [c])).toEqual([]);
    const repeated = sim.step(T0 + HOUR, [c]);
    expect(events(repeated)).toEqual(["repeated"]);
    expect(repeated[0]).toMatchObject({ sequence: 2, targets: ["webhook"] });
    expect(repeated[0]?.idempotencyKey).toBe(`${raised?.alertId}/repeated/2`);
    expect(sim.step(T0 + HOUR + 30 * MINUTE, [c])).toEqual([]);
    expect(events(sim.step(T0 + 2 * HOUR, [c]))).toEqual(["repeated"]);
    sim.ack(raised?.alertId ?? "", "ana", T0 + 2 * HOUR + MINUTE);
    for (let h = 3; h < 12; h++) expect(sim.step(T0 + h * HOUR, [c])).toEqual([]);
    expect(sim.state.get(c.key)?.acknowledged).toEqual({ by: "ana", at: T0 + 2 * HOUR + MINUTE });
    policies.delete("once");
  });

  it("escalates one level after the level's time, to the new level's targets, and stops at the top", () => {
    const sim = simulator();
    const [raised] = sim.step(T0, [cond()]);
    expect(events(sim.step(T0 + HOUR, [cond()]))).toEqual(["repeated"]);
    const up = sim.step(T0 + 2 * HOUR, [cond()]);
    expect(up).toHaveLength(1);
    expect(up[0]).toMatchObject({
      event: "escalated",
      alertId: raised?.alertId,
      level: 1,
      levelName: "lead",
      targets: ["webhook", "lead"],
      sequence: 3,
    });
    // At "lead" it repeats to lead's targets, and moves up 6 h after reaching it, not 6 h after raising.
    expect(sim.step(T0 + 3 * HOUR, [cond()])[0]).toMatchObject({
      event: "repeated",
      targets: ["webhook", "lead"],
    });
    for (const h of [4, 5, 6, 7]) expect(events(sim.step(T0 + h * HOUR, [cond()]))).toEqual(["repeated"]);
    const top = sim.step(T0 + 8 * HOUR, [cond()]);
    expect(top[0]).toMatchObject({
      event: "escalated",
      level: 2,
      levelName: "management",
      targets: ["board"],
    });
    for (let h = 9; h < 30; h++) {
      expect(events(sim.step(T0 + h * HOUR, [cond()]))).toEqual(["repeated"]);
    }
    expect(sim.state.get("new-issue:issue:a")?.level).toBe(2);
  });

  it("stops escalating once acknowledged, and the resolution carries the acknowledgement", () => {
    const sim = simulator();
    const [raised] = sim.step(T0, [cond()]);
    sim.ack(raised?.alertId ?? "", "ana", T0 + 30 * MINUTE);
    for (let h = 1; h < 48; h++) expect(sim.step(T0 + h * HOUR, [cond()])).toEqual([]);
    expect(sim.state.get("new-issue:issue:a")?.level).toBe(0);
    sim.step(T0 + 48 * HOUR, []);
    const [resolved] = sim.step(T0 + 49 * HOUR, []);
    expect(resolved).toMatchObject({ event: "resolved", acknowledged: { by: "ana", at: T0 + 30 * MINUTE } });
  });

  it("does not repeat or escalate while the condition waits out its hold time", () => {
    const sim = simulator();
    sim.step(T0, [cond()]);
    sim.step(T0 + 2 * HOUR - MINUTE, []);
    expect(sim.step(T0 + 2 * HOUR + 5 * MINUTE, [])).toEqual([]);
    expect(sim.state.get("new-issue:issue:a")?.level).toBe(0);
  });

  it("resolves at once the alerts of a rule no longer in the rules", () => {
    const sim = simulator();
    sim.step(T0, [{ key: "gone:x", rule: "gone", payload: { devices: 1 } }]);
    const [resolved] = sim.step(T0 + MINUTE, []);
    expect(resolved).toMatchObject({ event: "resolved", targets: [] });
  });

  it("lists each level's targets once, in level order", () => {
    expect(targetsUpTo(policy, 2)).toEqual(["webhook", "lead", "board"]);
    expect(targetsUpTo(policy, 0)).toEqual(["webhook"]);
  });

  it("writes nothing for an unchanged alert", () => {
    const state = new Map<string, AlertState<P>>();
    const first = stepAlerts({
      previous: state,
      observed: [cond()],
      acknowledgements: new Map(),
      policies,
      now: T0,
    });
    const raised = first.changes.get("new-issue:issue:a");
    expect(raised).toBeDefined();
    const second = stepAlerts({
      previous: new Map([["new-issue:issue:a", raised as AlertState<P>]]),
      observed: [cond()],
      acknowledgements: new Map(),
      policies,
      now: T0 + MINUTE,
    });
    expect(second.changes.size).toBe(0);
    expect(second.decisions).toEqual([]);
  });
});
