import type { Hello } from "../../contract/messages.js";
import type { DeviceSpec } from "../device.js";
import { ISPS, productLine, REGIONS } from "../models/catalog.js";
import type { SimKind } from "../models/index.js";
import { createRandom, deriveSeed, faultProneness, type Random } from "../random.js";
import type {
  DeviceScript,
  FirmwarePush,
  FleetHeterogeneity,
  GroundTruth,
  InjectedProblem,
} from "../script.js";
import { PRODUCT_LINES, type Problem, type Rollout, type Scenario } from "./schema.js";

export type PlanOptions = {
  /** Overrides the scenario's seed. */
  seed?: number | undefined;
  /** The moment of the run: "now" and "-14d" starts are counted from it. */
  nowMs: number;
};

/** Everything a runner needs: the devices with their scripts, and the ground truth to write out. */
export type ScenarioPlan = {
  devices: (DeviceSpec & { script: DeviceScript })[];
  truth: GroundTruth;
  startMs: number;
  endMs: number;
  cadenceMs: number;
  /** Things the draws made come out thinner than the file asked, such as a rollout that reached no device. */
  warnings: string[];
};

/** A device while it is planned: its script is filled in by the rollouts, then by the problems. */
type Planned = {
  spec: DeviceSpec & { script: DeviceScript };
  /** Names the device's own random streams: its model, which entry of that model, and its place in it. */
  key: string;
  model: string;
};

const evenly = (values: readonly string[]) => Object.fromEntries(values.map((value) => [value, 1]));

/** One value, picked by its share. */
function draw(random: Random, shares: Record<string, number>): string {
  const [first, ...rest] = Object.entries(shares);
  if (first === undefined) throw new Error("no values to draw from: the schema refuses an empty map");
  return random.weighted([first, ...rest]);
}

/**
 * The devices, their scripts and the ground truth of a scenario. Deterministic: the same scenario, seed and
 * start give the same plan. Each device draws from streams of its own, named after its model, its entry and
 * its place there, so adding a fleet entry or a problem leaves the other devices as they were.
 */
export function planScenario(scenario: Scenario, options: PlanOptions): ScenarioPlan {
  const seed = options.seed ?? scenario.seed;
  const startMs = scenario.start.from === "now" ? options.nowMs + scenario.start.offsetMs : scenario.start.ms;
  const endMs = startMs + scenario.duration;
  const warnings: string[] = [];
  const stream = (name: string) => createRandom(deriveSeed(seed, name));

  const planned: Planned[] = [];
  const numbered: Record<SimKind, number> = { modem: 0, printer: 0 };
  const entriesOfModel = new Map<string, number>();
  const heterogeneity: FleetHeterogeneity[] = [];
  for (const entry of scenario.fleet) {
    const line = productLine(PRODUCT_LINES[entry.kind], entry.model);
    if (line === undefined) throw new Error(`unknown model ${entry.model}: the schema refuses it`);
    const given = entry.heterogeneity ?? scenario.heterogeneity;
    const shape = given === "none" ? undefined : given;
    heterogeneity.push({ model: entry.model, devices: entry.count, shape: shape ?? null });
    const occurrence = entriesOfModel.get(entry.model) ?? 0;
    entriesOfModel.set(entry.model, occurrence + 1);
    for (let index = 0; index < entry.count; index++) {
      const key = `${entry.model}#${occurrence}/${index}`;
      const random = stream(key);
      const hello: Hello = {
        kind: entry.kind,
        model: entry.model,
        firmware: draw(random, entry.firmware ?? Object.fromEntries(line.firmware)),
        hardware: random.pick(line.hardware),
        serial: `${line.serialPrefix}-${random.int(0, 0xffffffff).toString(16).padStart(8, "0").toUpperCase()}`,
        region: draw(random, entry.regions ?? evenly(REGIONS)),
      };
      if (entry.kind === "modem") hello.isp = draw(random, entry.isps ?? evenly(ISPS));
      numbered[entry.kind] += 1;
      const id = `${entry.kind}-${String(numbered[entry.kind]).padStart(4, "0")}`;
      const script: DeviceScript = {
        updates: [],
        boosts: [],
        // A stream of its own, so that drawing it leaves the device's other draws as they were.
        proneness: faultProneness(stream(`${key}/proneness`), shape),
        lineFlakiness: 1,
        malformedPerHour: 0,
      };
      planned.push({ spec: { id, kind: entry.kind, hello, script }, key, model: entry.model });
    }
  }

  for (const device of planned) {
    const pushes = scenario.rollouts
      .filter((rollout) => rollout.model === device.model)
      .flatMap((rollout) => {
        const push = pushFor(rollout, stream(`${device.key}/rollout/${rollout.firmware}`), scenario.duration);
        return push === undefined ? [] : [{ atMs: startMs + push.offsetMs, to: rollout.firmware }];
      })
      .sort((a, b) => a.atMs - b.atMs);
    device.spec.script.updates = withoutNoOps(device.spec.hello.firmware, pushes);
  }

  const problems = scenario.problems.map((problem) =>
    inject(problem, planned, { startMs, endMs, stream, warn: (message) => warnings.push(message) }),
  );

  const devices = planned.map((device) => device.spec);
  const truth: GroundTruth = {
    scenario: scenario.name,
    seed,
    startMs,
    endMs,
    devices: devices.length,
    heterogeneity,
    problems,
  };
  return { devices, truth, startMs, endMs, cadenceMs: scenario.cadence, warnings };
}

/**
 * When a rollout reaches a device, as time after the start: the device draws u once and is updated in the
 * first stage whose cumulative percent exceeds u·100, at a moment spread over the stage's first hours.
 */
function pushFor(rollout: Rollout, random: Random, durationMs: number): { offsetMs: number } | undefined {
  const u = random.next();
  const index = rollout.stages.findIndex((stage) => stage.percent > u * 100);
  const stage = rollout.stages[index];
  if (stage === undefined) return undefined;
  const next = rollout.stages[index + 1]?.at ?? durationMs;
  // A caller that shortens the duration may leave a stage past the end: its pushes then never come due.
  const spread = Math.max(0, Math.min(rollout.spread, next - stage.at));
  return { offsetMs: stage.at + Math.floor(random.next() * spread) };
}

/** Drops pushes of the firmware the device already runs at that moment. */
function withoutNoOps(firmware: string, pushes: FirmwarePush[]): FirmwarePush[] {
  let running = firmware;
  return pushes.filter((push) => {
    if (push.to === running) return false;
    running = push.to;
    return true;
  });
}

type InjectContext = {
  startMs: number;
  endMs: number;
  stream: (name: string) => Random;
  warn: (message: string) => void;
};

function inject(problem: Problem, planned: Planned[], context: InjectContext): InjectedProblem {
  const { startMs, endMs } = context;
  const ids = (devices: Planned[]) => devices.map((device) => device.spec.id);
  const ofModel = (model: string) => planned.filter((device) => device.model === model);
  const kindOf = (model: string) => planned.find((device) => device.model === model)?.spec.kind ?? "";
  switch (problem.type) {
    case "fault_rate": {
      const devices = ofModel(problem.model);
      const boost = { firmware: problem.firmware, code: problem.code, factor: problem.factor };
      for (const device of devices) device.spec.script.boosts.push(boost);
      const { onsetMs, baseline } = firstRunOf(problem.firmware, devices, startMs);
      if (onsetMs === undefined) {
        context.warn(`${problem.id}: no ${problem.model} runs ${problem.firmware} during the run`);
      }
      if (baseline === undefined) {
        context.warn(`${problem.id}: every ${problem.model} runs ${problem.firmware}, there is no baseline`);
      }
      return {
        id: problem.id,
        type: "fault_rate",
        kind: kindOf(problem.model),
        model: problem.model,
        baseline: baseline ?? "",
        firmware: problem.firmware,
        code: problem.code,
        factor: problem.factor,
        onsetMs: onsetMs ?? endMs,
      };
    }
    case "silent_after_update": {
      const updated = ofModel(problem.model).filter(
        (device) =>
          device.spec.script.silentAfter === undefined &&
          // Only devices whose silence would begin within the run: a shortened run leaves the rest out.
          device.spec.script.updates.some(
            (push) => push.to === problem.firmware && push.atMs + problem.delay < endMs,
          ),
      );
      const chosen = choose(problem, updated, context);
      let onsetMs = endMs;
      for (const device of chosen) {
        device.spec.script.silentAfter = { firmware: problem.firmware, delayMs: problem.delay };
        const push = device.spec.script.updates.find((update) => update.to === problem.firmware);
        if (push !== undefined) onsetMs = Math.min(onsetMs, push.atMs + problem.delay);
      }
      return {
        id: problem.id,
        type: "silent_after_update",
        kind: kindOf(problem.model),
        model: problem.model,
        firmware: problem.firmware,
        devices: ids(chosen),
        onsetMs,
      };
    }
    case "flaky_isp": {
      const devices = planned.filter(
        (device) => device.spec.kind === "modem" && device.spec.hello.isp === problem.isp,
      );
      for (const device of devices) device.spec.script.lineFlakiness = problem.factor;
      if (devices.length === 0) context.warn(`${problem.id}: no modem drew ISP ${problem.isp}`);
      return {
        id: problem.id,
        type: "flaky_isp",
        isp: problem.isp,
        factor: problem.factor,
        devices: ids(devices),
        onsetMs: startMs,
      };
    }
    case "malformed": {
      const candidates = problem.model === undefined ? planned : ofModel(problem.model);
      const chosen = choose(problem, candidates, context);
      for (const device of chosen) device.spec.script.malformedPerHour += problem.per_hour;
      return {
        id: problem.id,
        type: "malformed",
        perHour: problem.per_hour,
        devices: ids(chosen),
        onsetMs: startMs,
      };
    }
    case "lemons": {
      const { model, kind, code } = problem;
      const candidates = planned.filter(
        (device) =>
          (model === undefined ? device.spec.kind === kind : device.model === model) &&
          (problem.firmware === undefined || device.spec.hello.firmware === problem.firmware),
      );
      const chosen = choose(problem, candidates, context);
      // A lemon is measured against its model's average device, not against the proneness it drew: one that
      // drew 0.1 would otherwise be a lemon of rate 0.8 at factor 8, indistinguishable from its neighbours.
      for (const { spec } of chosen) {
        if (code === undefined) spec.script.proneness = problem.factor;
        else spec.script.boosts.push({ code, factor: problem.factor / spec.script.proneness });
      }
      return {
        id: problem.id,
        type: "lemons",
        kind: model === undefined ? (kind ?? "") : kindOf(model),
        ...(model === undefined ? {} : { model }),
        ...(code === undefined ? {} : { code }),
        factor: problem.factor,
        devices: ids(chosen),
        onsetMs: startMs,
      };
    }
  }
}

/**
 * The devices a problem picks: each candidate draws a rank from a stream of its own for this problem, and the
 * lowest ranks win. A percentage is of the candidates, and picks at least one.
 */
function choose(
  problem: { id: string; percent?: number | undefined; count?: number | undefined },
  candidates: Planned[],
  context: InjectContext,
): Planned[] {
  const wanted = problem.count ?? Math.max(1, Math.round(((problem.percent ?? 0) / 100) * candidates.length));
  if (wanted > candidates.length) {
    context.warn(`${problem.id}: asked for ${wanted} devices, found ${candidates.length}`);
  }
  return candidates
    .map((device, order) => ({
      device,
      order,
      rank: context.stream(`${device.key}/problem/${problem.id}`).next(),
    }))
    .sort((a, b) => a.rank - b.rank)
    .slice(0, wanted)
    .sort((a, b) => a.order - b.order)
    .map(({ device }) => device);
}

/**
 * When the firmware first ran on one of these devices (the start, if some ran it from the beginning), and the
 * baseline to compare it with: the version most of the updated devices ran before it, or, when none was
 * updated, the most common other version they started on.
 */
function firstRunOf(
  firmware: string,
  devices: Planned[],
  startMs: number,
): { onsetMs?: number; baseline?: string } {
  let onsetMs: number | undefined;
  const before = new Map<string, number>();
  const started = new Map<string, number>();
  const count = (counts: Map<string, number>, version: string) =>
    counts.set(version, (counts.get(version) ?? 0) + 1);
  for (const device of devices) {
    let running = device.spec.hello.firmware;
    if (running === firmware) onsetMs = startMs;
    else count(started, running);
    for (const push of device.spec.script.updates) {
      if (push.to === firmware) {
        count(before, running);
        onsetMs = Math.min(onsetMs ?? push.atMs, push.atMs);
        break;
      }
      running = push.to;
    }
  }
  const baseline = mostCommon(before.size > 0 ? before : started);
  return { ...(onsetMs === undefined ? {} : { onsetMs }), ...(baseline === undefined ? {} : { baseline }) };
}

/** Ties go to the version that sorts first, so the answer does not hang on the order of the devices. */
function mostCommon(counts: Map<string, number>): string | undefined {
  let best: [string, number] | undefined;
  for (const [version, n] of counts) {
    if (best === undefined || n > best[1] || (n === best[1] && version < best[0])) best = [version, n];
  }
  return best?.[0];
}
