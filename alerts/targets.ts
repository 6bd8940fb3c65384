import type { Config } from "../config/env.js";
import { ALERT_TOPIC_ROOT } from "../contract/topics.js";
import { type AlertPublisher, mqttTarget } from "./mqtt-target.js";
import { LOG_TARGET } from "./outbox.js";
import type { Target } from "./target.js";
import type { TargetSpec } from "./types.js";
import { webhookTarget } from "./webhook.js";

// Targets from their specs, and the targets the configuration gives without a rules file.

/** The webhook target of FIELDQ_WEBHOOK_URL and FIELDQ_WEBHOOK_SECRET. */
export const DEFAULT_WEBHOOK_TARGET = "webhook";
/** The MQTT target on fieldq/alerts/… when FIELDQ_ALERT_MQTT_USERNAME and _PASSWORD are set. */
export const DEFAULT_MQTT_TARGET = "mqtt";

/** The targets every alert goes to when the rules name none: the configured webhook and alert topic. */
export function defaultTargets(config: Config["alerts"]): TargetSpec[] {
  const specs: TargetSpec[] = [];
  if (config.webhook !== undefined)
    specs.push({ name: DEFAULT_WEBHOOK_TARGET, type: "webhook", ...config.webhook });
  if (config.mqtt !== undefined)
    specs.push({ name: DEFAULT_MQTT_TARGET, type: "mqtt", topic: ALERT_TOPIC_ROOT });
  return specs;
}

export type TargetOptions = { fetch?: typeof fetch; now?: () => number };

/** The targets of the specs; two with one name, or one named like the alert log's lane, stop the start. */
export function createTargets(
  specs: readonly TargetSpec[],
  broker: AlertPublisher,
  options: TargetOptions = {},
): Target[] {
  const names = new Set<string>();
  return specs.map((spec) => {
    if (spec.name === LOG_TARGET)
      throw new Error(`alert target name "${LOG_TARGET}" is reserved for the alert log`);
    if (names.has(spec.name)) throw new Error(`two alert targets are named "${spec.name}"`);
    names.add(spec.name);
    return spec.type === "webhook"
      ? webhookTarget({ ...spec, ...options })
      : mqttTarget({ name: spec.name, topic: spec.topic, broker });
  });
}
