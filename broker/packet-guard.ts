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

export class PacketSizeGuard extends Transform {
  /** Bytes of the current packet's body still to pass; -1 while reading a fixed header. */
  private remaining = -1;
  private headerBytes = 0;
  private length = 0;
  private multiplier = 1;
  private heldUntil = 0;
  private holdTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly maxPacketBytes: number,
    private readonly now: () => number = Date.now,
  ) {
    super();
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
      // The remaining length is complete (or malformed past 4 bytes, which the MQTT parser refuses).
      this.headerBytes = 0;
      if (this.length > this.maxPacketBytes) {
        callback(new PacketTooLarge(this.length, this.maxPacketBytes));
        return;
      }
      this.remaining = this.length === 0 ? -1 : this.length;
    }
    callback(null, chunk);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.holdTimer);
    callback(error);
  }
}

/** A connection's stream as aedes should see it, and the hold on its reads. */
export type GuardedConnection = { stream: Duplex; holdReads(until: number): void };

/** The socket as aedes should see it: reads pass through the guard, writes go straight out. */
export function guardSocket(
  socket: Duplex,
  maxPacketBytes: number,
  onTooLarge: (error: PacketTooLarge) => void,
): GuardedConnection {
  const guard = new PacketSizeGuard(maxPacketBytes);
  socket.pipe(guard);
  const connection = Duplex.from({ readable: guard, writable: socket });
  guard.on("error", (error) => {
    if (error instanceof PacketTooLarge) onTooLarge(error);
    socket.destroy();
  });
  socket.on("error", (error) => connection.destroy(error));
  socket.on("close", () => connection.destroy());
  connection.on("close", () => {
    socket.destroy();
    guard.destroy();
  });
  return { stream: connection, holdReads: (until) => guard.holdUntil(until) };
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
