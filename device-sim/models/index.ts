import { modem } from "./modem.js";
import { printer } from "./printer.js";

export type { BaseState, DeviceModel, SimChannel, SimMessage, SimTime, Step } from "./device-model.js";

/** Every kind of device the simulator can play, by its `kind`. */
export const MODELS = { modem, printer } as const;

export type SimKind = keyof typeof MODELS;
