import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Schema } from "hono";
import { parseDuration } from "../../config/duration.js";
import {
  BatchQuery,
  BatchView,
  BulkCommandAnswer,
  BulkCommandRequest,
  CommandList,
  CommandRequest,
  CommandView,
  DeviceCommandsQuery,
  MAX_COMMAND_TTL_MS,
} from "../../contract/api/commands.js";
import { NoQuery } from "../../contract/api/common.js";
import { DeviceIdParam } from "../../contract/api/devices.js";
import type { CommandService } from "../../services/commands.js";
import { type ApiEnv, actorOf, guarded } from "../auth.js";
import { ApiError, errorResponse, REFUSALS } from "../errors.js";

// Remote commands (docs/commands.md): queued here, sent by the broker's process (commands/dispatch.ts).

const json = <T>(schema: T) => ({ "application/json": { schema } });
const body = <T>(schema: T) => ({ content: json(schema), required: true });
const tooLarge = { 413: errorResponse("The body is larger than FIELDQ_API_MAX_BODY_BYTES") };

export const sendCommandRoute = createRoute({
  method: "post",
  path: "/api/v1/devices/{id}/commands",
  summary:
    "Queue a command for the device; it is published QoS 1 on fq/v1/{id}/cmd/{commandId} when the device is connected",
  ...guarded("operator"),
  request: { params: DeviceIdParam, query: NoQuery, body: body(CommandRequest) },
  responses: {
    202: { description: "Queued: the command with its id and status", content: json(CommandView) },
    ...REFUSALS,
    ...tooLarge,
    404: errorResponse("The device never sent anything"),
  },
});

export const deviceCommandsRoute = createRoute({
  method: "get",
  path: "/api/v1/devices/{id}/commands",
  summary: "The device's newest commands with their status",
  ...guarded("viewer"),
  request: { params: DeviceIdParam, query: DeviceCommandsQuery },
  responses: {
    200: { description: "Newest first", content: json(CommandList) },
    ...REFUSALS,
    404: errorResponse("The device never sent anything"),
  },
});

export const bulkCommandRoute = createRoute({
  method: "post",
  path: "/api/v1/commands",
  summary: "Queue one command per device of a cohort (model, and firmware if given)",
  description:
    "The commands go out at FIELDQ_COMMAND_RATE per second at most; follow them with GET /api/v1/commands?batch=",
  ...guarded("operator"),
  request: { query: NoQuery, body: body(BulkCommandRequest) },
  responses: {
    202: {
      description: "Queued: the batch id and how many devices it holds",
      content: json(BulkCommandAnswer),
    },
    ...REFUSALS,
    ...tooLarge,
  },
});

export const batchCommandsRoute = createRoute({
  method: "get",
  path: "/api/v1/commands",
  summary: "The commands of a batch with their status, counted per status",
  ...guarded("viewer"),
  request: { query: BatchQuery },
  responses: {
    200: { description: "The batch", content: json(BatchView) },
    ...REFUSALS,
    404: errorResponse("No batch has this id"),
  },
});

const notFound = (what: string) => new ApiError({ code: "NOT_FOUND", message: what });

/** The request's ttl in ms; the contract's pattern has been checked, the bound is checked here. */
function ttlMsOf(ttl: string | undefined): number | undefined {
  if (ttl === undefined) return undefined;
  const ms = parseDuration(ttl);
  if (ms === undefined || ms <= 0 || ms > MAX_COMMAND_TTL_MS) {
    throw new ApiError({ code: "BAD_REQUEST", message: `body field "ttl": must be between 1s and 7d` });
  }
  return ms;
}

export type CommandsRouteDeps = { commands: CommandService; now?: () => number };

export function registerCommands<S extends Schema>(app: OpenAPIHono<ApiEnv, S>, deps: CommandsRouteDeps) {
  return app
    .openapi(sendCommandRoute, async (c) => {
      const { id } = c.req.valid("param");
      const request = c.req.valid("json");
      const sent = await deps.commands.send(
        id,
        { type: request.type, args: request.args, ttlMs: ttlMsOf(request.ttl) },
        actorOf(c),
      );
      if (!sent.ok) throw notFound(`no device "${id}"`);
      return c.json(sent.value, 202);
    })
    .openapi(deviceCommandsRoute, async (c) => {
      const { id } = c.req.valid("param");
      const { limit } = c.req.valid("query");
      const items = await deps.commands.forDevice(id, limit);
      if (items === undefined) throw notFound(`no device "${id}"`);
      return c.json({ items }, 200);
    })
    .openapi(bulkCommandRoute, async (c) => {
      const request = c.req.valid("json");
      const answer = await deps.commands.bulk(
        { model: request.model, firmware: request.firmware },
        { type: request.type, args: request.args, ttlMs: ttlMsOf(request.ttl) },
        actorOf(c),
      );
      return c.json(answer, 202);
    })
    .openapi(batchCommandsRoute, async (c) => {
      const { batch } = c.req.valid("query");
      const view = await deps.commands.batch(batch);
      if (view === undefined) throw notFound(`no batch "${batch}"`);
      return c.json(view, 200);
    });
}
