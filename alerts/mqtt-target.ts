import { ALERT_TOPIC_ROOT, alertTopic } from "../contract/topics.js";
import type { SendOutcome, Target } from "./target.js";

// The MQTT target: the notice's JSON published QoS 1 on fieldq's own broker, on
// fieldq/alerts/{severity}/{rule}, for a service subscribed with the alert account (FIELDQ_ALERT_MQTT_*).
// Delivered means the broker routed it: MQTT has no receipt from a subscriber that is not connected.

/** What the target needs of the broker: BrokerHandle.publish. */
export type AlertPublisher = { publish(topic: string, payload: string): Promise<void> };

export type MqttTargetOptions = { name: string; topic: string; broker: AlertPublisher };

export function mqttTarget(options: MqttTargetOptions): Target {
  if (options.topic !== ALERT_TOPIC_ROOT)
    throw new Error(`an MQTT alert target publishes under ${ALERT_TOPIC_ROOT} (not ${options.topic})`);
  return {
    name: options.name,
    async send(notice, signal): Promise<SendOutcome> {
      if (signal.aborted) return { ok: false, permanent: false, status: null, error: "aborted" };
      try {
        await options.broker.publish(alertTopic(notice.severity, notice.rule), JSON.stringify(notice));
        return { ok: true, status: null };
      } catch (error) {
        return {
          ok: false,
          permanent: false,
          status: null,
          error: error instanceof Error ? error.message : String(error),
        };
      }
    },
  };
}
