import { type Logger, pino } from "pino";

export type { Logger };

export function createLogger(options: { level: string; format: "pretty" | "json" }): Logger {
  if (options.format === "json") return pino({ level: options.level });
  return pino({
    level: options.level,
    transport: {
      target: "pino-pretty",
      options: { colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" },
    },
  });
}

/** For tests and library use: logs nothing. */
export const silentLogger: Logger = pino({ level: "silent" });
