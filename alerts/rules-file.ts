import { z } from "zod";
import type { AlertPolicy } from "../analytics/alerting.js";
import { parseDuration } from "../config/duration.js";
import { type FileResult, loadYamlFile, parseYamlAs } from "../config/yaml-file.js";
import { Severity } from "../contract/messages.js";
import { HOUR_MS, MINUTE_MS } from "../contract/time.js";
import { ALERT_TOPIC_ROOT } from "../contract/topics.js";
import {
  ALERT_SEVERITIES,
  type AlertSeverity,
  CONDITION_KINDS,
  type ConditionKind,
  type TargetSpec,
} from "./types.js";

// The alert rules file (FIELDQ_ALERT_RULES, docs/alert-rules.md): which conditions alert, how loud, to whom,
// and how they escalate. YAML or JSON, every error at its file:line:col. Without a file: DEFAULT_RULES, every
// alert to every default target (alerts/targets.ts defaultTargets: "webhook", "mqtt").

/** The default targets' names: a file may name them; one not configured in the environment is left out. */
export const DEFAULT_TARGET_NAMES = ["webhook", "mqtt"] as const;
/** The alert log's lane in the outbox (alerts/outbox.ts LOG_TARGET): no target may take its name. */
const RESERVED_TARGET_NAMES: readonly string[] = [...DEFAULT_TARGET_NAMES, "log"];

/** "10s", "5m", "12h", "2d", or 0. */
const Duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const ms = value === 0 || String(value).trim() === "0" ? 0 : parseDuration(String(value));
  if (ms === undefined) {
    ctx.addIssue({ code: "custom", message: `"${value}" is not a duration such as 10s, 5m, 12h, 2d (or 0)` });
    return z.NEVER;
  }
  return ms;
});
const Name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "lowercase letters, digits, - and _ (at most 64)");

const Target = z.discriminatedUnion("type", [
  z.strictObject({
    name: Name,
    type: z.literal("webhook"),
    url: z.url(),
    secret: z.string().min(16, "must be at least 16 characters"),
  }),
  z.strictObject({
    name: Name,
    type: z.literal("mqtt"),
    /** Notices go to fieldq/alerts/{severity}/{rule} on fieldq's broker, where the alert account reads. */
    topic: z.literal(ALERT_TOPIC_ROOT).default(ALERT_TOPIC_ROOT),
  }),
]);

const Level = z.strictObject({
  name: Name,
  /** How long an unacknowledged alert stays at this level before moving up; absent on the top level. */
  after: Duration.optional(),
  targets: z.array(Name).min(1),
});
const Levels = z.array(Level).min(1).max(10);

const Rule = z.strictObject({
  name: Name,
  when: z.enum(CONDITION_KINDS),
  /** The alert's severity; absent: from what it is about (docs/alert-rules.md). */
  severity: z.enum(ALERT_SEVERITIES).optional(),
  enabled: z.boolean().default(true),
  /** Issue conditions: the issue's worst severity in the window is at least this. */
  minSeverity: Severity.optional(),
  /** Issue and silence conditions: at least this many devices. */
  minDevices: z.number().int().min(1).optional(),
  /** Issue conditions: at least this impact score (analytics/impact.ts). */
  minImpact: z.number().min(0).optional(),
  /** silent_share: at least this share of a model's devices seen in the window. */
  minShare: z.number().gt(0).max(1).optional(),
  /** Only these models (all when absent). */
  models: z.array(z.string().min(1)).min(1).optional(),
  repeat: Duration.optional(),
  hold: Duration.optional(),
  /** This rule's escalation; absent: the file's `escalation`. */
  levels: Levels.optional(),
});

const RulesFile = z.strictObject({
  targets: z.array(Target).default([]),
  escalation: Levels.optional(),
  defaults: z.strictObject({ repeat: Duration.optional(), hold: Duration.optional() }).default({}),
  /** true: the default rules run beside the file's (a file rule of the same name replaces one). */
  includeDefaults: z.boolean().default(false),
  rules: z.array(Rule).default([]),
});
type RulesFile = z.infer<typeof RulesFile>;

/** One rule as the engine uses it: what matches (conditions.ts) and its policy (analytics/alerting.ts). */
export type AlertRule = {
  name: string;
  kind: ConditionKind;
  severity: AlertSeverity | undefined;
  minSeverity: Severity | undefined;
  minDevices: number | undefined;
  minImpact: number | undefined;
  minShare: number | undefined;
  models: readonly string[] | undefined;
  policy: AlertPolicy;
};

export type AlertRules = {
  rules: AlertRule[];
  /** Every target a rule may send to: the file's and the configured defaults. */
  targets: TargetSpec[];
  /** What was left out and why (a default target the file names that is not configured). */
  warnings: string[];
};

export const DEFAULT_REPEAT_MS = 4 * HOUR_MS;
export const DEFAULT_HOLD_MS = 15 * MINUTE_MS;

/** The rules without a file: the issue's list (docs/alert-rules.md), each at level "default". */
export const DEFAULT_RULES: ReadonlyArray<Omit<AlertRule, "policy">> = [
  {
    name: "new-issue",
    kind: "issue_new",
    severity: undefined,
    minSeverity: "error",
    minDevices: 3,
    minImpact: undefined,
    minShare: undefined,
    models: undefined,
  },
  base("issue-regressed", "issue_regressed"),
  base("firmware-regression", "firmware_regression"),
  { ...base("model-silent", "silent_share"), minShare: 0.1, minDevices: 3 },
  base("promise-breached", "promise_breached"),
  base("budget-burning", "error_budget_burn"),
];

function base(name: string, kind: ConditionKind): Omit<AlertRule, "policy"> {
  return {
    name,
    kind,
    severity: undefined,
    minSeverity: undefined,
    minDevices: undefined,
    minImpact: undefined,
    minShare: undefined,
    models: undefined,
  };
}

const policyOf = (name: string, targets: readonly string[]): AlertPolicy => ({
  name,
  levels: [{ name: "default", afterMs: null, targets }],
  repeatMs: DEFAULT_REPEAT_MS,
  holdMs: DEFAULT_HOLD_MS,
});

/** The rules without a file: every default rule to every default target. */
export function defaultAlertRules(defaults: readonly TargetSpec[]): AlertRules {
  const names = defaults.map((t) => t.name);
  return {
    rules: DEFAULT_RULES.map((rule) => ({ ...rule, policy: policyOf(rule.name, names) })),
    targets: [...defaults],
    warnings: [],
  };
}

function rulesSchema() {
  return RulesFile.superRefine((file, ctx) => {
    const names = new Set<string>(DEFAULT_TARGET_NAMES);
    file.targets.forEach((t, i) => {
      if (RESERVED_TARGET_NAMES.includes(t.name) || file.targets.findIndex((o) => o.name === t.name) !== i) {
        ctx.addIssue({ code: "custom", path: ["targets", i, "name"], message: `"${t.name}" is taken` });
      }
      names.add(t.name);
    });
    const checkLevels = (levels: RulesFile["escalation"], path: PropertyKey[]) => {
      levels?.forEach((level, i) => {
        level.targets.forEach((t, j) => {
          if (!names.has(t)) {
            ctx.addIssue({
              code: "custom",
              path: [...path, i, "targets", j],
              message: `no target "${t}" (define it under targets, or use ${DEFAULT_TARGET_NAMES.join(" or ")})`,
            });
          }
        });
        if (i < levels.length - 1 && level.after === undefined) {
          ctx.addIssue({
            code: "custom",
            path: [...path, i],
            message: "every level but the last needs after",
          });
        }
      });
    };
    checkLevels(file.escalation, ["escalation"]);
    file.rules.forEach((rule, i) => {
      checkLevels(rule.levels, ["rules", i, "levels"]);
      if (file.rules.findIndex((o) => o.name === rule.name) !== i) {
        ctx.addIssue({ code: "custom", path: ["rules", i, "name"], message: `"${rule.name}" is taken` });
      }
      if (rule.minShare !== undefined && rule.when !== "silent_share") {
        ctx.addIssue({ code: "custom", path: ["rules", i, "minShare"], message: "belongs to silent_share" });
      }
      const issueOnly = rule.when === "issue_new" || rule.when === "issue_regressed";
      if (rule.minDevices !== undefined && !issueOnly && rule.when !== "silent_share") {
        ctx.addIssue({
          code: "custom",
          path: ["rules", i, "minDevices"],
          message: "belongs to issue and silent_share rules",
        });
      }
      for (const field of ["minSeverity", "minImpact"] as const) {
        if (rule[field] !== undefined && !issueOnly) {
          ctx.addIssue({ code: "custom", path: ["rules", i, field], message: "belongs to issue rules" });
        }
      }
    });
  });
}

/** The file's rules over the configured default targets. */
export function parseAlertRules(
  text: string,
  file: string,
  defaults: readonly TargetSpec[],
): FileResult<AlertRules> {
  const parsed = parseYamlAs(rulesSchema(), text, file, "(rules)");
  return parsed.ok ? { ok: true, value: rulesOf(parsed.value, defaults) } : parsed;
}

/** The rules file, or the defaults when there is none; a broken file is its errors (file:line:col). */
export async function loadAlertRules(
  file: string | undefined,
  defaults: readonly TargetSpec[],
): Promise<FileResult<AlertRules>> {
  if (file === undefined) return { ok: true, value: defaultAlertRules(defaults) };
  const parsed = await loadYamlFile(rulesSchema(), file, "(rules)");
  return parsed.ok ? { ok: true, value: rulesOf(parsed.value, defaults) } : parsed;
}

function rulesOf(file: RulesFile, defaults: readonly TargetSpec[]): AlertRules {
  const configured = new Set(defaults.map((t) => t.name));
  const warnings = new Set<string>();
  const everyTarget = [...defaults.map((t) => t.name), ...file.targets.map((t) => t.name)];
  const usable = (targets: readonly string[]) =>
    targets.filter((t) => {
      const missing = (DEFAULT_TARGET_NAMES as readonly string[]).includes(t) && !configured.has(t);
      if (missing) warnings.add(`target "${t}" is not configured (${envOf(t)}): left out`);
      return !missing;
    });
  const levelsOf = (levels: RulesFile["escalation"]) =>
    levels === undefined
      ? [{ name: "default", afterMs: null, targets: everyTarget }]
      : levels.map((l) => ({ name: l.name, afterMs: l.after ?? null, targets: usable(l.targets) }));
  const fileLevels = levelsOf(file.escalation);
  const repeatMs = (own: number | undefined) => {
    const ms = own ?? file.defaults.repeat ?? DEFAULT_REPEAT_MS;
    return ms > 0 ? ms : null;
  };
  const holdMs = (own: number | undefined) => own ?? file.defaults.hold ?? DEFAULT_HOLD_MS;
  const own: AlertRule[] = file.rules
    .filter((r) => r.enabled)
    .map((r) => ({
      name: r.name,
      kind: r.when,
      severity: r.severity,
      minSeverity: r.minSeverity,
      minDevices: r.minDevices,
      minImpact: r.minImpact,
      minShare: r.minShare,
      models: r.models,
      policy: {
        name: r.name,
        levels: r.levels === undefined ? fileLevels : levelsOf(r.levels),
        repeatMs: repeatMs(r.repeat),
        holdMs: holdMs(r.hold),
      },
    }));
  const named = new Set(file.rules.map((r) => r.name));
  const fromDefaults: AlertRule[] = file.includeDefaults
    ? DEFAULT_RULES.filter((r) => !named.has(r.name)).map((r) => ({
        ...r,
        policy: {
          name: r.name,
          levels: fileLevels,
          repeatMs: repeatMs(undefined),
          holdMs: holdMs(undefined),
        },
      }))
    : [];
  return {
    rules: [...own, ...fromDefaults],
    targets: [...defaults, ...file.targets],
    warnings: [...warnings],
  };
}

const envOf = (target: string) =>
  target === "webhook"
    ? "FIELDQ_WEBHOOK_URL and FIELDQ_WEBHOOK_SECRET"
    : "FIELDQ_ALERT_MQTT_USERNAME and _PASSWORD";
