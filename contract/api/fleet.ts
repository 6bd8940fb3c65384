import { z } from "zod";
import { Label, SEVERITIES, Severity } from "../messages.js";
import { count, isoTime, timeParam } from "./common.js";

// Fleet health and firmware cohorts, read from the rollups: windows are whole UTC hours.

/** Ratings are 0 … 10. */
export const RATINGS = 11;

/** Daily series (trend, adoption) span at most this many days. */
export const MAX_SERIES_DAYS = 400;

/**
 * What fleet health groups and filters by: the cohort a device reported in (kind, model, firmware, region)
 * and what its latest hello says of it (isp, hardware).
 */
export const GROUP_TAGS = ["kind", "model", "firmware", "region", "isp", "hardware"] as const;

export const GroupTag = z.enum(GROUP_TAGS);
export type GroupTag = z.infer<typeof GroupTag>;

/** The tags only a device's hello carries: grouping or filtering by them reads the per-device tallies. */
export const DEVICE_TAGS = ["isp", "hardware"] as const satisfies readonly GroupTag[];

const rate = (description: string) => z.number().nullable().meta({ description });

const PerExposure = z.object({
  count,
  per1000h: rate("count / exposureHours × 1000; null without exposure"),
});

export const HealthMetrics = z
  .object({
    devices: count.meta({ description: "Active devices: distinct devices with at least one activity hour" }),
    exposureHours: count.meta({ description: "Device-hours of exposure: the activity points counted" }),
    faults: PerExposure.extend({
      bySeverity: z.object(
        Object.fromEntries(SEVERITIES.map((s) => [s, PerExposure])) as {
          [K in Severity]: typeof PerExposure;
        },
      ),
    }),
    faultyDevices: count.meta({ description: "Distinct devices with at least one fault" }),
    faultFreeShare: rate("(devices − faultyDevices) / devices, floored at 0; null without devices"),
    reboots: z.object({
      count,
      perDeviceDay: rate("reboot events / (exposureHours / 24); null without exposure"),
    }),
    rejections: PerExposure.meta({
      description: "Messages the ingest refused (rejection points, stamped at receive time) per 1,000 h",
    }),
    feedback: z.object({
      count,
      mean: rate("Mean rating 0-10; null without ratings"),
      distribution: z
        .array(count)
        .length(RATINGS)
        .meta({ description: "Number of ratings of 0, 1, …, 10 (index = rating)" }),
    }),
  })
  .meta({ id: "HealthMetrics" });
export type HealthMetrics = z.infer<typeof HealthMetrics>;

const Selection = z.object(
  Object.fromEntries(GROUP_TAGS.map((t) => [t, z.string().optional()])) as {
    [K in GroupTag]: z.ZodOptional<z.ZodString>;
  },
);

export const FleetSummary = z
  .object({
    from: isoTime.meta({ description: "Start of the window used: `from` floored to the UTC hour" }),
    to: isoTime.meta({ description: "End (exclusive): `to` raised to the next UTC hour" }),
    groupBy: z.array(GroupTag),
    filter: Selection,
    groups: z.array(HealthMetrics.extend({ group: Selection })),
    total: HealthMetrics,
  })
  .meta({ id: "FleetSummary" });
export type FleetSummary = z.infer<typeof FleetSummary>;

export const FleetTrend = z
  .object({
    from: isoTime,
    to: isoTime,
    filter: Selection,
    days: z.array(
      HealthMetrics.extend({
        day: isoTime.meta({ description: "UTC midnight starting the day" }),
        from: isoTime.meta({ description: "The part of the window inside this day" }),
        to: isoTime,
      }),
    ),
  })
  .meta({ id: "FleetTrend" });
export type FleetTrend = z.infer<typeof FleetTrend>;

const DayCount = z.object({ day: isoTime, devices: count });

export const FirmwareVersions = z
  .object({
    from: isoTime,
    to: isoTime,
    models: z.array(
      z.object({
        model: z.string(),
        devicesByDay: z
          .array(DayCount)
          .meta({ description: "Distinct active devices of the model per UTC day, any version" }),
        versions: z.array(
          z.object({
            firmware: z.string(),
            firstSeen: isoTime.meta({ description: "Start of the first activity hour ever, up to `to`" }),
            devicesNow: count.meta({ description: "Distinct active devices in the window's last 24 h" }),
            devices: count.meta({ description: "Distinct active devices in the window" }),
            exposureHours: count,
            adoption: z.array(
              DayCount.extend({
                share: rate("devices / the model's active devices that day; null when none"),
              }),
            ),
          }),
        ),
      }),
    ),
  })
  .meta({ id: "FirmwareVersions" });
export type FirmwareVersions = z.infer<typeof FirmwareVersions>;

const CohortRate = z.object({ count, exposureHours: z.number(), ratePer1000h: z.number() });

export const RateEvidence = z
  .object({
    method: z.enum(["exact_poisson", "quasi_poisson"]).meta({
      description:
        "exact_poisson: devices alike, the exact conditional test; quasi_poisson: the interval widened by the dispersion",
    }),
    dispersion: z
      .number()
      .nullable()
      .meta({ description: "Between-device dispersion estimated from per-device counts (1 = Poisson)" }),
    dispersionUsed: z.number().meta({ description: "The dispersion the interval was computed with (≥ 1)" }),
    df: z.number().nullable().meta({ description: "Degrees of freedom of the dispersion estimate" }),
    devices: z.object({ baseline: count, candidate: count }).meta({ description: "Devices with exposure" }),
    refused: z
      .enum(["too_few_devices"])
      .nullable()
      .meta({ description: "Why no regression or improvement could be called whatever the counts" }),
    adjustedPValue: z
      .number()
      .nullable()
      .meta({ description: "Holm-adjusted p-value within its family (the codes of a comparison, a scan)" }),
    familySize: count.meta({ description: "Comparisons judged together in that family" }),
    cohortDispersion: z
      .object({ baseline: z.number(), candidate: z.number() })
      .optional()
      .meta({ description: "Each cohort's dispersion as used (≥ 1, before the t price for its estimate)" }),
    minDevices: count.optional().meta({
      description:
        "Fewest devices per cohort for a regression or improvement: 20 when devices differ, 3 when they look alike",
    }),
  })
  .meta({ id: "RateEvidence" });
export type RateEvidence = z.infer<typeof RateEvidence>;

export const RateComparison = z
  .object({
    baseline: CohortRate,
    candidate: CohortRate,
    rateRatio: z.number().nullable(),
    rateRatioMissing: z.enum(["no_events", "no_baseline_events"]).nullable(),
    ci: z
      .object({
        lower: z.number(),
        upper: z.number().nullable(),
        upperUnbounded: z.boolean(),
        level: z.number(),
      })
      .nullable()
      .meta({
        description:
          "95% interval of the rate ratio (exact, or scaled by the dispersion); null without any fault",
      }),
    pValue: z.number().nullable(),
    equivalenceMargin: z.number(),
    verdict: z.enum(["regression", "improvement", "no_difference", "insufficient_evidence"]),
    moreExposureNeeded: z
      .discriminatedUnion("reachable", [
        z.object({
          reachable: z.literal(true),
          factor: z.number(),
          baselineHours: z.number(),
          candidateHours: z.number(),
        }),
        z.object({
          reachable: z.literal(false),
          reason: z.enum(["no_events", "beyond_cap"]),
          maxFactor: z.number(),
        }),
      ])
      .nullable(),
    evidence: RateEvidence,
  })
  .meta({
    id: "RateComparison",
    description: "analytics/device-rates.ts compareDeviceRates (docs/statistics.md)",
  });
export type RateComparison = z.infer<typeof RateComparison>;

const Cohort = z.object({ firmware: z.string(), devices: count, exposureHours: count });

export const FirmwareComparison = z
  .object({
    model: z.string(),
    from: isoTime,
    to: isoTime,
    severity: Severity.nullable().meta({ description: "overall and byCode count only this severity" }),
    baseline: Cohort,
    candidate: Cohort,
    overall: RateComparison,
    critical: RateComparison,
    byCode: z.array(z.object({ code: z.string(), comparison: RateComparison })),
  })
  .meta({ id: "FirmwareComparison" });
export type FirmwareComparison = z.infer<typeof FirmwareComparison>;

/** What the cohort ranking compares each value of, within a model, against the rest of the model. */
export const COHORT_DIMENSIONS = ["isp", "region", "hardware", "firmware"] as const;
export const CohortDimension = z.enum(COHORT_DIMENSIONS);
export type CohortDimension = z.infer<typeof CohortDimension>;

const CohortVerdict = RateComparison.shape.verdict;

export const RankedCohort = z
  .object({
    value: z
      .string()
      .meta({ description: "The dimension's value: an ISP, a region, a hardware revision, a firmware" }),
    devices: count.meta({ description: "Devices of the model with exposure under this value" }),
    exposureHours: z.number(),
    faults: count.meta({ description: "Their faults (of `severity`, `code` when given)" }),
    ratePer1000h: z.number().nullable(),
    verdict: CohortVerdict.meta({
      description:
        "regression when the overall comparison or any code's regresses; else the overall comparison's verdict",
    }),
    regressedCodes: z.array(z.string()).meta({ description: "Codes whose own comparison is a regression" }),
    overall: RateComparison.meta({
      description: "candidate: this value's devices; baseline: the rest of the model's devices",
    }),
    byCode: z
      .array(z.object({ code: z.string(), comparison: RateComparison }))
      .meta({ description: "Per code of the model's faults, most faults first; empty when `code` is given" }),
  })
  .meta({ id: "RankedCohort" });
export type RankedCohort = z.infer<typeof RankedCohort>;

export const CohortRanking = z
  .object({
    model: z.string().nullable().meta({ description: "Only this model's devices; null: every model" }),
    kind: z.string().nullable().meta({
      description:
        "Only this kind's devices; null: every kind. Over several models each device's exposure is weighted by its model's rate of what is compared",
    }),
    dimension: CohortDimension,
    from: isoTime.meta({ description: "Start of the window used: `from` floored to the UTC hour" }),
    to: isoTime.meta({ description: "End (exclusive): `to` raised to the next UTC hour" }),
    severity: Severity.nullable(),
    code: z.string().nullable(),
    devices: count.meta({
      description: "The model's (kind's) devices with exposure in the window, whatever their value",
    }),
    familySize: count.meta({
      description:
        "Comparisons judged together (Holm): every cohort's overall and per-code comparisons that could be called anything (with a fault, no side below the device minimum)",
    }),
    unknown: z.object({ devices: count, exposureHours: z.number() }).meta({
      description: "Devices whose value is not known: in every cohort's rest, never a cohort of their own",
    }),
    cohorts: z.array(RankedCohort).meta({
      description:
        "Worst first: regressions, then by rate ratio (highest first); a value alone in its model has no rest and is left out",
    }),
  })
  .meta({ id: "CohortRanking" });
export type CohortRanking = z.infer<typeof CohortRanking>;

const GROUP_LIST = new RegExp(`^(${GROUP_TAGS.join("|")})(,(${GROUP_TAGS.join("|")}))*$`);

const selection = {
  kind: Label.optional().meta({ description: "Only devices of this kind", example: "modem" }),
  model: Label.optional().meta({ description: "Only this model", example: "FQ-Modem 7590" }),
  firmware: Label.optional().meta({ description: "Only this firmware version", example: "7.57" }),
  region: Label.optional().meta({ description: "Only this region", example: "eu" }),
  isp: Label.optional().meta({
    description: "Only devices whose latest hello names this ISP",
    example: "1und1",
  }),
  hardware: Label.optional().meta({
    description: "Only devices whose latest hello names this hardware revision",
    example: "rev-b",
  }),
};

export const FleetSummaryParams = z.strictObject({
  from: timeParam(
    `Start, inclusive, floored to the UTC hour; default \`to\` minus 7d; at most ${MAX_SERIES_DAYS} days before \`to\``,
  ),
  to: timeParam("End, exclusive, raised to the next UTC hour; default now"),
  groupBy: z
    .string()
    .regex(GROUP_LIST, `must be a comma-separated list of ${GROUP_TAGS.join(", ")}`)
    .default("model")
    .meta({ description: "Tags to group by, comma-separated", example: "model,firmware" }),
  ...selection,
});

export const FleetTrendParams = z.strictObject({
  from: timeParam(
    `Start, inclusive, floored to the UTC hour; default \`to\` minus 7d; at most ${MAX_SERIES_DAYS} days before \`to\``,
  ),
  to: timeParam("End, exclusive, raised to the next UTC hour; default now"),
  ...selection,
});

export const FirmwareListParams = z.strictObject({
  model: Label.optional().meta({ description: "Only this model", example: "FQ-Modem 7590" }),
  from: timeParam(
    `Start, inclusive, floored to the UTC hour; default \`to\` minus 30d; at most ${MAX_SERIES_DAYS} days before \`to\``,
  ),
  to: timeParam("End, exclusive, raised to the next UTC hour; default now"),
});

export const FirmwareCompareParams = z
  .strictObject({
    model: Label.meta({ description: "The model both cohorts belong to", example: "FQ-Modem 7590" }),
    baseline: Label.meta({ description: "Firmware of the reference cohort", example: "7.56" }),
    candidate: Label.meta({ description: "Firmware of the cohort under test", example: "7.57" }),
    severity: Severity.optional().meta({
      description: "Count only faults of this severity in `overall` and `byCode`",
    }),
    from: timeParam(
      `Start, inclusive, floored to the UTC hour; default \`to\` minus 30d; at most ${MAX_SERIES_DAYS} days before \`to\``,
    ),
    to: timeParam("End, exclusive, raised to the next UTC hour; default now"),
  })
  .refine((q) => q.baseline !== q.candidate, { message: "must differ from baseline", path: ["candidate"] });

export const CohortRankingParams = z.strictObject({
  model: Label.optional().meta({ description: "Only this model's devices", example: "FQ-Modem 7590" }),
  kind: Label.optional().meta({
    description:
      "Only this kind's devices: every model of it (an ISP's lines serve several models), each device's exposure weighted by its model's rate",
    example: "modem",
  }),
  dimension: CohortDimension.default("isp").meta({
    description:
      "Each value of it (ISP, region, hardware revision or firmware) against the rest of the selection",
    example: "isp",
  }),
  severity: Severity.optional().meta({ description: "Count only faults of this severity" }),
  code: Label.optional().meta({ description: "Count only faults of this code", example: "DSL_RESYNC" }),
  from: timeParam(
    `Start, inclusive, floored to the UTC hour; default \`to\` minus 30d; at most ${MAX_SERIES_DAYS} days before \`to\``,
  ),
  to: timeParam("End, exclusive, raised to the next UTC hour; default now"),
});
