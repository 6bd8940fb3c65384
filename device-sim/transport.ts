import { connectAsync, type IClientOptions } from "mqtt";
import { DeviceError, type Hello, type Status } from "../contract/messages.js";
import {
  commandFilter,
  errorsTopic,
  helloTopic,
  parseDeviceTopic,
  statusTopic,
  uplinkTopic,
} from "../contract/topics.js";
import type { Logger } from "../observe/logger.js";
import type { SimMessage } from "./models/index.js";

/** One device's MQTT session, as the simulator drives it. */
export type DeviceLink = {
  readonly deviceId: string;
  publish(message: SimMessage): Promise<void>;
  /** Says offline, then ends the session; the last will is for deaths that are not clean. */
  close(): Promise<void>;
};

export type ConnectDeviceOptions = {
  brokerUrl: string;
  deviceId: string;
  key: string;
  /** Read on every (re)connect, so a device that updated its firmware announces the new one. */
  hello: () => Hello;
  logger: Logger;
  connectTimeoutMs?: number;
  reconnectPeriodMs?: number;
  /** How long close() waits for the broker to acknowledge the offline status. */
  closeTimeoutMs?: number;
  onDeviceError?: (error: DeviceError) => void;
};

export type ConnectDevice = (options: ConnectDeviceOptions) => Promise<DeviceLink>;

const DEFAULTS = { connectTimeoutMs: 10_000, reconnectPeriodMs: 5_000, closeTimeoutMs: 2_000 };

const ONLINE: Status = { state: "online" };
const OFFLINE: Status = { state: "offline" };

const QOS_REFUSED = 128;

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/** Settles when `work` does or after `ms`, whichever comes first; true when the work finished. */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
    timer.unref();
  });
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => false,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export const connectDevice: ConnectDevice = async (options) => {
  const o = { ...DEFAULTS, ...options };
  const { deviceId, logger } = o;
  const log = logger.child({ deviceId });
  const mqttOptions: IClientOptions = {
    protocolVersion: 4,
    clientId: deviceId,
    username: deviceId,
    password: o.key,
    clean: true,
    connectTimeout: o.connectTimeoutMs,
    reconnectPeriod: o.reconnectPeriodMs,
    will: {
      topic: statusTopic(deviceId),
      payload: Buffer.from(JSON.stringify(OFFLINE)),
      qos: 1,
      retain: true,
    },
  };
  const client = await connectAsync(o.brokerUrl, mqttOptions);

  const announce = async () => {
    await client.publishAsync(helloTopic(deviceId), JSON.stringify(o.hello()), { qos: 1, retain: true });
    await client.publishAsync(statusTopic(deviceId), JSON.stringify(ONLINE), { qos: 1, retain: true });
  };

  client.on("error", (error) => log.warn({ err: error }, "mqtt error"));
  client.on("offline", () => log.debug("offline, will reconnect"));
  client.on("connect", () => {
    log.info("reconnected");
    announce().catch((error: unknown) => log.warn({ err: error }, "announcing after a reconnect failed"));
  });
  client.on("message", (topic, payload) => {
    const parsed = parseDeviceTopic(topic);
    if (parsed?.channel === "errors") {
      const json = parseJson(payload.toString("utf8"));
      const error = json.ok ? DeviceError.safeParse(json.value) : undefined;
      if (error?.success) {
        log.warn(
          { refused: error.data.topic, reason: error.data.reason },
          `broker refused a message: ${error.data.message}`,
        );
        o.onDeviceError?.(error.data);
      } else {
        log.warn({ topic }, "unreadable message on the errors topic");
      }
    } else if (parsed?.channel === "cmd") {
      log.info({ commandId: parsed.commandId }, "command received; the simulator does not run commands yet");
    }
  });

  try {
    await announce();
    const granted = await client.subscribeAsync([errorsTopic(deviceId), commandFilter(deviceId)], { qos: 1 });
    for (const grant of granted) {
      if (grant.qos === QOS_REFUSED) log.warn({ topic: grant.topic }, "subscription refused");
    }
  } catch (error) {
    await client.endAsync(true);
    throw error;
  }

  let closing: Promise<void> | undefined;
  return {
    deviceId,
    async publish(message) {
      const retain = message.channel === "hello";
      await client.publishAsync(uplinkTopic(deviceId, message.channel), JSON.stringify(message.payload), {
        qos: 1,
        retain,
      });
    },
    close() {
      closing ??= (async () => {
        const said = client.connected
          ? await within(
              client.publishAsync(statusTopic(deviceId), JSON.stringify(OFFLINE), { qos: 1, retain: true }),
              o.closeTimeoutMs,
            )
          : false;
        // Without an acknowledged goodbye, don't wait for in-flight messages either.
        await client.endAsync(!said);
      })();
      return closing;
    },
  };
};
