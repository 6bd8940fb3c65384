// The product lines the simulator knows, with the firmware a plain fleet starts on (oldest to newest, by
// share). Versions behave alike: a difference between them comes only from a scenario's boosts.

export type ProductLine = {
  model: string;
  hardware: readonly [string, ...string[]];
  firmware: readonly [readonly [string, number], ...(readonly [string, number])[]];
  serialPrefix: string;
};

export const MODEMS: readonly [ProductLine, ...ProductLine[]] = [
  {
    model: "FQ-Modem 7590",
    hardware: ["rev A", "rev B"],
    firmware: [
      ["7.29", 3],
      ["7.57", 5],
    ],
    serialPrefix: "M7590",
  },
  {
    model: "FQ-Modem 5530",
    hardware: ["rev C"],
    firmware: [
      ["7.31", 2],
      ["8.02", 3],
    ],
    serialPrefix: "M5530",
  },
];

export const PRINTERS: readonly [ProductLine, ...ProductLine[]] = [
  {
    model: "FQ-Print Mk3",
    hardware: ["1.3", "1.4"],
    firmware: [
      ["3.12.0", 2],
      ["3.13.2", 5],
    ],
    serialPrefix: "P3",
  },
  {
    model: "FQ-Print Mini",
    hardware: ["1.0"],
    firmware: [
      ["4.3.0", 3],
      ["4.4.1", 2],
    ],
    serialPrefix: "PM",
  },
];

export const REGIONS = ["eu-west", "eu-central", "eu-north", "us-east"] as const;
export const ISPS = ["Telekom", "Vodafone", "1und1", "O2", "Swisscom"] as const;

export function productLine(lines: readonly ProductLine[], model: string): ProductLine | undefined {
  return lines.find((line) => line.model === model);
}

export function latestFirmware(line: ProductLine): string {
  return line.firmware[line.firmware.length - 1]?.[0] ?? line.firmware[0][0];
}
