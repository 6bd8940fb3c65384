import type { BrokerHandle } from "../broker/start-broker.js";
import type { Config } from "../config/env.js";
import type { Logger } from "../observe/logger.js";
import type { ReadServices } from "../services/read-services.js";

// Judges the alert conditions on a schedule and delivers what changed. STUB: being built (issue 13).

export type AlertingDeps = {
  config: Config["alerts"];
  /** The ingest's data folder: the outbox lives in it. */
  dataDir: string;
  read: ReadServices;
  broker: BrokerHandle;
  logger: Logger;
  now?: () => number;
};

export type Alerting = { close(): Promise<void> };

export async function startAlerting(_deps: AlertingDeps): Promise<Alerting> {
  return { close: async () => {} };
}
