import type { PageHandler } from "../page.js";

// Service promises per model: compliance, error budget, burn rate. STUB: being built (issue 13).

export const promisesPage: PageHandler = async (c) => c.text("not built yet", 404);
