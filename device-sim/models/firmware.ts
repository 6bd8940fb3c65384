import type { FIRMWARE_UPDATE_RESULTS, Hello } from "../../contract/messages.js";
import type { Random } from "../random.js";
import { latestFirmware, type ProductLine, productLine } from "./catalog.js";
import { happens, type SimMessage } from "./device-model.js";

export type FirmwareUpdate = { from: string; to: string; result: (typeof FIRMWARE_UPDATE_RESULTS)[number] };

/** An over-the-air update offered to devices not on their line's newest firmware. */
export function maybeUpdateFirmware(
  hello: Hello,
  lines: readonly ProductLine[],
  random: Random,
  elapsedMs: number,
  perHour: number,
): FirmwareUpdate | undefined {
  const line = productLine(lines, hello.model);
  if (line === undefined) return undefined;
  const to = latestFirmware(line);
  if (hello.firmware === to || !happens(random, perHour, elapsedMs)) return undefined;
  const result = random.weighted([
    ["success", 90],
    ["failure", 7],
    ["rolled_back", 3],
  ] as const);
  return { from: hello.firmware, to, result };
}

/**
 * What an update brings about: its event, then on success a reboot and a hello with the new version, on a
 * roll-back a reboot. Returns the device's hello after it.
 */
export function applyFirmwareUpdate(
  update: FirmwareUpdate,
  device: {
    hello: Hello;
    messages: SimMessage[];
    stamp: () => { ts: number; seq: number };
    reboot: (reason: string) => void;
  },
): Hello {
  device.messages.push({
    channel: "event",
    payload: { ...device.stamp(), type: "firmware_update", data: update },
  });
  if (update.result === "rolled_back") device.reboot("firmware_rollback");
  if (update.result !== "success") return device.hello;
  device.reboot("firmware_update");
  const hello = { ...device.hello, firmware: update.to };
  device.messages.push({ channel: "hello", payload: hello });
  return hello;
}
