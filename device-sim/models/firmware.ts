import type { FIRMWARE_UPDATE_RESULTS, Hello } from "../../contract/messages.js";
import type { Random } from "../random.js";
import { latestFirmware, type ProductLine, productLine } from "./catalog.js";
import { happens } from "./device-model.js";

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
