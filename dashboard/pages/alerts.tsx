import type { PageHandler } from "../page.js";

// Alerts and their delivery; acknowledge (operator). STUB: being built (issue 13).

export const alertsPage: PageHandler = async (c) => c.text("not built yet", 404);

/** POST /alerts/:id/acknowledge from the page's forms. */
export const alertAction: PageHandler = async (c) => c.text("not built yet", 404);
