import type { Random } from "../device-sim/random.js";

// Generated device payloads for npm run fuzz: random bytes, mutations of every documented message
// (docs/protocol.md), numbers at the edges, deep nesting, metacharacters, unicode, invalid UTF-8, huge keys,
// __proto__. Pure: a case is a function of its random source and its marker seqs.

export type Channel = "hello" | "telemetry" | "fault" | "event" | "status" | "cmd-result" | "bogus";

export type FuzzCase = {
  category: string;
  channel: Channel;
  payload: Buffer;
  /** Seqs written into the payload that identify it in storage; none when a mutation took them out. */
  markers: number[];
  /** Other seqs in its bytes (a flipped digit), which may be another case's marker. */
  claims: number[];
  /** The contract refuses it whatever the decoder says (issue 9: invalid UTF-8, `__proto__`). */
  mustRefuse: boolean;
  retain: boolean;
};

/** Metacharacters of line protocol, InfluxQL and JSON, and injection attempts, for every string. */
export const NASTY_STRINGS = [
  ",",
  "=",
  " ",
  '"',
  "\\",
  "\n",
  "'",
  "a,b=c d",
  'x" ,y=1',
  '\\"',
  "\r\n",
  "\t",
  "trailing\\",
  "' OR 1=1 --",
  "'; DROP DATABASE fieldq; --",
  '" OR ""="',
  "x' OR device =~ /.*/ --",
  "x\nfault,device=victim seq=1i 0",
  "telemetry,device=fz-good-0 snr_margin_db=1 1",
  "/.*/",
  "$SYS/broker",
  "fq/v1/+/#",
  "😀🛰️",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
  "\u202egnp.exe",
  "שלום עולם",
  "e\u0301\u0301\u0301\u0301",
  "\u200b\u200d",
  "\ufeffbom",
  "\u0000",
  "\u0007bell",
  "\u007f",
  "\ud800",
  "\udfff\ud800",
  "%s%n%x",
  "$" + "{jndi:ldap://127.0.0.1/x}",
  "<script>alert(1)</script>",
  "NaN",
  "Infinity",
  "",
  "null",
  "a".repeat(64),
  "a".repeat(65),
  "b".repeat(1025),
  '"'.repeat(1024),
] as const;

/** Number literals as they appear in JSON text (some of them not JSON at all). */
export const EDGE_NUMBERS = [
  "0",
  "-0",
  "0.0",
  "1e308",
  "-1e308",
  "1.7976931348623157e308",
  "1e309",
  "5e-324",
  "-5e-324",
  "2.2250738585072014e-308",
  "9007199254740991",
  "9007199254740992",
  "9007199254740993",
  "-9007199254740993",
  "1e99999",
  "-1e-99999",
  "123456789012345678901234567890",
  "8640000000000000000",
  "8640000000000000001",
  "-1",
  "2147483648",
  "4294967296",
  "18446744073709551616",
  "1.5",
  "1E+2",
  "0x10",
  "NaN",
  "Infinity",
  "-Infinity",
  "01",
  "1.",
  ".5",
  "+1",
  "-",
  "1e",
] as const;

const LABELS = ["modem", "FQ-M200", "2.4.1", "rev C", "eu-west", "Example Telecom"] as const;

const RAW = "\u00a7RAW";
/** A value that stands for a raw piece of JSON text, spliced in after stringify. */
type RawPieces = string[];
const raw = (pieces: RawPieces, text: string) => {
  pieces.push(text);
  return `${RAW}${pieces.length - 1}\u00a7`;
};

function deepNesting(r: Random): string {
  const depth = r.pick([64, 500, 5_000, 20_000] as const);
  // Objects stop at 10,000 levels: 60 KB, under the payload limit, so the parser meets them.
  const objects = Math.min(depth, 10_000);
  return r.chance(0.5)
    ? `${"[".repeat(depth)}${"]".repeat(depth)}`
    : `${'{"a":'.repeat(objects)}1${"}".repeat(objects)}`;
}

function nastyString(r: Random): string {
  return r.chance(0.7)
    ? r.pick(NASTY_STRINGS)
    : `${r.pick(NASTY_STRINGS)}${r.pick(LABELS)}${r.pick(NASTY_STRINGS)}`;
}

function randomValue(r: Random, pieces: RawPieces): unknown {
  switch (r.int(0, 11)) {
    case 0:
    case 1:
      return raw(pieces, r.pick(EDGE_NUMBERS));
    case 2:
    case 3:
      return nastyString(r);
    case 4:
      return r.chance(0.5);
    case 5:
      return null;
    case 6:
      return [];
    case 7:
      return {};
    case 8:
      return raw(pieces, deepNesting(r));
    case 9:
      return raw(pieces, '{"__proto__":{"polluted":true},"x":1}');
    case 10:
      return r.between(-1e6, 1e6);
    default:
      return r.int(-5, 5);
  }
}

/** A key a contract does not expect: metacharacters, huge, reserved or prototype names. */
function strangeKey(r: Random): string {
  return r.pick([
    "__proto__",
    "constructor",
    "prototype",
    "hasOwnProperty",
    "seq",
    "time",
    "device",
    "kind",
    "firmware",
    "k".repeat(r.pick([65, 1_000, 20_000] as const)),
    "snr margin",
    "snr,margin=1",
    'a"b',
    "a\nb",
    "ü",
    "_x",
    "1abc",
    "",
    nastyString(r),
  ] as const);
}

type Example = { channel: Channel; body: unknown; seqs: number };

/** Every documented message (docs/protocol.md), with its seqs taken from `markers`. */
function example(r: Random, ts: number, marker: (k: number) => number): Example {
  const m = (k: number) => marker(k);
  switch (r.int(0, 11)) {
    case 0:
      return {
        channel: "hello",
        seqs: 0,
        body: {
          kind: "modem",
          model: "FQ-M200",
          firmware: r.chance(0.3) ? `2.${r.int(0, 99)}.${r.int(0, 99)}` : "2.4.1",
          hardware: "rev C",
          serial: "M200-000001",
          region: "eu-west",
          isp: "Example Telecom",
        },
      };
    case 1:
    case 2:
      return {
        channel: "telemetry",
        seqs: 1,
        body: { ts, seq: m(0), metrics: { snr_margin_db: 7.5, sync_rate_kbps: 52000, wan_up: true } },
      };
    case 3:
      return {
        channel: "telemetry",
        seqs: 2,
        body: [
          { ts: ts - 60_000, seq: m(0), metrics: { snr_margin_db: 7.1 } },
          { ts, seq: m(1), metrics: { snr_margin_db: 6.8, wan_up: false } },
        ],
      };
    case 4:
      return {
        channel: "fault",
        seqs: 1,
        body: {
          ts,
          seq: m(0),
          code: "DSL_RESYNC",
          severity: "warning",
          message: "line retrained after CRC errors",
          component: "dsl",
          context: { crc_errors: 312, profile: "17a", vectoring: true },
        },
      };
    case 5:
      return {
        channel: "event",
        seqs: 1,
        body: { ts, seq: m(0), type: "reboot", data: { reason: "watchdog" } },
      };
    case 6:
      return {
        channel: "event",
        seqs: 1,
        body: {
          ts,
          seq: m(0),
          type: "firmware_update",
          data: { from: "2.4.1", to: "2.5.0", result: "failure" },
        },
      };
    case 7:
      return {
        channel: "event",
        seqs: 1,
        body: {
          ts,
          seq: m(0),
          type: "print_job",
          data: { result: "failed", job_id: "job-4711", duration_s: 42.5 },
        },
      };
    case 8:
      return {
        channel: "event",
        seqs: 1,
        body: { ts, seq: m(0), type: "feedback", data: { rating: 3, comment: "Wi-Fi drops every evening" } },
      };
    case 9:
      return {
        channel: "event",
        seqs: 1,
        body: { ts, seq: m(0), type: "factory_reset", data: { trigger: "button", uptime_s: 86400 } },
      };
    case 10:
      return { channel: "status", seqs: 0, body: { state: r.pick(["online", "offline"] as const) } };
    default:
      return { channel: "cmd-result", seqs: 1, body: { ts, seq: m(0), ok: false, message: "disk full" } };
  }
}

type Node = { parent: Record<string, unknown> | unknown[]; key: string | number };

/** Every place in a JSON value that holds a value, so a mutation can pick any of them. */
function slots(value: unknown, into: Node[] = []): Node[] {
  if (Array.isArray(value)) {
    value.forEach((item, key) => {
      into.push({ parent: value, key });
      slots(item, into);
    });
  } else if (typeof value === "object" && value !== null) {
    for (const key of Object.keys(value)) {
      into.push({ parent: value as Record<string, unknown>, key });
      slots((value as Record<string, unknown>)[key], into);
    }
  }
  return into;
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown) {
  // defineProperty: a plain assignment to "__proto__" would change the prototype, not add a key.
  Object.defineProperty(target, key, { value, enumerable: true, configurable: true, writable: true });
}

function mutate(r: Random, body: unknown, pieces: RawPieces): { body: unknown; category: string } {
  const all = slots(body);
  const objects = all
    .map((s) => (s.parent as Record<string, unknown>)[s.key as string])
    .filter((v): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v));
  if (typeof body === "object" && body !== null && !Array.isArray(body))
    objects.push(body as Record<string, unknown>);
  const slot = all.length > 0 ? r.pick(all as [Node, ...Node[]]) : undefined;
  const kind = r.int(0, 8);
  if (kind <= 2 && slot) {
    (slot.parent as Record<string | number, unknown>)[slot.key] = randomValue(r, pieces);
    return { body, category: "mutate:value" };
  }
  if (kind === 3 && slot && !Array.isArray(slot.parent)) {
    delete (slot.parent as Record<string, unknown>)[slot.key as string];
    return { body, category: "mutate:delete" };
  }
  if (kind === 4 && objects.length > 0) {
    setOwn(
      r.pick(objects as [Record<string, unknown>, ...Record<string, unknown>[]]),
      strangeKey(r),
      randomValue(r, pieces),
    );
    return { body, category: "mutate:add-key" };
  }
  if (kind === 5) {
    // Every string replaced: metacharacters and unicode in every string field.
    for (const s of all) {
      const parent = s.parent as Record<string | number, unknown>;
      if (typeof parent[s.key] === "string") parent[s.key] = nastyString(r);
    }
    return { body, category: "mutate:strings" };
  }
  if (kind === 6) {
    // A metric's type flipped: boolean, integer-looking, fractional, string.
    for (const s of all) {
      const parent = s.parent as Record<string | number, unknown>;
      const v = parent[s.key];
      if (typeof v === "number" || typeof v === "boolean") {
        parent[s.key] = r.pick<unknown>([true, false, 1, 0, 7, 7.25, "7.5", null]);
      }
    }
    return { body, category: "mutate:types" };
  }
  if (kind === 7) return { body: r.chance(0.5) ? [body] : { wrapped: body }, category: "mutate:wrap" };
  return { body: randomValue(r, pieces), category: "mutate:replace" };
}

const INVALID_UTF8 = [
  [0xff],
  [0xc0, 0x80],
  [0xed, 0xa0, 0x80],
  [0xe2, 0x82],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0x80],
] as const;

/** Invalid UTF-8 inside a string of a valid payload: the contract refuses it as invalid_json. */
function withInvalidUtf8(r: Random, text: string): Buffer | undefined {
  const quotes = [...text.matchAll(/"[^"\\]*"/g)];
  if (quotes.length === 0) return undefined;
  const q = r.pick(quotes as [RegExpExecArray, ...RegExpExecArray[]]);
  const at = Buffer.byteLength(text.slice(0, (q.index ?? 0) + 1));
  const bytes = Buffer.from(text);
  return Buffer.concat([
    bytes.subarray(0, at),
    Buffer.from(r.pick<readonly number[]>(INVALID_UTF8)),
    bytes.subarray(at),
  ]);
}

function textMutation(r: Random, bytes: Buffer): { payload: Buffer; category: string } {
  switch (r.int(0, 5)) {
    case 0:
      return { payload: bytes.subarray(0, r.int(0, bytes.length)), category: "bytes:truncate" };
    case 1: {
      const copy = Buffer.from(bytes);
      if (copy.length > 0) copy[r.int(0, copy.length - 1)] = r.int(0, 255);
      return { payload: copy, category: "bytes:flip" };
    }
    case 2:
      return { payload: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]), category: "bytes:bom" };
    case 3:
      return { payload: Buffer.concat([bytes, bytes]), category: "bytes:twice" };
    case 4:
      return {
        payload: Buffer.concat([Buffer.from(" \n\t"), bytes, Buffer.from("\r\n ")]),
        category: "bytes:whitespace",
      };
    default:
      return { payload: Buffer.concat([bytes, Buffer.from([0])]), category: "bytes:nul" };
  }
}

/** A valid fault whose free text is full of what line protocol must escape (issue 9: the writer wedge). */
function heavyFault(r: Random, ts: number, seq: number): unknown {
  const context: Record<string, unknown> = {};
  for (let i = 0; i < r.int(1, 32); i++)
    context[`k${i}`] = r.chance(0.7) ? '"\\,= \n'.repeat(36).slice(0, 256) : r.int(0, 9);
  return {
    ts,
    seq,
    code: "FUZZ_HEAVY",
    severity: "error",
    message: r
      .pick(['"', "\\", '"\\', ", =\n"] as const)
      .repeat(1024)
      .slice(0, 1024),
    context,
  };
}

function splice(text: string, pieces: RawPieces): string {
  return text.replace(/"\u00a7RAW(\d+)\u00a7"/g, (_m, i: string) => pieces[Number(i)] ?? "null");
}

const hasProtoKey = (text: string) => /"(__proto__|\\u005[fF]_proto__)"\s*:/.test(text);

/** One fuzz case; `marker(k)` is the k-th seq this case may carry. */
export function fuzzCase(r: Random, marker: (k: number) => number, maxPayloadBytes: number): FuzzCase {
  const ts = Date.now() - r.int(0, 3_600_000);
  const roll = r.next();
  if (roll < 0.05) {
    const length = r.chance(0.02) ? maxPayloadBytes + r.int(1, 4096) : r.int(0, 512);
    const payload = Buffer.alloc(length);
    for (let i = 0; i < length; i++) payload[i] = r.int(0, 255);
    const channel = r.pick(["telemetry", "fault", "event", "hello", "status"] as const);
    return {
      category: "random-bytes",
      channel,
      payload,
      markers: [],
      claims: [],
      mustRefuse: false,
      retain: false,
    };
  }
  if (roll < 0.07) {
    return {
      category: "deep-nesting",
      channel: r.pick(["telemetry", "fault", "event"] as const),
      payload: Buffer.from(deepNesting(r)),
      markers: [],
      claims: [],
      mustRefuse: false,
      retain: false,
    };
  }
  if (roll < 0.09) {
    return {
      category: "valid:heavy-fault",
      channel: "fault",
      payload: Buffer.from(JSON.stringify(heavyFault(r, ts, marker(0)))),
      markers: [marker(0)],
      claims: [],
      mustRefuse: false,
      retain: false,
    };
  }
  const ex = example(r, ts, marker);
  const markers = Array.from({ length: ex.seqs }, (_, k) => marker(k));
  const pieces: RawPieces = [];
  let category = "valid:example";
  let body = ex.body;
  if (roll >= 0.2) {
    const mutations = r.int(1, 3);
    const names: string[] = [];
    for (let i = 0; i < mutations; i++) {
      const result = mutate(r, body, pieces);
      body = result.body;
      names.push(result.category);
    }
    category = names[0] ?? "mutate";
  }
  const text = splice(JSON.stringify(body) ?? "null", pieces);
  let payload: Buffer = Buffer.from(text);
  let mustRefuse = hasProtoKey(text);
  const textRoll = r.next();
  if (roll >= 0.2 && textRoll < 0.1) {
    const invalid = withInvalidUtf8(r, text);
    if (invalid) {
      payload = invalid;
      category = "invalid-utf8";
      mustRefuse = true;
    }
  } else if (roll >= 0.2 && textRoll < 0.2) {
    const mutated = textMutation(r, payload);
    payload = mutated.payload;
    category = mutated.category;
  }
  const channel = r.chance(0.03) ? r.pick(["telemetry", "fault", "event", "bogus"] as const) : ex.channel;
  // Far over the limit, the broker cuts the connection before reading (broker/packet-guard.ts): not this fuzz's aim.
  if (payload.length > maxPayloadBytes + 4096) {
    payload = payload.subarray(0, maxPayloadBytes + 4096);
    category = `${category}+cut`;
  }
  // A seq still in the bytes after every mutation (a flipped digit makes another number) identifies the message.
  const bytes = payload.toString("latin1");
  const kept = markers.filter((seq) => new RegExp(`"seq":${seq}(?![0-9])`).test(bytes));
  // Any other seq in the bytes may name another case's marker: the fuzz leaves such seqs out of its checks.
  const claims = [...bytes.matchAll(/"seq":([0-9]{10})(?![0-9])/g)]
    .map((m) => Number(m[1]))
    .filter((seq) => !kept.includes(seq));
  return {
    category,
    channel,
    payload,
    markers: kept,
    claims,
    mustRefuse,
    retain: ex.channel === "hello" && r.chance(0.5),
  };
}
