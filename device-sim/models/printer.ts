import type { Fault, Hello, Severity } from "../../contract/messages.js";
import type { Random } from "../random.js";
import { faultFactor, PRINTERS } from "./catalog.js";
import {
  type BaseState,
  clamp,
  type DeviceModel,
  happens,
  round1,
  type SimMessage,
  type SimTime,
  type Step,
  stamper,
} from "./device-model.js";
import { applyFirmwareUpdate, maybeUpdateFirmware } from "./firmware.js";

// A desktop FDM printer: idle → heating → printing → cooling → idle, with first-order heater physics.

export type PrinterPhase = "idle" | "heating" | "printing" | "cooling";

export type PrintJob = { id: string; durationS: number; elapsedS: number; gramsPerS: number };

export type PrinterState = BaseState & {
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
};

export const PRINTER_COUNTERS = ["jobs_started", "jobs_finished", "jobs_failed", "uptime_s"] as const;

export const AMBIENT_C = 22;
const NOZZLE_TAU_S = 40;
const BED_TAU_S = 150;
const SPOOL_G = 1000;
const FAN_RPM = 5200;
const BED_DRIFT_PER_PROBE = 0.02;

const RATES_PER_HOUR = {
  jobStart: 1.5,
  thermalRunaway: 0.004,
  layerShift: 0.05,
  nozzleClog: 0.03,
  fanFailure: 0.01,
  cancel: 0.05,
  powerCycle: 0.01,
  firmwareUpdate: 0.05,
};

type Material = { name: string; nozzleC: number; bedC: number };
const MATERIALS: readonly [Material, ...Material[]] = [
  { name: "PLA", nozzleC: 215, bedC: 60 },
  { name: "PETG", nozzleC: 240, bedC: 80 },
];

function init(hello: Hello, random: Random, _now: number): PrinterState {
  const jobsStarted = random.int(0, 400);
  const jobsFailed = Math.round(jobsStarted * random.between(0.02, 0.08));
  return {
    hello,
    seq: 0,
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
  };
}

/** A heater's element approaching its target (or the room, when off) over `dt` seconds. */
function approach(current: number, target: number, dt: number, tauS: number): number {
  const goal = target > 0 ? target : AMBIENT_C;
  return current + (goal - current) * (1 - Math.exp(-dt / tauS));
}

function step(previous: PrinterState, random: Random, time: SimTime): Step<PrinterState> {
  const { now, elapsedMs } = time;
  const dt = elapsedMs / 1000;
  const seq = stamper(previous.seq, now);
  const messages: SimMessage[] = [];
  let s: PrinterState = { ...previous, uptimeS: previous.uptimeS + dt };
  const factor = faultFactor(PRINTERS, s.hello.model, s.hello.firmware);

  const fault = (
    code: string,
    severity: Severity,
    extra: Omit<Fault, "ts" | "seq" | "code" | "severity"> = {},
  ) => {
    messages.push({ channel: "fault", payload: { ...seq.stamp(), code, severity, ...extra } });
  };
  const endJob = (result: "success" | "failed" | "cancelled") => {
    const job = s.job;
    if (job === undefined) return;
    messages.push({
      channel: "event",
      payload: {
        ...seq.stamp(),
        type: "print_job",
        data: { result, job_id: job.id, duration_s: Math.round(job.elapsedS) },
      },
    });
    if (result === "success") s.jobsFinished += 1;
    if (result === "failed") s.jobsFailed += 1;
    s = { ...s, phase: "cooling", job: undefined, nozzleTargetC: 0, bedTargetC: 0 };
    // Now and then the owner rates the print on the device's screen.
    if (random.chance(0.25)) {
      const mean = result === "success" ? 8.5 : result === "failed" ? 3 : 6;
      const rating = clamp(Math.round(random.normal(mean, 1.2)), 0, 10);
      messages.push({ channel: "event", payload: { ...seq.stamp(), type: "feedback", data: { rating } } });
    }
  };
  const reboot = (reason: string) => {
    endJob("failed");
    messages.push({ channel: "event", payload: { ...seq.stamp(), type: "reboot", data: { reason } } });
    s = { ...s, phase: "idle", nozzleTargetC: 0, bedTargetC: 0, uptimeS: 0, fanBroken: false };
  };

  if (s.phase === "idle") {
    const update = maybeUpdateFirmware(s.hello, PRINTERS, random, elapsedMs, RATES_PER_HOUR.firmwareUpdate);
    if (update !== undefined) {
      s.hello = applyFirmwareUpdate(update, { hello: s.hello, messages, stamp: seq.stamp, reboot });
    }
  }
  if (happens(random, RATES_PER_HOUR.powerCycle, elapsedMs)) reboot("power_cycle");

  if (s.phase === "idle") {
    // The owner swaps the spool, or fixes the fan, before the next print.
    if (s.filamentG < 50) s.filamentG = SPOOL_G;
    if (s.fanBroken) reboot("user");
    else if (happens(random, RATES_PER_HOUR.jobStart, elapsedMs)) {
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
    if (random.chance(BED_DRIFT_PER_PROBE * factor)) {
      fault("BED_LEVEL_DRIFT", "warning", {
        component: "bed",
        context: { offset_mm: round1(random.between(0.2, 0.9)) },
      });
    }
  }

  if (s.phase === "printing" && s.job !== undefined) {
    const job = { ...s.job, elapsedS: s.job.elapsedS + dt };
    s.job = job;
    s.filamentG = Math.max(0, s.filamentG - job.gramsPerS * dt);
    if (happens(random, RATES_PER_HOUR.thermalRunaway * factor, elapsedMs)) {
      s.nozzleC = s.nozzleTargetC + random.between(15, 30);
      fault("THERMAL_RUNAWAY", "critical", {
        component: "hotend",
        message: "Heater kept rising past its target; heaters cut",
        context: { nozzle_temp_c: round1(s.nozzleC), nozzle_target_c: s.nozzleTargetC },
      });
      endJob("failed");
    } else if (s.filamentG === 0) {
      fault("FILAMENT_RUNOUT", "warning", { component: "extruder", context: { job_id: job.id } });
      endJob("failed");
    } else if (happens(random, RATES_PER_HOUR.nozzleClog * factor, elapsedMs)) {
      fault("NOZZLE_CLOG", "error", { component: "extruder", context: { nozzle_temp_c: round1(s.nozzleC) } });
      endJob("failed");
    } else if (happens(random, RATES_PER_HOUR.fanFailure * factor, elapsedMs)) {
      s.fanBroken = true;
      fault("FAN_FAILURE", "error", { component: "part fan", context: { fan_rpm: 0 } });
      endJob("failed");
    } else if (happens(random, RATES_PER_HOUR.layerShift * factor, elapsedMs)) {
      const progress = round1((100 * job.elapsedS) / job.durationS);
      fault("LAYER_SHIFT", "error", { component: "motion", context: { progress_pct: progress } });
      if (random.chance(0.5)) endJob("failed");
    } else if (happens(random, RATES_PER_HOUR.cancel, elapsedMs)) {
      endJob("cancelled");
    } else if (job.elapsedS >= job.durationS) {
      endJob("success");
    }
  }

  if (s.phase === "cooling" && s.nozzleC < 50) s.phase = "idle";

  const active = s.phase === "heating" || s.phase === "printing" || s.phase === "cooling";
  const fanRpm =
    s.fanBroken || !active ? 0 : Math.round(random.normal(s.phase === "cooling" ? 3000 : FAN_RPM, 60));
  const progress = s.job === undefined ? 0 : clamp((100 * s.job.elapsedS) / s.job.durationS, 0, 100);
  const metrics = {
    nozzle_temp_c: round1(Math.max(AMBIENT_C - 2, s.nozzleC + random.normal(0, 0.4))),
    nozzle_target_c: s.nozzleTargetC,
    bed_temp_c: round1(Math.max(AMBIENT_C - 2, s.bedC + random.normal(0, 0.2))),
    bed_target_c: s.bedTargetC,
    fan_rpm: Math.max(0, fanRpm),
    print_progress_pct: round1(progress),
    filament_left_g: round1(s.filamentG),
    jobs_started: s.jobsStarted,
    jobs_finished: s.jobsFinished,
    jobs_failed: s.jobsFailed,
    uptime_s: Math.floor(s.uptimeS),
    printing: s.phase === "printing",
  };
  messages.push({ channel: "telemetry", payload: { ...seq.stamp(), metrics } });

  return { state: { ...s, seq: seq.seq }, messages };
}

export const printer: DeviceModel<PrinterState> = { kind: "printer", counters: PRINTER_COUNTERS, init, step };
