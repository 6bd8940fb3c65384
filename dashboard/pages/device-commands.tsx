import type { Context } from "hono";
import type { PageHandler } from "../page.js";
import type { DashboardEnv } from "../session.js";

// The device page's commands: the buttons (operator) and the commands sent with their status. STUB (issue 13).

export async function loadDeviceCommands(_c: Context<DashboardEnv>, _id: string) {
  return undefined;
}

export function CommandsPanel(_props: {
  id: string;
  loaded: Awaited<ReturnType<typeof loadDeviceCommands>>;
  canAct: boolean;
}) {
  return null;
}

/** POST /devices/:id/commands from the panel's buttons. */
export const deviceCommandAction: PageHandler = async (c) => c.text("not built yet", 404);
