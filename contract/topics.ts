// The one home of the topic grammar: fq/v1/{deviceId}/{channel}. Nobody else builds topic strings.
export const TOPIC_ROOT = "fq/v1";

export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Channels a device publishes on. */
export const UPLINK_CHANNELS = ["hello", "telemetry", "fault", "event", "status"] as const;
export type UplinkChannel = (typeof UPLINK_CHANNELS)[number];

export type DeviceTopic =
  | { deviceId: string; channel: UplinkChannel }
  | { deviceId: string; channel: "errors" }
  | { deviceId: string; channel: "cmd"; commandId: string }
  | { deviceId: string; channel: "cmd-result"; commandId: string };

const prefix = (deviceId: string) => `${TOPIC_ROOT}/${deviceId}`;

export const helloTopic = (deviceId: string) => `${prefix(deviceId)}/hello`;
export const telemetryTopic = (deviceId: string) => `${prefix(deviceId)}/telemetry`;
export const faultTopic = (deviceId: string) => `${prefix(deviceId)}/fault`;
export const eventTopic = (deviceId: string) => `${prefix(deviceId)}/event`;
export const statusTopic = (deviceId: string) => `${prefix(deviceId)}/status`;
export const errorsTopic = (deviceId: string) => `${prefix(deviceId)}/errors`;
export const commandTopic = (deviceId: string, commandId: string) => `${prefix(deviceId)}/cmd/${commandId}`;
export const commandResultTopic = (deviceId: string, commandId: string) =>
  `${commandTopic(deviceId, commandId)}/result`;
/** The subscription filter a device uses to receive its commands. */
export const commandFilter = (deviceId: string) => `${prefix(deviceId)}/cmd/+`;

/** Alerts fieldq publishes on its own broker for services (FIELDQ_ALERT_MQTT_USERNAME), outside the device tree. */
export const ALERT_TOPIC_ROOT = "fieldq/alerts";
/** fieldq/alerts/{severity}/{rule}: a service subscribes to fieldq/alerts/# or to one severity. */
export const alertTopic = (severity: string, rule: string) => `${ALERT_TOPIC_ROOT}/${severity}/${rule}`;

export const uplinkTopic = (deviceId: string, channel: UplinkChannel) => `${prefix(deviceId)}/${channel}`;

const isUplink = (channel: string): channel is UplinkChannel =>
  (UPLINK_CHANNELS as readonly string[]).includes(channel);

/** Parses a concrete topic (no wildcards); undefined for anything outside the grammar. */
export function parseDeviceTopic(topic: string): DeviceTopic | undefined {
  const parts = topic.split("/");
  if (parts[0] !== "fq" || parts[1] !== "v1") return undefined;
  const deviceId = parts[2];
  if (deviceId === undefined || !DEVICE_ID_PATTERN.test(deviceId)) return undefined;
  const channel = parts[3];
  if (parts.length === 4 && channel !== undefined) {
    if (isUplink(channel)) return { deviceId, channel };
    if (channel === "errors") return { deviceId, channel };
    return undefined;
  }
  const commandId = parts[4];
  if (channel !== "cmd" || commandId === undefined || !DEVICE_ID_PATTERN.test(commandId)) return undefined;
  if (parts.length === 5) return { deviceId, channel: "cmd", commandId };
  if (parts.length === 6 && parts[5] === "result") return { deviceId, channel: "cmd-result", commandId };
  return undefined;
}

/** The device id a topic belongs to, even when the rest of it is outside the grammar. */
export function topicOwner(topic: string): string | undefined {
  const parts = topic.split("/");
  if (parts[0] !== "fq" || parts[1] !== "v1") return undefined;
  const deviceId = parts[2];
  return deviceId !== undefined && DEVICE_ID_PATTERN.test(deviceId) ? deviceId : undefined;
}
