import { z } from "zod";
import { parseDuration } from "../../config/duration.js";
import { LABEL_PATTERN, Label } from "../../contract/messages.js";
import { HOUR_MS } from "../../contract/time.js";
import { ISPS, MODEMS, PRINTERS, type ProductLine, productLine } from "../models/catalog.js";
import { FAULT_CODES, type SimKind } from "../models/index.js";

// A scenario file, YAML or JSON: the fleet, its rollouts, the problems injected into it and the time span.
// Field names are snake_case, as YAML files usually spell them. Durations are strings such as "5m" or "7d";
// shares are percentages.

export const PRODUCT_LINES: Record<SimKind, readonly ProductLine[]> = { modem: MODEMS, printer: PRINTERS };

const DEFAULT_CADENCE_MS = 5 * 60_000;
const DEFAULT_SPREAD_MS = 4 * HOUR_MS;
/** Real devices differ: unless a file says otherwise, their proneness is gamma with this shape (CV 0.71). */
export const DEFAULT_HETEROGENEITY = 2;
const SHARE_TOLERANCE = 0.01;

const Duration = z
  .string({ error: 'must be a duration such as "90s", "5m", "12h" or "7d"' })
  .transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.issues.push({
        code: "custom",
        input: text,
        message: `"${text}" is not a duration: write a whole number and one unit of ms, s, m, h, d or w, such as "12h"`,
      });
      return z.NEVER;
    }
    return ms;
  });

/** Where scenario time begins: the moment of the run, a time before it, or a fixed instant. */
export type StartTime = { from: "now"; offsetMs: number } | { from: "fixed"; ms: number };

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/;
const START_HELP =
  'must be "now", a time before now such as "-14d", or an ISO timestamp such as "2025-06-01T00:00:00Z"';

const Start = z.string({ error: START_HELP }).transform((text, ctx): StartTime => {
  if (text === "now") return { from: "now", offsetMs: 0 };
  if (text.startsWith("-")) {
    const ms = parseDuration(text.slice(1));
    if (ms !== undefined) return { from: "now", offsetMs: -ms };
  }
  const ms = ISO_WITH_ZONE.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isNaN(ms)) return { from: "fixed", ms };
  ctx.issues.push({ code: "custom", input: text, message: `"${text}" ${START_HELP}` });
  return z.NEVER;
});

/** A firmware version as text; a bare 7.30 in YAML is the number 7.3, so a number is refused with a hint. */
const Version = z
  .string({
    error: (issue) =>
      typeof issue.input === "number"
        ? 'write the version in quotes, such as "7.30": unquoted, it reads as a number and loses trailing zeros'
        : "must be a firmware version",
  })
  .regex(LABEL_PATTERN, "must be 1-64 letters, digits or . _ : + / ( ) # - and start with a letter or digit");

const Percent = z.number().min(0).max(100);

/** One value (all of them), or a map of values to the percentage of devices that get it. */
const shares = (what: string) =>
  z.preprocess(
    (value) => (typeof value === "string" ? { [value]: 100 } : value),
    z.record(Label, Percent, { error: `must be one ${what}, or a map of ${what}s to percentages` }),
  );

const Count = z.number().int().min(1).max(1_000_000);

const HETEROGENEITY_HELP =
  'must be a number from 0.1 to 1000 (the gamma shape of how fault-prone devices are: smaller, they differ more) or "none" (all alike)';

/** The gamma shape of the devices' proneness, or "none": every device faults at its model's rates. */
const Heterogeneity = z.union(
  [z.number().min(0.1, HETEROGENEITY_HELP).max(1000, HETEROGENEITY_HELP), z.literal("none")],
  {
    error: HETEROGENEITY_HELP,
  },
);

export const FleetEntry = z.strictObject({
  kind: z.enum(["modem", "printer"]),
  model: Label,
  count: Count,
  /** Default: the product line's usual mix. */
  firmware: shares("version").optional(),
  /** Default: evenly over the catalog's regions. */
  regions: shares("region").optional(),
  /** Modems only. Default: evenly over the catalog's ISPs. */
  isps: shares("ISP").optional(),
  /** Default: the scenario's. */
  heterogeneity: Heterogeneity.optional(),
});
export type FleetEntry = z.infer<typeof FleetEntry>;

export const RolloutStage = z.strictObject({
  /** Time after the scenario's start. */
  at: Duration,
  /** Share of the model's devices updated by the end of this stage, counting earlier stages. */
  percent: z.number().gt(0).max(100),
});

export const Rollout = z.strictObject({
  model: Label,
  firmware: Version,
  /** Updates of one stage land over this long after its start, not all at one instant. */
  spread: Duration.default(DEFAULT_SPREAD_MS),
  stages: z.array(RolloutStage).min(1),
});
export type Rollout = z.infer<typeof Rollout>;

const ProblemId = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_.-]{0,63}$/,
    "must be 1-64 lower-case letters, digits or . _ - (it names the problem)",
  );

/** Exactly one of percent and count picks the devices; checked with the cross-references. */
const devicePick = { percent: z.number().gt(0).max(100).optional(), count: Count.optional() };

export const FaultRateProblem = z.strictObject({
  id: ProblemId,
  type: z.literal("fault_rate"),
  model: Label,
  firmware: Version,
  code: Label,
  factor: z.number().gt(0).max(1000),
});
export const SilentAfterUpdateProblem = z.strictObject({
  id: ProblemId,
  type: z.literal("silent_after_update"),
  model: Label,
  firmware: Version,
  /** Percent of the devices that receive the update, or a count of them. */
  ...devicePick,
  delay: Duration,
});
export const FlakyIspProblem = z.strictObject({
  id: ProblemId,
  type: z.literal("flaky_isp"),
  isp: Label,
  factor: z.number().gt(1).max(1000),
});
export const MalformedProblem = z.strictObject({
  id: ProblemId,
  type: z.literal("malformed"),
  /** Default: any device of the fleet. */
  model: Label.optional(),
  ...devicePick,
  per_hour: z.number().gt(0).max(3600),
});

export const LemonsProblem = z.strictObject({
  id: ProblemId,
  type: z.literal("lemons"),
  /** Exactly one of model and kind says where the lemons are picked. */
  model: Label.optional(),
  kind: z.enum(["modem", "printer"]).optional(),
  /** Picks only among devices that start on this version (they stay lemons on every other). */
  firmware: Version.optional(),
  ...devicePick,
  /** Default: every fault of the device. */
  code: Label.optional(),
  factor: z.number().gt(1).max(1000),
});

export const Problem = z.discriminatedUnion("type", [
  FaultRateProblem,
  SilentAfterUpdateProblem,
  FlakyIspProblem,
  MalformedProblem,
  LemonsProblem,
]);
export type Problem = z.infer<typeof Problem>;

const ScenarioFields = z.strictObject({
  name: Label,
  description: z.string().optional(),
  seed: z.number().int().min(0).max(0xffff_ffff).default(1),
  start: Start.default({ from: "now", offsetMs: 0 }),
  duration: Duration,
  /** How often a device reports telemetry. */
  cadence: Duration.default(DEFAULT_CADENCE_MS),
  /** How much devices differ, for the fleet entries that do not say. */
  heterogeneity: Heterogeneity.default(DEFAULT_HETEROGENEITY),
  fleet: z.array(FleetEntry).min(1),
  rollouts: z.array(Rollout).default([]),
  problems: z.array(Problem).default([]),
});

export const Scenario = ScenarioFields.superRefine((scenario, ctx) => {
  for (const { path, message } of crossCheck(scenario)) ctx.addIssue({ code: "custom", path, message });
});
export type Scenario = z.infer<typeof Scenario>;

type Finding = { path: (string | number)[]; message: string };

/** The models' lines in a scenario, with what they may run: their entries' versions and rollout targets. */
function modelsOf(scenario: z.infer<typeof ScenarioFields>) {
  const models = new Map<
    string,
    { kind: SimKind; devices: number; firmware: Set<string>; isps: Set<string> }
  >();
  for (const entry of scenario.fleet) {
    const line = productLine(PRODUCT_LINES[entry.kind], entry.model);
    if (line === undefined) continue;
    const model = models.get(entry.model) ?? {
      kind: entry.kind,
      devices: 0,
      firmware: new Set(),
      isps: new Set(),
    };
    model.devices += entry.count;
    const firmware = entry.firmware ?? Object.fromEntries(line.firmware);
    for (const [version, percent] of Object.entries(firmware)) if (percent > 0) model.firmware.add(version);
    const isps =
      entry.kind === "modem" ? (entry.isps ?? Object.fromEntries(ISPS.map((isp) => [isp, 1]))) : {};
    for (const [isp, percent] of Object.entries(isps)) if (percent > 0) model.isps.add(isp);
    models.set(entry.model, model);
  }
  return models;
}

const knownModels = (kind: SimKind) => PRODUCT_LINES[kind].map((line) => `"${line.model}"`).join(", ");
const otherKind = (kind: SimKind): SimKind => (kind === "modem" ? "printer" : "modem");

/** What the schema's field types cannot say: names that must exist elsewhere in the file, sums, order. */
function crossCheck(scenario: z.infer<typeof ScenarioFields>): Finding[] {
  const findings: Finding[] = [];
  const add = (path: (string | number)[], message: string) => findings.push({ path, message });

  if (scenario.cadence >= scenario.duration) add(["cadence"], "must be shorter than the duration");

  scenario.fleet.forEach((entry, index) => {
    const at = ["fleet", index];
    if (productLine(PRODUCT_LINES[entry.kind], entry.model) === undefined) {
      const other = otherKind(entry.kind);
      add(
        [...at, "model"],
        productLine(PRODUCT_LINES[other], entry.model)
          ? `"${entry.model}" is a ${other}, not a ${entry.kind}`
          : `unknown ${entry.kind} model "${entry.model}"; known: ${knownModels(entry.kind)}`,
      );
    }
    if (entry.kind !== "modem" && entry.isps !== undefined) add([...at, "isps"], "only modems have an ISP");
    for (const field of ["firmware", "regions", "isps"] as const) {
      const given = entry[field];
      if (given === undefined) continue;
      const sum = Object.values(given).reduce((total, percent) => total + percent, 0);
      if (Math.abs(sum - 100) > SHARE_TOLERANCE) add([...at, field], `percentages add up to ${sum}, not 100`);
    }
  });

  const models = modelsOf(scenario);
  const inFleet = (path: (string | number)[], model: string) => {
    const found = models.get(model);
    if (found === undefined) add(path, `no fleet entry has model "${model}"`);
    return found;
  };

  const rolloutTargets = new Map<string, number>();
  scenario.rollouts.forEach((rollout, index) => {
    const at = ["rollouts", index];
    const key = `${rollout.model}\n${rollout.firmware}`;
    const earlier = rolloutTargets.get(key);
    if (earlier !== undefined)
      add([...at, "firmware"], `rollouts[${earlier}] already brings this model to it`);
    rolloutTargets.set(key, index);
    inFleet([...at, "model"], rollout.model);
    rollout.stages.forEach((stage, s) => {
      const previous = rollout.stages[s - 1];
      if (stage.at >= scenario.duration) add([...at, "stages", s, "at"], "must fall within the duration");
      if (previous !== undefined && stage.at <= previous.at) {
        add([...at, "stages", s, "at"], "must come after the stage before it");
      }
      if (previous !== undefined && stage.percent <= previous.percent) {
        add(
          [...at, "stages", s, "percent"],
          `must rise from stage to stage: ${stage.percent}% after ${previous.percent}%`,
        );
      }
    });
  });
  for (const [key] of rolloutTargets) {
    const [model = "", firmware = ""] = key.split("\n");
    const found = models.get(model);
    if (found) found.firmware.add(firmware);
  }

  const ids = new Map<string, number>();
  const flakyIsps = new Map<string, number>();
  scenario.problems.forEach((problem, index) => {
    const at = ["problems", index];
    const earlier = ids.get(problem.id);
    if (earlier !== undefined)
      add([...at, "id"], `"${problem.id}" is already the id of problems[${earlier}]`);
    ids.set(problem.id, index);

    if (problem.type === "silent_after_update" || problem.type === "malformed" || problem.type === "lemons") {
      if ((problem.percent === undefined) === (problem.count === undefined)) {
        add(at, "give either percent or count of the devices");
      }
    }
    switch (problem.type) {
      case "fault_rate": {
        const model = inFleet([...at, "model"], problem.model);
        if (model === undefined) break;
        const codes: readonly string[] = FAULT_CODES[model.kind];
        if (!codes.includes(problem.code)) {
          add([...at, "code"], `${model.kind}s raise no fault "${problem.code}"; known: ${codes.join(", ")}`);
        }
        if (!model.firmware.has(problem.firmware)) {
          add([...at, "firmware"], neverRuns(problem.model, problem.firmware));
        } else if (model.firmware.size < 2) {
          add(
            [...at, "firmware"],
            `"${problem.model}" runs nothing else to compare ${problem.firmware} with`,
          );
        }
        break;
      }
      case "silent_after_update": {
        const model = inFleet([...at, "model"], problem.model);
        if (model === undefined) break;
        const rollout = scenario.rollouts.find(
          (r) => r.model === problem.model && r.firmware === problem.firmware,
        );
        if (rollout === undefined) {
          add([...at, "firmware"], `no rollout brings "${problem.model}" to ${problem.firmware}`);
          break;
        }
        if (problem.count !== undefined && problem.count > model.devices) {
          add([...at, "count"], `the fleet has only ${model.devices} "${problem.model}" devices`);
        }
        const lastStage = rollout.stages[rollout.stages.length - 1];
        if (lastStage !== undefined && lastStage.at + rollout.spread + problem.delay > scenario.duration) {
          add(
            [...at, "delay"],
            "devices updated in the rollout's last stage would go silent after the run ends: shorten the delay",
          );
        }
        break;
      }
      case "flaky_isp": {
        const earlierIsp = flakyIsps.get(problem.isp);
        if (earlierIsp !== undefined) add([...at, "isp"], `problems[${earlierIsp}] already makes it flaky`);
        flakyIsps.set(problem.isp, index);
        const used = [...models.values()].some((model) => model.isps.has(problem.isp));
        if (!used) add([...at, "isp"], `no modem in the fleet uses ISP "${problem.isp}"`);
        break;
      }
      case "malformed": {
        const devices =
          problem.model === undefined
            ? scenario.fleet.reduce((total, entry) => total + entry.count, 0)
            : inFleet([...at, "model"], problem.model)?.devices;
        if (devices !== undefined && problem.count !== undefined && problem.count > devices) {
          add([...at, "count"], `the fleet has only ${devices} such devices`);
        }
        break;
      }
      case "lemons": {
        if ((problem.model === undefined) === (problem.kind === undefined)) {
          add(at, "give either the model or the kind the lemons are picked among");
          break;
        }
        let kind: SimKind | undefined;
        let devices = 0;
        if (problem.model !== undefined) {
          const model = inFleet([...at, "model"], problem.model);
          kind = model?.kind;
          devices = model?.devices ?? 0;
        } else if (problem.kind !== undefined) {
          kind = problem.kind;
          for (const model of models.values()) if (model.kind === kind) devices += model.devices;
          if (devices === 0) add([...at, "kind"], `the fleet has no ${kind}`);
        }
        if (kind === undefined) break;
        if (problem.firmware !== undefined) {
          const starts = scenario.fleet.some(
            (entry) =>
              (problem.model === undefined ? entry.kind === kind : entry.model === problem.model) &&
              startsOn(entry, problem.firmware ?? ""),
          );
          if (!starts)
            add([...at, "firmware"], `no fleet entry of these devices starts on ${problem.firmware}`);
        }
        const codes: readonly string[] = FAULT_CODES[kind];
        if (problem.code !== undefined && !codes.includes(problem.code)) {
          add([...at, "code"], `${kind}s raise no fault "${problem.code}"; known: ${codes.join(", ")}`);
        }
        if (devices > 0 && problem.count !== undefined && problem.count > devices) {
          add([...at, "count"], `the fleet has only ${devices} such devices`);
        }
        break;
      }
    }
  });
  return findings;
}

/** Whether some devices of the entry start on the version (by its shares, or its line's usual mix). */
function startsOn(entry: FleetEntry, version: string): boolean {
  const line = productLine(PRODUCT_LINES[entry.kind], entry.model);
  const shares = entry.firmware ?? (line === undefined ? {} : Object.fromEntries(line.firmware));
  return (shares[version] ?? 0) > 0;
}

const neverRuns = (model: string, firmware: string) =>
  `"${model}" never runs ${firmware}: no fleet entry starts on it and no rollout brings it`;
