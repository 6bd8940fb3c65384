import { z } from "zod";
import { Label, Severity } from "../contract/messages.js";
import { GROUP_TAGS, MAX_SERIES_DAYS } from "../storage/health-store.js";

// Query parameters of the fleet-health and firmware routes; the responses come from storage/health-store.ts.

const time = (description: string) =>
  z.iso.datetime({ offset: true }).optional().meta({ description, example: "2025-01-31T12:00:00Z" });

const GROUP_LIST = new RegExp(`^(${GROUP_TAGS.join("|")})(,(${GROUP_TAGS.join("|")}))*$`);

const selection = {
  kind: Label.optional().meta({ description: "Only devices of this kind", example: "modem" }),
  model: Label.optional().meta({ description: "Only this model", example: "FQ-Modem 7590" }),
  firmware: Label.optional().meta({ description: "Only this firmware version", example: "7.57" }),
  region: Label.optional().meta({ description: "Only this region", example: "eu" }),
};

export const FleetSummaryParams = z.object({
  from: time(
    `Start, inclusive, floored to the UTC hour; default \`to\` minus 7d; at most ${MAX_SERIES_DAYS} days before \`to\``,
  ),
  to: time("End, exclusive, raised to the next UTC hour; default now"),
  groupBy: z
    .string()
    .regex(GROUP_LIST, `must be a comma-separated list of ${GROUP_TAGS.join(", ")}`)
    .default("model")
    .meta({ description: "Tags to group by, comma-separated", example: "model,firmware" }),
  ...selection,
});

export const FleetTrendParams = z.object({
  from: time(
    `Start, inclusive, floored to the UTC hour; default \`to\` minus 7d; at most ${MAX_SERIES_DAYS} days before \`to\``,
  ),
  to: time("End, exclusive, raised to the next UTC hour; default now"),
  ...selection,
});

export const FirmwareListParams = z.object({
  model: Label.optional().meta({ description: "Only this model", example: "FQ-Modem 7590" }),
  from: time(
    `Start, inclusive, floored to the UTC hour; default \`to\` minus 30d; at most ${MAX_SERIES_DAYS} days before \`to\``,
  ),
  to: time("End, exclusive, raised to the next UTC hour; default now"),
});

export const FirmwareCompareParams = z
  .object({
    model: Label.meta({ description: "The model both cohorts belong to", example: "FQ-Modem 7590" }),
    baseline: Label.meta({ description: "Firmware of the reference cohort", example: "7.56" }),
    candidate: Label.meta({ description: "Firmware of the cohort under test", example: "7.57" }),
    severity: Severity.optional().meta({
      description: "Count only faults of this severity in `overall` and `byCode`",
    }),
    from: time(
      `Start, inclusive, floored to the UTC hour; default \`to\` minus 30d; at most ${MAX_SERIES_DAYS} days before \`to\``,
    ),
    to: time("End, exclusive, raised to the next UTC hour; default now"),
  })
  .refine((q) => q.baseline !== q.candidate, { message: "must differ from baseline", path: ["candidate"] });
