import type { InfluxDB } from "influx";
import type { Logger } from "../observe/logger.js";
import type { PointWriter } from "../storage/influx.js";
import type { createRollupReader } from "../storage/rollup-reader.js";
import type { DeviceDirectory } from "./device-directory.js";
import type { DeviceService } from "./devices.js";
import type { FirmwareService } from "./firmware.js";
import type { HealthService } from "./health.js";
import type { IssueService } from "./issues.js";

/**
 * What the services built on the read side (commands, alerts, promises, feedback, the review) are given:
 * one InfluxDB, its writer for what people do, the shared rollup reader and device directory, and the
 * services they compose. services/read-services.ts builds it once.
 */
export type ServiceBag = {
  influx: InfluxDB;
  write: PointWriter;
  rollups: ReturnType<typeof createRollupReader>;
  directory: DeviceDirectory;
  devices: DeviceService;
  issues: IssueService;
  health: HealthService;
  firmware: FirmwareService;
  logger: Logger;
  now: () => number;
};
