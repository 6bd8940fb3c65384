import type { Context } from "hono";
import type { PageHandler } from "../page.js";
import type { DashboardEnv } from "../session.js";

// The device page's customer feedback: the support desk's form (operator) and what was recorded. STUB (issue 13).

export async function loadDeviceFeedback(_c: Context<DashboardEnv>, _id: string) {
  return undefined;
}

export function FeedbackPanel(_props: {
  id: string;
  loaded: Awaited<ReturnType<typeof loadDeviceFeedback>>;
  canAct: boolean;
}) {
  return null;
}

/** POST /devices/:id/feedback from the panel's form. */
export const deviceFeedbackAction: PageHandler = async (c) => c.text("not built yet", 404);
