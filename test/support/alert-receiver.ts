import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { verifySignature } from "../../alerts/webhook.js";

export type Received = {
  headers: IncomingHttpHeaders;
  raw: Buffer;
  body: unknown;
  /** The X-Fieldq-Signature checked against the raw body and the receiver's secret. */
  signed: boolean;
  /** What the receiver answered ("hang": nothing). */
  answered: number | "hang";
};

export type Answer = { status: number; headers?: Record<string, string> } | "hang";

/** A webhook receiver on port 0 that checks each request's signature and answers as told. */
export async function startAlertReceiver(secret: string) {
  const received: Received[] = [];
  const hanging = new Set<ServerResponse>();
  let answer: (n: number, headers: IncomingHttpHeaders) => Answer = () => ({ status: 200 });
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const reply = answer(received.length, req.headers);
      let body: unknown = null;
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {}
      received.push({
        headers: req.headers,
        raw,
        body,
        signed: verifySignature(secret, raw, req.headers["x-fieldq-signature"] as string | undefined),
        answered: reply === "hang" ? "hang" : reply.status,
      });
      if (reply === "hang") hanging.add(res);
      else res.writeHead(reply.status, reply.headers).end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    /** How to answer the n-th request (0 first), given its headers. */
    answer(fn: (n: number, headers: IncomingHttpHeaders) => Answer) {
      answer = fn;
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      server.close();
    },
  };
}

/** A port nothing listens on: one listened on and closed again. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

/** Polls until the check returns something other than undefined, or fails after timeoutMs. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
