import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { SIGNATURE_HEADER, verifySignature } from "../alerts/webhook.js";
import type { Config } from "../config/env.js";
import type { CommandIo } from "./io.js";

// fieldq webhook-listen: a local receiver for alert webhooks, for trying alerts out and for the demo. It
// checks each POST's signature as a real receiver should (docs/alerts.md), prints the notice, and answers 204;
// a notice whose idempotency key it has seen is printed as a repeat.

const USAGE = `Usage: npm run fieldq -- webhook-listen [--port 9000] [--host 127.0.0.1] [--secret S]

Listens for fieldq's alert webhooks (point FIELDQ_WEBHOOK_URL at http://host:port/), checks each one's
X-Fieldq-Signature with the secret (default FIELDQ_WEBHOOK_SECRET), prints it, and answers 204; a body with a
wrong signature gets 401 and is not printed as an alert. Ctrl-C stops it.`;

/** The largest body it reads: a notice is a few kilobytes. */
const MAX_BODY_BYTES = 256 * 1024;

type Notice = {
  event?: string;
  severity?: string;
  subject?: string;
  title?: string;
  idempotencyKey?: string;
  levelName?: string;
  url?: string | null;
};

export async function webhookListenCommand(
  args: string[],
  config: () => Config | undefined,
  io: CommandIo,
  signal?: AbortSignal,
): Promise<number> {
  let values: { port?: string; host?: string; secret?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        secret: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    io.err(`fieldq webhook-listen: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const port = Number(values.port ?? "9000");
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    io.err("fieldq webhook-listen: --port takes a port number (0 picks a free one)");
    return 2;
  }
  const secret = values.secret ?? config()?.alerts.webhook?.secret;
  if (secret === undefined) {
    io.err("fieldq webhook-listen: give --secret, or set FIELDQ_WEBHOOK_SECRET (and FIELDQ_WEBHOOK_URL)");
    return 2;
  }
  const seen = new Set<string>();
  const server = createServer((request, response) => {
    if (request.method !== "POST") {
      response.writeHead(405, { allow: "POST" }).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) request.destroy();
      else chunks.push(chunk);
    });
    request.on("end", () => {
      const body = Buffer.concat(chunks);
      if (
        !verifySignature(secret, body, request.headers[SIGNATURE_HEADER.toLowerCase()] as string | undefined)
      ) {
        io.err(`refused a POST with a wrong or missing ${SIGNATURE_HEADER} (is the secret the same?)`);
        response.writeHead(401).end();
        return;
      }
      let notice: Notice;
      try {
        notice = JSON.parse(body.toString("utf8")) as Notice;
      } catch {
        response.writeHead(400).end();
        return;
      }
      const key = notice.idempotencyKey ?? "";
      const repeat = seen.has(key) ? "  (delivered before: same idempotency key)" : "";
      seen.add(key);
      io.out(
        `${new Date().toISOString()}  ${notice.event ?? "?"} ${notice.severity ?? "?"} [${notice.levelName ?? "?"}]  ${notice.subject ?? ""}: ${notice.title ?? ""}${repeat}`,
      );
      if (notice.url) io.out(`    ${notice.url}`);
      io.out(`    signature ok, idempotency key ${key}`);
      response.writeHead(204).end();
    });
  });
  const listening = await new Promise<AddressInfo | Error>((resolve) => {
    server.once("error", resolve);
    server.listen(port, values.host ?? "127.0.0.1", () => resolve(server.address() as AddressInfo));
  });
  if (listening instanceof Error) {
    io.err(`fieldq webhook-listen: cannot listen on port ${port}: ${listening.message}`);
    return 1;
  }
  io.err(`listening for alert webhooks on http://${listening.address}:${listening.port}/ (Ctrl-C stops)`);
  await new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    signal?.addEventListener("abort", () => resolve(), { once: true });
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return 0;
}
