import { DEFAULT_FINGERPRINT_RULES, fingerprint } from "../analytics/fingerprint.js";
import type { Hello } from "../contract/messages.js";
import { floorHour, HOUR_MS, type Window } from "../contract/time.js";
import type { ScenarioPlan } from "../device-sim/scenario/plan.js";
import { deviceOf, ticksOf } from "../device-sim/schedule.js";
import { type DeviceCohortTally, RATINGS } from "../storage/rollup-schema.js";

// bench:detect's stand-in for the transport, the ingest and the rollups: it plays a planned scenario in memory
// and keeps what the rollups would hold of it (per device-hour cohort tallies, per issue device tallies) and
// what the device directory would know (each device's hello, last report and updates), all on the device's
// clock, as a backfill delivers it. The rules the ingest applies are restated here, each beside its source.

/** One device's cohort tally over one hour (storage/rollup-schema.ts DeviceCohortTally, bucketed). */
export type HourTally = DeviceCohortTally & { hourMs: number };

/** A successful firmware update, on the device's clock (the firmware_update event's ts). */
export type SimUpdate = { from: string; to: string; atMs: number };

/** What the device directory would know of a device at the end of the run. */
export type SimDeviceFacts = {
  id: string;
  kind: string;
  model: string;
  firmware: string;
  hardware: string;
  region: string;
  isp: string | null;
  /** The device-clock time of its newest report (telemetry, fault or event); null if it sent none. */
  lastReportMs: number | null;
  /** Cadence samples, in ms, as the ingest takes them (gap_ms of its activity points). */
  gapsMs: number[];
  updates: SimUpdate[];
  /** It went silent (the runner dropped it without a goodbye, so the broker published its will). */
  silent: boolean;
};

/** One issue (fingerprint) and each device's faults of it over the run. */
export type SimIssue = {
  id: string;
  key: string;
  kind: string;
  model: string;
  code: string;
  firstMs: number;
  lastMs: number;
  /** Per device: occurrences, newest fault's time and the firmware it was reported on. */
  devices: Map<string, { n: number; lastMs: number; firmware: string }>;
  /** Occurrences per hour start, for the issue's timing. */
  byHour: Map<number, number>;
};

export type SimRun = {
  window: Window;
  devices: SimDeviceFacts[];
  /** Every device-hour-cohort with exposure or anything counted, in no particular order. */
  hours: HourTally[];
  issues: SimIssue[];
  /** Messages that break the contract, which the ingest refuses: per device. */
  rejections: Map<string, number>;
  messages: number;
};

type Tags = { kind: string; model: string; firmware: string; region: string };

const tagsOf = (hello: Hello): Tags => ({
  kind: hello.kind,
  model: hello.model,
  firmware: hello.firmware,
  region: hello.region ?? "unknown",
});

/**
 * Plays every device of the plan through its ticks as a backfill would deliver them (each device's messages
 * in its own order), and tallies them as the ingest and rollups would: a message is tagged with the device's
 * latest hello, and a successful firmware_update event moves its firmware tag on (ingest/to-points.ts); each
 * UTC hour in which a device sent an exposing message under a firmware is one device-hour of exposure for
 * that cohort (ingest/to-points.ts exposureHours).
 */
export function playInMemory(plan: ScenarioPlan, seed: number): SimRun {
  const hours: HourTally[] = [];
  const devices: SimDeviceFacts[] = [];
  const issues = new Map<string, SimIssue>();
  const rejections = new Map<string, number>();
  const fingerprints = new Map<string, { id: string; key: string }>();
  let messages = 0;

  for (let index = 0; index < plan.devices.length; index++) {
    const spec = plan.devices[index];
    if (spec === undefined) continue;
    const device = deviceOf(plan, index, seed);
    let hello: Hello = device.hello;
    let tags = tagsOf(hello);
    const facts: SimDeviceFacts = {
      id: spec.id,
      kind: hello.kind,
      model: hello.model,
      firmware: hello.firmware,
      hardware: hello.hardware,
      region: hello.region ?? "unknown",
      isp: hello.isp ?? null,
      lastReportMs: null,
      gapsMs: [],
      updates: [],
      silent: false,
    };
    /** This device's tallies by hour and firmware. */
    const own = new Map<string, HourTally>();
    const tallyAt = (ms: number): HourTally => {
      const hourMs = floorHour(ms);
      const key = `${hourMs}|${tags.firmware}|${tags.region}|${tags.model}`;
      let tally = own.get(key);
      if (tally === undefined) {
        tally = {
          hourMs,
          device: spec.id,
          ...tags,
          hours: 0,
          reboots: 0,
          rejections: 0,
          ratings: Array.from({ length: RATINGS }, () => 0),
          faults: [],
        };
        own.set(key, tally);
      }
      return tally;
    };
    // Telemetry, faults and events expose (ingest/to-points.ts EXPOSING; the simulator sends no command results).
    // A cadence sample is taken where the ingest takes one: at a report that opens a new hour (or firmware),
    // the gap since the device's previous report (ingest/ingest.ts exposure).
    let exposedKey = "";
    const report = (ms: number) => {
      const key = `${floorHour(ms)}|${tags.firmware}`;
      if (key !== exposedKey && facts.lastReportMs !== null && ms > facts.lastReportMs) {
        facts.gapsMs.push(ms - facts.lastReportMs);
      }
      exposedKey = key;
      facts.lastReportMs = Math.max(ms, facts.lastReportMs ?? ms);
      tallyAt(ms).hours = 1;
    };

    for (const { atMs, outcome } of ticksOf(device, plan, index)) {
      for (const message of outcome.messages) {
        messages += 1;
        switch (message.channel) {
          case "hello":
            hello = message.payload;
            tags = tagsOf(hello);
            break;
          case "telemetry":
            for (const sample of Array.isArray(message.payload) ? message.payload : [message.payload]) {
              report(sample.ts);
            }
            break;
          case "fault": {
            const f = message.payload;
            report(f.ts);
            const tally = tallyAt(f.ts);
            const held = tally.faults.find((x) => x.code === f.code && x.severity === f.severity);
            if (held === undefined) tally.faults.push({ severity: f.severity, code: f.code, n: 1 });
            else held.n += 1;
            const printKey = `${tags.kind}\u0000${tags.model}\u0000${f.code}\u0000${f.component ?? ""}`;
            let print = fingerprints.get(printKey);
            if (print === undefined) {
              // Default rules: no context splits, so the key depends on kind, model, code (and component).
              const made = fingerprint(
                { kind: tags.kind, model: tags.model, code: f.code, component: f.component },
                DEFAULT_FINGERPRINT_RULES,
              );
              print = { id: made.id, key: made.key };
              fingerprints.set(printKey, print);
            }
            let issue = issues.get(print.id);
            if (issue === undefined) {
              issue = {
                ...print,
                kind: tags.kind,
                model: tags.model,
                code: f.code,
                firstMs: f.ts,
                lastMs: f.ts,
                devices: new Map(),
                byHour: new Map(),
              };
              issues.set(print.id, issue);
            }
            issue.firstMs = Math.min(issue.firstMs, f.ts);
            issue.lastMs = Math.max(issue.lastMs, f.ts);
            const hourMs = floorHour(f.ts);
            issue.byHour.set(hourMs, (issue.byHour.get(hourMs) ?? 0) + 1);
            const mine = issue.devices.get(spec.id);
            if (mine === undefined)
              issue.devices.set(spec.id, { n: 1, lastMs: f.ts, firmware: tags.firmware });
            else {
              mine.n += 1;
              if (f.ts >= mine.lastMs) Object.assign(mine, { lastMs: f.ts, firmware: tags.firmware });
            }
            break;
          }
          case "event": {
            const e = message.payload;
            report(e.ts);
            const tally = tallyAt(e.ts);
            if (e.type === "reboot") tally.reboots += 1;
            if (e.type === "feedback") {
              const rating = (e.data as { rating?: unknown }).rating;
              if (typeof rating === "number" && rating >= 0 && rating < RATINGS) {
                tally.ratings[rating] = (tally.ratings[rating] ?? 0) + 1;
              }
            }
            if (e.type === "firmware_update") {
              const data = e.data as { from?: string; to?: string; result?: string };
              if (data.result === "success" && data.to !== undefined) {
                facts.updates.push({ from: data.from ?? tags.firmware, to: data.to, atMs: e.ts });
                tags = { ...tags, firmware: data.to };
              }
            }
            break;
          }
          case "raw":
            // Refused by the ingest, which stamps a rejection at its receive time: here the tick that
            // delivered it (a live run's receive time; a backfill's would be the moment of the backfill).
            rejections.set(spec.id, (rejections.get(spec.id) ?? 0) + 1);
            tallyAt(atMs).rejections += 1;
            break;
        }
      }
      if (outcome.silent) facts.silent = true;
    }
    facts.firmware = hello.firmware;
    facts.hardware = hello.hardware;
    facts.region = hello.region ?? "unknown";
    facts.isp = hello.isp ?? null;
    devices.push(facts);
    for (const tally of own.values()) hours.push(tally);
  }
  return {
    window: { fromMs: plan.startMs, toMs: Math.ceil(plan.endMs / HOUR_MS) * HOUR_MS },
    devices,
    hours,
    issues: [...issues.values()],
    rejections,
    messages,
  };
}

/** The cohort tallies of a window, added up per device and cohort, as RollupView.deviceCohorts gives them. */
export function talliesWithin(run: SimRun, window: Window): DeviceCohortTally[] {
  const merged = new Map<string, DeviceCohortTally>();
  for (const h of run.hours) {
    if (h.hourMs < window.fromMs || h.hourMs >= window.toMs) continue;
    const key = `${h.device}\u0000${h.kind}\u0000${h.model}\u0000${h.firmware}\u0000${h.region}`;
    const held = merged.get(key);
    if (held === undefined) {
      const { hourMs: _, ...tally } = h;
      merged.set(key, {
        ...tally,
        ratings: [...tally.ratings],
        faults: tally.faults.map((f) => ({ ...f })),
      });
      continue;
    }
    held.hours += h.hours;
    held.reboots += h.reboots;
    held.rejections += h.rejections;
    h.ratings.forEach((n, i) => {
      held.ratings[i] = (held.ratings[i] ?? 0) + n;
    });
    for (const f of h.faults) {
      const same = held.faults.find((x) => x.code === f.code && x.severity === f.severity);
      if (same === undefined) held.faults.push({ ...f });
      else same.n += f.n;
    }
  }
  return [...merged.values()];
}
