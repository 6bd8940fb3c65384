import { isDeviceKey } from "../contract/device-key.js";
import { DEVICE_ID_PATTERN } from "../contract/topics.js";

// MQTT CONNACK return codes of 3.1.1 [MQTT-3.2.2.3].
export const IDENTIFIER_REJECTED = 2;
/** A device cooling down after a flood: the right key, but not now. */
export const SERVER_UNAVAILABLE = 3;
export const NOT_AUTHORIZED = 5;

export type AuthDecision =
  | { ok: true; deviceId: string }
  | { ok: false; returnCode: typeof IDENTIFIER_REJECTED | typeof NOT_AUTHORIZED; reason: string };

/** Username = device id, password = its key, client id = username. No device database needed. */
export function authenticateDevice(
  secret: string,
  clientId: string,
  username: string | undefined,
  password: Buffer | undefined,
): AuthDecision {
  if (username === undefined || password === undefined) {
    return { ok: false, returnCode: NOT_AUTHORIZED, reason: "missing credentials" };
  }
  if (!DEVICE_ID_PATTERN.test(username)) {
    return { ok: false, returnCode: NOT_AUTHORIZED, reason: "username is not a valid device id" };
  }
  if (!isDeviceKey(secret, username, password.toString("utf8"))) {
    return { ok: false, returnCode: NOT_AUTHORIZED, reason: "wrong device key" };
  }
  if (clientId !== username) {
    return { ok: false, returnCode: IDENTIFIER_REJECTED, reason: "client id differs from username" };
  }
  return { ok: true, deviceId: username };
}
