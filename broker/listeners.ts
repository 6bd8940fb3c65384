import { once } from "node:events";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer } from "node:tls";
import { createWebSocketStream, WebSocketServer } from "ws";
import type { Logger } from "../observe/logger.js";

// Where devices reach the broker: plain MQTT over TCP, MQTT over TLS, and MQTT over WebSocket (secure when
// TLS is configured). Every listener hands its connections to one callback, so the limits and guards apply
// to all alike.

/** The server's certificate chain and private key (PEM), and the MQTT over TLS port (0: a free one). */
export type ListenTls = { cert: string | Buffer; key: string | Buffer; port: number };

export type ListenOptions = {
  host: string;
  /** The plain MQTT port (0: a free one); undefined: no plain listener. */
  port: number | undefined;
  /** MQTT over TLS; it also makes the WebSocket listener secure (wss). */
  tls?: ListenTls | undefined;
  /** MQTT over WebSocket (0: a free one); undefined: none. */
  wsPort?: number | undefined;
  /** How long a TLS handshake or a WebSocket upgrade request may take before its socket is closed. */
  handshakeTimeoutMs?: number | undefined;
  /** A larger WebSocket frame closes its connection unread (ws would otherwise buffer up to 100 MiB). */
  maxFrameBytes?: number | undefined;
  /** Failed handshakes are logged here at debug. */
  logger?: Logger | undefined;
};

export type Transport = "mqtt" | "mqtts" | "ws" | "wss";

/** The ports actually bound, by listener: plain MQTT, MQTT over TLS, MQTT over WebSocket (ws or wss). */
export type ListenerPorts = { mqtt?: number; mqtts?: number; ws?: number };

export type Listeners = { ports: ListenerPorts; close(): Promise<void> };

/** Who is at the other end; remoteAddress is what per-address limits count. */
export type Peer = { remoteAddress: string | undefined; transport: Transport };

/** A connection's byte stream (a TCP or TLS socket, or a WebSocket's stream) and its peer. */
export type OnConnection = (stream: Duplex, peer: Peer) => void;

/**
 * Decides on a raw TCP socket as it arrives, before a TLS handshake or a WebSocket upgrade costs anything:
 * false destroys it. What it counts is the caller's to release when the socket closes.
 */
export type Admit = (socket: Socket, peer: Peer) => boolean;

const DEFAULTS = { handshakeTimeoutMs: 10_000, maxFrameBytes: 1024 * 1024 };

// noDelay: with Nagle's algorithm a PUBACK waited for the device's delayed ACK, some 40 ms per QoS 1 message
// (HTTP servers, and so the WebSocket listener, set it already).

async function listen(server: Server, port: number, host: string): Promise<number> {
  server.listen(port, host);
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** Anything but a WebSocket upgrade is answered 426, so a stray HTTP request does not hang. */
function upgradeRequired(_request: IncomingMessage, response: ServerResponse) {
  response.writeHead(426, { connection: "close", upgrade: "websocket" }).end();
}

/** Starts every configured listener; if one cannot listen, those already started are closed again. */
export async function startListeners(
  options: ListenOptions,
  onConnection: OnConnection,
  admit: Admit = () => true,
): Promise<Listeners> {
  const { host, tls, logger } = options;
  const handshakeTimeout = options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs;
  const servers: Server[] = [];
  const webSockets: WebSocketServer[] = [];
  const ports: ListenerPorts = {};
  const onHandshakeFailed = (transport: Transport) => (error: Error, socket: Socket) =>
    logger?.debug({ remote: socket.remoteAddress, transport, err: error.message }, "TLS handshake failed");
  // Runs before the server's own connection handling (the TLS handshake, the HTTP parser).
  const admitting = (server: Server, transport: Transport) =>
    server.prependListener("connection", (socket: Socket) => {
      if (!admit(socket, { remoteAddress: socket.remoteAddress, transport })) socket.destroy();
    });
  const closeAll = async () => {
    const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    // An upgraded socket is no longer the HTTP server's to close; without this close() would wait on it.
    for (const wss of webSockets) for (const client of wss.clients) client.terminate();
    await Promise.all(closed);
  };
  try {
    if (options.port !== undefined) {
      const server = createServer({ noDelay: true }, (socket) => {
        if (!socket.destroyed)
          onConnection(socket, { remoteAddress: socket.remoteAddress, transport: "mqtt" });
      });
      admitting(server, "mqtt");
      servers.push(server);
      ports.mqtt = await listen(server, options.port, host);
    }
    if (tls !== undefined) {
      const server = createTlsServer(
        { cert: tls.cert, key: tls.key, handshakeTimeout, noDelay: true },
        (socket) => onConnection(socket, { remoteAddress: socket.remoteAddress, transport: "mqtts" }),
      );
      server.on("tlsClientError", onHandshakeFailed("mqtts"));
      admitting(server, "mqtts");
      servers.push(server);
      ports.mqtts = await listen(server, tls.port, host);
    }
    if (options.wsPort !== undefined) {
      const transport: Transport = tls ? "wss" : "ws";
      const server = tls
        ? createHttpsServer({ cert: tls.cert, key: tls.key, handshakeTimeout }, upgradeRequired)
        : createHttpServer(upgradeRequired);
      server.headersTimeout = handshakeTimeout;
      server.requestTimeout = handshakeTimeout;
      if (tls) server.on("tlsClientError", onHandshakeFailed(transport));
      admitting(server, transport);
      servers.push(server);
      const wss = new WebSocketServer({
        server,
        maxPayload: options.maxFrameBytes ?? DEFAULTS.maxFrameBytes,
        perMessageDeflate: false,
        // [MQTT-6.0.0-4] the subprotocol chosen is "mqtt"; MQTT 3.1 clients offer only "mqttv3.1".
        handleProtocols: (offered) =>
          offered.has("mqtt") ? "mqtt" : (offered.values().next().value ?? false),
      });
      webSockets.push(wss);
      // The HTTP server's own errors reach listen(); ws repeats them here.
      wss.on("error", () => {});
      wss.on("connection", (socket, request) => {
        onConnection(createWebSocketStream(socket), {
          remoteAddress: request.socket.remoteAddress,
          transport,
        });
      });
      ports.ws = await listen(server, options.wsPort, host);
    }
  } catch (error) {
    await closeAll();
    throw error;
  }
  return { ports, close: closeAll };
}
