import { drawCharts } from "./charts.js";
import { startLive } from "./live.js";
import { localTimes } from "./time.js";

// The dashboard's one script: local times, charts, live refresh. Pages work without it (server-rendered).

startLive();
localTimes(document);
drawCharts(document);

// Back to a page, the browser puts back what was picked in its filter forms before they were sent; the URL
// and the page say what is shown, so the filters go back to the page's own values (its `selected`s).
addEventListener("pageshow", () => {
  for (const form of document.querySelectorAll<HTMLFormElement>('form[method="get"]')) form.reset();
});
