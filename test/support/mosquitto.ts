import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Debian's Mosquitto 2 as the external broker of `fieldq ingest`, on a free port with a folder of its own.

export const MOSQUITTO_BIN = process.env.FIELDQ_TEST_MOSQUITTO ?? "/usr/sbin/mosquitto";

export type Mosquitto = { url: string; port: number; pid: number; stop(): Promise<void> };

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = tcpConnect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });

/**
 * Starts Mosquitto on 127.0.0.1 with anonymous access and queues without a bound: a share queued for an
 * ingest that is away must not be cut at Mosquitto's default of 1,000 messages. `extraConfig` adds lines.
 */
export async function startMosquitto(extraConfig: string[] = []): Promise<Mosquitto> {
  const dir = await mkdtemp(join(tmpdir(), "fieldq-mosquitto-"));
  const config = join(dir, "mosquitto.conf");
  let child: ChildProcess | undefined;
  let port = 0;
  let log = "";
  for (let attempt = 0; attempt < 5 && child === undefined; attempt += 1) {
    port = await freePort();
    await writeFile(
      config,
      [
        `listener ${port} 127.0.0.1`,
        "allow_anonymous true",
        "persistence false",
        "max_queued_messages 0",
        "max_inflight_messages 0",
        ...extraConfig,
        "",
      ].join("\n"),
    );
    const started = spawn(MOSQUITTO_BIN, ["-c", config], { stdio: ["ignore", "ignore", "pipe"] });
    started.stderr?.on("data", (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-4_000);
    });
    const exited = new Promise<false>((resolve) => started.once("exit", () => resolve(false)));
    const deadline = Date.now() + 5_000;
    let up = false;
    while (!up && Date.now() < deadline) {
      up = await Promise.race([accepts(port), exited]);
      if (started.exitCode !== null) break;
      if (!up) await new Promise((r) => setTimeout(r, 50));
    }
    if (up) child = started;
    else started.kill("SIGKILL");
  }
  if (child === undefined) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`mosquitto did not start: ${log}`);
  }
  const running = child;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    pid: running.pid as number,
    async stop() {
      if (running.exitCode === null) {
        const exited = new Promise((resolve) => running.once("exit", resolve));
        running.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
