import {
  ALERT_TOPIC_ROOT,
  commandFilter,
  DEVICE_ID_PATTERN,
  errorsTopic,
  parseDeviceTopic,
  topicOwner,
} from "../contract/topics.js";

// Pure access rules, testable without sockets.

/** A device publishes only under its own prefix, and never on the topics meant for it. */
export function canPublish(deviceId: string, topic: string): boolean {
  if (topic.startsWith("$")) return false;
  // One parse for the topics of the grammar (every message a device sends): topicOwner only for the others.
  const parsed = parseDeviceTopic(topic);
  if (parsed === undefined) return topicOwner(topic) === deviceId;
  return parsed.deviceId === deviceId && parsed.channel !== "errors" && parsed.channel !== "cmd";
}

/** A device subscribes only to its errors topic and its command topics; $SYS and wildcards elsewhere refused. */
export function canSubscribe(deviceId: string, filter: string): boolean {
  if (!DEVICE_ID_PATTERN.test(deviceId)) return false;
  if (filter === errorsTopic(deviceId) || filter === commandFilter(deviceId)) return true;
  const parsed = parseDeviceTopic(filter);
  return parsed?.channel === "cmd" && parsed.deviceId === deviceId;
}

export type SubscriptionRefusal = "acl" | "limit";

/**
 * Why a subscription is refused, if it is: outside the device's topics, or one more than it may hold.
 * `held` are the filters it holds now (a persistent session's included); subscribing to one of them again
 * replaces it and costs nothing.
 */
export function subscriptionRefusal(
  deviceId: string,
  filter: string,
  held: ReadonlySet<string>,
  maxSubscriptions: number,
): SubscriptionRefusal | undefined {
  if (!canSubscribe(deviceId, filter)) return "acl";
  if (!held.has(filter) && held.size >= maxSubscriptions) return "limit";
  return undefined;
}

/** A last will may only announce its own device going offline, on its status topic. */
export function canWill(deviceId: string, topic: string): boolean {
  const parsed = parseDeviceTopic(topic);
  return parsed?.deviceId === deviceId && parsed.channel === "status";
}

/**
 * The alert subscribers' service account subscribes only at or below fieldq/alerts: `fieldq/alerts/#`, one
 * severity (`fieldq/alerts/critical/#`), one rule (`fieldq/alerts/+/issue_regressed`).
 */
export function canServiceSubscribe(filter: string): boolean {
  return filter.startsWith(`${ALERT_TOPIC_ROOT}/`) && filter.length > ALERT_TOPIC_ROOT.length + 1;
}

/** The filter whose subscription (at QoS 1) makes a device ready for its commands. */
export const isCommandFilter = (deviceId: string, filter: string) => filter === commandFilter(deviceId);

/** Refusal for the service account's subscription: outside fieldq/alerts, or one more than it may hold. */
export function serviceSubscriptionRefusal(
  filter: string,
  held: ReadonlySet<string>,
  maxSubscriptions: number,
): SubscriptionRefusal | undefined {
  if (!canServiceSubscribe(filter)) return "acl";
  if (!held.has(filter) && held.size >= maxSubscriptions) return "limit";
  return undefined;
}
