import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { Label, MetricName } from "../contract/messages.js";
import type { Result } from "../contract/result.js";

// Faults group into issues by a fingerprint: kind + model + fault code, shaped by rules from a JSON file
// (docs/fingerprint-rules.example.json). A rule matches on kind, model and code (each optional, exact,
// case-sensitive; `code` may be a list; an empty match matches every fault) and has one or more effects:
//   mergeAs: "NAME"             the key uses NAME instead of the fault's code (needs match.code)
//   addComponent: true | false  the key gets "#component=<component>"; false exempts what a later rule covers
//   splitBy: { context: "band" | ["band", …] }  the key gets "#band=<context.band>" per name, in order
// Precedence: for each effect on its own, the first rule in file order that matches and has that effect
// wins, so one fault can be merged by rule 1, split by rule 3 and get its component from rule 4. A rule
// matches on the fault's own code, never on a name an earlier rule merged it into.
// Key: "kind/model/code[#component=…][#name=…]…". Values are percent-escaped for "%", "/", "#", "=" and
// control characters, so the key parses back unambiguously. An absent, null or empty component or context
// value leaves its segment out: those faults stay in the unsplit issue.

const CodeMatch = z.union([Label, z.array(Label).min(1)]);

export const FingerprintMatch = z.strictObject({
  kind: Label.optional(),
  model: Label.optional(),
  code: CodeMatch.optional(),
});
export type FingerprintMatch = z.infer<typeof FingerprintMatch>;

const SplitName = MetricName.refine((name) => name !== "component", "use addComponent for the component");

export const FingerprintRule = z
  .strictObject({
    description: z.string().max(500).optional(),
    match: FingerprintMatch,
    mergeAs: Label.optional(),
    addComponent: z.boolean().optional(),
    splitBy: z
      .strictObject({
        context: z.union([SplitName, z.array(SplitName).min(1)]),
      })
      .optional(),
  })
  .superRefine((rule, ctx) => {
    if (rule.mergeAs === undefined && rule.addComponent === undefined && rule.splitBy === undefined) {
      ctx.addIssue({ code: "custom", message: "needs an effect: mergeAs, addComponent or splitBy" });
    }
    if (rule.mergeAs !== undefined && rule.match.code === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["mergeAs"],
        message: "needs match.code: name the codes it merges",
      });
    }
  });
export type FingerprintRule = z.infer<typeof FingerprintRule>;

export const FingerprintRules = z.strictObject({
  version: z.literal(1),
  rules: z.array(FingerprintRule).max(1000),
});
export type FingerprintRules = z.infer<typeof FingerprintRules>;

/** No rules: every issue is kind + model + code. */
export const DEFAULT_FINGERPRINT_RULES: FingerprintRules = { version: 1, rules: [] };

export type RulesIssue = { path: string; message: string };
export type RulesError = {
  code: "INVALID_JSON" | "INVALID_RULES" | "UNREADABLE";
  /** One line naming the file (when read from one), the path in it and the problem. */
  message: string;
  file?: string;
  issues: RulesIssue[];
};
export type RulesResult = Result<FingerprintRules, RulesError>;

/** "rules[1].splitBy.context" */
function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out === "" ? "(root)" : out;
}

export function parseFingerprintRules(json: unknown): RulesResult {
  const parsed = FingerprintRules.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issues = parsed.error.issues.map((issue) => ({
    path: formatPath(issue.path),
    message: issue.message,
  }));
  const first = issues[0];
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  return {
    ok: false,
    error: {
      code: "INVALID_RULES",
      message: first ? `${first.path}: ${first.message}${more}` : "invalid fingerprint rules",
      issues,
    },
  };
}

/** Reads a rules file. A missing file means the default rules; anything else wrong is an error value. */
export async function loadFingerprintRules(path: string): Promise<RulesResult> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { ok: true, value: DEFAULT_FINGERPRINT_RULES };
    const detail = cause instanceof Error ? cause.message : String(cause);
    return {
      ok: false,
      error: { code: "UNREADABLE", message: `${path}: ${detail}`, file: path, issues: [] },
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    return {
      ok: false,
      error: { code: "INVALID_JSON", message: `${path}: not JSON: ${detail}`, file: path, issues: [] },
    };
  }
  const result = parseFingerprintRules(json);
  if (result.ok) return result;
  return { ok: false, error: { ...result.error, message: `${path}: ${result.error.message}`, file: path } };
}

export type FaultIdentity = {
  kind: string;
  model: string;
  code: string;
  component?: string | null | undefined;
  context?: Record<string, unknown> | null | undefined;
};

export type FingerprintParts = {
  kind: string;
  model: string;
  /** The code in the key: the fault's own, or the name a rule merged it into. */
  code: string;
  faultCode: string;
  /** Present when a rule added the component and the fault has one. */
  component?: string;
  /** The context values the key was split by, in key order; absent values are left out. */
  split: Record<string, string>;
};

export type Fingerprint = { key: string; id: string; parts: FingerprintParts };

function matches(match: FingerprintMatch, fault: FaultIdentity): boolean {
  if (match.kind !== undefined && match.kind !== fault.kind) return false;
  if (match.model !== undefined && match.model !== fault.model) return false;
  if (match.code === undefined) return true;
  return typeof match.code === "string" ? match.code === fault.code : match.code.includes(fault.code);
}

function firstWith<K extends "mergeAs" | "addComponent" | "splitBy">(
  rules: readonly FingerprintRule[],
  fault: FaultIdentity,
  effect: K,
): FingerprintRule[K] {
  return rules.find((rule) => rule[effect] !== undefined && matches(rule.match, fault))?.[effect];
}

/** Percent-escapes the key's separators and control characters; everything else stays readable. */
export function escapeKeyPart(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are escaped on purpose
  return value.replace(/[%/#=\u0000-\u001f\u007f]/g, (c) => {
    const hex = c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0");
    return `%${hex}`;
  });
}

function contextValue(value: unknown): string | null {
  if (value === undefined || value === null || value === "") return null;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value) ?? null;
}

/** A short, stable, URL-safe id for a key: the first 16 characters of its base64url SHA-256. */
export const fingerprintId = (key: string): string =>
  createHash("sha256").update(key, "utf8").digest("base64url").slice(0, 16);

export function fingerprint(fault: FaultIdentity, rules: FingerprintRules): Fingerprint {
  const mergeAs = firstWith(rules.rules, fault, "mergeAs");
  const addComponent = firstWith(rules.rules, fault, "addComponent") === true;
  const splitBy = firstWith(rules.rules, fault, "splitBy");

  const code = mergeAs ?? fault.code;
  const parts: FingerprintParts = {
    kind: fault.kind,
    model: fault.model,
    code,
    faultCode: fault.code,
    split: {},
  };
  let key = [fault.kind, fault.model, code].map(escapeKeyPart).join("/");

  if (addComponent && fault.component) {
    parts.component = fault.component;
    key += `#component=${escapeKeyPart(fault.component)}`;
  }
  const names = splitBy === undefined ? [] : [splitBy.context].flat();
  const context = fault.context ?? {};
  for (const name of new Set(names)) {
    const value = Object.hasOwn(context, name) ? contextValue(context[name]) : null;
    if (value === null) continue;
    parts.split[name] = value;
    key += `#${name}=${escapeKeyPart(value)}`;
  }
  return { key, id: fingerprintId(key), parts };
}

/**
 * The issue a fingerprint's occurrences belong to, after manual merges (`merges`: issue id → the issue it
 * was merged into). Chains are followed (a→b, b→c: a resolves to c). A cycle resolves every member to the
 * cycle's smallest id, so its issues still end up together, whichever one the walk starts from.
 */
export function resolveIssueId(fingerprintId: string, merges: ReadonlyMap<string, string>): string {
  const path: string[] = [];
  const seen = new Set<string>();
  let current = fingerprintId;
  while (!seen.has(current)) {
    path.push(current);
    seen.add(current);
    const next = merges.get(current);
    if (next === undefined) return current;
    current = next;
  }
  const cycle = path.slice(path.indexOf(current));
  return cycle.reduce((min, id) => (id < min ? id : min));
}
