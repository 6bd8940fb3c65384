import { describe, expect, it } from "vitest";
import { type AlertEngineDeps, createAlertEngine, type EngineState } from "../../alerts/engine.js";
import { parseAlertRules } from "../../alerts/rules-file.js";
import type { AlertOutbox, Delivery } from "../../alerts/types.js";
import type { Acknowledgement } from "../../analytics/alerting.js";
import type { IssueListItem } from "../../contract/api/issues.js";
import type { EscalatedEvent } from "../../contract/issue-events.js";
import { silentLogger } from "../../observe/logger.js";
import { issueListItem } from "../support/issue-fixture.js";

// The engine's wiring on in-memory parts: what it commits, what it records in an issue's log, and what it
// leaves alone when a source cannot be read. The real outbox, services and InfluxDB are in
// test/integration/alerting.test.ts.

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 5, 1, 8);

function memoryOutbox() {
  const state = new Map<string, EngineState>();
  const commits: Array<{ keys: string[]; deliveries: Delivery[] }> = [];
  const outbox: AlertOutbox<EngineState> = {
    async state() {
      return new Map(state);
    },
    async commit(change) {
      for (const [key, value] of change.state) {
        if (value === null) state.delete(key);
        else state.set(key, value);
      }
      commits.push({ keys: [...change.state.keys()], deliveries: [...change.deliveries] });
    },
  };
  return { outbox, state, commits };
}

const issue: IssueListItem = issueListItem({
  firstSeen: new Date(T0 - HOUR).toISOString(),
  lastSeen: new Date(T0).toISOString(),
  occurrences: 5,
  activeDevices: 10,
  fleetShare: 0.3,
  growth: { firstHalf: 1, secondHalf: 4, delta: 3 },
});

function setup(rulesText: string, targets = true) {
  const parsed = parseAlertRules(
    rulesText,
    "rules.yaml",
    targets
      ? [{ name: "webhook", type: "webhook", url: "http://127.0.0.1:9/h", secret: "s".repeat(16) }]
      : [],
  );
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.text).join("\n"));
  const box = memoryOutbox();
  let now = T0;
  let failing = false;
  let newIssues: IssueListItem[] = [issue];
  const acks = new Map<string, Acknowledgement>();
  const escalations: Array<{ issue: string; event: EscalatedEvent }> = [];
  const order: string[] = [];
  const read = {
    issues: {
      list: async (q: { status?: string }) => {
        if (failing) throw new Error("InfluxDB away");
        return {
          items: q.status === "new" ? newIssues : [],
          total: 0,
          limit: 0,
          offset: 0,
          nextOffset: null,
        };
      },
    },
    firmware: { regressions: async () => ({ items: [] }) },
    devices: { silence: async () => ({ byModel: [] }) },
    promises: { status: async () => [] },
  } as unknown as AlertEngineDeps["read"];
  const commit = box.outbox.commit.bind(box.outbox);
  box.outbox.commit = async (change) => {
    order.push("commit");
    await commit(change);
  };
  const engine = createAlertEngine({
    rules: parsed.value,
    outbox: box.outbox,
    read,
    acknowledgements: async () => acks,
    recordEscalation: async (id, event) => {
      order.push("escalation");
      escalations.push({ issue: id, event });
    },
    publicUrl: "https://fieldq.example.com/app",
    logger: silentLogger,
    now: () => now,
  });
  return {
    engine,
    box,
    escalations,
    order,
    acks,
    at(ms: number) {
      now = ms;
    },
    fail(on: boolean) {
      failing = on;
    },
    issues(list: IssueListItem[]) {
      newIssues = list;
    },
  };
}

const RULES = `
escalation:
  - { name: team, after: 1h, targets: [webhook] }
  - { name: lead, targets: [webhook] }
rules:
  - { name: new-issue, when: issue_new, minDevices: 3, repeat: 0, hold: 0 }
`;

describe("the alert engine", () => {
  it("commits the raised alert's state and its notice for each target, with the alert's page", async () => {
    const t = setup(RULES);
    const { notices } = await t.engine.evaluate();
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({
      event: "raised",
      rule: "new-issue",
      kind: "issue_new",
      levelName: "team",
      raisedAt: new Date(T0).toISOString(),
      at: new Date(T0).toISOString(),
      url: `https://fieldq.example.com/app/alerts#${notices[0]?.alertId}`,
    });
    expect(t.box.commits).toEqual([
      { keys: ["new-issue:issue:issue-1"], deliveries: [{ target: "webhook", notice: notices[0] }] },
    ]);
  });

  it("leaves an alert as it is while its source cannot be read, and resolves it once the source says so", async () => {
    const t = setup(RULES);
    await t.engine.evaluate();
    t.fail(true);
    t.at(T0 + 10 * HOUR);
    const during = await t.engine.evaluate();
    expect(during.notices).toEqual([]);
    expect(t.box.state.get("new-issue:issue:issue-1")?.level).toBe(0);
    t.fail(false);
    t.issues([]);
    const after = await t.engine.evaluate();
    expect(after.notices.map((n) => n.event)).toEqual(["resolved"]);
    expect(t.box.state.size).toBe(0);
  });

  it("records an issue's escalation in its log before committing the notice", async () => {
    const t = setup(RULES);
    const [raised] = (await t.engine.evaluate()).notices;
    t.at(T0 + HOUR);
    const { notices } = await t.engine.evaluate();
    expect(notices.map((n) => [n.event, n.level, n.levelName])).toEqual([["escalated", 1, "lead"]]);
    expect(t.escalations).toEqual([
      {
        issue: "issue-1",
        event: {
          type: "escalated",
          level: 1,
          levelName: "lead",
          alertId: raised?.alertId,
          rule: "new-issue",
          at: T0 + HOUR,
          actor: "system",
        },
      },
    ]);
    expect(t.order).toEqual(["commit", "escalation", "commit"]);
  });

  it("does not escalate an acknowledged alert, and keeps the acknowledgement in its state", async () => {
    const t = setup(RULES);
    const [raised] = (await t.engine.evaluate()).notices;
    t.acks.set(raised?.alertId ?? "", { by: "ana", at: T0 + 1 });
    t.at(T0 + 5 * HOUR);
    expect((await t.engine.evaluate()).notices).toEqual([]);
    expect(t.escalations).toEqual([]);
    expect(t.box.state.get("new-issue:issue:issue-1")?.acknowledged).toEqual({ by: "ana", at: T0 + 1 });
  });

  it("sends a notice with no target left to the alert log's lane only", async () => {
    const t = setup(RULES, false);
    const { deliveries } = await t.engine.evaluate();
    expect(deliveries.map((d) => d.target)).toEqual(["log"]);
  });

  it("commits nothing when nothing changed", async () => {
    const t = setup(RULES);
    t.issues([]);
    await t.engine.evaluate();
    expect(t.box.commits).toEqual([]);
  });
});
