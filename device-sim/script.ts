// What a scenario decides about each device ahead of time (its script), and the ground truth a run writes.
// device-sim/scenario/ turns a scenario file into scripts and ground truth; the models read the parts that
// change a device's behaviour (firmware pushes, fault boosts, a flaky line); the runners act on the parts
// that are about its connection (going silent, malformed payloads). Plain data: JSON in, JSON out.

/** A firmware version pushed to a device by a staged rollout, at a point in scenario time. */
export type FirmwarePush = { atMs: number; to: string };

/**
 * While the device runs `firmware`, fault `code` happens `factor` times as often. Without a firmware the boost
 * holds on every version, without a code for every fault (a lemon).
 */
export type FaultBoost = { firmware?: string; code?: string; factor: number };

export type DeviceScript = {
  /** Pushes in time order; a push to the firmware the device already runs changes nothing. */
  updates: FirmwarePush[];
  boosts: FaultBoost[];
  /** Multiplies every fault rate of this device: how fault-prone it is next to others of its model (mean 1). */
  proneness: number;
  /** 1 for a sound line; k > 1: the line resyncs and drops k times as often (a flaky ISP). */
  lineFlakiness: number;
  /** Once it runs `firmware`, the device stops reporting after `delayMs`, without a clean goodbye. */
  silentAfter?: { firmware: string; delayMs: number };
  /** Payloads per device-hour that fail the contract (the runner sends them; the ingest refuses them). */
  malformedPerHour: number;
};

/** A device with nothing injected. */
export const PLAIN_SCRIPT: DeviceScript = {
  updates: [],
  boosts: [],
  proneness: 1,
  lineFlakiness: 1,
  malformedPerHour: 0,
};

/** What was injected, and what fieldq should find for it (sim score asks the API). */
export type InjectedProblem =
  | {
      id: string;
      type: "fault_rate";
      kind: string;
      model: string;
      /** The firmware the devices ran before (the comparison's baseline) and the one that is worse. */
      baseline: string;
      firmware: string;
      code: string;
      factor: number;
      /** When the first device ran the worse firmware. */
      onsetMs: number;
    }
  | {
      id: string;
      type: "silent_after_update";
      kind: string;
      model: string;
      firmware: string;
      devices: string[];
      onsetMs: number;
    }
  | { id: string; type: "flaky_isp"; isp: string; factor: number; devices: string[]; onsetMs: number }
  | { id: string; type: "malformed"; perHour: number; devices: string[]; onsetMs: number }
  | {
      id: string;
      type: "lemons";
      kind: string;
      /** Left out when the lemons were picked among every model of the kind. */
      model?: string;
      /** The fault that happens `factor` times as often, on every firmware; left out: every fault. */
      code?: string;
      factor: number;
      devices: string[];
      onsetMs: number;
    };

/** How much the devices of one fleet entry differ: the gamma shape of their proneness, null when alike. */
export type FleetHeterogeneity = { model: string; devices: number; shape: number | null };

export type GroundTruth = {
  scenario: string;
  seed: number;
  /** Scenario time covered: device timestamps lie in [startMs, endMs). */
  startMs: number;
  endMs: number;
  devices: number;
  /** One per fleet entry; left out by runs from before devices differed. */
  heterogeneity?: FleetHeterogeneity[];
  problems: InjectedProblem[];
};
