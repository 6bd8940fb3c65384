import type { InfluxDB } from "influx";
import type { SilenceOptions } from "../analytics/silence.js";
import type { Logger } from "../observe/logger.js";
import type { PointWriter } from "../storage/influx.js";
import { createRollupReader } from "../storage/rollup-reader.js";
import { createAlertService } from "./alerts.js";
import type { ServiceBag } from "./bag.js";
import { createCommandService } from "./commands.js";
import { createInfluxDeviceServices } from "./devices.js";
import { createFeedbackService } from "./feedback.js";
import { createFirmwareService } from "./firmware.js";
import { createHealthService } from "./health.js";
import { createIssueService } from "./issues.js";
import { createPromiseService } from "./promises.js";
import { createReviewService } from "./review.js";

// The API process's read side over one InfluxDB: every service, sharing one rollup reader (and its cache),
// and a warm-up that runs in the background from the start, so the first requests find what they read
// most (the device directory, the telemetry field types, the last 30 days of rollups) already in memory.

export type ReadServicesOptions = {
  /** Where a person's issue events are written: createPointWriter(config). */
  write: PointWriter;
  silence?: Partial<SilenceOptions>;
  logger: Logger;
  /** Remote commands: how long one waits for its device (FIELDQ_COMMAND_TTL). */
  commands?: { ttlMs: number };
  /** Files the services read at start: the service promises (FIELDQ_PROMISES). */
  files?: { promises?: string | undefined };
  /** The clock statuses and default windows are judged by; bench:api pins it to its data set's end. */
  now?: () => number;
};

export function createReadServices(influx: InfluxDB, options: ReadServicesOptions) {
  // A request may see rollups up to a second older than their newest revision: one round trip less per read.
  const rollups = createRollupReader(influx, { revisionTtlMs: 1_000 });
  const clock = options.now === undefined ? {} : { now: options.now };
  const { devices, faults, directory, close } = createInfluxDeviceServices(influx, {
    ...(options.silence === undefined ? {} : { silence: options.silence }),
    rollups,
    issuesForDevice: (id) => issues.forDevice(id),
    logger: options.logger,
    ...clock,
  });
  // The directory gives each device's current ISP and hardware to the issue breakdowns and fleet health.
  const issues = createIssueService({
    influx,
    rollups,
    write: options.write,
    directory,
    ...clock,
    alertOf: (id) => alerts.get(id),
  });
  const health = createHealthService(influx, { rollups, directory, ...clock });
  const firmware = createFirmwareService(influx, { rollups, ...clock });
  const bag: ServiceBag = {
    influx,
    write: options.write,
    rollups,
    directory,
    devices,
    issues,
    health,
    firmware,
    logger: options.logger,
    now: options.now ?? Date.now,
  };
  const commands = createCommandService(bag, options.commands ?? {});
  const alerts = createAlertService(bag);
  const promises = createPromiseService(bag, { file: options.files?.promises });
  const feedback = createFeedbackService(bag);
  const review = createReviewService(bag, { promises, feedback });
  const started = performance.now();
  /** Resolves when everything warmed (or failed to: a request then reads what it needs itself). */
  const warmed = Promise.allSettled([
    devices.warm(),
    health.warm(),
    firmware.warm(),
    issues.warm(options.now?.()),
  ]).then((results) => {
    const failed = results.filter((r) => r.status === "rejected");
    for (const r of failed) options.logger.warn({ err: r.reason }, "warming the read side failed");
    options.logger.info({ ms: Math.round(performance.now() - started) }, "read side warm");
  });
  return {
    devices,
    faults,
    issues,
    health,
    firmware,
    commands,
    alerts,
    promises,
    feedback,
    review,
    bag,
    warmed,
    close,
  };
}

export type ReadServices = ReturnType<typeof createReadServices>;
