import { Duplex, Transform, type TransformCallback } from "node:stream";

// aedes buffers a whole packet before anyone sees it, up to MQTT's 256 MB. This guard reads only the fixed
// headers [MQTT-2.2] as the bytes stream by, and ends a connection whose packet announces more than the cap.
// It can also hold a connection's reads for a while: TCP then holds the sender back, at no cost to the broker.

export class PacketTooLarge extends Error {
  constructor(
    readonly announced: number,
    readonly limit: number,
  ) {
    super(`packet of ${announced} bytes is over the limit of ${limit}`);
  }
}

/** Reads the fixed headers [MQTT-2.2] of a byte stream as it passes, and finds a packet announcing too much. */
export class PacketSizes {
  /** Bytes of the current packet's body still to pass; -1 while reading a fixed header. */
  private remaining = -1;
  private headerBytes = 0;
  private length = 0;
  private multiplier = 1;

  constructor(private readonly maxPacketBytes: number) {}

  /** The next bytes of the stream: the first packet in them over the limit, or undefined. */
  scan(chunk: Buffer): PacketTooLarge | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) this.remaining = -1;
        continue;
      }
      const byte = chunk[i++] as number;
      if (this.headerBytes === 0) {
        this.headerBytes = 1;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.headerBytes += 1;
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      if (byte & 0x80 && this.headerBytes < 5) continue;
      this.headerBytes = 0;
      if (this.length > this.maxPacketBytes) return new PacketTooLarge(this.length, this.maxPacketBytes);
      this.remaining = this.length === 0 ? -1 : this.length;
    }
    return undefined;
  }
}

export class PacketSizeGuard extends Transform {
  private readonly sizes: PacketSizes;
  private heldUntil = 0;
  private holdTimer: NodeJS.Timeout | undefined;

  constructor(
    maxPacketBytes: number,
    private readonly now: () => number = Date.now,
  ) {
    super();
    this.sizes = new PacketSizes(maxPacketBytes);
  }

  /** Passes nothing more before `until` (epoch ms); what arrives meanwhile waits, then the sender. */
  holdUntil(until: number): void {
    this.heldUntil = Math.max(this.heldUntil, until);
  }

  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback): void {
    const wait = this.heldUntil - this.now();
    if (wait > 0) {
      this.holdTimer = setTimeout(() => this._transform(chunk, encoding, callback), wait);
      return;
    }
    this.holdTimer = undefined;
    const tooLarge = this.sizes.scan(chunk);
    if (tooLarge !== undefined) callback(tooLarge);
    else callback(null, chunk);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.holdTimer);
    callback(error);
  }
}

/** A connection's stream as aedes should see it, and the hold on its reads. */
export type GuardedConnection = { stream: Duplex; holdReads(until: number): void };

/**
 * The socket as aedes should see it: what it reads has passed the size check and any hold, what it writes
 * goes straight to the socket. One stream over the socket's own events, where a PacketSizeGuard piped into
 * Duplex.from took three streams and their listeners: some 3 KB of every idle connection's ~19 KB of heap
 * (bench:connect). Writes corked together (mqtt-packet writes a packet in pieces under cork) reach the socket
 * as one write, not one system call per piece.
 */
class GuardedSocket extends Duplex {
  readonly #socket: Duplex;
  readonly #sizes: PacketSizes;
  #heldUntil = 0;
  #holdTimer: NodeJS.Timeout | undefined;
  #afterHold: Buffer | undefined;
  #onDrain: (() => void) | undefined;

  constructor(socket: Duplex, maxPacketBytes: number, onTooLarge: (error: PacketTooLarge) => void) {
    super();
    this.#socket = socket;
    this.#sizes = new PacketSizes(maxPacketBytes);
    socket.on("data", (chunk: Buffer) => {
      const tooLarge = this.#sizes.scan(chunk);
      if (tooLarge !== undefined) {
        onTooLarge(tooLarge);
        socket.destroy();
        return;
      }
      const wait = this.#heldUntil - Date.now();
      if (wait > 0) {
        // Nothing more is read until the hold ends: TCP holds the sender back meanwhile.
        socket.pause();
        this.#afterHold = this.#afterHold === undefined ? chunk : Buffer.concat([this.#afterHold, chunk]);
        this.#holdTimer ??= setTimeout(() => this.#release(), wait);
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.on("drain", () => {
      const drained = this.#onDrain;
      this.#onDrain = undefined;
      drained?.();
    });
    socket.on("end", () => this.push(null));
    socket.on("error", (error) => this.destroy(error));
    socket.on("close", () => this.destroy());
  }

  holdUntil(until: number): void {
    this.#heldUntil = Math.max(this.#heldUntil, until);
  }

  #release() {
    this.#holdTimer = undefined;
    const wait = this.#heldUntil - Date.now();
    if (wait > 0) {
      this.#holdTimer = setTimeout(() => this.#release(), wait);
      return;
    }
    const chunk = this.#afterHold;
    this.#afterHold = undefined;
    if (chunk === undefined || this.push(chunk)) this.#socket.resume();
  }

  override _read(): void {
    if (this.#holdTimer === undefined) this.#socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#socket.write(chunk, encoding)) callback();
    else this.#onDrain = callback;
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (error?: Error | null) => void,
  ): void {
    const socket = this.#socket;
    socket.cork();
    let flowing = true;
    for (const { chunk, encoding } of chunks) flowing = socket.write(chunk, encoding);
    socket.uncork();
    if (flowing) callback();
    else this.#onDrain = callback;
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#socket.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#holdTimer);
    this.#afterHold = undefined;
    this.#socket.destroy();
    callback(error);
  }
}

/** The socket as aedes should see it: reads pass through the size check and the hold, writes go straight out. */
export function guardSocket(
  socket: Duplex,
  maxPacketBytes: number,
  onTooLarge: (error: PacketTooLarge) => void,
): GuardedConnection {
  const connection = new GuardedSocket(socket, maxPacketBytes, onTooLarge);
  return { stream: connection, holdReads: (until) => connection.holdUntil(until) };
}

/** aedes's bound on topic levels; a deeper SUBSCRIBE filter is answered 0x80 instead of closing the connection. */
export const MAX_TOPIC_LEVELS = 100;

export function topicLevels(topic: string): number {
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 0x2f) levels += 1;
  return levels;
}

/**
 * Whether a string from the wire breaks MQTT's rules for UTF-8 strings: U+0000 [MQTT-1.5.3-2], or ill-formed
 * UTF-8 [MQTT-1.5.3-1], which mqtt-packet's decoding has turned into U+FFFD. fieldq's topics are ASCII, so a
 * U+FFFD sent as such is outside the topic grammar anyway.
 */
export function malformedString(text: string): boolean {
  return text.includes("\u0000") || text.includes("\uFFFD");
}

export type ConnectFields = {
  clientId: string;
  username?: string | undefined;
  will?: { topic: string; qos?: number | undefined } | undefined;
};

/** A protocol violation in a CONNECT: the connection is closed without a CONNACK [MQTT-4.8.0-1]. */
export function connectViolation(packet: ConnectFields): string | undefined {
  if (packet.will !== undefined && (packet.will.qos ?? 0) > 2) return "will QoS 3"; // [MQTT-3.1.2-14]
  if (packet.will !== undefined && malformedString(packet.will.topic)) return "malformed will topic";
  if (malformedString(packet.clientId)) return "malformed client id";
  if (packet.username !== undefined && malformedString(packet.username)) return "malformed username";
  return undefined;
}

/** Device input as a log line may quote it: a few dozen characters, and how many were cut. */
export function forLog(text: string | undefined, max = 64): string | undefined {
  if (text === undefined || text.length <= max) return text;
  return `${text.slice(0, max)}…(${text.length - max} more)`;
}
