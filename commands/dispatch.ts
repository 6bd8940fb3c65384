import { nextSendAt } from "../analytics/command-status.js";
import type { BrokerHandle } from "../broker/start-broker.js";
import type { Command } from "../contract/messages.js";
import type { Logger } from "../observe/logger.js";
import type { CommandService, PendingCommand } from "../services/commands.js";

// Sends queued commands to their devices through the broker (docs/commands.md). Runs in the broker's process.
// What waits is read from InfluxDB (at start, then every second for what other processes queued, and in full
// every minute), and taken at once from the service when this process queued it. A command goes out QoS 1
// only to a device connected and subscribed to its command filter, at most `rate` per second in all; its
// PUBACK records it delivered. Delivery is at least once: a crash between the publish and the record of its
// PUBACK, or a PUBACK lost with the connection, sends it again.

export type CommandDispatchDeps = {
  broker: BrokerHandle;
  commands: CommandService;
  logger: Logger;
  /** Commands published per second at most. */
  rate: number;
  now?: () => number;
  /** How often what other processes queued is looked for. */
  pollMs?: number;
  /** How often every waiting command is read again. */
  fullReadMs?: number;
  /** A command published without a PUBACK for this long may be published again. */
  ackTimeoutMs?: number;
};

export type CommandDispatch = {
  close(): Promise<void>;
  /** Resolves once a pass begun after the call has finished: tests wait on it. */
  poke(): Promise<void>;
};

const DEFAULTS = { pollMs: 1_000, fullReadMs: 60_000, ackTimeoutMs: 30_000 };
/** A poll reads back this far before the previous one began: points reach InfluxDB a little late. */
const POLL_MARGIN_MS = 10_000;

export function startCommandDispatch(deps: CommandDispatchDeps): CommandDispatch {
  const o = Object.assign({}, DEFAULTS, deps);
  const now = deps.now ?? Date.now;
  const { broker, commands, logger } = deps;
  /** Waiting commands by id. */
  const waiting = new Map<string, PendingCommand>();
  /** Published, waiting for the PUBACK: id → when it went out. */
  const sent = new Map<string, number>();
  /**
   * Commands acknowledged lately, by id, with when: a read that began before their delivered point reached
   * InfluxDB still holds them as waiting, and must not send them again.
   */
  const acknowledged = new Map<string, number>();
  /** Deliveries not recorded yet (InfluxDB away): retried on every pass. */
  const unrecorded: Array<{ command: PendingCommand; atMs: number }> = [];
  let lastSentMs: number | undefined;
  let lastPollMs: number | undefined;
  let lastFullMs = Number.NEGATIVE_INFINITY;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  const take = (pending: PendingCommand[]) => {
    for (const command of pending) {
      if (!waiting.has(command.id) && !acknowledged.has(command.id)) waiting.set(command.id, command);
    }
  };
  const forgetAcknowledged = (t: number) => {
    for (const [id, at] of acknowledged) if (t - at > o.fullReadMs + POLL_MARGIN_MS) acknowledged.delete(id);
  };

  async function read() {
    const started = now();
    forgetAcknowledged(started);
    if (started - lastFullMs >= o.fullReadMs) {
      const all = await commands.pending();
      // What was delivered meanwhile is not in the full read; what is in flight stays as it is.
      for (const id of waiting.keys()) if (!sent.has(id)) waiting.delete(id);
      take(all.filter((c) => !sent.has(c.id)));
      lastFullMs = started;
    } else {
      take(await commands.pending((lastPollMs ?? started) - POLL_MARGIN_MS));
    }
    lastPollMs = started;
  }

  let recording: Promise<void> | undefined;
  /** Writes the deliveries not recorded yet, in order, one writer at a time. */
  function record(): Promise<void> {
    recording ??= (async () => {
      while (unrecorded[0] !== undefined) {
        await commands.markDelivered(unrecorded[0].command, unrecorded[0].atMs);
        unrecorded.shift();
      }
    })().finally(() => {
      recording = undefined;
    });
    return recording;
  }

  /** Publishes what may go now, spaced at the rate; ends when nothing more may go. */
  async function send() {
    const t = now();
    for (const [id, command] of waiting) {
      if (closed) return;
      // One in flight stays until its PUBACK may have come (the device has it: delivered, not expired).
      const inFlightSince = sent.get(id);
      if (
        command.expiresMs <= now() &&
        (inFlightSince === undefined || now() - inFlightSince >= o.ackTimeoutMs)
      ) {
        waiting.delete(id);
        sent.delete(id);
        continue;
      }
      if (command.expiresMs <= now()) continue;
      const at = sent.get(id);
      if (at !== undefined && now() - at < o.ackTimeoutMs) continue;
      if (!broker.isSubscribed(command.device)) continue;
      const wait = nextSendAt(lastSentMs, deps.rate) - now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (closed || !waiting.has(id) || !broker.isSubscribed(command.device)) continue;
      const sentMs = now();
      lastSentMs = sentMs;
      sent.set(id, sentMs);
      const payload: Command = {
        type: command.type,
        ts: sentMs,
        ...(Object.keys(command.args).length === 0 ? {} : { args: command.args }),
      };
      if (await broker.sendCommand(command.device, id, JSON.stringify(payload))) {
        logger.debug({ deviceId: command.device, commandId: id, type: command.type }, "command sent");
      } else {
        sent.delete(id);
        logger.debug({ deviceId: command.device, commandId: id }, "command not sent: the device went away");
      }
    }
    if (waiting.size > 0) logger.trace({ waiting: waiting.size, ms: now() - t }, "commands pass");
  }

  async function pass() {
    try {
      await record();
    } catch (error) {
      logger.warn({ err: error, unrecorded: unrecorded.length }, "deliveries not recorded yet");
    }
    try {
      await read();
    } catch (error) {
      logger.warn({ err: error }, "waiting commands not read");
    }
    await send();
  }

  /** One pass at a time; a request during one runs another after it. */
  function poke(): Promise<void> {
    if (closed) return Promise.resolve();
    if (running !== undefined) {
      again = true;
      return running.then(() => running ?? undefined);
    }
    running = pass()
      .catch((error: unknown) => logger.error({ err: error }, "command dispatch pass failed"))
      .finally(() => {
        running = undefined;
        if (again && !closed) {
          again = false;
          void poke();
        }
      });
    return running;
  }

  const unlistenQueued = commands.onQueued((pending) => {
    take(pending);
    void poke();
  });
  const unlistenReady = broker.onDeviceReady((deviceId) => {
    for (const command of waiting.values()) {
      if (command.device === deviceId) {
        // A device back on a new connection gets what it never acknowledged again.
        sent.delete(command.id);
        void poke();
        return;
      }
    }
  });
  const unlistenDelivered = broker.onDelivered((deviceId, commandId) => {
    const command = waiting.get(commandId);
    if (command === undefined || command.device !== deviceId) return;
    const at = now();
    waiting.delete(commandId);
    sent.delete(commandId);
    acknowledged.set(commandId, at);
    unrecorded.push({ command, atMs: at });
    record().catch((error: unknown) =>
      logger.warn({ err: error, commandId }, "delivery not recorded yet; retried on the next pass"),
    );
  });

  const tick = () => {
    timer = setTimeout(() => {
      void poke().finally(() => {
        if (!closed) tick();
      });
    }, o.pollMs);
    timer.unref();
  };
  void poke();
  tick();

  return {
    poke,
    async close() {
      closed = true;
      clearTimeout(timer);
      unlistenQueued();
      unlistenReady();
      unlistenDelivered();
      await running;
      await record().catch((error: unknown) =>
        logger.warn({ err: error, unrecorded: unrecorded.length }, "deliveries left unrecorded at close"),
      );
    },
  };
}
