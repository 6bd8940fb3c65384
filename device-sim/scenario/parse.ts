import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import {
  type Document,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  visit,
} from "yaml";
import type { z } from "zod";
import { Scenario } from "./schema.js";

/** One thing wrong with a scenario file, at a place in it (line and column count from 1). */
export type ScenarioError = {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
  text: string;
};

export type ScenarioResult = { ok: true; scenario: Scenario } | { ok: false; errors: ScenarioError[] };

/** The shipped scenarios live in scenarios/ at the repository's root, wherever the process was started. */
export const SCENARIO_DIR = fileURLToPath(new URL("../../scenarios/", import.meta.url));
export const DEFAULT_SCENARIO = "home-demo";

const SCENARIO_EXTENSIONS = [".yaml", ".yml", ".json"] as const;

/** A scenario from YAML or JSON text (JSON is YAML); errors name the file, line and column. */
export function parseScenario(text: string, fileName: string): ScenarioResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const at = (offset: number, path: string, message: string): ScenarioError => {
    const { line, col } = lineCounter.linePos(offset);
    // linePos gives line 0 before the first newline is seen.
    const position = { line: Math.max(line, 1), col };
    return {
      file: fileName,
      ...position,
      path,
      message,
      text: `${fileName}:${position.line}:${col}: ${path}: ${message}`,
    };
  };

  if (doc.errors.length > 0) {
    return { ok: false, errors: doc.errors.map((error) => at(error.pos[0], "(syntax)", error.message)) };
  }
  keepKeysAsWritten(doc);
  const parsed = Scenario.safeParse(doc.toJS());
  if (parsed.success) return { ok: true, scenario: parsed.data };
  const errors = parsed.error.issues.flatMap((issue) => {
    // One error per unknown key, each at its own place.
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [undefined];
    return keys.map((key) => {
      const path = key === undefined ? [...issue.path] : [...issue.path, key];
      const { offset, missing } = locate(doc, path, issue.code);
      return at(offset, formatPath(path), missing ? "is required" : messageOf(issue));
    });
  });
  errors.sort((a, b) => a.line - b.line || a.col - b.col);
  return { ok: false, errors };
}

/**
 * A shipped scenario by name ("home-demo" is scenarios/home-demo.yaml), or a file by path. A name is anything
 * without a slash or an extension.
 */
export async function loadScenario(pathOrName: string): Promise<ScenarioResult> {
  const isName = !/[/\\]/.test(pathOrName) && !SCENARIO_EXTENSIONS.some((ext) => pathOrName.endsWith(ext));
  const candidates = isName
    ? SCENARIO_EXTENSIONS.map((ext) => `${SCENARIO_DIR}${pathOrName}${ext}`)
    : [pathOrName];
  for (const file of candidates) {
    const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => error);
    if (typeof text === "string") return parseScenario(text, file);
    if (text.code !== "ENOENT") return notLoaded(file, text.message);
  }
  const shipped = await listShippedScenarios();
  return notLoaded(
    pathOrName,
    isName
      ? `no shipped scenario of that name; shipped: ${shipped.join(", ")}`
      : "no such file (a shipped scenario is named without a path or extension)",
  );
}

/** The names of the scenarios in scenarios/. */
export async function listShippedScenarios(): Promise<string[]> {
  const files = await readdir(SCENARIO_DIR).catch(() => []);
  return files
    .filter((file) => SCENARIO_EXTENSIONS.some((ext) => file.endsWith(ext)))
    .map((file) => file.replace(/\.(yaml|yml|json)$/, ""))
    .sort();
}

function notLoaded(file: string, message: string): ScenarioResult {
  return { ok: false, errors: [{ file, line: 0, col: 0, path: "", message, text: `${file}: ${message}` }] };
}

/** Map keys as written: a version key 7.30 would otherwise become the number 7.3 and then the text "7.3". */
function keepKeysAsWritten(doc: Document) {
  visit(doc, {
    Pair(_, pair) {
      if (isScalar(pair.key) && typeof pair.key.value !== "string" && pair.key.source !== undefined) {
        pair.key.value = pair.key.source;
      }
    },
  });
}

/**
 * The place of an issue in the document: the value at its path, the key for an unknown or invalid key, and
 * the nearest enclosing node when the path leads to nothing (a missing field).
 */
function locate(doc: Document, path: readonly PropertyKey[], code: z.core.$ZodIssue["code"]) {
  const pointAtKey = code === "unrecognized_keys" || code === "invalid_key";

  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const [depth, segment] of path.entries()) {
    const last = depth === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isPair(item) && isScalar(item.key) && item.key.value === segment,
      );
      if (pair === undefined) return { offset, missing: last && code === "invalid_type" };
      const keyStart = rangeStart(pair.key);
      const valueStart = rangeStart(pair.value);
      offset = (last && pointAtKey ? keyStart : (valueStart ?? keyStart)) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number" && node.items[segment] !== undefined) {
      node = node.items[segment];
      offset = rangeStart(node) ?? offset;
    } else {
      return { offset, missing: false };
    }
  }
  return { offset, missing: false };
}

const rangeStart = (node: unknown) => (node as Node | null | undefined)?.range?.[0];

function messageOf(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") return "unknown field";
  if (issue.code === "invalid_key") return issue.issues[0]?.message ?? issue.message;
  return issue.message;
}

/** fleet[0].firmware["7.57"]: dots between names, brackets for indices and keys that are not names. */
function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(scenario)";
  return path
    .map((segment, index) => {
      if (typeof segment === "number") return `[${segment}]`;
      const text = String(segment);
      if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(text)) return index === 0 ? text : `.${text}`;
      return `[${JSON.stringify(text)}]`;
    })
    .join("");
}
