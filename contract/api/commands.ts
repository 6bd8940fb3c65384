import { z } from "zod";
import { CommandType, Context, Label } from "../messages.js";
import { WEEK_MS } from "../time.js";
import { DeviceId, isoTime } from "./common.js";

// Remote commands (docs/commands.md): what an operator sends to a device or a cohort, and what fieldq knows
// of each command since: queued, delivered (the device's PUBACK), answered (its result), or expired.

export const COMMAND_STATUSES = ["queued", "delivered", "succeeded", "failed", "expired"] as const;
export const CommandStatus = z.enum(COMMAND_STATUSES).meta({
  id: "CommandStatus",
  description:
    "queued: waiting for its device; delivered: the device acknowledged it (PUBACK); succeeded / failed: " +
    "the device's result said ok true / false; expired: not delivered before expiresAt",
});
export type CommandStatus = z.infer<typeof CommandStatus>;

/** The longest a command may wait for its device. */
export const MAX_COMMAND_TTL_MS = WEEK_MS;
export const COMMAND_TTL_PATTERN = /^\d{1,9}(s|m|h|d)$/;

/** Ids fieldq gives commands and batches: safe as an MQTT topic level and in a URL. */
export const CommandId = z
  .string()
  .regex(/^c[0-9a-z]{1,12}-[0-9a-f]{8,16}$/, "must be a command id such as c1a2b3c4d-0f1e2d3c4b5a6978");
export const BatchId = z
  .string()
  .regex(/^b[0-9a-z]{1,12}-[0-9a-f]{8,16}$/, "must be a batch id such as b1a2b3c4d-0f1e2d3c4b5a6978");

const Ttl = z
  .string()
  .regex(COMMAND_TTL_PATTERN, "must be a duration such as 90s, 30m, 12h or 2d")
  .optional()
  .meta({
    description:
      "How long the command waits for its device before it expires (at most 7d); default FIELDQ_COMMAND_TTL",
    examples: ["1h"],
  });

export const CommandRequest = z
  .strictObject({
    type: CommandType,
    args: Context.optional().meta({ description: "Flat arguments for the device: at most 32 entries" }),
    ttl: Ttl,
  })
  .meta({ id: "CommandRequest", examples: [{ type: "reboot" }, { type: "diagnostics", ttl: "30m" }] });
export type CommandRequest = z.infer<typeof CommandRequest>;

export const BulkCommandRequest = z
  .strictObject({
    model: Label.meta({ description: "Every device of this model (the directory's latest hello)" }),
    firmware: Label.optional().meta({ description: "Only those on this firmware version" }),
    type: CommandType,
    args: Context.optional(),
    ttl: Ttl,
  })
  .meta({
    id: "BulkCommandRequest",
    description:
      "A command to a cohort: one command per device, sent at FIELDQ_COMMAND_RATE per second at most",
    examples: [{ model: "FQ-Modem 7590", firmware: "7.29", type: "reboot" }],
  });
export type BulkCommandRequest = z.infer<typeof BulkCommandRequest>;

export const CommandView = z
  .object({
    id: CommandId,
    device: DeviceId,
    type: CommandType,
    args: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    status: CommandStatus,
    by: z.string().meta({ description: "Who sent it" }),
    createdAt: isoTime,
    deliveredAt: isoTime.nullable().meta({ description: "When the device acknowledged it (PUBACK)" }),
    answeredAt: isoTime.nullable().meta({ description: "The result's time, by the device's clock" }),
    expiresAt: isoTime,
    result: z.object({ ok: z.boolean(), message: z.string().nullable() }).nullable(),
    batch: BatchId.nullable().meta({ description: "The bulk command it belongs to" }),
  })
  .meta({ id: "CommandView" });
export type CommandView = z.infer<typeof CommandView>;

export const CommandList = z
  .object({ items: z.array(CommandView).meta({ description: "Newest first" }) })
  .meta({ id: "CommandList" });
export type CommandList = z.infer<typeof CommandList>;

export const BulkCommandAnswer = z
  .object({
    batch: BatchId,
    count: z.number().int().min(0).meta({ description: "Devices of the cohort, one command each" }),
    type: CommandType,
    expiresAt: isoTime,
  })
  .meta({ id: "BulkCommandAnswer" });
export type BulkCommandAnswer = z.infer<typeof BulkCommandAnswer>;

export const BatchQuery = z.strictObject({
  batch: BatchId.meta({ description: "The batch id a bulk command answered with" }),
});

export const CommandCounts = z.record(CommandStatus, z.number().int().min(0));

export const BatchView = z
  .object({
    batch: BatchId,
    counts: CommandCounts.meta({ description: "Commands of the batch per status" }),
    items: z.array(CommandView),
  })
  .meta({ id: "BatchView" });
export type BatchView = z.infer<typeof BatchView>;

export const DeviceCommandsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50).meta({ description: "Newest first, 1-500" }),
});
