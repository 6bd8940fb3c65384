import type { FIRMWARE_UPDATE_RESULTS, Hello } from "../../contract/messages.js";
import { HOUR_MS } from "../../contract/time.js";
import type { Random } from "../random.js";
import type { DeviceScript, FirmwarePush } from "../script.js";
import type { SimMessage, Stamp, UpdateProgress } from "./device-model.js";

export type FirmwareUpdate = { from: string; to: string; result: (typeof FIRMWARE_UPDATE_RESULTS)[number] };

/** Odds of an over-the-air update; a device whose update did not take tries the push again hours later. */
const RESULT_ODDS = [
  ["success", 96],
  ["failure", 3],
  ["rolled_back", 1],
] as const;
const RETRY_MS = [1 * HOUR_MS, 6 * HOUR_MS] as const;

export const NO_UPDATES_TAKEN: UpdateProgress = { next: 0, retryAtMs: 0 };

/** The newest push at or before `now` the device has not taken yet; older ones it skips. */
function duePush(script: DeviceScript, progress: UpdateProgress, now: number) {
  let due: { push: FirmwarePush; index: number } | undefined;
  for (let index = progress.next; index < script.updates.length; index++) {
    const push = script.updates[index];
    if (push === undefined || push.atMs > now) break;
    due = { push, index };
  }
  return due;
}

/**
 * Takes the script's due firmware push, if any: its event, then on success a reboot and a hello with the
 * new version, on a roll-back a reboot. A push to the firmware the device runs changes nothing.
 */
export function takeDueUpdate(
  { hello, updates }: { hello: Hello; updates: UpdateProgress },
  device: {
    script: DeviceScript;
    random: Random;
    now: number;
    messages: SimMessage[];
    stamp: Stamp;
    reboot: (reason: string) => void;
  },
): { hello: Hello; updates: UpdateProgress } {
  const { now } = device;
  const due = now >= updates.retryAtMs ? duePush(device.script, updates, now) : undefined;
  if (due === undefined) return { hello, updates };
  const taken = { next: due.index + 1, retryAtMs: 0 };
  if (due.push.to === hello.firmware) return { hello, updates: taken };

  const update: FirmwareUpdate = {
    from: hello.firmware,
    to: due.push.to,
    result: device.random.weighted(RESULT_ODDS),
  };
  device.messages.push({
    channel: "event",
    payload: { ...device.stamp(), type: "firmware_update", data: update },
  });
  if (update.result !== "success") {
    if (update.result === "rolled_back") device.reboot("firmware_rollback");
    return { hello, updates: { next: updates.next, retryAtMs: now + device.random.between(...RETRY_MS) } };
  }
  device.reboot("firmware_update");
  const updated = { ...hello, firmware: update.to };
  device.messages.push({ channel: "hello", payload: updated });
  return { hello: updated, updates: taken };
}
