import { startDelivery } from "../../alerts/deliver.js";
import { openOutbox } from "../../alerts/outbox.js";
import { createTargets } from "../../alerts/targets.js";
import { silentLogger } from "../../observe/logger.js";
import { createPointWriter } from "../../storage/influx.js";
import { sampleNotice } from "./alert-notice.js";

// A process holding an alert outbox (test/integration/alert-delivery.test.ts kills it with -9): it commits one
// notice for the webhook at ALERT_RECEIVER_URL, says so on stdout, and delivers until it is killed.

const env = (name: string) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const outbox = await openOutbox<{ open: boolean }>({ dir: env("ALERT_OUTBOX_DIR"), logger: silentLogger });
const targets = createTargets(
  [{ name: "webhook", type: "webhook", url: env("ALERT_RECEIVER_URL"), secret: env("ALERT_SECRET") }],
  { publish: async () => {} },
);
await startDelivery({
  outbox,
  targets,
  log: createPointWriter({
    url: env("ALERT_INFLUX_URL"),
    database: env("ALERT_INFLUX_DB"),
    rawRetention: "30d",
  }),
  logger: silentLogger,
  attemptTimeoutMs: 60_000,
});
await outbox.commit({
  state: new Map([["issue_new~3f2a91c0", { open: true }]]),
  deliveries: [{ target: "webhook", notice: sampleNotice() }],
});
process.stdout.write("committed\n");
setInterval(() => {}, 1_000);
