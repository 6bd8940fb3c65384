import { drawCharts } from "./charts.js";
import { localTimes } from "./time.js";

// Live pages by polling: every few seconds (body[data-live-every]) while the tab is visible, the page asks for
// its own URL again and takes the new content of each [data-live] region. Polling rather than server-sent
// events: the API process learns of new data only by reading InfluxDB on its own refresh cycle (the device
// directory every 5 s, rollups by revision), so a push channel would be polling on the server plus a held
// connection per tab through every proxy; a poll reuses the page's own rendering and works the same behind
// several API processes.

const LIVE_HEADER = "x-fieldq-live";

function status(text: string, problem = false): void {
  const el = document.querySelector<HTMLElement>("[data-live-status]");
  if (!el) return;
  el.hidden = false;
  el.textContent = text;
  el.classList.toggle("problem", problem);
  if (problem) el.setAttribute("role", "alert");
  else el.removeAttribute("role");
}

/** A region is left alone while someone works in it: focus inside, or a form with something typed. */
function busy(region: Element): boolean {
  if (region.contains(document.activeElement) && document.activeElement !== document.body) return true;
  for (const field of region.querySelectorAll<HTMLInputElement | HTMLTextAreaElement>("input, textarea")) {
    if (field.type !== "hidden" && field.value !== field.defaultValue) return true;
  }
  return false;
}

/** What the server last sent for each region, to skip regions that did not change. */
const rendered = new WeakMap<Element, string>();

export async function refresh(): Promise<void> {
  const regions = document.querySelectorAll<HTMLElement>("[data-live]");
  if (regions.length === 0) return;
  let response: Response;
  try {
    status("Updating…");
    response = await fetch(location.href, { headers: { [LIVE_HEADER]: "1" }, credentials: "same-origin" });
  } catch {
    status("Live updates paused: fieldq is not reachable. Retrying…", true);
    return;
  }
  if (response.status === 401) {
    status("Signed out: sign in again to see live updates.", true);
    stop();
    return;
  }
  if (!response.ok) {
    status(`Live updates paused: the server answered ${response.status}. Retrying…`, true);
    return;
  }
  const next = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const region of regions) {
    const fresh = next.querySelector(`[data-live="${CSS.escape(region.dataset.live ?? "")}"]`);
    if (!fresh || busy(region) || fresh.innerHTML === rendered.get(region)) continue;
    region.innerHTML = fresh.innerHTML;
    rendered.set(region, fresh.innerHTML);
    localTimes(region);
    drawCharts(region);
  }
  status(`Updated ${new Intl.DateTimeFormat(undefined, { timeStyle: "medium" }).format(new Date())}`);
}

let timer: number | undefined;

function stop(): void {
  if (timer !== undefined) window.clearInterval(timer);
  timer = undefined;
}

export function startLive(): void {
  const seconds = Number(document.body.dataset.liveEvery ?? "0");
  if (!(seconds > 0) || document.querySelector("[data-live]") === null) return;
  // Before local times and charts change the regions: what the server sent.
  for (const region of document.querySelectorAll("[data-live]")) rendered.set(region, region.innerHTML);
  timer = window.setInterval(() => {
    if (document.visibilityState === "visible") void refresh();
  }, seconds * 1000);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && timer !== undefined) void refresh();
  });
}
