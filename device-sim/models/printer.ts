import type { Fault, Hello, Severity } from "../../contract/messages.js";
import type { Random } from "../random.js";
import type { DeviceScript } from "../script.js";
import {
  annoyanceOf,
  type BaseState,
  type CommandStep,
  clamp,
  type DeviceModel,
  faded,
  faultFactor,
  faultMessage,
  happens,
  rating,
  rebootEvent,
  round1,
  round2,
  type SimCommand,
  type SimMessage,
  type SimTime,
  type Stamp,
  type Step,
  stamper,
  YEAR_MS,
} from "./device-model.js";
import { NO_UPDATES_TAKEN, takeDueUpdate } from "./firmware.js";

// A desktop FDM printer: idle → heating → printing → cooling → idle, with first-order heater physics.

export type PrinterPhase = "idle" | "heating" | "printing" | "cooling";

export type PrintJob = { id: string; durationS: number; elapsedS: number; gramsPerS: number };

export type PrinterState = BaseState & {
  /** When the printer was set up: its part fan wears with the years. */
  inServiceSinceMs: number;
  phase: PrinterPhase;
  job: PrintJob | undefined;
  nozzleC: number;
  nozzleTargetC: number;
  bedC: number;
  bedTargetC: number;
  fanBroken: boolean;
  filamentG: number;
  uptimeS: number;
  /** Kept in EEPROM, so they survive a reboot. */
  jobsStarted: number;
  jobsFinished: number;
  jobsFailed: number;
  printS: number;
  /** How far the bed is out of level, in mm; grows with print hours until the bed is levelled again. */
  driftMm: number;
  driftMmPerPrintHour: number;
  /** The owner, warned by the printer, means to level the bed before the next print. */
  levelBeforeNextPrint: boolean;
  /** Decays over a day or so; what the owner remembers when asked for a rating. */
  annoyance: number;
};

export const PRINTER_COUNTERS = [
  "jobs_started",
  "jobs_finished",
  "jobs_failed",
  "print_time_s",
  "uptime_s",
] as const;
export const PRINTER_FAULT_CODES = [
  "THERMAL_RUNAWAY",
  "LAYER_SHIFT",
  "FILAMENT_RUNOUT",
  "NOZZLE_CLOG",
  "FAN_FAILURE",
  "BED_LEVEL_DRIFT",
] as const;
type PrinterFaultCode = (typeof PRINTER_FAULT_CODES)[number];

export const AMBIENT_C = 22;
const NOZZLE_TAU_S = 40;
const BED_TAU_S = 150;
const SPOOL_G = 1000;
const FAN_RPM = 5200;
/** The bed probe reports drift past this offset. */
export const DRIFT_LIMIT_MM = 0.3;
/** Chance that a probe past the limit raises BED_LEVEL_DRIFT, and that the owner then levels the bed. */
const DRIFT_REPORT_CHANCE = 0.25;
const OWNER_LEVELS_CHANCE = 0.4;
/** At the drift limit, layers shift this many times as often as on a level bed. */
const SHIFTS_AT_LIMIT = 4;
const FAN_WEAR_PER_YEAR = 0.8;
const FAN_SLOWDOWN_PER_YEAR = 0.03;

const RATES_PER_HOUR = {
  jobStart: 1.5,
  thermalRunaway: 0.004,
  /** On a level bed. */
  layerShift: 0.03,
  nozzleClog: 0.03,
  fanFailure: 0.01,
  /** The runout sensor trips with filament left: what a boost on FILAMENT_RUNOUT multiplies. */
  falseRunout: 0.01,
  cancel: 0.05,
  powerCycle: 0.01,
  feedback: 0.02,
};

type Material = { name: string; nozzleC: number; bedC: number };
const MATERIALS: readonly [Material, ...Material[]] = [
  { name: "PLA", nozzleC: 215, bedC: 60 },
  { name: "PETG", nozzleC: 240, bedC: 80 },
];

function init(hello: Hello, random: Random, now: number): PrinterState {
  const jobsStarted = random.int(0, 400);
  const jobsFailed = Math.round(jobsStarted * random.between(0.02, 0.08));
  return {
    hello,
    seq: 0,
    updates: NO_UPDATES_TAKEN,
    inServiceSinceMs: now - random.between(0, 3 * YEAR_MS),
    phase: "idle",
    job: undefined,
    nozzleC: AMBIENT_C,
    nozzleTargetC: 0,
    bedC: AMBIENT_C,
    bedTargetC: 0,
    fanBroken: false,
    filamentG: random.int(100, SPOOL_G),
    uptimeS: random.int(60, 7 * 86_400),
    jobsStarted,
    jobsFinished: jobsStarted - jobsFailed,
    jobsFailed,
    printS: jobsStarted * random.between(3_600, 9_000),
    driftMm: random.between(0, DRIFT_LIMIT_MM),
    driftMmPerPrintHour: random.between(0.001, 0.004),
    levelBeforeNextPrint: false,
    annoyance: 0,
  };
}

/** How often layers shift while printing: a bed out of level makes the nozzle catch on the print. */
export function layerShiftsPerHour(state: PrinterState): number {
  return RATES_PER_HOUR.layerShift * (1 + ((SHIFTS_AT_LIMIT - 1) * state.driftMm) / DRIFT_LIMIT_MM);
}

/** A heater's element approaching its target (or the room, when off) over `dt` seconds. */
function approach(current: number, target: number, dt: number, tauS: number): number {
  const goal = target > 0 ? target : AMBIENT_C;
  return current + (goal - current) * (1 - Math.exp(-dt / tauS));
}

/** The job's end: its event, its count, and the heaters off. */
function jobEnded(s: PrinterState, result: "success" | "failed" | "cancelled", stamp: Stamp) {
  const job = s.job;
  if (job === undefined) return { state: s, messages: [] };
  const message: SimMessage = {
    channel: "event",
    payload: {
      ...stamp(),
      type: "print_job",
      data: { result, job_id: job.id, duration_s: Math.round(job.elapsedS) },
    },
  };
  const state: PrinterState = {
    ...s,
    phase: "cooling",
    job: undefined,
    nozzleTargetC: 0,
    bedTargetC: 0,
    jobsFinished: s.jobsFinished + (result === "success" ? 1 : 0),
    jobsFailed: s.jobsFailed + (result === "failed" ? 1 : 0),
  };
  return { state, messages: [message] };
}

/** Levelling the bed (G29): the drift is gone, the owner's worry too. */
function levelled(s: PrinterState, reason: string, random: Random, stamp: Stamp) {
  const state: PrinterState = { ...s, driftMm: random.between(0, 0.03), levelBeforeNextPrint: false };
  const message: SimMessage = {
    channel: "event",
    payload: {
      ...stamp(),
      type: "calibration",
      data: { reason, offset_before_mm: round2(s.driftMm), offset_after_mm: round2(state.driftMm) },
    },
  };
  return { state, message };
}

const rebooted = (s: PrinterState): PrinterState => ({
  ...s,
  phase: "idle",
  nozzleTargetC: 0,
  bedTargetC: 0,
  uptimeS: 0,
});

function step(
  previous: PrinterState,
  random: Random,
  time: SimTime,
  script: DeviceScript,
): Step<PrinterState> {
  const { now, elapsedMs } = time;
  const dt = elapsedMs / 1000;
  const seq = stamper(previous.seq, now);
  const messages: SimMessage[] = [];
  let s: PrinterState = {
    ...previous,
    uptimeS: previous.uptimeS + dt,
    annoyance: faded(previous.annoyance, dt),
  };
  const ageYears = Math.max(0, now - s.inServiceSinceMs) / YEAR_MS;

  const fault = (
    code: PrinterFaultCode,
    severity: Severity,
    extra?: Omit<Fault, "ts" | "seq" | "code" | "severity">,
  ) => {
    messages.push(faultMessage(seq.stamp, code, severity, extra));
    s.annoyance += annoyanceOf(severity);
  };
  const endJob = (result: "success" | "failed" | "cancelled") => {
    const ended = jobEnded(s, result, seq.stamp);
    if (ended.messages.length === 0) return;
    s = ended.state;
    messages.push(...ended.messages);
    // Now and then the owner rates the print on the device's screen.
    if (random.chance(0.25)) {
      const mean = (result === "success" ? 8.5 : result === "failed" ? 3 : 6) - 0.5 * s.annoyance;
      messages.push({
        channel: "event",
        payload: { ...seq.stamp(), type: "feedback", data: { rating: rating(random, mean) } },
      });
    }
  };
  const reboot = (reason: string) => {
    endJob("failed");
    messages.push(rebootEvent(reason, seq.stamp));
    s = rebooted(s);
  };

  // Firmware is never flashed mid-print.
  if ((s.phase === "idle" || s.phase === "cooling") && s.updates.next < script.updates.length) {
    const taken = takeDueUpdate(s, { script, random, now, messages, stamp: seq.stamp, reboot });
    s.hello = taken.hello;
    s.updates = taken.updates;
  }
  const firmware = s.hello.firmware;
  if (happens(random, RATES_PER_HOUR.powerCycle, elapsedMs)) reboot("power_cycle");

  if (s.phase === "idle") {
    // The owner swaps the spool, fixes the fan or levels the bed before the next print.
    if (s.filamentG < 50) s.filamentG = SPOOL_G;
    if (s.levelBeforeNextPrint) {
      const level = levelled(s, "user", random, seq.stamp);
      s = level.state;
      messages.push(level.message);
    }
    if (s.fanBroken) {
      s.fanBroken = false;
      reboot("user");
    } else if (happens(random, RATES_PER_HOUR.jobStart, elapsedMs)) {
      const material = random.pick(MATERIALS);
      s.jobsStarted += 1;
      s = {
        ...s,
        phase: "heating",
        job: {
          id: `job-${s.jobsStarted}`,
          durationS: random.int(15 * 60, 4 * 3600),
          elapsedS: 0,
          gramsPerS: random.between(0.002, 0.006),
        },
        nozzleTargetC: material.nozzleC,
        bedTargetC: material.bedC,
      };
    }
  }

  s.nozzleC = approach(s.nozzleC, s.nozzleTargetC, dt, NOZZLE_TAU_S);
  s.bedC = approach(s.bedC, s.bedTargetC, dt, BED_TAU_S);

  if (s.phase === "heating" && s.nozzleC > s.nozzleTargetC - 3 && s.bedC > s.bedTargetC - 2) {
    s.phase = "printing";
    // Bed probing before the first layer is when drift shows.
    if (
      s.driftMm > DRIFT_LIMIT_MM &&
      random.chance(DRIFT_REPORT_CHANCE * faultFactor(script, firmware, "BED_LEVEL_DRIFT"))
    ) {
      fault("BED_LEVEL_DRIFT", "warning", {
        component: "bed",
        message: "Bed probe found the bed out of level; run a calibration",
        context: { offset_mm: round2(s.driftMm), limit_mm: DRIFT_LIMIT_MM },
      });
      if (random.chance(OWNER_LEVELS_CHANCE)) s.levelBeforeNextPrint = true;
    }
  }

  if (s.phase === "printing" && s.job !== undefined) {
    const job = { ...s.job, elapsedS: s.job.elapsedS + dt };
    s.job = job;
    s.printS += dt;
    s.driftMm += (s.driftMmPerPrintHour * dt) / 3600;
    s.filamentG = Math.max(0, s.filamentG - job.gramsPerS * dt);
    const fanWear = 1 + FAN_WEAR_PER_YEAR * ageYears;
    if (
      happens(
        random,
        RATES_PER_HOUR.thermalRunaway * faultFactor(script, firmware, "THERMAL_RUNAWAY"),
        elapsedMs,
      )
    ) {
      s.nozzleC = s.nozzleTargetC + random.between(15, 30);
      fault("THERMAL_RUNAWAY", "critical", {
        component: "hotend",
        message: "Heater kept rising past its target; heaters cut",
        context: { nozzle_temp_c: round1(s.nozzleC), nozzle_target_c: s.nozzleTargetC },
      });
      endJob("failed");
    } else if (
      s.filamentG === 0 ||
      happens(
        random,
        RATES_PER_HOUR.falseRunout * faultFactor(script, firmware, "FILAMENT_RUNOUT"),
        elapsedMs,
      )
    ) {
      fault("FILAMENT_RUNOUT", "warning", {
        component: "extruder",
        context: { job_id: job.id, filament_left_g: round1(s.filamentG) },
      });
      endJob("failed");
    } else if (
      happens(random, RATES_PER_HOUR.nozzleClog * faultFactor(script, firmware, "NOZZLE_CLOG"), elapsedMs)
    ) {
      fault("NOZZLE_CLOG", "error", { component: "extruder", context: { nozzle_temp_c: round1(s.nozzleC) } });
      endJob("failed");
    } else if (
      happens(
        random,
        RATES_PER_HOUR.fanFailure * fanWear * faultFactor(script, firmware, "FAN_FAILURE"),
        elapsedMs,
      )
    ) {
      s.fanBroken = true;
      fault("FAN_FAILURE", "error", { component: "part fan", context: { fan_rpm: 0 } });
      endJob("failed");
    } else if (
      happens(random, layerShiftsPerHour(s) * faultFactor(script, firmware, "LAYER_SHIFT"), elapsedMs)
    ) {
      const progress = round1((100 * job.elapsedS) / job.durationS);
      fault("LAYER_SHIFT", "error", {
        component: "motion",
        context: { progress_pct: progress, bed_offset_mm: round2(s.driftMm) },
      });
      if (random.chance(0.5)) endJob("failed");
    } else if (happens(random, RATES_PER_HOUR.cancel, elapsedMs)) {
      endJob("cancelled");
    } else if (job.elapsedS >= job.durationS) {
      endJob("success");
    }
  }

  if (s.phase === "cooling" && s.nozzleC < 50) s.phase = "idle";

  if (happens(random, RATES_PER_HOUR.feedback, elapsedMs)) {
    messages.push({
      channel: "event",
      payload: { ...seq.stamp(), type: "feedback", data: { rating: rating(random, 9 - s.annoyance) } },
    });
  }

  const active = s.phase === "heating" || s.phase === "printing" || s.phase === "cooling";
  const fullRpm = FAN_RPM * (1 - FAN_SLOWDOWN_PER_YEAR * ageYears);
  const fanRpm =
    s.fanBroken || !active ? 0 : Math.round(random.normal(s.phase === "cooling" ? 3000 : fullRpm, 60));
  const progress = s.job === undefined ? 0 : clamp((100 * s.job.elapsedS) / s.job.durationS, 0, 100);
  const metrics = {
    nozzle_temp_c: round1(Math.max(AMBIENT_C - 2, s.nozzleC + random.normal(0, 0.4))),
    nozzle_target_c: s.nozzleTargetC,
    bed_temp_c: round1(Math.max(AMBIENT_C - 2, s.bedC + random.normal(0, 0.2))),
    bed_target_c: s.bedTargetC,
    bed_level_offset_mm: round2(s.driftMm),
    fan_rpm: Math.max(0, fanRpm),
    print_progress_pct: round1(progress),
    filament_left_g: round1(s.filamentG),
    jobs_started: s.jobsStarted,
    jobs_finished: s.jobsFinished,
    jobs_failed: s.jobsFailed,
    print_time_s: Math.floor(s.printS),
    uptime_s: Math.floor(s.uptimeS),
    printing: s.phase === "printing",
  };
  messages.push({ channel: "telemetry", payload: { ...seq.stamp(), metrics } });

  return { state: { ...s, seq: seq.seq }, messages };
}

function diagnostics(s: PrinterState): string {
  const doing =
    s.job === undefined
      ? s.phase
      : `${s.phase} ${s.job.id} at ${Math.round((100 * s.job.elapsedS) / s.job.durationS)}%`;
  return [
    doing,
    `nozzle ${round1(s.nozzleC)}/${s.nozzleTargetC} °C`,
    `bed ${round1(s.bedC)}/${s.bedTargetC} °C`,
    `bed offset ${round2(s.driftMm)} mm (limit ${DRIFT_LIMIT_MM})`,
    s.fanBroken ? "part fan stopped" : "part fan ok",
    `filament ${Math.round(s.filamentG)} g`,
    `${s.jobsStarted} jobs, ${s.jobsFailed} failed`,
  ].join(", ");
}

function command(
  state: PrinterState,
  cmd: SimCommand,
  random: Random,
  now: number,
): CommandStep<PrinterState> {
  if (cmd.type === "diagnostics")
    return { state, result: { ok: true, message: diagnostics(state) }, messages: [] };
  const seq = stamper(state.seq, now);
  const jobId = state.job?.id;
  if (cmd.type === "reboot") {
    const ended = jobEnded(state, "failed", seq.stamp);
    const messages = [...ended.messages, rebootEvent("remote", seq.stamp)];
    return {
      state: { ...rebooted(ended.state), seq: seq.seq },
      result: { ok: true, message: jobId === undefined ? "rebooted" : `rebooted; ${jobId} aborted` },
      messages,
    };
  }
  // Levelling needs the bed: a running job is cancelled first.
  const ended = jobEnded(state, "cancelled", seq.stamp);
  const level = levelled(ended.state, "remote", random, seq.stamp);
  const offsets = `bed offset ${round2(state.driftMm)} mm → ${round2(level.state.driftMm)} mm`;
  return {
    state: { ...level.state, seq: seq.seq },
    result: {
      ok: true,
      message: jobId === undefined ? `levelled: ${offsets}` : `${jobId} cancelled; levelled: ${offsets}`,
    },
    messages: [...ended.messages, level.message],
  };
}

export const printer: DeviceModel<PrinterState> = {
  kind: "printer",
  counters: PRINTER_COUNTERS,
  faultCodes: PRINTER_FAULT_CODES,
  init,
  step,
  command,
};
