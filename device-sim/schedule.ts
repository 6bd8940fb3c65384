import { createDevice, type DeviceOptions, type DeviceSpec, type SimDevice } from "./device.js";
import { buildFleet } from "./fleet.js";

// When each device of a planned fleet ticks, shared by the live runner and the backfill so that both publish
// the same messages for the same scenario, seed and start: device i (of n) ticks at
// startMs + phase(i) + k × cadenceMs for k = 0, 1, … while that is before endMs, each tick covering one
// cadence of model time. The phases spread the fleet's reports evenly over a cadence.

/** What the runners need of a planned scenario (device-sim/scenario's plan fits it). */
export type FleetPlan = {
  devices: DeviceSpec[];
  /** Scenario time, epoch ms: device timestamps lie in [startMs, endMs). */
  startMs: number;
  endMs: number;
  cadenceMs: number;
  /** How the devices' connections behave (offline spells); the models' defaults when left out. */
  deviceOptions?: Partial<DeviceOptions>;
};

export type TickOutcome = ReturnType<SimDevice["tick"]>;

export function phaseOf(index: number, count: number, cadenceMs: number): number {
  return count === 0 ? 0 : Math.floor((index * cadenceMs) / count);
}

export function tickAt(plan: FleetPlan, index: number, k: number): number {
  return plan.startMs + phaseOf(index, plan.devices.length, plan.cadenceMs) + k * plan.cadenceMs;
}

/** The first tick (k, index) at or after scenario time `ms`, in the fleet's order of ticks. */
export function firstTickFrom(plan: FleetPlan, ms: number): { k: number; index: number } {
  const count = plan.devices.length;
  const offset = Math.max(0, ms - plan.startMs);
  const k = Math.floor(offset / plan.cadenceMs);
  for (let index = 0; index < count; index++) {
    if (tickAt(plan, index, k) >= ms) return { k, index };
  }
  return { k: k + 1, index: 0 };
}

/** A device of the plan, as it is before its first tick. */
export function deviceOf(plan: FleetPlan, index: number, seed: number): SimDevice {
  const spec = plan.devices[index];
  if (spec === undefined) throw new RangeError(`no device ${index} in a fleet of ${plan.devices.length}`);
  return createDevice(spec, seed, plan.startMs, plan.deviceOptions);
}

/**
 * Steps a device through its ticks before `untilMs` (and before the plan's end), purely: no sockets, no
 * clock. Stops after the tick that silences it for good.
 */
export function* ticksOf(
  device: SimDevice,
  plan: FleetPlan,
  index: number,
  untilMs = plan.endMs,
): Generator<{ atMs: number; outcome: TickOutcome }> {
  const limit = Math.min(untilMs, plan.endMs);
  for (let k = 0; ; k++) {
    const atMs = tickAt(plan, index, k);
    if (atMs >= limit) return;
    const outcome = device.tick({ now: atMs, elapsedMs: plan.cadenceMs });
    yield { atMs, outcome };
    if (outcome.silent) return;
  }
}

/** N devices with nothing injected (device-sim/fleet.ts), for a plain run, the tests and the bench. */
export function plainPlan(options: {
  devices: number;
  seed: number;
  startMs: number;
  endMs: number;
  cadenceMs: number;
  deviceOptions?: Partial<DeviceOptions>;
}): FleetPlan {
  const { devices, seed, ...rest } = options;
  return { devices: buildFleet({ devices, seed }), ...rest };
}
