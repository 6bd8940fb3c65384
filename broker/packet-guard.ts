import type { Duplex } from "node:stream";

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

/**
 * Guards a connection's reads in place: every chunk the socket receives passes the size check before the socket
 * buffers it for aedes, and a hold keeps chunks from aedes until it ends. The guard takes over the socket's own
 * `push` (what net.Socket, tls.TLSSocket and ws's stream call with each chunk read), so aedes reads and writes the
 * socket itself: a wrapping stream cost about 1 KB of heap per idle connection and a stream hop per packet each
 * way (bench:connect). A chunk refused by `push` (returning false) makes the socket stop reading until aedes asks
 * for more; the held chunk, at most one read, is handed on when the hold ends.
 */
export class ReadGuard extends PacketSizes {
  #heldUntil = 0;
  #holdTimer: NodeJS.Timeout | undefined;
  #held: Buffer | undefined;
  #endHeld = false;

  constructor(
    private readonly stream: Duplex,
    maxPacketBytes: number,
    private readonly onTooLarge: (error: PacketTooLarge) => void,
    /** The stream's own push, which hands a chunk on to its reader. */
    private readonly handOn: Duplex["push"] = stream.push,
  ) {
    super(maxPacketBytes);
    (stream as GuardedStream)[GUARD] = this;
    stream.push = guardedPush;
  }

  /** Passes nothing more before `until` (epoch ms); what arrives meanwhile waits, and so does the sender. */
  holdUntil(until: number): void {
    this.#heldUntil = Math.max(this.#heldUntil, until);
  }

  /** A chunk the socket read (null: the peer ended): handed on, held, or the end of a connection too large. */
  receive(chunk: Buffer | null, encoding?: BufferEncoding): boolean {
    const stream = this.stream;
    if (chunk === null) {
      if (this.#held === undefined) return this.handOn.call(stream, null);
      this.#endHeld = true;
      return false;
    }
    const tooLarge = this.scan(chunk);
    if (tooLarge !== undefined) {
      this.onTooLarge(tooLarge);
      stream.destroy();
      return false;
    }
    const wait = this.#heldUntil - Date.now();
    if (this.#held === undefined && wait <= 0) return this.handOn.call(stream, chunk, encoding);
    this.#held = this.#held === undefined ? chunk : Buffer.concat([this.#held, chunk]);
    if (this.#holdTimer === undefined) this.#holdTimer = setTimeout(release, Math.max(0, wait), this).unref();
    return false;
  }

  release(): void {
    this.#holdTimer = undefined;
    const wait = this.#heldUntil - Date.now();
    if (wait > 0) {
      this.#holdTimer = setTimeout(release, wait, this).unref();
      return;
    }
    const chunk = this.#held;
    this.#held = undefined;
    if (this.stream.destroyed || chunk === undefined) return;
    this.handOn.call(this.stream, chunk);
    if (this.#endHeld) this.handOn.call(this.stream, null);
  }
}

const GUARD = Symbol("fieldq.readGuard");
type GuardedStream = Duplex & { [GUARD]: ReadGuard };

/** The `push` of every guarded stream: one function for all of them, not a closure per connection. */
function guardedPush(this: Duplex, chunk: unknown, encoding?: BufferEncoding): boolean {
  return (this as GuardedStream)[GUARD].receive(chunk as Buffer | null, encoding);
}

function release(guard: ReadGuard): void {
  guard.release();
}

/** Guards the socket's reads (size check, holds) in place; aedes is then given the socket itself. */
export function guardReads(
  socket: Duplex,
  maxPacketBytes: number,
  onTooLarge: (error: PacketTooLarge) => void,
): ReadGuard {
  return new ReadGuard(socket, maxPacketBytes, onTooLarge);
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
