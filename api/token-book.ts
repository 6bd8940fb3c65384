import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  type FSWatcher,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  watch,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { ROLES, type Role, sameName, type TokenHolder, TokenName } from "../config/env.js";
import { type FileError, notRead, parseYamlAs } from "../config/yaml-file.js";
import { err, ok, type Result } from "../contract/result.js";
import type { Logger } from "../observe/logger.js";

// The tokens the API accepts: FIELDQ_API_TOKENS' and those `fieldq token add` keeps in FIELDQ_TOKENS_FILE as
// SHA-256 hashes (never the tokens). The file is re-read when it changes, so a token added or revoked counts
// from the next request without a restart.

/** One token in the tokens file: who holds it, its role, its SHA-256 in hex, when it was made. */
export const StoredToken = z.strictObject({
  name: TokenName,
  role: z.enum(ROLES),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "a SHA-256 as 64 lowercase hex digits"),
  created: z.iso.datetime(),
});
export type StoredToken = z.infer<typeof StoredToken>;

/** The tokens file (JSON, written by `fieldq token`): one name is one person, so names are unique. */
export const TokensFile = z
  .strictObject({ version: z.literal(1), tokens: z.array(StoredToken) })
  .superRefine((file, ctx) => {
    file.tokens.forEach((token, index) => {
      const first = file.tokens.findIndex((other) => sameName(other.name, token.name));
      if (first < index)
        ctx.addIssue({
          code: "custom",
          path: ["tokens", index, "name"],
          message: `"${token.name}" is already the name of tokens[${first}]`,
        });
      const firstHash = file.tokens.findIndex((other) => other.sha256 === token.sha256);
      if (firstHash < index)
        ctx.addIssue({
          code: "custom",
          path: ["tokens", index, "sha256"],
          message: `the same token as tokens[${firstHash}]`,
        });
    });
  });
export type TokensFile = z.infer<typeof TokensFile>;

export const EMPTY_TOKENS_FILE: TokensFile = { version: 1, tokens: [] };

/** A token the API accepts: its holder, and the SHA-256 a presented token's is compared with. */
export type BookEntry = TokenHolder & { digest: Buffer; from: "environment" | "file" };

export type TokenBook = {
  /** Every accepted token, the file's as of its last change (checked at most once per recheckMs). */
  entries(): readonly BookEntry[];
  close(): void;
};

/** What the API and the dashboard take: a token book, or (tests, benches) a fixed map of token → role or holder. */
export type TokenSource = TokenBook | ReadonlyMap<string, Role | TokenHolder>;

export const sha256 = (token: string): Buffer => createHash("sha256").update(token).digest();

/** A new token: 32 random bytes, base64url (43 characters, no ":" or ","). */
export const newToken = (): string => randomBytes(32).toString("base64url");

const envEntries = (tokens: ReadonlyMap<string, Role | TokenHolder>): BookEntry[] =>
  [...tokens].map(([token, holder]) => ({
    ...(typeof holder === "string" ? { role: holder, name: holder } : holder),
    digest: sha256(token),
    from: "environment",
  }));

const fileEntries = (file: TokensFile): BookEntry[] =>
  file.tokens.map((token) => ({
    name: token.name,
    role: token.role,
    digest: Buffer.from(token.sha256, "hex"),
    from: "file",
  }));

/** A book of fixed tokens (a holder given as a role alone is named after it). */
export function fixedTokenBook(tokens: ReadonlyMap<string, Role | TokenHolder>): TokenBook {
  const entries = envEntries(tokens);
  return { entries: () => entries, close() {} };
}

export const asTokenBook = (source: TokenSource): TokenBook =>
  source instanceof Map ? fixedTokenBook(source) : (source as TokenBook);

/** The tokens file's text as a TokensFile; errors at their line and column. */
export function parseTokensFile(text: string, fileName: string): Result<TokensFile, FileError[]> {
  const parsed = parseYamlAs(TokensFile, text, fileName, "(tokens file)");
  return parsed.ok ? ok(parsed.value) : err(parsed.errors);
}

/** Reads the tokens file: a missing one is an empty one. */
export function readTokensFile(path: string): Result<TokensFile, FileError[]> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return ok(EMPTY_TOKENS_FILE);
    return err([notRead(path, error instanceof Error ? error.message : String(error))]);
  }
  return parseTokensFile(text, path);
}

/**
 * Writes the tokens file whole: a temporary file beside it (mode 0600, only its owner reads the hashes), then a
 * rename, so a reader sees the old file or the new one, never half of one. Makes the folder.
 */
export function writeTokensFile(path: string, file: TokensFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    writeFileSync(temp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: "wx" });
    chmodSync(temp, 0o600);
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

/**
 * The file with a new token for name, or why not: a name is one person, so a name already in the file or among
 * namesElsewhere (FIELDQ_API_TOKENS') is refused, whatever its case.
 */
export function addToken(
  file: TokensFile,
  token: { name: string; role: Role; token: string; created: Date },
  namesElsewhere: readonly string[] = [],
): Result<TokensFile, string> {
  const name = TokenName.safeParse(token.name);
  if (!name.success) return err(`--name "${token.name}": ${name.error.issues[0]?.message}`);
  const taken = file.tokens.find((other) => sameName(other.name, name.data));
  if (taken !== undefined) {
    return err(
      `a token named "${taken.name}" exists already: a name is one person (revoke it first to replace it)`,
    );
  }
  const elsewhere = namesElsewhere.find((other) => sameName(other, name.data));
  if (elsewhere !== undefined) {
    return err(`"${elsewhere}" is the name of a token in FIELDQ_API_TOKENS already: a name is one person`);
  }
  const stored: StoredToken = {
    name: name.data,
    role: token.role,
    sha256: sha256(token.token).toString("hex"),
    created: token.created.toISOString(),
  };
  return ok({ ...file, tokens: [...file.tokens, stored] });
}

/** The file without the token named name (names compare without case), or why not. */
export function revokeToken(file: TokensFile, name: string): Result<TokensFile, string> {
  const kept = file.tokens.filter((token) => !sameName(token.name, name));
  if (kept.length === file.tokens.length) {
    const names = file.tokens.map((token) => token.name);
    return err(
      `no token named "${name}" in the tokens file${names.length > 0 ? ` (there are: ${names.join(", ")})` : " (it has none)"}`,
    );
  }
  return ok({ ...file, tokens: kept });
}

export type TokenBookOptions = {
  /** FIELDQ_API_TOKENS. */
  environment: ReadonlyMap<string, TokenHolder>;
  /** FIELDQ_TOKENS_FILE. */
  file: string;
  logger: Logger;
  /** How often a use checks the file's modification at most (default 1 s); a change seen by fs.watch counts at once. */
  recheckMs?: number;
  /** Watch the file's folder to see a change at once (default true). */
  watch?: boolean;
  now?: () => number;
};

type Seen = { signature: string; entries: BookEntry[] };

/** What identifies one version of the file: a rename makes a new inode, an edit in place a new mtime or size. */
function signatureOf(path: string): string {
  try {
    const stat = statSync(path, { bigint: true });
    return `${stat.ino}:${stat.size}:${stat.mtimeNs}`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "ENOENT" || code === "ENOTDIR" ? "missing" : `unreadable:${code}`;
  }
}

/**
 * The environment's tokens and the file's, re-read when the file changes. A file that turns bad keeps the last
 * good one (and logs its errors once); a missing file is an empty one. At start a bad file is an error: nobody
 * should find their token refused without being told why.
 */
export function openTokenBook(options: TokenBookOptions): Result<TokenBook, FileError[]> {
  const { file, logger } = options;
  const now = options.now ?? Date.now;
  const recheckMs = options.recheckMs ?? 1000;
  const fromEnvironment = envEntries(options.environment);
  let combined: BookEntry[] = fromEnvironment;
  let seen: Seen | undefined;
  let checkedAt = Number.NEGATIVE_INFINITY;
  let changed = false;
  let watcher: FSWatcher | undefined;
  let closed = false;

  const startWatching = () => {
    if (options.watch === false || watcher !== undefined || closed) return;
    try {
      watcher = watch(dirname(file), { persistent: false }, (_event, name) => {
        if (name === null || name === basename(file)) changed = true;
      });
      watcher.on("error", () => {
        watcher?.close();
        watcher = undefined;
        changed = true;
      });
    } catch {
      // No folder yet: the periodic check reads the file once it exists, and watches from then on.
      watcher = undefined;
    }
  };

  /** The file's entries if it changed since it was last seen; errors when it is bad. */
  const load = (): Result<boolean, FileError[]> => {
    const signature = signatureOf(file);
    if (signature === seen?.signature) return ok(false);
    const read = signature === "missing" ? ok(EMPTY_TOKENS_FILE) : readTokensFile(file);
    if (!read.ok) {
      // Seen, so the same bad file is reported once; the entries stay the last good ones.
      seen = { signature, entries: seen?.entries ?? [] };
      return err(read.error);
    }
    seen = { signature, entries: fileEntries(read.value) };
    combined = [...fromEnvironment, ...seen.entries];
    const shared = seen.entries.filter((entry) =>
      fromEnvironment.some((other) => sameName(other.name, entry.name)),
    );
    if (shared.length > 0) {
      logger.warn(
        { file, names: shared.map((entry) => entry.name) },
        "the tokens file names someone FIELDQ_API_TOKENS names too: both tokens work, the audit cannot tell them apart",
      );
    }
    return ok(true);
  };

  const refresh = () => {
    checkedAt = now();
    changed = false;
    startWatching();
    const loaded = load();
    if (!loaded.ok) {
      logger.error(
        { file, errors: loaded.error.map((e) => e.text) },
        `the tokens file is not valid, the last good one stays in use: ${loaded.error.map((e) => e.text).join("; ")}`,
      );
    } else if (loaded.value) {
      logger.info({ file, tokens: seen?.entries.length ?? 0 }, "tokens file read");
    }
  };

  startWatching();
  const first = load();
  checkedAt = now();
  if (!first.ok) {
    watcher?.close();
    return err(first.error);
  }

  return ok({
    entries() {
      if (!closed && (changed || now() - checkedAt >= recheckMs)) refresh();
      return combined;
    },
    close() {
      closed = true;
      watcher?.close();
      watcher = undefined;
    },
  });
}
