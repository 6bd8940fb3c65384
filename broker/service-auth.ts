import { createHash, timingSafeEqual } from "node:crypto";
import { DEVICE_ID_PATTERN } from "../contract/topics.js";
import { IDENTIFIER_REJECTED, NOT_AUTHORIZED } from "./auth.js";

// The service account of alert subscribers (FIELDQ_ALERT_MQTT_USERNAME / _PASSWORD): not a device, so it has
// no device key; its password is compared in constant time.

export type ServiceAccount = { username: string; password: string };

export type ServiceDecision =
  | { ok: true }
  | { ok: false; returnCode: typeof IDENTIFIER_REJECTED | typeof NOT_AUTHORIZED; reason: string };

const digest = (value: string | Buffer) => createHash("sha256").update(value).digest();
/** Equal in constant time whatever the lengths: digests of equal length are compared. */
const same = (a: string | Buffer, b: string | Buffer) => timingSafeEqual(digest(a), digest(b));

/** Whether a CONNECT names the service account; a device's username never does once the account is set. */
export const isServiceUsername = (account: ServiceAccount | undefined, username: string | undefined) =>
  account !== undefined && username !== undefined && same(account.username, username);

/**
 * The service account's CONNECT. Its client id must be one no device can have (a device's client id is its
 * id), or aedes, which keeps one client per id, would let it disconnect a device and a device disconnect it;
 * an empty client id (the broker picks one) is fine too.
 */
export function authenticateService(
  account: ServiceAccount,
  clientId: string,
  givenClientId: string,
  password: Buffer | undefined,
): ServiceDecision {
  if (password === undefined || !same(account.password, password)) {
    return { ok: false, returnCode: NOT_AUTHORIZED, reason: "wrong service password" };
  }
  if (givenClientId !== "" && DEVICE_ID_PATTERN.test(clientId)) {
    return {
      ok: false,
      returnCode: IDENTIFIER_REJECTED,
      reason: "a service's client id must not be a device id (use one with a colon, such as alerts:ops)",
    };
  }
  return { ok: true };
}
