import { once } from "node:events";
import { type AddressInfo, createServer, type Server } from "node:net";
import type { Duplex } from "node:stream";

// Where devices reach the broker: plain MQTT over TCP; MQTT over TLS and over WebSocket are added here
// too. Every listener hands its connections to one callback, so the limits and guards apply to all alike.

export type ListenOptions = {
  host: string;
  /** The plain MQTT port (0: a free one); undefined: no plain listener. */
  port: number | undefined;
};

export type Transport = "mqtt";

/** The ports actually bound, by transport. */
export type ListenerPorts = { mqtt?: number };

export type Listeners = { ports: ListenerPorts; close(): Promise<void> };

/** Who is at the other end; remoteAddress is what per-address limits count. */
export type Peer = { remoteAddress: string | undefined; transport: Transport };

/** A connection's byte stream (a TCP or TLS socket, or a WebSocket's stream) and its peer. */
export type OnConnection = (stream: Duplex, peer: Peer) => void;

async function listen(server: Server, port: number, host: string): Promise<number> {
  server.listen(port, host);
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** Starts every configured listener; if one cannot listen, those already started are closed again. */
export async function startListeners(options: ListenOptions, onConnection: OnConnection): Promise<Listeners> {
  const servers: Server[] = [];
  const ports: ListenerPorts = {};
  const closeAll = () =>
    Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => {});
  try {
    if (options.port !== undefined) {
      const server = createServer((socket) =>
        onConnection(socket, { remoteAddress: socket.remoteAddress, transport: "mqtt" }),
      );
      servers.push(server);
      ports.mqtt = await listen(server, options.port, options.host);
    }
  } catch (error) {
    await closeAll();
    throw error;
  }
  return { ports, close: closeAll };
}
