import { Duplex, Transform, type TransformCallback } from "node:stream";

// aedes buffers a whole packet before anyone sees it, up to MQTT's 256 MB. This guard reads only the fixed
// headers [MQTT-2.2] as the bytes stream by, and ends a connection whose packet announces more than the cap.

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

  constructor(private readonly maxPacketBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
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
}

/** The socket as aedes should see it: reads pass through the guard, writes go straight out. */
export function guardSocket(
  socket: Duplex,
  maxPacketBytes: number,
  onTooLarge: (error: PacketTooLarge) => void,
): Duplex {
  const guard = new PacketSizeGuard(maxPacketBytes);
  socket.pipe(guard);
  const connection = Duplex.from({ readable: guard, writable: socket });
  guard.on("error", (error) => {
    if (error instanceof PacketTooLarge) onTooLarge(error);
    socket.destroy();
  });
  socket.on("error", (error) => connection.destroy(error));
  socket.on("close", () => connection.destroy());
  connection.on("close", () => socket.destroy());
  return connection;
}
