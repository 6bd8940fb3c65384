import type { CommandResult, Hello } from "../contract/messages.js";
import { HOUR_MS, MINUTE_MS, WEEK_MS } from "../contract/time.js";
import { happens } from "./models/device-model.js";
import {
  type BaseState,
  type DeviceModel,
  MODELS,
  type SimCommand,
  type SimKind,
  type SimMessage,
  type SimTime,
} from "./models/index.js";
import { createRandom, deriveSeed, poisson, type Random } from "./random.js";
import { type DeviceScript, PLAIN_SCRIPT } from "./script.js";

/** Command answers a device remembers, for repeats of an at-least-once delivery (docs/commands.md). */
const ANSWERS_KEPT = 64;

/** Who a device is, and (from a scenario) what will happen to it; no script means nothing injected. */
export type DeviceSpec = { id: string; kind: SimKind; hello: Hello; script?: DeviceScript };

/** How a device's connection behaves; not (yet) something a scenario sets. */
export type DeviceOptions = {
  /** Mean offline spells per device-week; each device draws its own rate around it. 0 turns them off. */
  offlineSpellsPerWeek: number;
  /** Shortest and longest spell, in model time; lengths are drawn evenly on a log scale between them. */
  offlineSpellMs: readonly [number, number];
  /** Messages a device keeps while offline; past this, the oldest are dropped. */
  bufferLimit: number;
};

export const DEVICE_DEFAULTS: DeviceOptions = {
  offlineSpellsPerWeek: 1,
  offlineSpellMs: [10 * MINUTE_MS, 6 * HOUR_MS],
  bufferLimit: 5_000,
};

/**
 * What a tick brings: the messages to publish now (a flushed buffer first), whether the device is connected
 * (the runner connects or disconnects to match), and whether it has died for good (the runner drops the
 * connection without a goodbye, so the broker publishes the last will).
 */
export type Tick = { messages: SimMessage[]; online: boolean; silent: boolean };

/** A command's answer for …/cmd/{commandId}/result, and what the command made the device say. */
export type CommandReply = { result: CommandResult; messages: SimMessage[] };

/** What a device needs beyond its model: the script and the seed of its connection's own random sources. */
export type DeviceRuntime = {
  script?: DeviceScript;
  now?: number;
  seed?: number;
  options?: Partial<DeviceOptions>;
};

/**
 * One simulated device: its model, its own random source, the state between ticks, and its connection's
 * behaviour (offline spells with a buffer, silence, malformed payloads). The connection draws from random
 * sources of its own, so the model says the same things whatever happens to the connection.
 */
export class SimDevice<S extends BaseState = BaseState> {
  readonly id: string;
  readonly #model: DeviceModel<S>;
  readonly #random: Random;
  readonly #script: DeviceScript;
  readonly #options: DeviceOptions;
  readonly #spells: Random;
  readonly #malformed: Random;
  readonly #spellsPerHour: number;
  #state: S;
  #buffer: SimMessage[] = [];
  #dropped = 0;
  #offlineLeftMs = 0;
  #silent = false;
  /** Answers to the latest commands by id: fieldq delivers at least once, so a repeat gets the same answer. */
  #answered = new Map<string, CommandResult>();
  #firmware: string;
  #firmwareSinceMs: number | undefined;

  constructor(id: string, model: DeviceModel<S>, random: Random, initial: S, runtime: DeviceRuntime = {}) {
    this.id = id;
    this.#model = model;
    this.#random = random;
    this.#state = initial;
    this.#script = runtime.script ?? PLAIN_SCRIPT;
    this.#options = { ...DEVICE_DEFAULTS, ...runtime.options };
    const seed = runtime.seed ?? 0;
    this.#spells = createRandom(deriveSeed(seed, `${id}/offline`));
    this.#malformed = createRandom(deriveSeed(seed, `${id}/malformed`));
    this.#spellsPerHour =
      ((this.#options.offlineSpellsPerWeek * HOUR_MS) / WEEK_MS) * this.#spells.between(0.25, 1.75);
    this.#firmware = initial.hello.firmware;
    this.#firmwareSinceMs = runtime.now;
  }

  get kind(): string {
    return this.#model.kind;
  }

  get hello(): Hello {
    return this.#state.hello;
  }

  get seq(): number {
    return this.#state.seq;
  }

  get counters(): readonly string[] {
    return this.#model.counters;
  }

  /** Messages waiting for the end of an offline spell. */
  get buffered(): number {
    return this.#buffer.length;
  }

  /** Messages lost because the buffer was full. */
  get dropped(): number {
    return this.#dropped;
  }

  get silent(): boolean {
    return this.#silent;
  }

  tick(time: SimTime): Tick {
    this.#firmwareSinceMs ??= time.now;
    if (this.#silent || this.#goesSilent(time.now)) {
      this.#silent = true;
      this.#buffer = [];
      return { messages: [], online: false, silent: true };
    }
    const offline = this.#offlineAfter(time.elapsedMs);
    const { state, messages } = this.#model.step(this.#state, this.#random, time, this.#script);
    this.#state = state;
    this.#noteFirmware(time.now);
    messages.push(...this.#malformedPayloads(time, messages));
    return this.#deliver(messages, offline);
  }

  /** Runs a command from fieldq; a silent device answers nothing. */
  command(command: SimCommand, now: number): CommandReply | undefined {
    if (this.#silent) return undefined;
    const earlier = this.#answered.get(command.id);
    // A repeat runs nothing and answers as before: same ts and seq, so the ingest stores it once.
    if (earlier !== undefined) return { result: earlier, messages: [] };
    // The result goes out before what the command makes the device say, so it takes the seq before theirs.
    const seq = this.#state.seq;
    const next = { ...this.#state, seq: seq + 1 };
    const { state, result, messages } = this.#model.command(next, command, this.#random, now);
    this.#state = state;
    this.#noteFirmware(now);
    const reply: CommandResult = { ts: now, seq, ok: result.ok, message: result.message };
    this.#answered.set(command.id, reply);
    if (this.#answered.size > ANSWERS_KEPT) {
      const oldest = this.#answered.keys().next().value;
      if (oldest !== undefined) this.#answered.delete(oldest);
    }
    return { result: reply, messages: this.#deliver(messages, this.#offlineLeftMs > 0).messages };
  }

  /** Answers a command it could not read: ok false with the reason, on a seq of its own; nothing runs. */
  refuseCommand(reason: string, now: number): CommandReply | undefined {
    if (this.#silent) return undefined;
    const seq = this.#state.seq;
    this.#state = { ...this.#state, seq: seq + 1 };
    return { result: { ts: now, seq, ok: false, message: reason.slice(0, 1024) }, messages: [] };
  }

  #goesSilent(now: number): boolean {
    const silence = this.#script.silentAfter;
    if (silence === undefined || this.#state.hello.firmware !== silence.firmware) return false;
    return now - (this.#firmwareSinceMs ?? now) >= silence.delayMs;
  }

  #noteFirmware(now: number) {
    if (this.#state.hello.firmware === this.#firmware) return;
    this.#firmware = this.#state.hello.firmware;
    this.#firmwareSinceMs = now;
  }

  /** Whether the device is offline during this tick: a spell goes on, or one begins. */
  #offlineAfter(elapsedMs: number): boolean {
    if (this.#offlineLeftMs > 0) this.#offlineLeftMs = Math.max(0, this.#offlineLeftMs - elapsedMs);
    else if (happens(this.#spells, this.#spellsPerHour, elapsedMs)) {
      const [shortest, longest] = this.#options.offlineSpellMs;
      this.#offlineLeftMs = shortest * (longest / shortest) ** this.#spells.next();
    }
    return this.#offlineLeftMs > 0;
  }

  #deliver(messages: SimMessage[], offline: boolean): Tick {
    if (offline) {
      this.#buffer.push(...messages);
      const excess = this.#buffer.length - this.#options.bufferLimit;
      if (excess > 0) {
        this.#buffer.splice(0, excess);
        this.#dropped += excess;
      }
      return { messages: [], online: false, silent: false };
    }
    if (this.#buffer.length === 0) return { messages, online: true, silent: false };
    const flushed = [...this.#buffer, ...messages];
    this.#buffer = [];
    return { messages: flushed, online: true, silent: false };
  }

  #nextSeq(): number {
    const seq = this.#state.seq;
    this.#state = { ...this.#state, seq: seq + 1 };
    return seq;
  }

  /** Payloads that break the contract, the ways broken firmware breaks it; those that carry a seq use one up. */
  #malformedPayloads(time: SimTime, messages: SimMessage[]): SimMessage[] {
    const perHour = this.#script.malformedPerHour;
    const count = perHour > 0 ? poisson(this.#malformed, (perHour * time.elapsedMs) / HOUR_MS) : 0;
    if (count === 0) return [];
    const ts = time.now;
    const sample = messages.findLast((m) => m.channel === "telemetry")?.payload;
    const metrics = sample !== undefined && !Array.isArray(sample) ? sample.metrics : { uptime_s: 0 };
    const codes = this.#model.faultCodes;
    const out: SimMessage[] = [];
    for (let i = 0; i < count; i++) {
      const variant = this.#malformed.int(0, 3);
      if (variant === 0) {
        out.push({ channel: "raw", to: "telemetry", body: JSON.stringify({ ts, metrics }) });
      } else if (variant === 1) {
        const code = codes[this.#malformed.int(0, codes.length - 1)] ?? "UNKNOWN";
        const body = JSON.stringify({ ts, seq: this.#nextSeq(), code, severity: "fatal" });
        out.push({ channel: "raw", to: "fault", body });
      } else if (variant === 2) {
        const data = { rating: this.#malformed.int(11, 15) };
        out.push({
          channel: "raw",
          to: "event",
          body: JSON.stringify({ ts, seq: this.#nextSeq(), type: "feedback", data }),
        });
      } else {
        // Cut short, as if the device rebooted mid-write.
        const whole = JSON.stringify({ ts, seq: this.#nextSeq(), metrics });
        out.push({
          channel: "raw",
          to: "telemetry",
          body: whole.slice(0, this.#malformed.int(1, whole.length - 1)),
        });
      }
    }
    return out;
  }
}

/** A device's behaviour depends only on the fleet seed and its id, never on its neighbours. */
export function createDevice(
  spec: DeviceSpec,
  seed: number,
  now: number,
  options: Partial<DeviceOptions> = {},
): SimDevice {
  const model: DeviceModel<BaseState> = MODELS[spec.kind];
  const random = createRandom(deriveSeed(seed, spec.id));
  const runtime: DeviceRuntime = { now, seed, options };
  if (spec.script !== undefined) runtime.script = spec.script;
  return new SimDevice(spec.id, model, random, model.init(spec.hello, random, now), runtime);
}
