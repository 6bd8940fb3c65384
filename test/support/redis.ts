import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Debian's redis-server on a free port with a folder of its own, nothing saved: each test file its own.

export const REDIS_SERVER = "/usr/bin/redis-server";

export type RedisServer = {
  url: string;
  port: number;
  /** Stops the server; start() brings it back on the same port (its data is gone: nothing is saved). */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
};

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address !== null
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });

/** Resolves once the server answers PING. */
async function answers(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pong = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once("error", () => resolve(false));
      socket.connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
      socket.once("data", (data) => {
        socket.destroy();
        resolve(data.toString().startsWith("+PONG"));
      });
    });
    if (pong) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A section of the server's INFO, asked over a socket of its own (the INFO itself counts one command). */
async function info(port: number, section: string): Promise<string> {
  const socket = new Socket();
  socket.connect(port, "127.0.0.1", () => socket.write(`INFO ${section}\r\n`));
  let text = "";
  for await (const chunk of socket) {
    text += String(chunk);
    // A bulk string: $<length>\r\n<text>\r\n.
    const length = Number(/^\$(\d+)\r\n/.exec(text)?.[1] ?? Number.NaN);
    if (Buffer.byteLength(text) >= String(length).length + 3 + length + 2) break;
  }
  socket.destroy();
  return text;
}

/** Commands the server has run since it started. */
export async function redisCommands(port: number): Promise<number> {
  const count = /total_commands_processed:(\d+)/.exec(await info(port, "stats"))?.[1];
  if (count === undefined)
    throw new Error(`redis-server on port ${port}: no total_commands_processed in INFO`);
  return Number(count);
}

/** How many times the server has run one command (INFO commandstats), e.g. "hscan". */
export async function redisCommandCalls(port: number, command: string): Promise<number> {
  const calls = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(await info(port, "commandstats"))?.[1];
  return Number(calls ?? 0);
}

export async function startRedis(): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), "fieldq-redis-"));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let output = "";

  const start = async () => {
    const started = spawn(
      REDIS_SERVER,
      ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = started;
    started.stdout?.on("data", (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
    });
    started.stderr?.on("data", (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
    });
    const exited = new Promise<never>((_, reject) =>
      started.once("exit", (code) => reject(new Error(`redis-server exited (${code}): ${output}`))),
    );
    exited.catch(() => {});
    await Promise.race([answers(port, 10_000), exited]);
  };

  const stop = async () => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once("exit", () => resolve()));
    running.kill("SIGKILL");
    await exited;
  };

  await start().catch(async (error: unknown) => {
    await stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    start,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
