import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import type { CommandService } from "../../services/commands.js";
import type { ApiEnv } from "../auth.js";

// STUB: being built (issue 13).

export type CommandsRouteDeps = { commands: CommandService; now?: () => number };

export function registerCommands<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, _deps: CommandsRouteDeps) {
  return app;
}
