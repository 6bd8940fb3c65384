import { readFile } from "node:fs/promises";
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

// The one reader of fieldq's YAML (or JSON) files (scenarios, alert rules, service promises): parsed with a
// zod schema, every error at its file, line and column, the way an editor jumps to it.

/** One thing wrong with a file, at a place in it (line and column count from 1; 0 when the file is unread). */
export type FileError = {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
  /** "file:line:col: path: message". */
  text: string;
};

export type FileResult<T> = { ok: true; value: T } | { ok: false; errors: FileError[] };

/**
 * The text as a T: YAML or JSON (JSON is YAML). root names the whole document in messages about it
 * ("(scenario)").
 */
export function parseYamlAs<T>(
  schema: z.ZodType<T>,
  text: string,
  fileName: string,
  root = "(file)",
): FileResult<T> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const at = (offset: number, path: string, message: string): FileError => {
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
  const parsed = schema.safeParse(doc.toJS());
  if (parsed.success) return { ok: true, value: parsed.data };
  const errors = parsed.error.issues.flatMap((issue) => {
    // One error per unknown key, each at its own place.
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [undefined];
    return keys.map((key) => {
      const path = key === undefined ? [...issue.path] : [...issue.path, key];
      const { offset, missing } = locate(doc, path, issue.code);
      return at(offset, formatPath(path, root), missing ? "is required" : messageOf(issue));
    });
  });
  errors.sort((a, b) => a.line - b.line || a.col - b.col);
  return { ok: false, errors };
}

/** A file that could not be read (or does not exist) as one error. */
export function notRead(file: string, message: string): FileError {
  return { file, line: 0, col: 0, path: "", message, text: `${file}: ${message}` };
}

/** Reads and parses a file; one that is missing or unreadable is an error naming it. */
export async function loadYamlFile<T>(
  schema: z.ZodType<T>,
  path: string,
  root?: string,
): Promise<FileResult<T>> {
  const text = await readFile(path, "utf8").catch((error: NodeJS.ErrnoException) => error);
  if (typeof text !== "string") {
    return {
      ok: false,
      errors: [notRead(path, text.code === "ENOENT" ? "no such file" : text.message)],
    };
  }
  return parseYamlAs(schema, text, path, root);
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
function formatPath(path: readonly PropertyKey[], root: string): string {
  if (path.length === 0) return root;
  return path
    .map((segment, index) => {
      if (typeof segment === "number") return `[${segment}]`;
      const text = String(segment);
      if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(text)) return index === 0 ? text : `.${text}`;
      return `[${JSON.stringify(text)}]`;
    })
    .join("");
}
