import { drawCharts } from "./charts.js";
import { startLive } from "./live.js";
import { localTimes } from "./time.js";

// The dashboard's one script: local times, charts, live refresh. Pages work without it (server-rendered).

startLive();
localTimes(document);
drawCharts(document);
