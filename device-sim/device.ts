import type { Hello } from "../contract/messages.js";
import {
  type BaseState,
  type DeviceModel,
  MODELS,
  type SimKind,
  type SimMessage,
  type SimTime,
} from "./models/index.js";
import { createRandom, deriveSeed, type Random } from "./random.js";
import type { DeviceScript } from "./script.js";

/** Who a device is, and (from a scenario) what will happen to it; no script means nothing injected. */
export type DeviceSpec = { id: string; kind: SimKind; hello: Hello; script?: DeviceScript };

/** One simulated device: its model, its own random source, and the state between ticks. */
export class SimDevice<S extends BaseState = BaseState> {
  readonly id: string;
  readonly #model: DeviceModel<S>;
  readonly #random: Random;
  #state: S;

  constructor(id: string, model: DeviceModel<S>, random: Random, initial: S) {
    this.id = id;
    this.#model = model;
    this.#random = random;
    this.#state = initial;
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

  tick(time: SimTime): SimMessage[] {
    const { state, messages } = this.#model.step(this.#state, this.#random, time);
    this.#state = state;
    return messages;
  }
}

/** A device's behaviour depends only on the fleet seed and its id, never on its neighbours. */
export function createDevice(spec: DeviceSpec, seed: number, now: number): SimDevice {
  const model: DeviceModel<BaseState> = MODELS[spec.kind];
  const random = createRandom(deriveSeed(seed, spec.id));
  return new SimDevice(spec.id, model, random, model.init(spec.hello, random, now));
}
