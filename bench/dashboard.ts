import { mkdir } from "node:fs/promises";
import { availableParallelism, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { type BenchPage, benchPages, findPageIds } from "./dashboard-pages.js";
import { type ApiCall, forkDashboardStack, runDashboardStack } from "./dashboard-stack.js";
import { fleetDataSet, out } from "./harness.js";

// npm run bench:dashboard -- [--devices 10000] [--days 30] [--loads 5]
// The dashboard's page budgets in the real browser (issue 12): on bench:api's data set (built once and kept),
// the API with the dashboard started as `fieldq api` starts it, Debian's chromium signs in once and opens every
// page N times; per page the first meaningful render (navigation start until the main content is painted and
// every chart drawn), LCP, the server's answer time, the API calls the page made, and the bytes it loads.

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "10000" },
    days: { type: "string", default: "30" },
    loads: { type: "string", default: "5" },
    rebuild: { type: "boolean", default: false },
    rollups: { type: "boolean", default: false },
    database: { type: "string" },
    clock: { type: "string", default: "data" },
    screenshots: { type: "string" },
    timeout: { type: "string", default: "15000" },
    pages: { type: "string" },
    "stack-child": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});

if (values.help) {
  out("Usage: npm run bench:dashboard -- [--devices 10000] [--days 30] [--loads 5] [--rebuild] [--rollups]");
  out("                                   [--clock data|real] [--database NAME] [--screenshots DIR]");
  out("");
  out(
    "  --devices, --days  bench:api's data set (database bench_api_<devices>x<days>d), built once and kept:",
  );
  out("                     a re-run reuses it (--rebuild makes it anew, --rollups recomputes its rollups)");
  out("  --loads            measured loads of each page, after its first (cold) load; default 5");
  out("  --clock            data: the API's clock starts at the data set's end (as bench:api pins it), so");
  out(
    "                     statuses and default windows mean what they meant then; real: the machine's clock",
  );
  out("  --database         measure an existing fieldq database on FIELDQ_BENCH_INFLUX_URL instead (e.g. a");
  out("                     running demo's), on the real clock; --devices/--days only size the id look-up");
  out("  --screenshots      a full-page screenshot of each page (1280 px wide) into DIR");
  out("  --timeout          ms a load may take before it counts as failed; default 15000");
  out("  --pages            only the pages whose name contains this (e.g. device), to profile one");
  out("");
  out("Uses FIELDQ_BENCH_INFLUX_URL, or starts its own influxd with data in .fieldq/bench-influxdb (kept");
  out("between runs). Starts the API with the dashboard in a child process (startFieldq, API part only: it");
  out(
    "listens once warm), drives /usr/bin/chromium headless at 1280 × 800, signs in once, then loads each page",
  );
  out(
    "once cold (its first load after sign-in) and --loads times more. First meaningful render: from navigation",
  );
  out("start until <main> is parsed, every [data-chart] has data-drawn, and the frame after it is painted");
  out(
    "(performance.now() in the page). Also LCP (PerformanceObserver), the server's answer (Navigation Timing",
  );
  out("requestStart → responseStart) and the API calls the page made in-process. Bytes: every JS and CSS");
  out(
    "response of a page loaded in a fresh context (empty cache), raw and gzipped. Prints a table, then one",
  );
  out('JSON line: {"devices": N, "days": D, "pages": {"/path": {"cold": ms, "p50": ms, "max": ms, ...}},');
  out('"firstPage": {"jsBytes": n, "jsGzip": n, "cssBytes": n, "cssGzip": n}}');
  out("Budgets (issue 12): every page's render under 1 s; the first page's JavaScript under 150 KB gzipped.");
  out("The 2 cores may be shared: compare figures within one run.");
  process.exit(0);
}

const BUDGET_MS = 1000;
const BUDGET_JS_GZIP = 150 * 1024;
const VIEWER = "bench-viewer-token";
const OPERATOR = "bench-operator-token";
const SESSION_COOKIE = "fieldq_session";

/**
 * Runs in every document before its own scripts: LCP, and the first meaningful render: the first frame in
 * which <main> is parsed and no chart is left undrawn, timed once that frame is painted (rAF, then a task).
 */
const PROBE = `(() => {
  const bench = { lcp: undefined, fmr: undefined, charts: 0 };
  window.__fieldqBench = bench;
  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) bench.lcp = entry.startTime;
    }).observe({ type: "largest-contentful-paint", buffered: true });
  } catch {}
  const check = () => {
    const ready = document.readyState !== "loading" && document.querySelector("main") !== null;
    if (ready && document.querySelector("[data-chart]:not([data-drawn])") === null) {
      bench.charts = document.querySelectorAll("[data-chart]").length;
      requestAnimationFrame(() => setTimeout(() => { bench.fmr = performance.now(); }, 0));
      return;
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})();`;

type Probe = {
  timeOrigin: number;
  fmr: number | null;
  lcp: number | null;
  charts: number;
  undrawn: number;
  requestStart: number;
  responseStart: number;
  responseEnd: number;
  domContentLoaded: number;
  htmlBytes: number;
};

type Load = Probe & { status: number; calls: ApiCall[]; failed?: string };

type Bytes = { jsBytes: number; jsGzip: number; cssBytes: number; cssGzip: number; requests: number };

/** What the probe and Navigation Timing saw; LCP entries are delivered late, so they are asked for again. */
const COLLECT = `(async () => {
  const bench = window.__fieldqBench ?? {};
  let lcp = bench.lcp;
  await new Promise((resolve) => {
    try {
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) lcp = entry.startTime;
        resolve();
      }).observe({ type: "largest-contentful-paint", buffered: true });
    } catch {
      resolve();
    }
    setTimeout(resolve, 200);
  });
  const nav = performance.getEntriesByType("navigation")[0];
  return {
    timeOrigin: performance.timeOrigin,
    fmr: bench.fmr ?? null,
    lcp: lcp ?? null,
    charts: document.querySelectorAll("[data-chart]").length,
    undrawn: document.querySelectorAll("[data-chart]:not([data-drawn])").length,
    requestStart: nav?.requestStart ?? 0,
    responseStart: nav?.responseStart ?? 0,
    responseEnd: nav?.responseEnd ?? 0,
    domContentLoaded: nav?.domContentLoadedEventEnd ?? 0,
    htmlBytes: nav?.decodedBodySize ?? 0,
  };
})()`;

/** The document this page shows now (its time origin), so a wait never reads the page it navigated away from. */
const timeOrigin = (page: Page) => page.evaluate("performance.timeOrigin").catch(() => 0) as Promise<number>;

async function loadOnce(page: Page, url: string, timeoutMs: number, calls: () => Promise<ApiCall[]>) {
  await calls();
  const before = await timeOrigin(page);
  let failed: string | undefined;
  const response = await page.goto(url, { waitUntil: "commit", timeout: timeoutMs });
  try {
    await page.waitForFunction(
      (origin) =>
        performance.timeOrigin !== origin &&
        (globalThis as { __fieldqBench?: { fmr?: number } }).__fieldqBench?.fmr !== undefined,
      before,
      { timeout: timeoutMs },
    );
  } catch (error) {
    failed = `not rendered within ${timeoutMs} ms (${error instanceof Error ? error.message.split("\n")[0] : String(error)})`;
  }
  const probe = (await page.evaluate(COLLECT)) as Probe;
  if (probe.timeOrigin === before) failed = "the page did not navigate";
  if (failed && probe.undrawn > 0) failed += ` (${probe.undrawn} of ${probe.charts} charts not drawn)`;
  const status = response?.status() ?? 0;
  if (status !== 200) failed = `HTTP ${status}`;
  const load: Load = { ...probe, status, calls: await calls() };
  if (failed !== undefined) load.failed = failed;
  return load;
}

/** The JS and CSS a page loads with an empty cache, counted from the responses' bodies. */
async function pageBytes(context: BrowserContext, url: string, screenshot?: string): Promise<Bytes> {
  const page = await context.newPage();
  const bodies: Promise<{ type: string; body: Buffer } | undefined>[] = [];
  page.on("response", (response) => {
    const type = response.request().resourceType();
    bodies.push(
      response.body().then(
        (body) => ({ type, body }),
        () => undefined,
      ),
    );
  });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction("window.__fieldqBench?.fmr !== undefined", undefined, { timeout: 15_000 });
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  const bytes: Bytes = { jsBytes: 0, jsGzip: 0, cssBytes: 0, cssGzip: 0, requests: 0 };
  for (const item of await Promise.all(bodies)) {
    if (item === undefined) continue;
    bytes.requests++;
    if (item.type === "script") {
      bytes.jsBytes += item.body.length;
      bytes.jsGzip += gzipSync(item.body).length;
    } else if (item.type === "stylesheet") {
      bytes.cssBytes += item.body.length;
      bytes.cssGzip += gzipSync(item.body).length;
    }
  }
  await page.close();
  return bytes;
}

const median = (samples: readonly number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(0.5 * sorted.length) - 1)] ?? 0;
};
const maximum = (samples: readonly number[]) => samples.reduce((a, b) => Math.max(a, b), 0);
const ms = (n: number | null | undefined) =>
  n === null || n === undefined ? "-" : n.toFixed(n < 10 ? 1 : 0);
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)}`;
const round1 = (n: number) => Math.round(n * 10) / 10;

/** The API path without its query's time window, so a page's calls line up across loads. */
const callKey = (path: string) => {
  const [pathname = "", query = ""] = path.split("?");
  const params = new URLSearchParams(query);
  params.delete("from");
  params.delete("to");
  const rest = params.toString();
  return rest === "" ? pathname : `${pathname}?${rest}`;
};

async function main() {
  const devices = Number(values.devices);
  const days = Number(values.days);
  const loads = Number(values.loads);
  const timeoutMs = Number(values.timeout);
  for (const [name, n] of [
    ["--devices", devices],
    ["--days", days],
    ["--loads", loads],
    ["--timeout", timeoutMs],
  ] as const) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} takes a whole number above 0`);
  }
  if (values.clock !== "data" && values.clock !== "real") throw new Error("--clock is data or real");

  let influx: { url: string; database: string };
  let endMs: number;
  let clockMs: number | undefined;
  if (values.database !== undefined) {
    const url = process.env.FIELDQ_BENCH_INFLUX_URL;
    if (!url) throw new Error("--database needs FIELDQ_BENCH_INFLUX_URL");
    influx = { url, database: values.database };
    endMs = Date.now();
    out(`measuring ${values.database} on ${url} (the real clock)`);
  } else {
    const set = await fleetDataSet({ devices, days, rebuild: values.rebuild, rollups: values.rollups });
    influx = set.config;
    endMs = set.endMs;
    if (values.clock === "data") clockMs = endMs;
    else endMs = Date.now();
  }
  const env = {
    FIELDQ_INFLUX_URL: influx.url,
    FIELDQ_INFLUX_DB: influx.database,
    FIELDQ_RAW_RETENTION: "90d",
    FIELDQ_API_TOKENS: `viewer:${VIEWER},operator:${OPERATOR}`,
  };
  const script = fileURLToPath(import.meta.url);

  // Ids from a server of their own, so the measured one starts with the caches a fresh start has.
  const scout = await forkDashboardStack(script, env, clockMs);
  const ids = await findPageIds(
    async (path) => {
      const response = await fetch(`${scout.url}${path}`, { headers: { authorization: `Bearer ${VIEWER}` } });
      return { status: response.status, body: await response.json().catch(() => undefined) };
    },
    endMs,
    days,
  );
  await scout.close();
  const pages = benchPages(ids).filter((p) => values.pages === undefined || p.name.includes(values.pages));

  const stack = await forkDashboardStack(script, env, clockMs);
  out(
    `API with the dashboard listening after ${(stack.startMs / 1000).toFixed(1)} s (startFieldq ${(stack.warmMs / 1000).toFixed(1)} s, warm-up included)${clockMs === undefined ? "" : `; its clock starts at ${new Date(clockMs).toISOString()}`}`,
  );
  const loadBefore = loadavg()[0] ?? 0;
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true });
  const consoleErrors: string[] = [];
  const results = new Map<BenchPage, { cold: Load; warm: Load[] }>();
  const bytes = new Map<BenchPage, Bytes>();
  let signInBytes: Bytes | undefined;
  try {
    const viewport = { width: 1280, height: 800 };
    const context = await browser.newContext({ viewport });
    await context.addInitScript({ content: PROBE });
    const page = await context.newPage();
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(`${page.url()}: ${message.text()}`);
    });
    page.on("pageerror", (error) => consoleErrors.push(`${page.url()}: ${error.message}`));

    // Signed in once, through the form.
    await page.goto(`${stack.url}/sign-in`);
    await page.fill("input[name=token]", VIEWER);
    await Promise.all([page.waitForURL((url) => url.pathname === "/"), page.click("button[type=submit]")]);
    await stack.calls();

    for (const target of pages) {
      const url = `${stack.url}${target.path}`;
      const cold = await loadOnce(page, url, timeoutMs, stack.calls);
      const warm: Load[] = [];
      for (let i = 0; i < loads; i++) warm.push(await loadOnce(page, url, timeoutMs, stack.calls));
      results.set(target, { cold, warm });
      const each = warm.map((l) => (l.failed ? `✗ ${l.failed}` : ms(l.fmr))).join(", ");
      out(`  ${target.name}: cold ${cold.failed ? `✗ ${cold.failed}` : ms(cold.fmr)}, then ${each} ms`);
    }
    await context.close();

    // Bytes, each page in a context of its own: an empty cache, the session cookie set directly.
    if (values.screenshots) await mkdir(values.screenshots, { recursive: true });
    const fresh = async () => {
      const context = await browser.newContext({ viewport });
      await context.addInitScript({ content: PROBE });
      await context.addCookies([{ name: SESSION_COOKIE, value: VIEWER, url: stack.url }]);
      return context;
    };
    {
      const context = await browser.newContext({ viewport });
      await context.addInitScript({ content: PROBE });
      signInBytes = await pageBytes(context, `${stack.url}/sign-in`);
      await context.close();
    }
    for (const target of pages) {
      const context = await fresh();
      const shot = values.screenshots
        ? `${values.screenshots}/${target.name.replace(/[^a-z0-9]+/g, "-")}.png`
        : undefined;
      bytes.set(target, await pageBytes(context, `${stack.url}${target.path}`, shot));
      await context.close();
    }
  } finally {
    await browser.close();
    await stack.close();
  }
  const load = { before: loadBefore, after: loadavg()[0] ?? 0 };
  const size = values.database ?? `${devices.toLocaleString("en")} devices × ${days} days`;
  report({ size, devices, days, loads, pages, results, bytes, signInBytes, consoleErrors, load });
}

type Report = {
  /** What was measured: the data set's size, or the database named. */
  size: string;
  devices: number;
  days: number;
  loads: number;
  pages: BenchPage[];
  results: Map<BenchPage, { cold: Load; warm: Load[] }>;
  bytes: Map<BenchPage, Bytes>;
  signInBytes: Bytes | undefined;
  consoleErrors: string[];
  /** The machine's 1-minute load average as the browser started and at the end. */
  load: { before: number; after: number };
};

function report(r: Report) {
  const rows = r.pages.map((target) => {
    const result = r.results.get(target) ?? { cold: undefined, warm: [] };
    const warm = result.warm;
    const fmr = warm.map((l) => l.fmr ?? Number.POSITIVE_INFINITY);
    const server = warm.map((l) => l.responseStart - l.requestStart);
    const lcp = warm.flatMap((l) => (l.lcp === null ? [] : [l.lcp]));
    const dom = warm.map((l) => l.domContentLoaded);
    const failed = [result.cold, ...warm].find((l) => l?.failed !== undefined)?.failed;
    const cold = result.cold;
    return {
      target,
      cold: cold?.fmr ?? null,
      coldServer: cold ? cold.responseStart - cold.requestStart : null,
      p50: median(fmr),
      max: maximum(fmr),
      lcp: lcp.length === 0 ? null : median(lcp),
      server: median(server),
      dom: median(dom),
      charts: warm[0]?.charts ?? 0,
      htmlBytes: warm[0]?.htmlBytes ?? 0,
      failed,
      calls: [cold, ...warm],
      bytes: r.bytes.get(target),
    };
  });
  out("");
  out(
    `first meaningful render, ms (${r.size}; cold: the first load after sign-in; p50/max over ${r.loads} loads after it)`,
  );
  out(
    `${"page".padEnd(17)} ${"cold".padStart(6)} ${"p50".padStart(6)} ${"max".padStart(6)} ${"LCP".padStart(6)} ${"server".padStart(6)} ${"cold sv".padStart(7)} ${"DOM".padStart(6)} ${"charts".padStart(6)} ${"HTML KB".padStart(7)}`,
  );
  for (const row of rows) {
    const miss = row.failed
      ? `  ✗ ${row.failed}`
      : Math.max(row.max, row.cold ?? 0) >= BUDGET_MS
        ? "  ✗"
        : "";
    out(
      `${row.target.name.padEnd(17)} ${ms(row.cold).padStart(6)} ${ms(row.p50).padStart(6)} ${ms(row.max).padStart(6)} ${ms(row.lcp).padStart(6)} ${ms(row.server).padStart(6)} ${ms(row.coldServer).padStart(7)} ${ms(row.dom).padStart(6)} ${String(row.charts).padStart(6)} ${kb(row.htmlBytes).padStart(7)}${miss}`,
    );
  }
  out(
    "(server: Navigation Timing requestStart → responseStart, the page rendered on the server with its API calls; DOM: DOMContentLoaded; ✗: a render ≥ 1 s or a failed load)",
  );
  for (const row of rows) out(`  ${row.target.name.padEnd(17)} ${row.target.path}`);

  out("");
  out("API calls each page made in-process (ms: p50 over the loads after the first, and on the cold load)");
  for (const row of rows) {
    const [cold, ...warm] = row.calls;
    const byKey = new Map<string, number[]>();
    for (const load of warm)
      for (const call of load?.calls ?? [])
        byKey.set(callKey(call.path), [...(byKey.get(callKey(call.path)) ?? []), call.ms]);
    const coldBy = new Map((cold?.calls ?? []).map((call) => [callKey(call.path), call]));
    out(`  ${row.target.name} (${byKey.size} calls)`);
    const sorted = [...byKey].sort((a, b) => median(b[1]) - median(a[1]));
    for (const [key, samples] of sorted) {
      const coldCall = coldBy.get(key);
      const status = coldCall && coldCall.status !== 200 ? ` HTTP ${coldCall.status}` : "";
      out(`    ${ms(median(samples)).padStart(6)} ${ms(coldCall?.ms).padStart(6)}  ${key}${status}`);
    }
  }

  out("");
  out("bytes each page loads with an empty cache (KB, from the responses; gzip: zlib default level)");
  out(
    `${"page".padEnd(17)} ${"JS".padStart(7)} ${"JS gz".padStart(7)} ${"CSS".padStart(7)} ${"CSS gz".padStart(7)} ${"requests".padStart(8)}`,
  );
  const byteRows: Array<[string, Bytes | undefined]> = [
    ["sign-in", r.signInBytes],
    ...rows.map((row): [string, Bytes | undefined] => [row.target.name, row.bytes]),
  ];
  for (const [name, b] of byteRows) {
    if (b === undefined) continue;
    const miss = b.jsGzip >= BUDGET_JS_GZIP ? "  ✗" : "";
    out(
      `${name.padEnd(17)} ${kb(b.jsBytes).padStart(7)} ${kb(b.jsGzip).padStart(7)} ${kb(b.cssBytes).padStart(7)} ${kb(b.cssGzip).padStart(7)} ${String(b.requests).padStart(8)}${miss}`,
    );
  }
  out(`console errors: ${r.consoleErrors.length}`);
  out(
    `load average (1 min, ${availableParallelism()} cores): ${r.load.before.toFixed(1)} as the browser started, ${r.load.after.toFixed(1)} at the end`,
  );
  for (const line of r.consoleErrors.slice(0, 10)) out(`  ${line}`);

  const first = rows[0]?.bytes;
  const json = {
    ...(values.database === undefined ? { devices: r.devices, days: r.days } : { database: values.database }),
    loads: r.loads,
    pages: Object.fromEntries(
      rows.map((row) => [
        row.target.path,
        {
          cold: row.cold === null ? null : round1(row.cold),
          p50: round1(row.p50),
          max: round1(row.max),
          lcp: row.lcp === null ? null : round1(row.lcp),
          server: round1(row.server),
          ...(row.failed ? { failed: row.failed } : {}),
        },
      ]),
    ),
    firstPage: first
      ? { jsBytes: first.jsBytes, jsGzip: first.jsGzip, cssBytes: first.cssBytes, cssGzip: first.cssGzip }
      : null,
    consoleErrors: r.consoleErrors.length,
    loadAverage: [round1(r.load.before), round1(r.load.after)],
  };
  out(JSON.stringify(json));
  const missed = rows.some((row) => row.failed || Math.max(row.max, row.cold ?? 0) >= BUDGET_MS);
  if (missed || (first?.jsGzip ?? 0) >= BUDGET_JS_GZIP) out("budget missed: see ✗ above");
}

if (values["stack-child"]) {
  runDashboardStack().catch((error: unknown) => {
    process.stderr.write(`bench:dashboard API: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
} else {
  main().catch((error: unknown) => {
    process.stderr.write(`bench:dashboard: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exitCode = 1;
  });
}
