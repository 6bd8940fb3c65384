import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { type AppDeps, createApp } from "./app.js";

export type ApiHandle = { port: number; url: string; close(): Promise<void> };

export type StartApiOptions = AppDeps & { host?: string; port: number };

/** Listens on host:port (port 0 picks a free one) and resolves once the server is listening. */
export function startApi(options: StartApiOptions): Promise<ApiHandle> {
  const { host = "127.0.0.1", port, ...deps } = options;
  const app = createApp(deps);
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port }, (info: AddressInfo) => {
      server.off("error", reject);
      const urlHost = info.family === "IPv6" ? `[${info.address}]` : info.address;
      resolve({
        port: info.port,
        url: `http://${urlHost}:${info.port}`,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            if ("closeAllConnections" in server) server.closeAllConnections();
          }),
      });
    });
    server.once("error", reject);
  });
}
