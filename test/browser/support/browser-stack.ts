import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { type Alerting, startAlerting } from "../../../alerts/start-alerting.js";
import { runBackfill } from "../../../device-sim/backfill.js";
import { parseScenario, SCENARIO_DIR } from "../../../device-sim/scenario/parse.js";
import { planScenario, type ScenarioPlan } from "../../../device-sim/scenario/plan.js";
import { silentLogger } from "../../../observe/logger.js";
import { createReadServices, type ReadServices } from "../../../services/read-services.js";
import { startFieldq, startIngestBroker } from "../../../stack/start-stack.js";
import { createInflux, createPointWriter } from "../../../storage/influx.js";
import { testDatabase } from "../../support/influx.js";
import { TEST_SECRET, testConfig } from "../../support/stack.js";

// The real stack for the browser tests, started once per file: broker, ingest, rollups and the regression
// runner in one handle, the API with the dashboard beside it, the home demo's three days backfilled into a
// database of the test's own, and Debian's chromium (never a downloaded one). The demo's promises file is
// read, and alerting runs beside the broker as in `fieldq start`: one evaluation once the backfill is rolled up
// (no periodic one during the stories), its notices to no target but the alert log.

export const VIEWER = "viewer-token-1";
export const OPERATOR = "operator-token-1";

/** Screenshots of every run; gitignored. */
export const ARTIFACTS = resolve("test-artifacts/browser");

export type BrowserStack = {
  baseUrl: string;
  browser: Browser;
  plan: ScenarioPlan;
  /** How long the backfill, the settling after it and the first alert evaluation took, for the budget. */
  timings: { backfillMs: number; settledMs: number; alertedMs: number };
  close(): Promise<void>;
};

/** The home demo ending now. */
async function homeDemo(nowMs: number): Promise<ScenarioPlan> {
  const file = join(SCENARIO_DIR, "home-demo.yaml");
  const parsed = parseScenario(await readFile(file, "utf8"), file);
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => e.text).join("\n"));
  const scenario = {
    ...parsed.scenario,
    start: { from: "now" as const, offsetMs: -parsed.scenario.duration },
    // A report every 15 minutes instead of every minute: on this 2-core machine, loaded by other work, the
    // backfill and its drain took 3 min 15 s at 5 min and 1 min 30 s at 15 min (35,000 samples; most of the
    // 16,500 messages are then faults and events). The story stays: faults come at a rate per device-hour.
    cadence: 15 * 60_000,
  };
  return planScenario(scenario, { nowMs });
}

export async function startBrowserStack(): Promise<BrowserStack> {
  const started = Date.now();
  const plan = await homeDemo(started);
  const db = await testDatabase("browser");
  const dir = await mkdtemp(join(tmpdir(), "fieldq-browser-"));
  // Live refreshes and the stories' page loads share a token: a burst the size of a story.
  const config = testConfig(db, join(dir, "data"), {
    FIELDQ_API_BURST: "1000",
    FIELDQ_API_RATE: "200",
    FIELDQ_PROMISES: resolve("docs/promises.example.yaml"),
    // Evaluated once, below; a periodic evaluation would change the alerts under a story.
    FIELDQ_ALERT_INTERVAL: "1h",
  });
  const ingest = await startIngestBroker(config, { logger: silentLogger });
  const api = await startFieldq(config, { logger: silentLogger }, { broker: false, api: true });
  let browser: Browser | undefined;
  let read: ReadServices | undefined;
  let alerting: Alerting | undefined;
  const close = async () => {
    await browser?.close();
    await alerting?.close();
    read?.close();
    await api.close();
    await ingest.close();
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const stats = await runBackfill({
      brokerUrl: `mqtt://127.0.0.1:${ingest.mqttPort}`,
      secret: TEST_SECRET,
      plan,
      seed: plan.truth.seed,
      logger: silentLogger,
      // A loaded machine refuses a connection now and then; a device tries again rather than go missing.
      attempts: 10,
    });
    if (stats.failed > 0) throw new Error(`backfill: ${stats.failed} devices failed`);
    const backfilled = Date.now();
    const deadline = backfilled + 60_000;
    while (ingest.journal.backlog.entries + ingest.journal.dirty().size > 0) {
      if (Date.now() > deadline) throw new Error("the journal did not drain within 60 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    // Every hour is rolled up: a pass begun now scans the whole history (the printer update's verdict).
    await ingest.regressions.poke();
    const settled = Date.now();
    // Alerting as the broker's process of `fieldq start` composes it (stack/start-stack.ts): its own read
    // services, the outbox in the data folder; it evaluates at its start, and evaluate() waits for that one.
    read = createReadServices(createInflux(config.influx), {
      write: createPointWriter(config.influx),
      logger: silentLogger,
      files: { promises: config.promises.file },
      commands: { ttlMs: config.commands.ttlMs },
    });
    const promises = await read.promises.load();
    if (!promises.ok) throw new Error(`FIELDQ_PROMISES: ${promises.error}`);
    alerting = await startAlerting({
      config: config.alerts,
      dataDir: config.ingest.dataDir,
      read,
      broker: ingest.broker,
      logger: silentLogger,
    });
    await alerting.evaluate();
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true });
    await mkdir(ARTIFACTS, { recursive: true });
    const apiUrl = api.apiUrl;
    if (apiUrl === undefined) throw new Error("the API did not start");
    return {
      baseUrl: apiUrl.replace(/\/$/, ""),
      browser,
      plan,
      timings: {
        backfillMs: backfilled - started,
        settledMs: settled - backfilled,
        alertedMs: Date.now() - settled,
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** What went wrong in a page: console errors, uncaught exceptions, requests that failed or answered ≥ 400. */
export function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) =>
    problems.push(`request failed: ${request.url()} (${request.failure()?.errorText ?? "?"})`),
  );
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  return problems;
}

/** A fresh browser context (no cookies) at a width, with its first page. */
export async function openPage(
  stack: BrowserStack,
  width = 1280,
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await stack.browser.newContext({
    baseURL: stack.baseUrl,
    viewport: { width, height: width < 600 ? 844 : 900 },
    timezoneId: "Europe/Berlin",
  });
  // Actions and waits fail within seconds, well inside a test's own timeout.
  context.setDefaultTimeout(10_000);
  return { context, page: await context.newPage() };
}

/** Signs in through the form, as a person does. */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.goto("/sign-in");
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname !== "/sign-in");
}

/**
 * A full-page screenshot into the artifacts; the README's ones also into FIELDQ_SCREENSHOTS (e.g.
 * docs/screenshots) when set.
 */
export async function screenshot(
  page: Page,
  name: string,
  options: { readme?: string; readmeHeight?: number } = {},
) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  const folder = process.env.FIELDQ_SCREENSHOTS;
  if (options.readme !== undefined && folder !== undefined && folder !== "") {
    await mkdir(folder, { recursive: true });
    // The top of the page only: small enough to commit.
    await page.screenshot({
      path: join(resolve(folder), `${options.readme}.png`),
      fullPage: true,
      clip: { x: 0, y: 0, width: page.viewportSize()?.width ?? 1280, height: options.readmeHeight ?? 900 },
    });
  }
}

/** Waits for every chart of the page to be drawn; answers the captions of those that failed to draw. */
export async function drawnCharts(page: Page): Promise<string[]> {
  await page.waitForFunction(
    "[...document.querySelectorAll('[data-chart]')].every((el) => el.dataset.drawn !== undefined)",
  );
  return page.evaluate<string[]>(
    "[...document.querySelectorAll('[data-chart][data-drawn=error]')].map((el) => el.closest('figure')?.querySelector('figcaption')?.textContent ?? '?')",
  );
}

export type Focused = { tag: string; name: string; text: string; label: string; visible: boolean };

/** The element with the keyboard focus, as a person would name it. */
export function focused(page: Page): Promise<Focused> {
  return page.evaluate<Focused>(`(() => {
    const el = document.activeElement;
    if (el === null) return { tag: "", name: "", text: "", label: "", visible: false };
    return {
      tag: el.tagName.toLowerCase(),
      name: el.getAttribute("name") ?? "",
      text: (el.textContent ?? "").trim().slice(0, 60),
      label: (el.labels?.[0]?.textContent ?? el.getAttribute("aria-label") ?? "").trim(),
      visible: el.matches(":focus-visible"),
    };
  })()`);
}

/** Presses Tab until `wanted` holds for the focused element; answers how many presses it took. */
export async function tabTo(page: Page, wanted: (f: Focused) => boolean, most = 60): Promise<number> {
  for (let presses = 1; presses <= most; presses++) {
    await page.keyboard.press("Tab");
    if (wanted(await focused(page))) return presses;
  }
  throw new Error(
    `not reached with ${most} presses of Tab; focus ended on ${JSON.stringify(await focused(page))}`,
  );
}

/** Whether the page is wider than its viewport (a table may scroll inside its own region; the page must not). */
export function overflowsSideways(page: Page): Promise<boolean> {
  return page.evaluate<boolean>(
    "document.documentElement.scrollWidth > document.documentElement.clientWidth",
  );
}

/**
 * Table cells whose content is wider than the cell (text printed over the next column): each as its text's
 * start and both widths.
 */
export function overflowingCells(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(
    "[...document.querySelectorAll('td, th')].filter((c) => c.scrollWidth > c.clientWidth + 1).map((c) => (c.textContent ?? '').trim().slice(0, 60) + ': ' + c.scrollWidth + ' px in ' + c.clientWidth + ' px')",
  );
}

/** The API itself, with a token: for what a test needs to know beside the pages (which device has faults). */
export async function apiGet<T>(stack: BrowserStack, path: string, token = VIEWER): Promise<T> {
  const response = await fetch(`${stack.baseUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}
