import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import type { ClientResponse } from "hono/client";
import { createApiClient } from "../api/client.js";
import { ApiTokens, Env, ROLES } from "../config/env.js";
import { Health, MAX_PAGE } from "../contract/api/common.js";
import { MAX_AFFECTED_DEVICES } from "../contract/api/issues.js";
import { formatDuration, iso } from "../contract/time.js";
import {
  collectAnswers,
  parseGroundTruth,
  regressionAnswerOf,
  type Score,
  type ScoreApi,
  scoreRun,
  type Window,
} from "./score.js";

// `fieldq sim score <ground-truth.json>`: asks a running fieldq API what it found of what a run injected.

/** The environment it reads (process.env fits); the command parses it itself, as it parses its flags. */
export type ScoreCommandEnv = Readonly<Record<string, string | undefined>>;

export type ScoreCommandIo = {
  out: (line: string) => void;
  err: (line: string) => void;
  /** The HTTP client; global fetch unless given. */
  fetch?: typeof fetch;
  /** The moment silence is judged at; Date.now unless given. */
  now?: () => number;
};

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

function defaultApiUrl(env: ScoreCommandEnv): string {
  const port = Env.shape.FIELDQ_HTTP_PORT.safeParse(env.FIELDQ_HTTP_PORT);
  return `http://127.0.0.1:${port.success && port.data !== 0 ? port.data : 8080}`;
}

/** The lowest-ranked token of FIELDQ_API_TOKENS, the stack's own list, when no token is given. */
function configuredToken(env: ScoreCommandEnv): string | undefined {
  const tokens = ApiTokens.safeParse(env.FIELDQ_API_TOKENS);
  if (!tokens.success) return undefined;
  const ranked = [...tokens.data].sort(([, a], [, b]) => ROLES.indexOf(a.role) - ROLES.indexOf(b.role));
  return ranked[0]?.[0];
}

function usage(env: ScoreCommandEnv): string[] {
  return [
    "Usage: fieldq sim score <ground-truth.json> [options]",
    "",
    "Asks the fieldq API what it found of the problems a simulator run injected (the ground truth the run",
    "wrote) and reports, per problem, whether it was found and how long after its onset, the false alarms,",
    "precision, recall and time to detect. docs/simulator.md (Scoring) explains the rules.",
    "",
    "Options:",
    `  --api <url>      the fieldq API (default FIELDQ_API_URL, else ${defaultApiUrl(env)})`,
    "  --token <t>      a bearer token, viewer is enough (default FIELDQ_API_TOKEN, else the",
    "                   lowest-ranked token of FIELDQ_API_TOKENS)",
    "  --json           print the score as JSON instead of a table",
    "  -h, --help       show this help",
    "",
    "Exit status: 0 when scoring ran (whatever the score), 1 when the API cannot be reached or fails,",
    "2 on a usage error, an unreadable or invalid ground-truth file, or a token the API refuses.",
  ];
}

const PARSE_ARGS_OPTIONS = {
  help: { type: "boolean", short: "h" },
  api: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean" },
} as const;

/** How a request to the API failed: the command's exit status depends on it. */
export class ApiCallError extends Error {
  readonly kind: "unreachable" | "refused" | "failed";
  constructor(kind: ApiCallError["kind"], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ApiCallError";
    this.kind = kind;
  }
}

const windowQuery = (w: Window) => ({ from: iso(w.fromMs), to: iso(w.toMs) });

const MAX_RATE_LIMITED_ATTEMPTS = 30;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The body of a route's 200 answer, from the union of its typed answers. */
type Ok<R> = R extends ClientResponse<infer T, 200, "json"> ? T : never;

/** ScoreApi over HTTP, through the API's typed client (api/client.ts). */
export function createHttpScoreApi(options: { baseUrl: string; token: string; fetch?: typeof fetch }) {
  const doFetch = options.fetch ?? fetch;
  const base = options.baseUrl.replace(/\/+$/, "").replace(/\/api\/v1$/, "");

  /** One request; a 429 (the API rations requests per token, FIELDQ_API_RATE) waits its turn and asks again. */
  const patient: typeof fetch = async (input, init) => {
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await doFetch(input, init);
      } catch (error) {
        const cause =
          error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
        throw new ApiCallError("unreachable", `cannot reach the fieldq API at ${base}: ${cause}`, {
          cause: error,
        });
      }
      if (response.status !== 429 || attempt >= MAX_RATE_LIMITED_ATTEMPTS) return response;
      await response.body?.cancel();
      const seconds = Number(response.headers.get("retry-after") ?? "1");
      await sleep(Math.min(Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 1000, 10_000));
    }
  };
  const client = createApiClient(base, { token: options.token, fetch: patient });

  /** The body of a 200; undefined for a 404 when the caller expects one; an ApiCallError otherwise. */
  async function answer<R extends ClientResponse<unknown, number, string>>(
    pending: Promise<R>,
    missing: "undefined" | "error" = "error",
  ): Promise<Ok<R> | undefined> {
    const response = await pending;
    const what = `GET ${new URL(response.url, base).pathname}`;
    if (response.status === 404 && missing === "undefined") return undefined;
    if (response.status === 401 || response.status === 403) {
      throw new ApiCallError(
        "refused",
        `the API refused the token (${response.status}): give a viewer token with --token or FIELDQ_API_TOKEN`,
      );
    }
    if (response.status !== 200) {
      const body: unknown = await response.json().catch(() => undefined);
      const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
      throw new ApiCallError(
        "failed",
        `${what} answered ${response.status}${typeof message === "string" ? `: ${message}` : ""}`,
      );
    }
    // A 200 carries the route's 200 body, as the typed client declares it.
    return (await response.json()) as Ok<R>;
  }

  async function required<R extends ClientResponse<unknown, number, string>>(
    pending: Promise<R>,
  ): Promise<Ok<R>> {
    const body = await answer(pending);
    if (body === undefined) throw new ApiCallError("failed", "no answer");
    return body;
  }

  /** Every item of a paged list, MAX_PAGE at a time. */
  async function allPages<T>(page: (offset: number) => Promise<{ items: T[]; nextOffset: number | null }>) {
    const items: T[] = [];
    for (let offset: number | null = 0; offset !== null; ) {
      const next: { items: T[]; nextOffset: number | null } = await page(offset);
      items.push(...next.items);
      offset = next.nextOffset;
    }
    return items;
  }
  const paging = (offset: number) => ({ limit: String(MAX_PAGE), offset: String(offset) });
  const v1 = client.api.v1;

  const api: ScoreApi & { health(): Promise<Health> } = {
    async health() {
      const url = `${base}/api/v1/health`;
      const response = await v1.health.$get({ query: {} });
      const parsed = Health.safeParse(await response.json().catch(() => undefined));
      if (!parsed.success) throw new ApiCallError("unreachable", `${url} is not a fieldq API`);
      if (parsed.data.status !== "ok") {
        throw new ApiCallError("unreachable", `the fieldq API at ${base} cannot reach InfluxDB`);
      }
      return parsed.data;
    },
    regressions: async () =>
      (await required(v1.firmware.regressions.$get({ query: {} }))).items.map(regressionAnswerOf),
    issues: (w) =>
      allPages((offset) => required(v1.issues.$get({ query: { ...windowQuery(w), ...paging(offset) } }))),
    issue: (id, w) =>
      answer(
        v1.issues[":id"].$get({
          param: { id },
          query: { ...windowQuery(w), devicesLimit: String(MAX_AFFECTED_DEVICES) },
        }),
        "undefined",
      ),
    silence: (w) => required(v1.silence.$get({ query: windowQuery(w) })),
    devices: () => allPages((offset) => required(v1.devices.$get({ query: paging(offset) }))),
    fleetSummary: (w) => required(v1.fleet.summary.$get({ query: { ...windowQuery(w), groupBy: "model" } })),
  };
  return api;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
const share = (n: number | null) => (n === null ? "–" : n.toFixed(2));
const minute = (isoTime: string) => `${isoTime.slice(0, 16).replace("T", " ")}`;

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd(),
  );
}

/** The score as people read it. */
export function formatScore(score: Score): string[] {
  const lines = [
    `Scenario ${score.scenario} (seed ${score.seed}), ${minute(score.from)} → ${minute(score.to)} UTC; silence judged at ${minute(score.judgedAt)}`,
    "",
    ...table([
      ["problem", "type", "result", "detected after", "evidence"],
      ...score.problems.map((p) => [
        p.id,
        p.type,
        p.status === "not_scored" ? "not scored" : p.status,
        p.timeToDetectMs === null ? "–" : formatDuration(p.timeToDetectMs),
        p.evidence,
      ]),
    ]),
    "",
  ];
  const falseAlarms = score.alarms.filter((a) => !a.injected);
  const raised = plural(score.alarms.length, "alarm");
  if (score.alarms.length === 0) lines.push("False alarms: none (no alarm raised)");
  else if (falseAlarms.length === 0) lines.push(`False alarms: none (${raised}, all injected)`);
  else {
    lines.push(`False alarms: ${falseAlarms.length} of ${raised}`);
    lines.push(...table(falseAlarms.map((a) => [`  ${a.signal}`, a.subject, a.evidence])));
  }
  const found = score.problems.filter((p) => p.status === "found").length;
  const scored = score.problems.filter((p) => p.status !== "not_scored").length;
  const ttd = score.timeToDetect;
  lines.push(
    "",
    `precision ${share(score.precision)} (${score.alarms.length - score.falseAlarms} of ${raised} true)` +
      ` · recall ${share(score.recall)} (${found} of ${plural(scored, "problem")} scored)` +
      ` · time to detect ${
        ttd.medianMs === null || ttd.maxMs === null
          ? "–"
          : `median ${formatDuration(ttd.medianMs)}, max ${formatDuration(ttd.maxMs)} (${ttd.count} timed)`
      }`,
  );
  for (const note of score.notes) lines.push(`note: ${note}`);
  return lines;
}

/** `fieldq sim score …`; resolves to the exit status. */
export async function scoreCommand(
  argv: string[],
  env: ScoreCommandEnv,
  io: ScoreCommandIo,
): Promise<number> {
  const fail = (message: string, status: number) => {
    io.err(`fieldq sim score: ${message}`);
    return status;
  };
  let parsed: ReturnType<
    typeof parseArgs<{
      args: string[];
      strict: true;
      allowPositionals: true;
      options: typeof PARSE_ARGS_OPTIONS;
    }>
  >;
  try {
    parsed = parseArgs({ args: argv, strict: true, allowPositionals: true, options: PARSE_ARGS_OPTIONS });
  } catch (error) {
    return fail(`${error instanceof Error ? error.message : String(error)} (see --help)`, EXIT_USAGE);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    for (const line of usage(env)) io.out(line);
    return EXIT_OK;
  }
  if (positionals.length !== 1 || positionals[0] === undefined) {
    return fail("give one ground-truth file, the one a simulator run wrote (see --help)", EXIT_USAGE);
  }
  const path = positionals[0];

  const apiUrl = values.api ?? env.FIELDQ_API_URL ?? defaultApiUrl(env);
  if (!URL.canParse(apiUrl) || !/^https?:$/.test(new URL(apiUrl).protocol)) {
    return fail(`--api "${apiUrl}" is not an http(s) URL such as http://127.0.0.1:8080`, EXIT_USAGE);
  }
  const token = values.token ?? env.FIELDQ_API_TOKEN ?? configuredToken(env);
  if (token === undefined || token === "") {
    return fail("no API token: give --token, or set FIELDQ_API_TOKEN (a viewer token is enough)", EXIT_USAGE);
  }

  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    return fail(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, EXIT_USAGE);
  }
  const truth = parseGroundTruth(text);
  if (!truth.ok) {
    io.err(`fieldq sim score: ${path} is not a ground-truth file:`);
    for (const problem of truth.problems) io.err(`  ${problem}`);
    return EXIT_USAGE;
  }

  const api = createHttpScoreApi({ baseUrl: apiUrl, token, ...(io.fetch ? { fetch: io.fetch } : {}) });
  let score: Score;
  try {
    await api.health();
    const answers = await collectAnswers(truth.truth, api, { nowMs: (io.now ?? Date.now)() });
    score = scoreRun(truth.truth, answers);
  } catch (error) {
    if (!(error instanceof ApiCallError)) throw error;
    return fail(error.message, error.kind === "refused" ? EXIT_USAGE : EXIT_FAILED);
  }
  if (values.json) io.out(JSON.stringify(score, null, 2));
  else for (const line of formatScore(score)) io.out(line);
  return EXIT_OK;
}
