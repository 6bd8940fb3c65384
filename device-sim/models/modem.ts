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
  type SimCommand,
  type SimMessage,
  type SimTime,
  type Step,
  stamper,
  YEAR_MS,
} from "./device-model.js";
import { NO_UPDATES_TAKEN, takeDueUpdate } from "./firmware.js";

// A DSL modem-router. Metric names follow TR-181 where one fits (Device.DSL.Line.{i}.DownstreamMaxBitRate,
// .DownstreamNoiseMargin, .DownstreamAttenuation, .Stats.CRCErrors, .Stats.FECErrors, Device.DeviceInfo.UpTime,
// Device.DeviceInfo.TemperatureStatus, Device.WiFi.AccessPoint.{i}.AssociatedDeviceNumberOfEntries).

export type ModemState = BaseState & {
  /** When the device was installed: dust in its vents warms the CPU year by year. */
  inServiceSinceMs: number;
  /** Line properties: fixed by the copper between the house and the street cabinet. */
  attenuationDb: number;
  maxDownKbps: number;
  maxUpKbps: number;
  baseLatencyMs: number;
  downKbps: number;
  upKbps: number;
  targetMarginDb: number;
  snrMarginDb: number;
  crcErrors: number;
  fecErrors: number;
  uptimeS: number;
  cpuTempC: number;
  wifiClients: number;
  /** Seconds left of an outage; 0 when all is well. */
  wanDownS: number;
  radioDownS: number;
  /** Decays over a day or so; what the owner remembers when asked for a rating. */
  annoyance: number;
};

export const MODEM_COUNTERS = ["crc_errors", "fec_errors", "uptime_s"] as const;
export const MODEM_FAULT_CODES = [
  "DSL_RESYNC",
  "WAN_DOWN",
  "DNS_FAILURE",
  "OVERHEAT",
  "WIFI_RADIO_CRASH",
] as const;
type ModemFaultCode = (typeof MODEM_FAULT_CODES)[number];

const RATES_PER_HOUR = {
  dslResync: 0.4,
  wanDown: 0.1,
  dnsFailure: 0.2,
  overheat: 0.03,
  radioCrash: 0.1,
  powerCycle: 0.02,
  userReboot: 0.02,
  feedback: 0.05,
};

const IDLE_CPU_C = 52;
const CPU_CREEP_C_PER_YEAR = 1.5;
/** Each year in service adds this share to the overheating rate. */
const OVERHEAT_AGEING_PER_YEAR = 0.5;

function init(hello: Hello, random: Random, now: number): ModemState {
  const vectoring = hello.model.includes("7590");
  const attenuationDb = round1(random.between(8, 45));
  // Longer lines sync slower.
  const reach = clamp(1.15 - attenuationDb / 50, 0.2, 1);
  const maxDownKbps = Math.round((vectoring ? 116_800 : 51_300) * reach);
  const maxUpKbps = Math.round((vectoring ? 46_700 : 10_200) * reach);
  const uptimeS = random.int(600, 30 * 86_400);
  const state: ModemState = {
    hello,
    seq: 0,
    updates: NO_UPDATES_TAKEN,
    inServiceSinceMs: now - random.between(0, 3 * YEAR_MS),
    attenuationDb,
    maxDownKbps,
    maxUpKbps,
    baseLatencyMs: round1(random.between(6, 30)),
    downKbps: 0,
    upKbps: 0,
    targetMarginDb: 0,
    snrMarginDb: 0,
    crcErrors: Math.round(uptimeS * random.between(0, 0.02)),
    fecErrors: Math.round(uptimeS * random.between(0.1, 2)),
    uptimeS,
    cpuTempC: IDLE_CPU_C,
    wifiClients: random.int(0, 8),
    wanDownS: 0,
    radioDownS: 0,
    annoyance: 0,
  };
  return { ...state, ...sync(state, random) };
}

/** Training the DSL line anew: a fresh rate and margin. */
function sync(state: ModemState, random: Random) {
  const quality = random.between(0.8, 1);
  const targetMarginDb = round1(random.between(6, 10));
  return {
    downKbps: Math.round(state.maxDownKbps * quality),
    upKbps: Math.round(state.maxUpKbps * quality),
    targetMarginDb,
    snrMarginDb: targetMarginDb,
  };
}

/** A reboot clears every transient trouble: the outage, a crashed radio, the errors counted since the last sync. */
function rebooted(state: ModemState, random: Random): ModemState {
  const fresh = {
    ...state,
    uptimeS: 0,
    crcErrors: 0,
    fecErrors: 0,
    cpuTempC: 45,
    wifiClients: 0,
    wanDownS: 0,
    radioDownS: 0,
  };
  return { ...fresh, ...sync(fresh, random) };
}

/** Noise on a flaky line eats into the margin the line trained for: 1.5 dB for every doubling of flakiness. */
const marginPenaltyDb = (flakiness: number) => 1.5 * Math.log2(Math.max(1, flakiness));

function step(previous: ModemState, random: Random, time: SimTime, script: DeviceScript): Step<ModemState> {
  const { now, elapsedMs } = time;
  const dt = elapsedMs / 1000;
  const seq = stamper(previous.seq, now);
  const messages: SimMessage[] = [];
  let s: ModemState = {
    ...previous,
    uptimeS: previous.uptimeS + dt,
    annoyance: faded(previous.annoyance, dt),
  };
  const ageYears = Math.max(0, now - s.inServiceSinceMs) / YEAR_MS;
  const flakiness = Math.max(1, script.lineFlakiness);

  const fault = (
    code: ModemFaultCode,
    severity: Severity,
    extra?: Omit<Fault, "ts" | "seq" | "code" | "severity">,
  ) => {
    messages.push(faultMessage(seq.stamp, code, severity, extra));
    s.annoyance += annoyanceOf(severity);
  };
  const reboot = (reason: string) => {
    messages.push(rebootEvent(reason, seq.stamp));
    s = rebooted(s, random);
  };

  if (s.updates.next < script.updates.length) {
    const taken = takeDueUpdate(s, { script, random, now, messages, stamp: seq.stamp, reboot });
    s.hello = taken.hello;
    s.updates = taken.updates;
  }

  const firmware = s.hello.firmware;
  if (happens(random, RATES_PER_HOUR.powerCycle, elapsedMs)) reboot("power_cycle");
  else if (happens(random, RATES_PER_HOUR.userReboot, elapsedMs)) reboot("user");

  // Long lines resync more often, flaky ones more still.
  const resyncPerHour =
    RATES_PER_HOUR.dslResync *
    faultFactor(script, firmware, "DSL_RESYNC") *
    flakiness *
    (s.attenuationDb / 20);
  if (happens(random, resyncPerHour, elapsedMs)) {
    const before = { downstream_rate_kbps: s.downKbps, snr_margin_db: s.snrMarginDb };
    s = { ...s, ...sync(s, random), crcErrors: s.crcErrors + random.int(20, 400) };
    fault("DSL_RESYNC", "warning", { component: "dsl", context: before });
  }

  if (s.wanDownS > 0) s.wanDownS = Math.max(0, s.wanDownS - dt);
  else if (
    happens(random, RATES_PER_HOUR.wanDown * faultFactor(script, firmware, "WAN_DOWN") * flakiness, elapsedMs)
  ) {
    s.wanDownS = random.int(30, 600);
    fault("WAN_DOWN", "error", {
      component: "wan",
      message: "PPP session lost",
      context: { expected_s: s.wanDownS },
    });
  } else if (
    happens(random, RATES_PER_HOUR.dnsFailure * faultFactor(script, firmware, "DNS_FAILURE"), elapsedMs)
  ) {
    fault("DNS_FAILURE", "warning", { component: "dns", context: { failed_queries: random.int(3, 40) } });
  }

  if (s.radioDownS > 0) s.radioDownS = Math.max(0, s.radioDownS - dt);
  else if (
    happens(random, RATES_PER_HOUR.radioCrash * faultFactor(script, firmware, "WIFI_RADIO_CRASH"), elapsedMs)
  ) {
    const band = random.pick(["2.4GHz", "5GHz"] as const);
    fault("WIFI_RADIO_CRASH", "error", {
      component: `wifi ${band}`,
      context: { clients_lost: s.wifiClients },
    });
    s.wifiClients = 0;
    s.radioDownS = random.int(60, 300);
    if (random.chance(0.2)) reboot("watchdog");
  }

  // The CPU settles back towards its idle temperature, a little warmer with every Wi-Fi client and year of dust.
  const settleTo = IDLE_CPU_C + CPU_CREEP_C_PER_YEAR * ageYears + s.wifiClients * 0.6;
  s.cpuTempC = clamp(
    s.cpuTempC + (settleTo - s.cpuTempC) * (1 - Math.exp(-dt / 600)) + random.normal(0, 0.3),
    25,
    110,
  );
  const overheatPerHour =
    RATES_PER_HOUR.overheat *
    faultFactor(script, firmware, "OVERHEAT") *
    (1 + OVERHEAT_AGEING_PER_YEAR * ageYears);
  if (happens(random, overheatPerHour, elapsedMs)) {
    s.cpuTempC = round1(random.between(88, 99));
    fault("OVERHEAT", "critical", { component: "soc", context: { cpu_temp_c: s.cpuTempC } });
    if (s.cpuTempC > 95) reboot("overheat");
  }

  if (s.radioDownS === 0) s.wifiClients = clamp(s.wifiClients + random.int(-1, 1), 0, 24);
  const marginGoal = Math.max(0.5, s.targetMarginDb - marginPenaltyDb(flakiness));
  s.snrMarginDb = round1(
    clamp(
      s.snrMarginDb + (marginGoal - s.snrMarginDb) * 0.1 + random.normal(0, 0.2 * Math.sqrt(flakiness)),
      0,
      30,
    ),
  );
  // Errors climb fast as the margin shrinks towards 0 dB.
  const crcPerS = 0.002 * Math.exp((6 - s.snrMarginDb) / 1.5);
  s.crcErrors += Math.round(crcPerS * dt * random.between(0, 2));
  s.fecErrors += Math.round(crcPerS * 40 * dt * random.between(0, 2));

  if (happens(random, RATES_PER_HOUR.feedback, elapsedMs)) {
    messages.push({
      channel: "event",
      payload: { ...seq.stamp(), type: "feedback", data: { rating: rating(random, 9 - s.annoyance) } },
    });
  }

  const wanUp = s.wanDownS === 0;
  const metrics: Record<string, number | boolean> = {
    downstream_rate_kbps: s.downKbps,
    upstream_rate_kbps: s.upKbps,
    snr_margin_db: s.snrMarginDb,
    attenuation_db: s.attenuationDb,
    crc_errors: s.crcErrors,
    fec_errors: s.fecErrors,
    uptime_s: Math.floor(s.uptimeS),
    cpu_temp_c: round1(s.cpuTempC),
    wifi_clients: s.wifiClients,
    wan_up: wanUp,
    packet_loss_pct: wanUp ? round1(Math.max(0, random.normal(0.1, 0.1))) : 100,
  };
  if (wanUp)
    metrics.wan_latency_ms = round1(Math.max(1, random.normal(s.baseLatencyMs, s.baseLatencyMs * 0.15)));
  messages.push({ channel: "telemetry", payload: { ...seq.stamp(), metrics } });

  return { state: { ...s, seq: seq.seq }, messages };
}

function diagnostics(s: ModemState): string {
  const wan = s.wanDownS > 0 ? `WAN down (${Math.ceil(s.wanDownS)} s to go)` : "WAN up";
  const radio = s.radioDownS > 0 ? "Wi-Fi radio down" : `${s.wifiClients} Wi-Fi clients`;
  return [
    `DSL ${s.downKbps}/${s.upKbps} kbit/s`,
    `SNR margin ${round1(s.snrMarginDb)} dB`,
    `attenuation ${s.attenuationDb} dB`,
    `CRC errors ${s.crcErrors}`,
    `FEC errors ${s.fecErrors}`,
    wan,
    radio,
    `CPU ${round1(s.cpuTempC)} °C`,
    `up ${Math.floor(s.uptimeS)} s`,
  ].join(", ");
}

function command(state: ModemState, cmd: SimCommand, random: Random, now: number): CommandStep<ModemState> {
  switch (cmd.type) {
    case "reboot": {
      const seq = stamper(state.seq, now);
      const cleared = [
        state.wanDownS > 0 ? "WAN outage" : "",
        state.radioDownS > 0 ? "Wi-Fi radio crash" : "",
      ];
      const messages = [rebootEvent("remote", seq.stamp)];
      const which = cleared.filter((what) => what !== "");
      return {
        state: { ...rebooted(state, random), seq: seq.seq },
        result: {
          ok: true,
          message: which.length > 0 ? `rebooted; cleared: ${which.join(", ")}` : "rebooted",
        },
        messages,
      };
    }
    case "recalibrate":
      return {
        state,
        result: { ok: false, message: "not supported: a modem has nothing to recalibrate" },
        messages: [],
      };
    case "diagnostics":
      return { state, result: { ok: true, message: diagnostics(state) }, messages: [] };
  }
}

export const modem: DeviceModel<ModemState> = {
  kind: "modem",
  counters: MODEM_COUNTERS,
  faultCodes: MODEM_FAULT_CODES,
  init,
  step,
  command,
};
