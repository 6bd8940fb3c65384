import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { serve } from "@hono/node-server";
import { type AppDeps, type AppType, createApp } from "./app.js";

export type ApiHandle = { port: number; url: string; close(): Promise<void> };

export type StartApiOptions = AppDeps & {
  host?: string;
  port: number;
  /** Certificate chain and private key (PEM): with them the API serves HTTPS only. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  /** Adds routes beside the API's own (the dashboard, from stack/). */
  extend?: ((app: AppType) => void) | undefined;
};

/** Listens on host:port (port 0 picks a free one) and resolves once the server is listening. */
export function startApi(options: StartApiOptions): Promise<ApiHandle> {
  const { host = "127.0.0.1", port, tls, extend, ...deps } = options;
  const app = createApp(deps);
  extend?.(app);
  const https = tls
    ? { createServer: createHttpsServer, serverOptions: { cert: tls.cert, key: tls.key } }
    : undefined;
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port, ...https }, (info: AddressInfo) => {
      server.off("error", reject);
      const urlHost = info.family === "IPv6" ? `[${info.address}]` : info.address;
      resolve({
        port: info.port,
        url: `${tls ? "https" : "http"}://${urlHost}:${info.port}`,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            if ("closeAllConnections" in server) server.closeAllConnections();
          }),
      });
    });
    server.once("error", reject);
    server.on("tlsClientError", (error: Error, socket: TLSSocket) =>
      deps.logger.debug({ remote: socket.remoteAddress, err: error.message }, "TLS handshake failed"),
    );
  });
}
