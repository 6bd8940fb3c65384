import type { PageHandler } from "../page.js";

// The management review: pick a window, open the printable report. STUB: being built (issue 13).

export const reviewPage: PageHandler = async (c) => c.text("not built yet", 404);

/** GET /review/report?from&to[&table]: the API's printable report (or a table's CSV), for the signed-in user. */
export const reviewReport: PageHandler = async (c) => c.text("not built yet", 404);
