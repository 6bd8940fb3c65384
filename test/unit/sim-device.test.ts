import { describe, expect, it } from "vitest";
import { CommandResult, Event, Fault, Hello, Telemetry } from "../../contract/messages.js";
import { createDevice, type DeviceOptions, type DeviceSpec, type Tick } from "../../device-sim/device.js";
import { buildFleet } from "../../device-sim/fleet.js";
import type { SimMessage } from "../../device-sim/models/index.js";
import { type DeviceScript, PLAIN_SCRIPT } from "../../device-sim/script.js";

const T0 = Date.UTC(2025, 0, 6, 8, 0, 0);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const NO_SPELLS: Partial<DeviceOptions> = { offlineSpellsPerWeek: 0 };

const FLEET = buildFleet({ devices: 6, seed: 3 });
const MODEM = FLEET[0] as DeviceSpec;
const PRINTER = FLEET[1] as DeviceSpec;

type Ticked = Tick & { at: number };

/** Ticks a device every `stepMs` for `hours`, keeping what each tick returned. */
function tickFor(
  spec: DeviceSpec,
  options: { seed?: number; hours: number; stepMs?: number; device?: Partial<DeviceOptions> },
): Ticked[] {
  const stepMs = options.stepMs ?? MINUTE;
  const device = createDevice(spec, options.seed ?? 3, T0, options.device ?? NO_SPELLS);
  const ticks: Ticked[] = [];
  for (let at = T0 + stepMs; at <= T0 + options.hours * HOUR; at += stepMs) {
    ticks.push({ at, ...device.tick({ now: at, elapsedMs: stepMs }) });
  }
  return ticks;
}

const allOf = (ticks: Ticked[]) => ticks.flatMap((t) => t.messages);

/** ts and seq of a message, where it has them (a hello has neither, a raw body may lack them). */
function stampOf(message: SimMessage): { ts: number; seq: number | undefined }[] {
  if (message.channel === "hello") return [];
  if (message.channel === "raw") {
    try {
      const body = JSON.parse(message.body) as { ts: number; seq?: number };
      return [{ ts: body.ts, seq: body.seq }];
    } catch {
      return [];
    }
  }
  const payloads = Array.isArray(message.payload) ? message.payload : [message.payload];
  return payloads.map((p) => ({ ts: p.ts, seq: p.seq }));
}

const SCHEMAS = { telemetry: Telemetry, fault: Fault, event: Event } as const;

/** Whether a raw body would get past the ingest: it must not. */
function passesContract(message: Extract<SimMessage, { channel: "raw" }>): boolean {
  let json: unknown;
  try {
    json = JSON.parse(message.body);
  } catch {
    return false;
  }
  return SCHEMAS[message.to].safeParse(json).success;
}

describe("a simulated device", () => {
  it("says the same for the same seed and script, and something else for another seed", () => {
    const script: DeviceScript = { ...PLAIN_SCRIPT, malformedPerHour: 2, lineFlakiness: 2 };
    const spec = { ...MODEM, script };
    const options = { offlineSpellsPerWeek: 20 };
    const run = (seed: number) => tickFor(spec, { seed, hours: 48, device: options });
    expect(run(3)).toEqual(run(3));
    expect(run(3)).not.toEqual(run(4));
  });

  it("stamps every message with the tick's time and a seq that only grows", () => {
    const spec = { ...PRINTER, script: { ...PLAIN_SCRIPT, malformedPerHour: 5 } };
    const ticks = tickFor(spec, { hours: 24 });
    let last = -1;
    for (const { at, messages } of ticks) {
      for (const stamp of messages.flatMap(stampOf)) {
        expect(stamp.ts).toBe(at);
        if (stamp.seq === undefined) continue;
        expect(stamp.seq).toBeGreaterThan(last);
        last = stamp.seq;
      }
    }
    expect(last).toBeGreaterThan(24 * 60);
  });
});

describe("offline spells", () => {
  const SPELLS: Partial<DeviceOptions> = { offlineSpellsPerWeek: 40, offlineSpellMs: [HOUR, 3 * HOUR] };

  it("buffer what the device says while offline and flush it, in order with its own ts, before the new", () => {
    const withSpells = tickFor(MODEM, { hours: 72, device: SPELLS });
    const without = tickFor(MODEM, { hours: 72 });
    // The connection draws from its own random source: the device says exactly the same, only later.
    expect(allOf(withSpells)).toEqual(allOf(without));

    const offline = withSpells.filter((t) => !t.online);
    expect(offline.length).toBeGreaterThan(60);
    for (const tick of offline) expect(tick).toMatchObject({ messages: [], silent: false });

    let spells = 0;
    for (const [i, tick] of withSpells.entries()) {
      if (!tick.online || withSpells[i - 1]?.online !== false) continue;
      spells += 1;
      // The spell ran from the first offline tick before this one.
      let start = i - 1;
      while (withSpells[start - 1]?.online === false) start -= 1;
      const expected = without.slice(start, i + 1).flatMap((t) => t.messages);
      expect(tick.messages).toEqual(expected);
      const times = tick.messages.flatMap(stampOf).map((s) => s.ts);
      expect(times[0]).toBe(without[start]?.at);
      expect(times.at(-1)).toBe(tick.at);
    }
    expect(spells).toBeGreaterThan(1);
  });

  it("keep spells between the shortest and longest length", () => {
    const ticks = tickFor(PRINTER, { hours: 24 * 14, device: SPELLS });
    const lengths: number[] = [];
    let run = 0;
    for (const tick of ticks) {
      if (!tick.online) run += 1;
      else if (run > 0) {
        lengths.push(run * MINUTE);
        run = 0;
      }
    }
    expect(lengths.length).toBeGreaterThan(10);
    // The tick a spell starts on is offline too: one step more than the spell's length, at most.
    for (const length of lengths) {
      expect(length).toBeGreaterThanOrEqual(HOUR);
      expect(length).toBeLessThanOrEqual(3 * HOUR + MINUTE);
    }
  });

  it("keep the newest messages when the buffer is full, and count the dropped", () => {
    const bufferLimit = 25;
    const spec = MODEM;
    const device = createDevice(spec, 3, T0, {
      offlineSpellsPerWeek: 40,
      offlineSpellMs: [2 * HOUR, 2 * HOUR],
      bufferLimit,
    });
    const reference = createDevice(spec, 3, T0, NO_SPELLS);
    const pending: SimMessage[] = [];
    let flushes = 0;
    let dropped = 0;
    for (let at = T0 + MINUTE; at <= T0 + 72 * HOUR; at += MINUTE) {
      const tick = device.tick({ now: at, elapsedMs: MINUTE });
      const said = reference.tick({ now: at, elapsedMs: MINUTE }).messages;
      pending.push(...said);
      if (!tick.online) {
        expect(device.buffered).toBeLessThanOrEqual(bufferLimit);
        continue;
      }
      const heldBack = pending.slice(0, pending.length - said.length);
      if (heldBack.length > 0) {
        flushes += 1;
        expect(tick.messages).toEqual([...heldBack.slice(-bufferLimit), ...said]);
        dropped += Math.max(0, heldBack.length - bufferLimit);
        expect(device.dropped).toBe(dropped);
      }
      expect(device.buffered).toBe(0);
      pending.length = 0;
    }
    expect(flushes).toBeGreaterThan(0);
    expect(dropped).toBeGreaterThan(0);
  });

  it("are rare by default: about one a week, ten minutes to six hours long", () => {
    let offline = 0;
    let ticks = 0;
    for (const spec of buildFleet({ devices: 40, seed: 9 })) {
      const device = createDevice(spec, 9, T0);
      for (let at = T0 + 5 * MINUTE; at <= T0 + 7 * 24 * HOUR; at += 5 * MINUTE) {
        ticks += 1;
        if (!device.tick({ now: at, elapsedMs: 5 * MINUTE }).online) offline += 1;
      }
    }
    // One spell a week of ~1.6 h on average (log-uniform over 10 min-6 h) is ~1% of the time.
    expect(offline / ticks).toBeGreaterThan(0.002);
    expect(offline / ticks).toBeLessThan(0.04);
  });
});

describe("silence after an update", () => {
  const atMs = T0 + 6 * HOUR;
  const script: DeviceScript = {
    ...PLAIN_SCRIPT,
    updates: [{ atMs, to: "9.9.9" }],
    silentAfter: { firmware: "9.9.9", delayMs: 3 * HOUR },
  };

  it("goes silent for good once it has run the firmware for the delay", () => {
    const ticks = tickFor({ ...MODEM, script }, { hours: 24 });
    const hello = ticks.find((t) => t.messages.some((m) => m.channel === "hello"));
    expect(hello).toBeDefined();
    const updatedAt = hello?.at ?? 0;
    expect(updatedAt).toBeGreaterThanOrEqual(atMs);
    const firstSilent = ticks.findIndex((t) => t.silent);
    expect(ticks[firstSilent]?.at).toBe(updatedAt + 3 * HOUR);
    for (const tick of ticks.slice(0, firstSilent))
      expect(tick).toMatchObject({ online: true, silent: false });
    for (const tick of ticks.slice(firstSilent))
      expect(tick).toEqual({ at: tick.at, messages: [], online: false, silent: true });
  });

  it("stays talking on another firmware, and answers no command once silent", () => {
    const other = { ...script, silentAfter: { firmware: "1.0.0", delayMs: 0 } };
    expect(tickFor({ ...MODEM, script: other }, { hours: 24 }).every((t) => !t.silent)).toBe(true);
    const device = createDevice({ ...MODEM, script }, 3, T0, NO_SPELLS);
    for (let at = T0 + MINUTE; at <= T0 + 24 * HOUR; at += MINUTE)
      device.tick({ now: at, elapsedMs: MINUTE });
    expect(device.silent).toBe(true);
    expect(device.command({ id: "c1", type: "diagnostics" }, T0 + 24 * HOUR)).toBeUndefined();
  });
});

describe("malformed payloads", () => {
  const spec = { ...MODEM, script: { ...PLAIN_SCRIPT, malformedPerHour: 30 } };
  const ticks = tickFor(spec, { hours: 24 });
  const raw = allOf(ticks).filter((m): m is Extract<SimMessage, { channel: "raw" }> => m.channel === "raw");

  it("come at the scripted rate, and none passes the contract", () => {
    // 720 expected; a Poisson count's standard deviation is sqrt(720) ≈ 27.
    expect(Math.abs(raw.length - 720)).toBeLessThan(4 * 27);
    expect(raw.filter(passesContract)).toEqual([]);
    expect(new Set(raw.map((m) => m.to))).toEqual(new Set(["telemetry", "fault", "event"]));
    const unparsable = raw.filter((m) => {
      try {
        JSON.parse(m.body);
        return false;
      } catch {
        return true;
      }
    });
    expect(unparsable.length).toBeGreaterThan(0);
  });

  it("leave the well-formed messages well-formed, and none come without a script", () => {
    const wellFormed = allOf(ticks).filter((m) => m.channel !== "raw");
    for (const message of wellFormed) {
      const schema = message.channel === "hello" ? Hello : SCHEMAS[message.channel];
      expect(schema.safeParse(message.payload).success).toBe(true);
    }
    expect(allOf(tickFor(MODEM, { hours: 24 })).some((m) => m.channel === "raw")).toBe(false);
  });
});

describe("commands", () => {
  it("answer with a result that passes the contract, numbered before what the command made it say", () => {
    const device = createDevice(PRINTER, 3, T0, NO_SPELLS);
    device.tick({ now: T0 + MINUTE, elapsedMs: MINUTE });
    const seq = device.seq;
    const reply = device.command({ id: "c1", type: "recalibrate" }, T0 + 90_000);
    expect(reply).toBeDefined();
    expect(CommandResult.safeParse(reply?.result).success).toBe(true);
    expect(reply?.messages).toHaveLength(1);
    const [event] = reply?.messages ?? [];
    expect(event?.channel === "event" && event.payload).toMatchObject({
      seq: seq + 1,
      ts: T0 + 90_000,
      type: "calibration",
    });
    // The transport publishes the result first: its seq comes first too.
    expect(reply?.result).toMatchObject({ seq, ts: T0 + 90_000, ok: true });
    expect(device.seq).toBe(seq + 2);
  });

  it("run diagnostics without changing what the device does next", () => {
    const asked = createDevice(MODEM, 3, T0, NO_SPELLS);
    const left = createDevice(MODEM, 3, T0, NO_SPELLS);
    const later: SimMessage[][] = [[], []];
    for (let at = T0 + MINUTE; at <= T0 + 12 * HOUR; at += MINUTE) {
      if (at === T0 + 6 * HOUR) {
        const reply = asked.command({ id: "c2", type: "diagnostics" }, at);
        expect(reply?.result.ok).toBe(true);
        expect(reply?.messages).toEqual([]);
      }
      const a = asked.tick({ now: at, elapsedMs: MINUTE }).messages;
      const b = left.tick({ now: at, elapsedMs: MINUTE }).messages;
      if (at >= T0 + 6 * HOUR) {
        later[0]?.push(...a);
        later[1]?.push(...b);
      }
    }
    // The same words; only the numbering moved on by the one result.
    const renumbered = (messages: SimMessage[] = []) =>
      messages.map((m) =>
        m.channel === "hello" || m.channel === "raw" || Array.isArray(m.payload)
          ? m
          : { ...m, payload: { ...m.payload, seq: m.payload.seq - 1 } },
      );
    expect(renumbered(later[0])).toEqual(later[1]);
  });

  it("hold back what a command makes the device say while it is offline", () => {
    const device = createDevice(MODEM, 3, T0, { offlineSpellsPerWeek: 200, offlineSpellMs: [HOUR, HOUR] });
    let at = T0;
    let tick: Tick;
    do {
      at += MINUTE;
      tick = device.tick({ now: at, elapsedMs: MINUTE });
    } while (tick.online);
    const reply = device.command({ id: "c3", type: "reboot" }, at);
    expect(reply?.result.ok).toBe(true);
    expect(reply?.messages).toEqual([]);
    do {
      at += MINUTE;
      tick = device.tick({ now: at, elapsedMs: MINUTE });
    } while (!tick.online);
    const reboots = tick.messages.filter(
      (m) => m.channel === "event" && !Array.isArray(m.payload) && m.payload.type === "reboot",
    );
    expect(reboots.map((m) => (m.channel === "event" ? m.payload.data : undefined))).toContainEqual({
      reason: "remote",
    });
  });
});
