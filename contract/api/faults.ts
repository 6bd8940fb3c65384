import { z } from "zod";
import { Label, Severity } from "../messages.js";
import { DeviceId, isoTime, pageOf, paging, timeParam } from "./common.js";

// Faults as devices reported them, newest first.

export const FaultRecord = z
  .object({
    device: DeviceId,
    kind: z.string(),
    model: z.string(),
    firmware: z.string(),
    region: z.string(),
    code: z.string().meta({ examples: ["DSL_RESYNC"] }),
    severity: z.string().meta({ description: "info, warning, error or critical" }),
    component: z.string().nullable(),
    message: z.string().nullable(),
    context: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    ts: isoTime.meta({ description: "Device time" }),
    receivedAt: isoTime.meta({ description: "Broker time" }),
  })
  .meta({ id: "FaultRecord" });
export type FaultRecord = z.infer<typeof FaultRecord>;

/** What faults can be narrowed by; the API's query schema spreads the same fields. */
export const FAULT_FILTER_FIELDS = {
  device: DeviceId.optional(),
  kind: Label.optional(),
  model: Label.optional(),
  firmware: Label.optional(),
  code: Label.optional(),
  severity: Severity.optional(),
};

export const FaultListQuery = z.strictObject({
  from: timeParam("Start, inclusive; default `to` minus 7d"),
  to: timeParam("End, exclusive; default now"),
  ...FAULT_FILTER_FIELDS,
  ...paging,
});

export const FaultPage = z
  .object({
    ...pageOf(FaultRecord),
    from: z.iso.datetime(),
    to: z.iso
      .datetime()
      .meta({ description: "Keep it fixed while paging, so new faults do not shift pages" }),
  })
  .meta({ id: "FaultPage" });
export type FaultPage = z.infer<typeof FaultPage>;
