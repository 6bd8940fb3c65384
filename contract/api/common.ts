import { z } from "zod";
import { DEVICE_ID_PATTERN } from "../topics.js";

// What every route of the HTTP API shares: ids, times, paging, the error envelope and the health answer.
// Query schemas are strict: an unknown parameter is refused, never silently ignored.

export const MAX_PAGE = 1000;

export const DEFAULT_PAGE = 100;

export const isoTime = z.iso.datetime();
export const count = z.number().int().min(0);

/** An optional ISO time query parameter. */
export const timeParam = (description: string) =>
  z.iso.datetime({ offset: true }).optional().meta({ description, example: "2025-01-31T12:00:00Z" });

export const DeviceId = z
  .string()
  .regex(DEVICE_ID_PATTERN, "must be 1-64 letters, digits, _ . or - and start with a letter or digit");

export const IssueId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 letters, digits, _ or - (a fingerprint id)");

export const paging = {
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE)
    .default(DEFAULT_PAGE)
    .meta({ description: `Page size, 1-${MAX_PAGE}`, example: DEFAULT_PAGE }),
  offset: z.coerce
    .number()
    .int()
    .min(0)
    .default(0)
    .meta({ description: "Items to skip: the previous page's nextOffset", example: 0 }),
};

export const pageOf = <T extends z.ZodType>(item: T) => ({
  items: z.array(item),
  limit: z.number().int(),
  offset: z.number().int(),
  nextOffset: z
    .number()
    .int()
    .nullable()
    .meta({ description: "offset of the next page; null on the last page" }),
});

/** The query of a route that takes no query parameters: any given is refused. */
export const NoQuery = z.strictObject({});

export const ERROR_CODES = [
  "BAD_REQUEST",
  "UNAUTHORIZED",
  "FORBIDDEN",
  "NOT_FOUND",
  "CONFLICT",
  "PAYLOAD_TOO_LARGE",
  "UNSUPPORTED_MEDIA_TYPE",
  "RATE_LIMITED",
  "UNAVAILABLE",
  "INTERNAL",
] as const;

export const ErrorCode = z.enum(ERROR_CODES);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const ErrorEnvelope = z
  .object({
    error: z.object({
      code: ErrorCode,
      message: z
        .string()
        .meta({ examples: ['query parameter "limit": Too big: expected number to be <=1000'] }),
    }),
  })
  .meta({ id: "Error", description: "Every error response has this shape" });
export type ErrorEnvelope = z.infer<typeof ErrorEnvelope>;

export const Health = z
  .object({
    status: z.enum(["ok", "unavailable"]),
    influx: z.object({ reachable: z.boolean(), latencyMs: z.number().int().min(0) }),
    journalBacklog: z.number().int().nullable().meta({ description: "null when the broker runs elsewhere" }),
    connectedDevices: z
      .number()
      .int()
      .nullable()
      .meta({ description: "null when the broker runs elsewhere" }),
  })
  .meta({ id: "Health" });
export type Health = z.infer<typeof Health>;
