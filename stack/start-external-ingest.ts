import { hostname } from "node:os";
import { resolve } from "node:path";
import type { Config } from "../config/env.js";
import {
  defaultClientId,
  type ExternalConsumer,
  parseBrokerUrl,
  startExternalConsumer,
} from "../ingest/external-consumer.js";
import type { Logger } from "../observe/logger.js";
import { createMetrics, type Metrics } from "../observe/metrics.js";
import { type Pipeline, startPipeline } from "./start-pipeline.js";

// `fieldq ingest`: the durable pipeline behind an external MQTT 5 broker instead of fieldq's own. Devices
// connect to that broker; this process takes its share of their messages and acknowledges each after fsync.
// Commands and alerts need fieldq's broker (who is connected, PUBACKs from devices): they are off here.

const REPORT_EVERY_MS = 60_000;

export type ExternalIngestHandle = {
  pipeline: Pipeline;
  consumer: ExternalConsumer;
  clientId: string;
  metrics: Metrics;
  /**
   * Stops taking messages, acknowledges those being journaled, then drains the writer and closes. With leave,
   * the consumer first leaves the share group for good (ExternalConsumer.close).
   */
  close(options?: { leave?: boolean }): Promise<void>;
};

export async function startExternalIngest(
  config: Config,
  deps: { logger: Logger; metrics?: Metrics },
): Promise<ExternalIngestHandle> {
  const { logger } = deps;
  const metrics = deps.metrics ?? createMetrics();
  const external = config.ingest.externalBroker;
  if (external.url === undefined)
    throw new Error("no external broker: give --broker mqtt://host:port or FIELDQ_INGEST_BROKER_URL");
  const url = parseBrokerUrl(external.url);
  if (!url.ok) throw new Error(`FIELDQ_INGEST_BROKER_URL: ${url.error}`);
  const clientId = external.clientId ?? defaultClientId(hostname(), resolve(config.ingest.dataDir));
  const pipeline = await startPipeline(config, { logger, metrics });
  const consumer = startExternalConsumer({
    url: external.url,
    username: external.username,
    password: external.password,
    clientId,
    group: external.group,
    receive: pipeline.ingest.receive,
    logger: logger.child({ part: "external-broker" }),
    metrics,
  });
  // No HTTP server here (as with `fieldq broker`): what the ingest has taken is logged once a minute.
  const report = setInterval(
    () =>
      logger.info(
        {
          ...consumer.counts(),
          inFlight: consumer.inFlight(),
          journalBacklog: pipeline.journal.backlog.entries,
        },
        "external ingest progress",
      ),
    REPORT_EVERY_MS,
  ).unref();
  return {
    pipeline,
    consumer,
    clientId,
    metrics,
    async close(options) {
      clearInterval(report);
      await consumer.close(options);
      await pipeline.close();
    },
  };
}
