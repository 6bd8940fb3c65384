// The simulation table of docs/statistics.md: the device-level rate comparison's false-verdict share on the
// null grid (and a few configurations beyond it), the family-wise share over 8 codes and the canary power
// ratio. Same generators and seeds as test/unit/device-rates-sim.test.ts. `npm run bench:stats`.

import { parseArgs } from "node:util";
import { judgeFamily } from "../analytics/device-rates.js";
import {
  canaryExposureNeeded,
  deviceVerdict,
  familyShare,
  median,
  NULL_GRID,
  NULL_REPLICATIONS,
  type NullConfig,
  nullSeed,
  nullShare,
  pooledExact,
  regressionShare,
} from "../test/support/gamma-fleet.js";

const USAGE = `Usage: npm run bench:stats -- [--replications N] [--canary N]

Prints the simulation tables of docs/statistics.md: the device-level test's false-verdict share on the null
grid (per-device rates gamma-distributed, means equal) beside the pooled exact test's, the family-wise share
over 8 null codes with and without Holm, and the 500-device canary's exposure against the exact test's.

  --replications N   null comparisons per configuration (default ${NULL_REPLICATIONS})
  --canary N         canary runs (default 150)
  -h, --help         show this help`;

let parsed: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: {
      replications: { type: "string", default: String(NULL_REPLICATIONS) },
      canary: { type: "string", default: "150" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
}
try {
  parsed = parse();
} catch (error) {
  process.stderr.write(
    `bench:stats: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}\n`,
  );
  process.exit(2);
}
const { values } = parsed;
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const replications = Number(values.replications);
const canaryReplications = Number(values.canary);
for (const [name, n] of [
  ["--replications", replications],
  ["--canary", canaryReplications],
] as const) {
  if (!Number.isSafeInteger(n) || n < 1) {
    process.stderr.write(`bench:stats: ${name} must be a whole number ≥ 1\n`);
    process.exit(2);
  }
}
const out = (line: string) => process.stdout.write(`${line}\n`);

const device = deviceVerdict;

const beyond: NullConfig[] = [0.25, 0.5, 1].flatMap((shape) =>
  (
    [
      [10, 10],
      [10, 100],
      [20, 500],
    ] as const
  ).flatMap(([baseline, candidate]) =>
    [2, 20].map((faultsPerDevice) => ({ shape, devices: { baseline, candidate }, faultsPerDevice })),
  ),
);

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const started = Date.now();
out(`## Null grid: ${replications} replications per configuration (Monte-Carlo SE 0.7 points at 5%)`);
out("");
out("| shape | devices | faults/device | device-level | same, no refusal | pooled exact |");
out("|---|---|---|---|---|---|");
let worst = 0;
for (const [label, grid] of [
  ["", NULL_GRID],
  [" (beyond the grid)", beyond],
] as const) {
  for (const config of grid) {
    const share = nullShare(device, pooledExact, config, replications, nullSeed(config));
    if (label === "") worst = Math.max(worst, share.falseVerdicts);
    out(
      `| ${config.shape} | ${config.devices.baseline} vs ${config.devices.candidate}${label} | ${config.faultsPerDevice} | ${pct(share.falseVerdicts)} | ${pct(share.withoutRefusal)} | ${pct(share.pooledExact)} |`,
    );
  }
}
out("");
out(`Largest false-verdict share on the grid: ${pct(worst)}`);

out("");
out(`## Power when devices differ: share of ${replications} comparisons called a regression`);
out("");
out("| shape | devices | faults/device (baseline) | rate ratio | device-level |");
out("|---|---|---|---|---|");
for (const [shape, devices, faults, ratio] of [
  [1, 20, 20, 3],
  [0.25, 20, 20, 3],
  [0.5, 30, 20, 3],
  [0.25, 50, 20, 3],
  [0.5, 100, 20, 3],
  [0.25, 100, 2, 3],
  [0.5, 100, 2, 2],
  [0.5, 500, 2, 1.5],
] as const) {
  const config = {
    shape,
    devices: { baseline: devices, candidate: devices },
    faultsPerDevice: faults,
    ratio,
  };
  out(
    `| ${shape} | ${devices} vs ${devices} | ${faults} | ${ratio} | ${pct(regressionShare(device, config, replications, 5))} |`,
  );
}

const family = familyShare(
  device,
  judgeFamily,
  { shape: 0.5, devices: { baseline: 100, candidate: 100 }, faultsPerDevice: 2, codes: 8 },
  replications,
  23,
);
out("");
out(
  `Family of 8 null codes, 100 vs 100 devices, shape 0.5 (shared device frailty), 2 faults per device and code: any false verdict in ${pct(family.anyBefore)} of ${replications} comparisons per code, ${pct(family.anyAfter)} after Holm`,
);

const needed = canaryExposureNeeded(
  { device: (b, c) => device(b, c).verdict, exact: pooledExact },
  { canaryDevices: 500, restDevices: 9500, rate: 0.01, ratio: 2, stepHours: 20, maxSteps: 250 },
  canaryReplications,
  11,
);
const quantile = (xs: readonly (number | null)[], q: number) =>
  [...xs].sort((a, b) => (a ?? Number.POSITIVE_INFINITY) - (b ?? Number.POSITIVE_INFINITY))[
    Math.min(xs.length - 1, Math.floor(q * xs.length))
  ] ?? null;
out("");
out(
  `Canary: 500 devices at 2x beside 9,500 at 10 faults per 1,000 device-hours, devices alike, ${canaryReplications} replications, canary exposure in steps of 20 device-hours until the first regression verdict:`,
);
out("");
out("| method | median | p90 |");
out("|---|---|---|");
for (const name of ["exact", "device"]) {
  const xs = needed[name] ?? [];
  out(`| ${name === "exact" ? "pooled exact" : "device-level"} | ${median(xs)} | ${quantile(xs, 0.9)} |`);
}
const ratio = (median(needed.device ?? []) ?? Number.NaN) / (median(needed.exact ?? []) ?? Number.NaN);
out("");
out(`Power ratio (median device-level / median exact): ${ratio.toFixed(2)}`);
out(`(${((Date.now() - started) / 1000).toFixed(0)} s)`);
