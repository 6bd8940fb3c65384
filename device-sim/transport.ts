import { connectAsync, type IClientOptions } from "mqtt";
import type { z } from "zod";
import { Command, type CommandResult, DeviceError, type Hello, type Status } from "../contract/messages.js";
import {
  commandFilter,
  commandResultTopic,
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
  /** Cuts the connection without a goodbye or a DISCONNECT, so the broker sends the last will. */
  drop(): Promise<void>;
};

/** A command as the device read it: valid, or why not. */
export type CommandRequest = { ok: true; command: Command } | { ok: false; reason: string };

/** The device's answer, published on …/cmd/{commandId}/result, then the messages the command caused. */
export type CommandAnswer = { result: CommandResult; messages: SimMessage[] };

export type ConnectDeviceOptions = {
  brokerUrl: string;
  deviceId: string;
  key: string;
  /** Read on every (re)connect, so a device that updated its firmware announces the new one. */
  hello: () => Hello;
  logger: Logger;
  connectTimeoutMs?: number;
  /** 0: no reconnecting after a lost connection (a backfill retries a device on its own). */
  reconnectPeriodMs?: number;
  /** How long close() waits for the broker to acknowledge the offline status. */
  closeTimeoutMs?: number;
  onDeviceError?: (error: DeviceError) => void;
  /** Subscribes to the device's commands when given; undefined: the device cannot answer now. */
  onCommand?: (commandId: string, request: CommandRequest) => CommandAnswer | undefined;
};

export type ConnectDevice = (options: ConnectDeviceOptions) => Promise<DeviceLink>;

const DEFAULTS = { connectTimeoutMs: 10_000, reconnectPeriodMs: 5_000, closeTimeoutMs: 2_000 };

const ONLINE: Status = { state: "online" };
const OFFLINE: Status = { state: "offline" };

const QOS_REFUSED = 128;

function parseJson(text: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, reason: `payload is not JSON: ${(error as Error).message}` };
  }
}

/** The first problem, with its field path: what a device would put in its answer. */
function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return "does not match the Command schema";
  return `${issue.path.length > 0 ? `${issue.path.join(".")}: ` : ""}${issue.message}`;
}

export function readCommand(payload: Buffer): CommandRequest {
  const json = parseJson(payload.toString("utf8"));
  if (!json.ok) return json;
  const parsed = Command.safeParse(json.value);
  return parsed.success
    ? { ok: true, command: parsed.data }
    : { ok: false, reason: firstIssue(parsed.error) };
}

/** What a device publishes on which topic: a raw body goes out as it is, to be refused by the ingest. */
function wire(deviceId: string, message: SimMessage): { topic: string; body: string; retain: boolean } {
  if (message.channel === "raw") {
    return { topic: uplinkTopic(deviceId, message.to), body: message.body, retain: false };
  }
  return {
    topic: uplinkTopic(deviceId, message.channel),
    body: JSON.stringify(message.payload),
    retain: message.channel === "hello",
  };
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

  const send = async (message: SimMessage) => {
    const { topic, body, retain } = wire(deviceId, message);
    await client.publishAsync(topic, body, { qos: 1, retain });
  };

  const announce = async () => {
    await client.publishAsync(helloTopic(deviceId), JSON.stringify(o.hello()), { qos: 1, retain: true });
    await client.publishAsync(statusTopic(deviceId), JSON.stringify(ONLINE), { qos: 1, retain: true });
  };

  const answer = async (commandId: string, payload: Buffer) => {
    const handle = o.onCommand;
    const reply = handle?.(commandId, readCommand(payload));
    if (reply === undefined) return;
    // The result first, so the sender learns the outcome before the messages the command caused.
    await client.publishAsync(commandResultTopic(deviceId, commandId), JSON.stringify(reply.result), {
      qos: 1,
    });
    for (const message of reply.messages) await send(message);
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
        log.debug(
          { refused: error.data.topic, reason: error.data.reason },
          `broker refused a message: ${error.data.message}`,
        );
        o.onDeviceError?.(error.data);
      } else {
        log.warn({ topic }, "unreadable message on the errors topic");
      }
    } else if (parsed?.channel === "cmd") {
      answer(parsed.commandId, payload).catch((error: unknown) =>
        log.warn({ err: error, commandId: parsed.commandId }, "answering a command failed"),
      );
    }
  });

  try {
    await announce();
    const filters = [errorsTopic(deviceId), ...(o.onCommand ? [commandFilter(deviceId)] : [])];
    const granted = await client.subscribeAsync(filters, { qos: 1 });
    for (const grant of granted) {
      if (grant.qos === QOS_REFUSED) log.warn({ topic: grant.topic }, "subscription refused");
    }
  } catch (error) {
    await client.endAsync(true);
    throw error;
  }

  let ending: Promise<void> | undefined;
  return {
    deviceId,
    publish: send,
    close() {
      ending ??= (async () => {
        const said = client.connected
          ? await within(
              client.publishAsync(statusTopic(deviceId), JSON.stringify(OFFLINE), { qos: 1, retain: true }),
              o.closeTimeoutMs,
            )
          : false;
        // Without an acknowledged goodbye, don't wait for in-flight messages either.
        await client.endAsync(!said);
      })();
      return ending;
    },
    drop() {
      // end(true) destroys the socket without a DISCONNECT packet [MQTT-3.1.2-8: the will is published].
      ending ??= client.endAsync(true);
      return ending;
    },
  };
};
