import type { Fault, Hello, Severity } from "../../contract/messages.js";
import type { Random } from "../random.js";
import { faultFactor, MODEMS } from "./catalog.js";
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

// A DSL modem-router. Metric names follow TR-181 where one fits (Device.DSL.Line.{i}.DownstreamMaxBitRate,
// .DownstreamNoiseMargin, .DownstreamAttenuation, .Stats.CRCErrors, .Stats.FECErrors, Device.DeviceInfo.UpTime,
// Device.DeviceInfo.TemperatureStatus, Device.WiFi.AccessPoint.{i}.AssociatedDeviceNumberOfEntries).

export type ModemState = BaseState & {
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
  /** Decays over time; what the owner remembers when asked for a rating. */
  annoyance: number;
};

export const MODEM_COUNTERS = ["crc_errors", "fec_errors", "uptime_s"] as const;

const RATES_PER_HOUR = {
  dslResync: 0.4,
  wanDown: 0.1,
  dnsFailure: 0.2,
  overheat: 0.03,
  radioCrash: 0.1,
  powerCycle: 0.02,
  userReboot: 0.02,
  firmwareUpdate: 0.1,
  feedback: 0.05,
};

const IDLE_CPU_C = 52;

function init(hello: Hello, random: Random, _now: number): ModemState {
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

function step(previous: ModemState, random: Random, time: SimTime): Step<ModemState> {
  const { now, elapsedMs } = time;
  const dt = elapsedMs / 1000;
  const seq = stamper(previous.seq, now);
  const messages: SimMessage[] = [];
  let s: ModemState = {
    ...previous,
    uptimeS: previous.uptimeS + dt,
    annoyance: previous.annoyance * Math.exp(-dt / 86_400),
  };
  const factor = faultFactor(MODEMS, s.hello.model, s.hello.firmware);

  const fault = (
    code: string,
    severity: Severity,
    extra: Omit<Fault, "ts" | "seq" | "code" | "severity"> = {},
  ) => {
    messages.push({ channel: "fault", payload: { ...seq.stamp(), code, severity, ...extra } });
    s.annoyance += severity === "critical" ? 3 : severity === "error" ? 2 : 1;
  };
  const reboot = (reason: string) => {
    messages.push({ channel: "event", payload: { ...seq.stamp(), type: "reboot", data: { reason } } });
    s = rebooted(s, random);
  };

  const update = maybeUpdateFirmware(s.hello, MODEMS, random, elapsedMs, RATES_PER_HOUR.firmwareUpdate);
  if (update !== undefined) {
    s.hello = applyFirmwareUpdate(update, { hello: s.hello, messages, stamp: seq.stamp, reboot });
  }

  if (happens(random, RATES_PER_HOUR.powerCycle, elapsedMs)) reboot("power_cycle");
  else if (happens(random, RATES_PER_HOUR.userReboot, elapsedMs)) reboot("user");

  // Long lines resync more often.
  if (happens(random, RATES_PER_HOUR.dslResync * factor * (s.attenuationDb / 20), elapsedMs)) {
    const before = { downstream_rate_kbps: s.downKbps, snr_margin_db: s.snrMarginDb };
    s = { ...s, ...sync(s, random), crcErrors: s.crcErrors + random.int(20, 400) };
    fault("DSL_RESYNC", "warning", { component: "dsl", context: before });
  }

  if (s.wanDownS > 0) s.wanDownS = Math.max(0, s.wanDownS - dt);
  else if (happens(random, RATES_PER_HOUR.wanDown * factor, elapsedMs)) {
    s.wanDownS = random.int(30, 600);
    fault("WAN_DOWN", "error", {
      component: "wan",
      message: "PPP session lost",
      context: { expected_s: s.wanDownS },
    });
  } else if (happens(random, RATES_PER_HOUR.dnsFailure * factor, elapsedMs)) {
    fault("DNS_FAILURE", "warning", { component: "dns", context: { failed_queries: random.int(3, 40) } });
  }

  if (s.radioDownS > 0) s.radioDownS = Math.max(0, s.radioDownS - dt);
  else if (happens(random, RATES_PER_HOUR.radioCrash * factor, elapsedMs)) {
    const band = random.pick(["2.4GHz", "5GHz"] as const);
    fault("WIFI_RADIO_CRASH", "error", {
      component: `wifi ${band}`,
      context: { clients_lost: s.wifiClients },
    });
    s.wifiClients = 0;
    s.radioDownS = random.int(60, 300);
    if (random.chance(0.2)) reboot("watchdog");
  }

  // The CPU settles back towards its idle temperature, a little warmer with every Wi-Fi client.
  const settleTo = IDLE_CPU_C + s.wifiClients * 0.6;
  s.cpuTempC = clamp(
    s.cpuTempC + (settleTo - s.cpuTempC) * (1 - Math.exp(-dt / 600)) + random.normal(0, 0.3),
    25,
    110,
  );
  if (happens(random, RATES_PER_HOUR.overheat * factor, elapsedMs)) {
    s.cpuTempC = round1(random.between(88, 99));
    fault("OVERHEAT", "critical", { component: "soc", context: { cpu_temp_c: s.cpuTempC } });
    if (s.cpuTempC > 95) reboot("overheat");
  }

  if (s.radioDownS === 0) s.wifiClients = clamp(s.wifiClients + random.int(-1, 1), 0, 24);
  s.snrMarginDb = round1(
    clamp(s.snrMarginDb + (s.targetMarginDb - s.snrMarginDb) * 0.1 + random.normal(0, 0.2), 0, 30),
  );
  // Errors climb fast as the margin shrinks towards 0 dB.
  const crcPerS = 0.002 * Math.exp((6 - s.snrMarginDb) / 1.5);
  s.crcErrors += Math.round(crcPerS * dt * random.between(0, 2));
  s.fecErrors += Math.round(crcPerS * 40 * dt * random.between(0, 2));

  if (happens(random, RATES_PER_HOUR.feedback, elapsedMs)) {
    const rating = clamp(Math.round(random.normal(9 - s.annoyance, 1)), 0, 10);
    messages.push({ channel: "event", payload: { ...seq.stamp(), type: "feedback", data: { rating } } });
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

export const modem: DeviceModel<ModemState> = { kind: "modem", counters: MODEM_COUNTERS, init, step };
