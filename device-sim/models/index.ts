import { MODEM_FAULT_CODES, modem } from "./modem.js";
import { PRINTER_FAULT_CODES, printer } from "./printer.js";

export type {
  BaseState,
  CommandOutcome,
  CommandStep,
  DeviceModel,
  SimChannel,
  SimCommand,
  SimMessage,
  SimTime,
  Step,
} from "./device-model.js";
export { COMMAND_TYPES } from "./device-model.js";

/** Every kind of device the simulator can play, by its `kind`. */
export const MODELS = { modem, printer } as const;

export type SimKind = keyof typeof MODELS;

/** The fault codes each kind can raise: what a scenario may boost. */
export const FAULT_CODES: { readonly [K in SimKind]: readonly string[] } = {
  modem: MODEM_FAULT_CODES,
  printer: PRINTER_FAULT_CODES,
};
