import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { type FileError, notRead, parseYamlAs } from "../../config/yaml-file.js";
import { Scenario } from "./schema.js";

/** One thing wrong with a scenario file, at a place in it (line and column count from 1). */
export type ScenarioError = FileError;

export type ScenarioResult = { ok: true; scenario: Scenario } | { ok: false; errors: ScenarioError[] };

/** The shipped scenarios live in scenarios/ at the repository's root, wherever the process was started. */
export const SCENARIO_DIR = fileURLToPath(new URL("../../scenarios/", import.meta.url));
export const DEFAULT_SCENARIO = "home-demo";

const SCENARIO_EXTENSIONS = [".yaml", ".yml", ".json"] as const;

/** A scenario from YAML or JSON text (JSON is YAML); errors name the file, line and column. */
export function parseScenario(text: string, fileName: string): ScenarioResult {
  const parsed = parseYamlAs(Scenario, text, fileName, "(scenario)");
  return parsed.ok ? { ok: true, scenario: parsed.value } : parsed;
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
  return { ok: false, errors: [notRead(file, message)] };
}
