import type { Hello } from "../contract/messages.js";
import type { DeviceSpec } from "./device.js";
import { ISPS, MODEMS, PRINTERS, type ProductLine, REGIONS } from "./models/catalog.js";
import type { SimKind } from "./models/index.js";
import { createRandom, deriveSeed, type Random } from "./random.js";

const MODEM_SHARE = 0.6;

const deviceId = (kind: SimKind, index: number) => `${kind}-${String(index).padStart(4, "0")}`;

function identity(kind: SimKind, line: ProductLine, random: Random): Hello {
  const hello: Hello = {
    kind,
    model: line.model,
    firmware: random.weighted(line.firmware),
    hardware: random.pick(line.hardware),
    serial: `${line.serialPrefix}-${random.int(0, 0xffffffff).toString(16).padStart(8, "0").toUpperCase()}`,
    region: random.pick(REGIONS),
  };
  if (kind === "modem") hello.isp = random.pick(ISPS);
  return hello;
}

/**
 * The fleet for a seed. Device n is drawn from its own seed, so a larger fleet keeps the devices of a smaller
 * one. The first two are a modem and a printer, so even a tiny fleet shows both.
 */
export function buildFleet(options: { devices: number; seed: number }): DeviceSpec[] {
  const fleet: DeviceSpec[] = [];
  for (let index = 1; index <= options.devices; index++) {
    const random = createRandom(deriveSeed(options.seed, `fleet/${index}`));
    const kind: SimKind =
      index === 1 ? "modem" : index === 2 ? "printer" : random.chance(MODEM_SHARE) ? "modem" : "printer";
    const line = random.pick(kind === "modem" ? MODEMS : PRINTERS);
    fleet.push({ id: deviceId(kind, index), kind, hello: identity(kind, line, random) });
  }
  return fleet;
}
