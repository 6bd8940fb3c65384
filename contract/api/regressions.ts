import { z } from "zod";
import { Label } from "../messages.js";
import { count, isoTime } from "./common.js";
import { RateComparison } from "./fleet.js";

// Regressions found without asking: the verdicts the regression runner keeps (rollup/regression-runner.ts,
// analytics/regression-scan.ts), listed by GET /api/v1/firmware/regressions.

export const JUDGED_VERDICTS = ["regression", "improvement"] as const;
export const JudgedVerdict = z.enum(JUDGED_VERDICTS);
export type JudgedVerdict = z.infer<typeof JudgedVerdict>;

export const RegressionSubject = z
  .discriminatedUnion("kind", [
    z.object({
      kind: z.literal("firmware"),
      firmware: z.string().meta({ description: "The version judged" }),
      baseline: z.enum(["predecessor", "rest"]).meta({
        description:
          "predecessor: the newest older version with exposure; rest: every other version of the model, pooled per device",
      }),
      baselineFirmware: z
        .array(z.string())
        .meta({ description: "The versions of the baseline cohort, oldest first" }),
    }),
    z.object({
      kind: z.literal("dimension"),
      scope: z.enum(["model", "kind"]).meta({
        description:
          "model: against the rest of the model; kind: against the rest of every model of the kind, each device's exposure weighted by its model's rate",
      }),
      dimension: z.enum(["isp", "region", "hardware"]).meta({
        description:
          "What the devices report: ISP and hardware as their latest hello says, region as they reported in",
      }),
      value: z.string().meta({ description: "The value judged, against every other device of the scope" }),
    }),
  ])
  .meta({ id: "RegressionSubject" });
export type RegressionSubject = z.infer<typeof RegressionSubject>;

export const RegressionVerdict = z
  .object({
    model: z.string().nullable().meta({ description: "null when the subject spans every model of a kind" }),
    deviceKind: z.string().meta({ description: "The kind of the devices concerned", example: "modem" }),
    subject: RegressionSubject,
    verdict: JudgedVerdict.meta({
      description:
        "regression: overall or a code worse than the baseline; improvement (a version over its predecessor only): better, none worse",
    }),
    firstReached: isoTime.meta({
      description:
        "The first whole hour at which a scan of the 30 days before it reached this verdict, on the data's clock (device time): the same for a backfilled history and a live run",
    }),
    from: isoTime.meta({
      description: "The window of the scan the evidence comes from (the one that raised it)",
    }),
    to: isoTime,
    familySize: count.meta({
      description:
        "Comparisons that scan judged together (Holm): every subject's overall and per-code comparison",
    }),
    overall: RateComparison,
    codes: z.array(z.object({ code: z.string(), comparison: RateComparison })).meta({
      description: "The codes whose own verdict is this one (for a regression: the codes that regress)",
    }),
  })
  .meta({ id: "RegressionVerdict" });
export type RegressionVerdict = z.infer<typeof RegressionVerdict>;

export const RegressionList = z
  .object({
    items: z
      .array(RegressionVerdict)
      .meta({ description: "Verdicts that hold now, newest firstReached first" }),
  })
  .meta({ id: "RegressionList" });
export type RegressionList = z.infer<typeof RegressionList>;

export const RegressionListParams = z.strictObject({
  model: Label.optional().meta({ description: "Only this model", example: "FQ-Modem 7590" }),
  kind: Label.optional().meta({ description: "Only devices of this kind", example: "modem" }),
  verdict: JudgedVerdict.optional().meta({ description: "Only this verdict", example: "regression" }),
});
