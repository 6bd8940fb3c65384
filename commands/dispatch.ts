import type { BrokerHandle } from "../broker/start-broker.js";
import type { Logger } from "../observe/logger.js";
import type { CommandService } from "../services/commands.js";

// Sends queued commands to their devices through the broker. STUB: being built (issue 13).

export type CommandDispatchDeps = {
  broker: BrokerHandle;
  commands: CommandService;
  logger: Logger;
  /** Commands published per second at most. */
  rate: number;
  now?: () => number;
};

export type CommandDispatch = { close(): Promise<void> };

export function startCommandDispatch(_deps: CommandDispatchDeps): CommandDispatch {
  return { close: async () => {} };
}
