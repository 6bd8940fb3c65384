import { join } from "node:path";
import type { Acknowledgement } from "../analytics/alerting.js";
import type { BrokerHandle } from "../broker/start-broker.js";
import type { Config } from "../config/env.js";
import type { Logger } from "../observe/logger.js";
import type { ReadServices } from "../services/read-services.js";
import { appendIssueEvents, issueEventPoint } from "../storage/issue-queries.js";
import { startDelivery } from "./deliver.js";
import { type AlertEngine, createAlertEngine, type EngineState } from "./engine.js";
import { openOutbox } from "./outbox.js";
import { loadAlertRules } from "./rules-file.js";
import { createTargets, defaultTargets } from "./targets.js";

// Alerting in the broker's process: the rules (a broken file stops the start with its file:line errors), the
// outbox in the data folder, the targets and their delivery, and the engine evaluated at start and every
// FIELDQ_ALERT_INTERVAL, one evaluation at a time.

export type AlertingDeps = {
  config: Config["alerts"];
  /** The ingest's data folder: the outbox lives in it. */
  dataDir: string;
  read: ReadServices;
  broker: BrokerHandle;
  logger: Logger;
  now?: () => number;
};

export type Alerting = {
  /** Runs one evaluation now (after the one running, if any). */
  evaluate(): Promise<void>;
  close(): Promise<void>;
};

/** System events are written with nanos 0: the same escalation written twice is one point. */
const SYSTEM_NANOS = 0;

export async function startAlerting(deps: AlertingDeps): Promise<Alerting> {
  const { read, logger } = deps;
  const now = deps.now ?? Date.now;
  const defaults = defaultTargets(deps.config);
  const loaded = await loadAlertRules(deps.config.rulesFile, defaults);
  if (!loaded.ok) {
    throw new Error(`FIELDQ_ALERT_RULES:\n${loaded.errors.map((e) => `  ${e.text}`).join("\n")}`);
  }
  const rules = loaded.value;
  for (const warning of rules.warnings) logger.warn({ file: deps.config.rulesFile }, warning);
  const targets = createTargets(rules.targets, deps.broker);
  const outbox = await openOutbox<EngineState>({ dir: join(deps.dataDir, "outbox"), logger, now });
  const delivery = await startDelivery({ outbox, targets, log: read.bag.write, logger, now }).catch(
    async (error: unknown) => {
      await outbox.close();
      throw error;
    },
  );
  const engine: AlertEngine = createAlertEngine({
    rules,
    outbox,
    read,
    acknowledgements: () => acknowledgementsOf(read),
    recordEscalation: (issue, event) =>
      appendIssueEvents(read.bag.write, [issueEventPoint(issue, event, SYSTEM_NANOS)]),
    publicUrl: deps.config.publicUrl,
    logger,
    now,
  });
  logger.info(
    {
      rules: rules.rules.map((r) => r.name),
      targets: rules.targets.map((t) => t.name),
      file: deps.config.rulesFile ?? null,
    },
    "alerting started",
  );

  let running: Promise<void> = Promise.resolve();
  let closed = false;
  const evaluate = () => {
    running = running.then(async () => {
      if (closed) return;
      await engine.evaluate().catch((err: unknown) => logger.error({ err }, "alert evaluation failed"));
    });
    return running;
  };
  void evaluate();
  const timer = setInterval(() => void evaluate(), deps.config.intervalMs);
  timer.unref();

  return {
    evaluate,
    async close() {
      closed = true;
      clearInterval(timer);
      await running;
      await delivery.close();
      await outbox.close();
    },
  };
}

/** The acknowledgements people made (services/alerts.ts), first per alert, on the engine's clock. */
async function acknowledgementsOf(read: ReadServices): Promise<Map<string, Acknowledgement>> {
  const result = new Map<string, Acknowledgement>();
  for (const [alertId, ack] of await read.alerts.acknowledgements()) {
    const at = Date.parse(ack.at);
    if (Number.isFinite(at)) result.set(alertId, { by: ack.by, at });
  }
  return result;
}
