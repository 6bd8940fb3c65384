import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { conditionsOf, issueCondition, promiseCondition, silenceCondition } from "../../alerts/conditions.js";
import {
  type AlertRule,
  DEFAULT_HOLD_MS,
  DEFAULT_REPEAT_MS,
  defaultAlertRules,
  loadAlertRules,
  parseAlertRules,
} from "../../alerts/rules-file.js";
import type { TargetSpec } from "../../alerts/types.js";
import { issueListItem } from "../support/issue-fixture.js";

const HOUR = 3_600_000;
const WEBHOOK: TargetSpec = {
  name: "webhook",
  type: "webhook",
  url: "http://127.0.0.1:9/hook",
  secret: "s".repeat(16),
};
const MQTT: TargetSpec = { name: "mqtt", type: "mqtt", topic: "fieldq/alerts" };

const FULL = `
targets:
  - name: oncall
    type: webhook
    url: https://pager.example/hook
    secret: 0123456789abcdef0123
escalation:
  - name: team
    after: 2h
    targets: [webhook]
  - name: lead
    after: 8h
    targets: [webhook, oncall]
  - name: management
    targets: [oncall]
defaults:
  repeat: 4h
  hold: 10m
rules:
  - name: critical-issue
    when: issue_new
    severity: critical
    minSeverity: critical
    minDevices: 1
    minImpact: 50
    repeat: 1h
  - name: silent-printers
    when: silent_share
    minShare: 0.2
    minDevices: 5
    models: [FQ-Print Mk3]
    levels:
      - { name: ops, targets: [mqtt] }
`;

describe("the alert rules file", () => {
  it("without a file: the default rules, every alert to every default target", () => {
    const rules = defaultAlertRules([WEBHOOK, MQTT]);
    expect(rules.rules.map((r) => [r.name, r.kind])).toEqual([
      ["new-issue", "issue_new"],
      ["issue-regressed", "issue_regressed"],
      ["firmware-regression", "firmware_regression"],
      ["model-silent", "silent_share"],
      ["promise-breached", "promise_breached"],
      ["budget-burning", "error_budget_burn"],
    ]);
    const fresh = rules.rules[0];
    expect(fresh).toMatchObject({ minSeverity: "error", minDevices: 3 });
    expect(rules.rules[3]).toMatchObject({ minShare: 0.1, minDevices: 3 });
    for (const rule of rules.rules) {
      expect(rule.policy).toEqual({
        name: rule.name,
        levels: [{ name: "default", afterMs: null, targets: ["webhook", "mqtt"] }],
        repeatMs: DEFAULT_REPEAT_MS,
        holdMs: DEFAULT_HOLD_MS,
      });
    }
    expect(rules.targets).toEqual([WEBHOOK, MQTT]);
  });

  it("loads the defaults when no file is named", async () => {
    const loaded = await loadAlertRules(undefined, [WEBHOOK]);
    expect(loaded.ok && loaded.value.rules.map((r) => r.policy.levels[0]?.targets)).toEqual(
      Array.from({ length: 6 }, () => ["webhook"]),
    );
  });

  it("reads a full file: its targets, escalation levels, repeats and thresholds", () => {
    const parsed = parseAlertRules(FULL, "rules.yaml", [WEBHOOK, MQTT]);
    if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.text).join("\n"));
    const [critical, silent] = parsed.value.rules;
    expect(parsed.value.rules).toHaveLength(2);
    expect(critical).toMatchObject({
      name: "critical-issue",
      kind: "issue_new",
      severity: "critical",
      minSeverity: "critical",
      minDevices: 1,
      minImpact: 50,
      policy: {
        repeatMs: HOUR,
        holdMs: 10 * 60_000,
        levels: [
          { name: "team", afterMs: 2 * HOUR, targets: ["webhook"] },
          { name: "lead", afterMs: 8 * HOUR, targets: ["webhook", "oncall"] },
          { name: "management", afterMs: null, targets: ["oncall"] },
        ],
      },
    });
    expect(silent?.policy).toMatchObject({
      repeatMs: 4 * HOUR,
      levels: [{ name: "ops", afterMs: null, targets: ["mqtt"] }],
    });
    expect(silent).toMatchObject({ minShare: 0.2, minDevices: 5, models: ["FQ-Print Mk3"] });
    expect(parsed.value.targets.map((t) => t.name)).toEqual(["webhook", "mqtt", "oncall"]);
  });

  it("leaves out a default target that is not configured, with a warning", () => {
    const parsed = parseAlertRules(FULL, "rules.yaml", [WEBHOOK]);
    if (!parsed.ok) throw new Error("expected ok");
    expect(parsed.value.rules[1]?.policy.levels[0]?.targets).toEqual([]);
    expect(parsed.value.warnings).toEqual([
      'target "mqtt" is not configured (FIELDQ_ALERT_MQTT_USERNAME and _PASSWORD): left out',
    ]);
  });

  it("runs the default rules beside the file's with includeDefaults, a file rule replacing one of the same name", () => {
    const text = "includeDefaults: true\nrules:\n  - { name: new-issue, when: issue_new, minDevices: 10 }\n";
    const parsed = parseAlertRules(text, "r.yaml", [WEBHOOK]);
    if (!parsed.ok) throw new Error("expected ok");
    expect(parsed.value.rules.map((r) => r.name)).toEqual([
      "new-issue",
      "issue-regressed",
      "firmware-regression",
      "model-silent",
      "promise-breached",
      "budget-burning",
    ]);
    expect(parsed.value.rules[0]?.minDevices).toBe(10);
  });

  it.each([
    [
      "rules:\n  - name: x\n    when: issue_new\n    repeat: soon\n",
      4,
      "rules[0].repeat",
      "is not a duration",
    ],
    ["rules:\n  - name: x\n    when: issue_fresh\n", 3, "rules[0].when", "Invalid option"],
    [
      "rules:\n  - name: x\n    when: issue_new\n    levels:\n      - { name: a, targets: [pager] }\n",
      5,
      "rules[0].levels[0].targets[0]",
      'no target "pager"',
    ],
    [
      "escalation:\n  - { name: a, targets: [webhook] }\n  - { name: b, targets: [webhook] }\n",
      2,
      "escalation[0]",
      "needs after",
    ],
    [
      "rules:\n  - name: x\n    when: firmware_regression\n    minImpact: 3\n",
      4,
      "rules[0].minImpact",
      "belongs to issue rules",
    ],
    [
      "rules:\n  - name: x\n    when: issue_new\n    minShare: 0.5\n",
      4,
      "rules[0].minShare",
      "belongs to silent_share",
    ],
    ["targets:\n  - { name: log, type: mqtt }\n", 2, "targets[0].name", '"log" is taken'],
    ["rules:\n  - name: x\n    when: issue_new\n    colour: red\n", 4, "rules[0].colour", "unknown field"],
    ["rules: [\n", 2, "(syntax)", ""],
  ])("reports %j at its line", (text, line, path, message) => {
    const parsed = parseAlertRules(text, "alert-rules.yaml", [WEBHOOK]);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    const error = parsed.errors[0];
    expect(error).toMatchObject({ file: "alert-rules.yaml", line, path });
    expect(error?.message).toContain(message);
    expect(error?.text).toMatch(new RegExp(`^alert-rules\\.yaml:${line}:\\d+: `));
  });

  it("names a missing file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fieldq-rules-"));
    try {
      const missing = await loadAlertRules(join(dir, "none.yaml"), []);
      expect(missing.ok ? [] : missing.errors.map((e) => e.text)).toEqual([
        `${join(dir, "none.yaml")}: no such file`,
      ]);
      await writeFile(
        join(dir, "rules.json"),
        JSON.stringify({ rules: [{ name: "a", when: "issue_regressed" }] }),
      );
      const json = await loadAlertRules(join(dir, "rules.json"), []);
      expect(json.ok && json.value.rules.map((r) => r.kind)).toEqual(["issue_regressed"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

const issue = issueListItem;
const NOW = Date.UTC(2026, 5, 1, 8);
const defaults = defaultAlertRules([WEBHOOK]).rules;
const rule = (name: string) => defaults.find((r) => r.name === name) as AlertRule;

describe("the conditions the rules find", () => {
  it("a new issue at error on 3 devices matches the default rule; on 2, or at warning, it does not", () => {
    expect(issueCondition(rule("new-issue"), issue(), NOW)).toHaveLength(1);
    expect(issueCondition(rule("new-issue"), issue({ affectedDevices: 2 }), NOW)).toEqual([]);
    expect(issueCondition(rule("new-issue"), issue({ worstSeverity: "warning" }), NOW)).toEqual([]);
    expect(issueCondition(rule("new-issue"), issue({ worstSeverity: null }), NOW)).toEqual([]);
  });

  it("keys an issue's condition by rule and issue, and carries its impact", () => {
    const [c] = issueCondition(rule("new-issue"), issue({ worstSeverity: "critical" }), NOW);
    expect(c?.key).toBe("new-issue:issue:issue-1");
    expect(c?.payload).toMatchObject({
      kind: "issue_new",
      severity: "critical",
      refs: { issue: "issue-1", model: "FQ-Print Mk3" },
      detail: { affectedDevices: 3, impact: { severityWeight: 27, affectedDevices: 3, fleetShare: 0.1 } },
    });
  });

  it("applies a rule's minimum impact and models", () => {
    const strict: AlertRule = { ...rule("new-issue"), minImpact: 100 };
    expect(issueCondition(strict, issue(), NOW)).toEqual([]);
    expect(issueCondition(strict, issue({ affectedDevices: 30, activeDevices: 30 }), NOW)).toHaveLength(1);
    const other: AlertRule = { ...rule("new-issue"), models: ["FQ-Modem 7590"] };
    expect(issueCondition(other, issue(), NOW)).toEqual([]);
  });

  it("finds a model silent at 10% and 3 devices, not below either", () => {
    const silent = rule("model-silent");
    expect(silenceCondition(silent, { model: "M", seen: 30, silent: 3, rate: 0.1 })).toHaveLength(1);
    expect(silenceCondition(silent, { model: "M", seen: 20, silent: 2, rate: 0.1 })).toEqual([]);
    expect(silenceCondition(silent, { model: "M", seen: 40, silent: 3, rate: 0.075 })).toEqual([]);
  });

  it("raises a breached promise as critical and a fast burn as warning, each under its own rule", () => {
    const alarm = {
      model: "FQ-Modem 7590",
      promise: "online",
      kind: "availability" as const,
      state: "breached" as const,
      detail: "yesterday 98.9% < 99.5%",
      budgetLeftDays: 0,
      burnRate: 3.2,
    };
    const [breach] = promiseCondition(rule("promise-breached"), alarm);
    expect(breach).toMatchObject({
      key: "promise-breached:promise:FQ-Modem 7590:online",
      payload: {
        kind: "promise_breached",
        severity: "critical",
        refs: { model: "FQ-Modem 7590", promise: "online" },
      },
    });
    expect(promiseCondition(rule("budget-burning"), alarm)).toEqual([]);
    const [burn] = promiseCondition(rule("budget-burning"), { ...alarm, state: "burning" });
    expect(burn?.payload).toMatchObject({ kind: "error_budget_burn", severity: "warning" });
  });

  it("takes each source to its rules: new issues to issue_new, regressed ones to issue_regressed", () => {
    const found = conditionsOf(defaults, {
      nowMs: NOW,
      issues: {
        new: [issue()],
        regressed: [issue({ id: "issue-2", status: "regressed", affectedDevices: 1 })],
      },
      regressions: [],
      silence: [{ model: "M", seen: 10, silent: 5, rate: 0.5 }],
    });
    expect(found.map((c) => c.key)).toEqual([
      "new-issue:issue:issue-1",
      "issue-regressed:issue:issue-2",
      "model-silent:silent:M",
    ]);
  });
});

describe("docs/alert-rules.md", () => {
  it("holds a full example that parses, with every condition-specific field", async () => {
    const { readFile } = await import("node:fs/promises");
    const doc = await readFile(new URL("../../docs/alert-rules.md", import.meta.url), "utf8");
    const example = /```yaml\n# alert-rules\.yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(example).toBeDefined();
    const parsed = parseAlertRules(example ?? "", "alert-rules.md", [WEBHOOK, MQTT]);
    if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.text).join("\n"));
    expect(parsed.value.rules.map((r) => r.name)).toEqual([
      "new-issue",
      "critical-issue",
      "printers-silent",
      "issue-regressed",
      "firmware-regression",
      "model-silent",
      "promise-breached",
      "budget-burning",
    ]);
    expect(parsed.value.rules[1]?.policy.levels.map((l) => [l.name, l.afterMs])).toEqual([
      ["team", 2 * HOUR],
      ["lead", 8 * HOUR],
      ["management", null],
    ]);
  });
});
