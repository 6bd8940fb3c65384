import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Hono } from "hono";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type ApiEnv, actorOf, authenticate, credentialsOf, requireRole } from "../../api/auth.js";
import { handleError } from "../../api/errors.js";
import {
  addToken,
  EMPTY_TOKENS_FILE,
  openTokenBook,
  parseTokensFile,
  readTokensFile,
  revokeToken,
  sha256,
  type TokenBook,
  type TokensFile,
  writeTokensFile,
} from "../../api/token-book.js";
import { ApiTokens, type TokenHolder } from "../../config/env.js";
import { silentLogger } from "../../observe/logger.js";

const CREATED = new Date("2026-03-01T09:00:00.000Z");
const ANA = "ana-token-0000000000000000000000000000000";
const BEN = "ben-token-0000000000000000000000000000000";

const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});
function tempFile(name = "tokens.json") {
  const folder = mkdtempSync(join(tmpdir(), "fieldq-token-book-"));
  folders.push(folder);
  return join(folder, "nested", name);
}

function capturedLogger() {
  const lines: Array<{ level: number; msg: string } & Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines };
}

const withToken = (file: TokensFile, name: string, role: TokenHolder["role"], token: string) => {
  const next = addToken(file, { name, role, token, created: CREATED });
  if (!next.ok) throw new Error(next.error);
  return next.value;
};

describe("FIELDQ_API_TOKENS", () => {
  const parse = (text: string) => {
    const result = ApiTokens.safeParse(text);
    return result.success
      ? { ok: true as const, tokens: [...result.data] }
      : { ok: false as const, message: result.error.issues[0]?.message };
  };

  it.each([
    ["operator:ana:ana-token-1", [["ana-token-1", { role: "operator", name: "ana" }]]],
    ["viewer:viewer-token-1", [["viewer-token-1", { role: "viewer", name: "viewer" }]]],
    [
      " admin:Ana Lima:tok-00001 , viewer:José.M_2-b:tok-00002",
      [
        ["tok-00001", { role: "admin", name: "Ana Lima" }],
        ["tok-00002", { role: "viewer", name: "José.M_2-b" }],
      ],
    ],
    // Entries of the old form are named after their role: two of them share it, as before names existed.
    [
      "operator:aaaaaaaa,operator:bbbbbbbb",
      [
        ["aaaaaaaa", { role: "operator", name: "operator" }],
        ["bbbbbbbb", { role: "operator", name: "operator" }],
      ],
    ],
    ["operator:ana:tok:with:colons", [["tok:with:colons", { role: "operator", name: "ana" }]]],
    ["", []],
  ])("reads %j", (text, expected) => {
    expect(parse(text)).toEqual({ ok: true, tokens: expected });
  });

  it.each([
    [
      "root:ana:ana-token-1",
      '"root:ana:…" must be role:name:token or role:token, the role one of viewer, operator, admin',
    ],
    [
      "root:ana-token-1",
      '"root:…" must be role:name:token or role:token, the role one of viewer, operator, admin',
    ],
    ["operator:ana:short", '"operator:ana:…": the token must be at least 8 characters'],
    ["operator:short", '"operator:…": the token must be at least 8 characters'],
    [
      "operator:an/a:ana-token-1",
      '"operator:an/a:…": a name is letters, digits, spaces, ".", "_" and "-", starting with a letter or digit, not ending with a space',
    ],
    [
      "operator:ana :ana-token-1",
      '"operator:ana :…": a name is letters, digits, spaces, ".", "_" and "-", starting with a letter or digit, not ending with a space',
    ],
    [
      `operator:${"a".repeat(65)}:ana-token-1`,
      `"operator:${"a".repeat(65)}:…": a name is at most 64 characters`,
    ],
    [
      "operator:System:ana-token-1",
      '"operator:System:…": a name may not be system, unknown, viewer, operator, admin (fieldq\'s own)',
    ],
    ["operator:ana:ana-token-1,viewer:ANA:ana-token-2", 'two tokens are named "ANA": a name is one person'],
    ["operator:ana:same-token,viewer:ben:same-token", '"viewer:ben:…": the same token is given twice'],
  ])("refuses %j with a clear message", (text, message) => {
    expect(parse(text)).toEqual({ ok: false, message });
  });

  it("never shows a token in its messages", () => {
    const result = parse("root:ana:secret-token-value");
    expect(result.ok).toBe(false);
    expect(JSON.stringify(result)).not.toContain("secret-token-value");
  });
});

describe("the tokens file", () => {
  it("keeps name, role, the token's SHA-256 and when it was made, never the token, in a 0600 file", () => {
    const path = tempFile();
    writeTokensFile(path, withToken(EMPTY_TOKENS_FILE, "ana", "operator", ANA));
    const read = readTokensFile(path);
    expect(read).toEqual({
      ok: true,
      value: {
        version: 1,
        tokens: [
          {
            name: "ana",
            role: "operator",
            sha256: sha256(ANA).toString("hex"),
            created: "2026-03-01T09:00:00.000Z",
          },
        ],
      },
    });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(read)).not.toContain(ANA);
  });

  it("reads a missing file as an empty one", () => {
    expect(readTokensFile(tempFile())).toEqual({ ok: true, value: EMPTY_TOKENS_FILE });
  });

  it("refuses a second token for a name, whatever its case, and a name FIELDQ_API_TOKENS uses", () => {
    const file = withToken(EMPTY_TOKENS_FILE, "ana", "operator", ANA);
    expect(addToken(file, { name: "Ana", role: "viewer", token: BEN, created: CREATED })).toEqual({
      ok: false,
      error: 'a token named "ana" exists already: a name is one person (revoke it first to replace it)',
    });
    expect(addToken(file, { name: "ben", role: "viewer", token: BEN, created: CREATED }, ["Ben"])).toEqual({
      ok: false,
      error: '"Ben" is the name of a token in FIELDQ_API_TOKENS already: a name is one person',
    });
    expect(addToken(file, { name: "ben:x", role: "viewer", token: BEN, created: CREATED })).toMatchObject({
      ok: false,
      error: expect.stringContaining('--name "ben:x": a name is letters, digits'),
    });
  });

  it("revokes by name without case, and says which names there are when none matches", () => {
    const file = withToken(withToken(EMPTY_TOKENS_FILE, "ana", "operator", ANA), "ben", "viewer", BEN);
    const revoked = revokeToken(file, "ANA");
    expect(revoked.ok && revoked.value.tokens.map((t) => t.name)).toEqual(["ben"]);
    expect(revokeToken(file, "carla")).toEqual({
      ok: false,
      error: 'no token named "carla" in the tokens file (there are: ana, ben)',
    });
    expect(revokeToken(EMPTY_TOKENS_FILE, "carla")).toEqual({
      ok: false,
      error: 'no token named "carla" in the tokens file (it has none)',
    });
  });

  it.each([
    ["ANA", "operator", 'tokens.json:5:15: tokens[1].name: "ANA" is already the name of tokens[0]'],
    [
      "ben",
      "root",
      'tokens.json:5:30: tokens[1].role: Invalid option: expected one of "viewer"|"operator"|"admin"',
    ],
  ])("points at the line and column of what is wrong (%s, %s)", (name, role, error) => {
    const text = `{
  "version": 1,
  "tokens": [
    { "name": "ana", "role": "operator", "sha256": "${"a".repeat(64)}", "created": "2026-03-01T09:00:00Z" },
    { "name": "${name}", "role": "${role}", "sha256": "${"b".repeat(64)}", "created": "2026-03-01T09:00:00Z" }
  ]
}`;
    const parsed = parseTokensFile(text, "tokens.json");
    expect(parsed.ok ? [] : parsed.error.map((e) => e.text)).toEqual([error]);
  });
});

describe("the token book", () => {
  function open(path: string, options: { now?: () => number; watch?: boolean } = {}) {
    const { logger, lines } = capturedLogger();
    const book = openTokenBook({
      environment: new Map([["boss-token-1", { role: "admin", name: "boss" }]]),
      file: path,
      logger,
      watch: options.watch ?? false,
      ...(options.now ? { now: options.now } : {}),
    });
    if (!book.ok) throw new Error(book.error.map((e) => e.text).join("; "));
    return { book: book.value, lines };
  }
  const names = (book: TokenBook) =>
    book.entries().map((entry) => `${entry.name}:${entry.role}:${entry.from}`);

  it("accepts the environment's tokens beside the file's", () => {
    const path = tempFile();
    writeTokensFile(path, withToken(EMPTY_TOKENS_FILE, "ana", "operator", ANA));
    const { book } = open(path);
    expect(names(book)).toEqual(["boss:admin:environment", "ana:operator:file"]);
  });

  it("re-reads the file when it changes, checking at most once per second on use", () => {
    const path = tempFile();
    let now = 0;
    const { book } = open(path, { now: () => now });
    expect(names(book)).toEqual(["boss:admin:environment"]);
    writeTokensFile(path, withToken(EMPTY_TOKENS_FILE, "ana", "operator", ANA));
    now = 999;
    expect(names(book)).toEqual(["boss:admin:environment"]);
    now = 1000;
    expect(names(book)).toEqual(["boss:admin:environment", "ana:operator:file"]);
    rmSync(path);
    now = 2000;
    expect(names(book), "a deleted file is an empty one").toEqual(["boss:admin:environment"]);
  });

  it("sees a change at once through fs.watch, without waiting for the next check", async () => {
    const path = tempFile();
    writeTokensFile(path, EMPTY_TOKENS_FILE);
    const { book } = open(path, { now: () => 0, watch: true });
    try {
      expect(names(book)).toEqual(["boss:admin:environment"]);
      writeTokensFile(path, withToken(EMPTY_TOKENS_FILE, "ana", "operator", ANA));
      // The clock stands still: only the watcher can make the book look again.
      await vi.waitFor(() => expect(names(book)).toContain("ana:operator:file"), { timeout: 3000 });
    } finally {
      book.close();
    }
  });

  it("keeps the last good file when it turns bad, and says why once", () => {
    const path = tempFile();
    let now = 0;
    writeTokensFile(path, withToken(EMPTY_TOKENS_FILE, "ana", "operator", ANA));
    const { book, lines } = open(path, { now: () => now });
    writeFileSync(path, '{ "version": 1, "tokens": [ { "name": "ana" } ');
    for (const at of [1000, 2000, 3000]) {
      now = at;
      expect(names(book)).toEqual(["boss:admin:environment", "ana:operator:file"]);
    }
    const errors = lines.filter((line) => line.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.msg).toMatch(
      /^the tokens file is not valid, the last good one stays in use: .*tokens\.json:1:/,
    );
    writeTokensFile(path, withToken(EMPTY_TOKENS_FILE, "ben", "viewer", BEN));
    now = 4000;
    expect(names(book)).toEqual(["boss:admin:environment", "ben:viewer:file"]);
  });

  it("refuses to open on a bad file, so nobody's token is refused without a reason in the log", () => {
    const path = tempFile("tokens.json");
    writeTokensFile(path, EMPTY_TOKENS_FILE);
    writeFileSync(path, '{ "version": 2, "tokens": [] }');
    const book = openTokenBook({ environment: new Map(), file: path, logger: silentLogger, watch: false });
    expect(book.ok).toBe(false);
    expect(book.ok ? [] : book.error.map((e) => e.text)).toEqual([
      expect.stringMatching(/tokens\.json:1:14: version: /),
    ]);
  });

  it("warns when the file and FIELDQ_API_TOKENS name one person", () => {
    const path = tempFile();
    writeTokensFile(path, withToken(EMPTY_TOKENS_FILE, "Boss", "viewer", BEN));
    const { lines } = open(path);
    expect(lines.filter((line) => line.level === 40).map((line) => line.names)).toEqual([["Boss"]]);
  });
});

describe("credentials from the book", () => {
  it("resolves a token to its holder's name and role in constant time, refusing a revoked one at once", () => {
    const path = tempFile();
    let now = 0;
    writeTokensFile(path, withToken(EMPTY_TOKENS_FILE, "ana", "operator", ANA));
    const book = openTokenBook({
      environment: new Map(),
      file: path,
      logger: silentLogger,
      watch: false,
      now: () => now,
    });
    if (!book.ok) throw new Error("the book did not open");
    const resolve = credentialsOf(book.value);
    expect(resolve(ANA)).toEqual({ role: "operator", name: "ana", digest: sha256(ANA).toString("hex") });
    expect(resolve(BEN)).toEqual({ role: undefined, problem: "invalid" });
    expect(resolve(undefined)).toEqual({ role: undefined, problem: "missing" });
    writeTokensFile(path, EMPTY_TOKENS_FILE);
    now = 1000;
    expect(resolve(ANA)).toEqual({ role: undefined, problem: "invalid" });
  });

  it("records the holder's name as the actor, and a role:token entry's role", async () => {
    const app = new Hono<ApiEnv>();
    app.onError(handleError(silentLogger));
    app.use(
      "*",
      authenticate(
        new Map<string, TokenHolder["role"] | TokenHolder>([
          [ANA, { role: "operator", name: "ana" }],
          [BEN, "viewer"],
        ]),
      ),
    );
    app.post("/note", requireRole("viewer"), (c) => c.json({ actor: actorOf(c) }));
    const as = async (token: string) =>
      (await app.request("/note", { method: "POST", headers: { authorization: `Bearer ${token}` } })).json();
    expect(await as(ANA)).toEqual({ actor: "ana" });
    expect(await as(BEN)).toEqual({ actor: "viewer" });
  });
});
