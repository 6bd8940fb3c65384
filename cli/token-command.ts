import { parseArgs } from "node:util";
import {
  addToken,
  newToken,
  readTokensFile,
  revokeToken,
  type TokensFile,
  writeTokensFile,
} from "../api/token-book.js";
import { type Config, ROLES, type Role, sameName } from "../config/env.js";
import type { Result } from "../contract/result.js";
import type { CommandIo } from "./io.js";

// fieldq token add|list|revoke: the API's named tokens, kept as SHA-256 hashes in FIELDQ_TOKENS_FILE. A running
// API re-reads the file when it changes, so a token counts (or stops counting) without a restart.

const USAGE = `Usage: npm run fieldq -- token <add|list|revoke> [options]

The API's named tokens, kept as SHA-256 hashes in FIELDQ_TOKENS_FILE (default .fieldq/tokens.json); a running
API re-reads the file when it changes. Tokens in FIELDQ_API_TOKENS work beside them.

  token add --role <${ROLES.join("|")}> --name <name>   print a new token once; only its hash is kept
  token list                                         who holds a token: name, role, created, hash prefix
  token revoke --name <name>                         the token stops working from the next request

Each has --help.`;

const ADD_USAGE = `Usage: npm run fieldq -- token add --role <${ROLES.join("|")}> --name <name>

Makes a token (32 random bytes, base64url) for one person, prints it once on standard output and keeps only its
SHA-256 in FIELDQ_TOKENS_FILE. The name is who the audit trail shows for what the token does: letters, digits,
spaces, ".", "_" and "-", at most 64 characters; one name is one person, so a name already in use (in the file
or in FIELDQ_API_TOKENS, whatever its case) is refused: revoke the old token first to replace it.`;

const LIST_USAGE = `Usage: npm run fieldq -- token list

Lists the tokens the API accepts: name, role, when it was made, the first 8 hex digits of its SHA-256, and
where it comes from (the tokens file or FIELDQ_API_TOKENS). Never a token.`;

const REVOKE_USAGE = `Usage: npm run fieldq -- token revoke --name <name>

Removes the token of that name from FIELDQ_TOKENS_FILE (names compare without case); a running API refuses it
from its next request. Tokens in FIELDQ_API_TOKENS are revoked by editing that variable and restarting.`;

type Options = { role?: string; name?: string; help?: boolean };

function parse(args: string[], allowed: readonly ("role" | "name")[], io: CommandIo, sub: string) {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        ...(allowed.includes("role") ? { role: { type: "string" } } : {}),
        ...(allowed.includes("name") ? { name: { type: "string" } } : {}),
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length > 0) {
      io.err(`fieldq token ${sub}: unexpected argument "${positionals[0]}" (see token ${sub} --help)`);
      return undefined;
    }
    return values as Options;
  } catch (error) {
    io.err(`fieldq token ${sub}: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

/** The tokens file as it is, or its errors printed: a file that is not valid is never overwritten. */
function current(file: string, io: CommandIo, sub: string): TokensFile | undefined {
  const read = readTokensFile(file);
  if (read.ok) return read.value;
  io.err(`fieldq token ${sub}: the tokens file is not valid; fix it by hand or move it away:`);
  for (const error of read.error) io.err(`  ${error.text}`);
  return undefined;
}

function save(file: string, next: Result<TokensFile, string>, io: CommandIo, sub: string): boolean {
  if (!next.ok) {
    io.err(`fieldq token ${sub}: ${next.error}`);
    return false;
  }
  try {
    writeTokensFile(file, next.value);
    return true;
  } catch (error) {
    io.err(
      `fieldq token ${sub}: could not write ${file}: ${error instanceof Error ? error.message : String(error)}`,
    );
    return false;
  }
}

function add(args: string[], config: () => Config | undefined, io: CommandIo): number {
  const values = parse(args, ["role", "name"], io, "add");
  if (values === undefined) return 2;
  if (values.help) {
    io.out(ADD_USAGE);
    return 0;
  }
  if (values.role === undefined || !(ROLES as readonly string[]).includes(values.role)) {
    io.err(
      values.role === undefined
        ? `fieldq token add: --role is required: one of ${ROLES.join(", ")}`
        : `fieldq token add: unknown role "${values.role}": one of ${ROLES.join(", ")}`,
    );
    return 2;
  }
  if (values.name === undefined) {
    io.err("fieldq token add: --name is required: who will hold the token (the audit trail shows it)");
    return 2;
  }
  const cfg = config();
  if (!cfg) return 2;
  const file = cfg.http.tokensFile;
  const tokens = current(file, io, "add");
  if (tokens === undefined) return 1;
  const token = newToken();
  const role = values.role as Role;
  const next = addToken(
    tokens,
    { name: values.name, role, token, created: new Date() },
    [...cfg.http.tokens.values()].map((holder) => holder.name),
  );
  if (!save(file, next, io, "add")) return 1;
  io.err(
    `Added a token for ${values.name} (${role}) to ${file}. It is shown this once; fieldq keeps only its SHA-256:`,
  );
  io.out(token);
  return 0;
}

function list(args: string[], config: () => Config | undefined, io: CommandIo): number {
  const values = parse(args, [], io, "list");
  if (values === undefined) return 2;
  if (values.help) {
    io.out(LIST_USAGE);
    return 0;
  }
  const cfg = config();
  if (!cfg) return 2;
  const tokens = current(cfg.http.tokensFile, io, "list");
  if (tokens === undefined) return 1;
  const rows = [
    ["NAME", "ROLE", "CREATED", "SHA-256", "FROM"],
    ...tokens.tokens.map((t) => [t.name, t.role, t.created, `${t.sha256.slice(0, 8)}…`, "file"]),
    ...[...cfg.http.tokens.values()].map((t) => [t.name, t.role, "-", "-", "FIELDQ_API_TOKENS"]),
  ];
  if (rows.length === 1) {
    io.err(`No tokens: ${cfg.http.tokensFile} has none and FIELDQ_API_TOKENS is empty.`);
    return 0;
  }
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? "").length))) ?? [];
  for (const row of rows) {
    io.out(
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join("  ")
        .trimEnd(),
    );
  }
  return 0;
}

function revoke(args: string[], config: () => Config | undefined, io: CommandIo): number {
  const values = parse(args, ["name"], io, "revoke");
  if (values === undefined) return 2;
  if (values.help) {
    io.out(REVOKE_USAGE);
    return 0;
  }
  if (values.name === undefined) {
    io.err("fieldq token revoke: --name is required (token list shows the names)");
    return 2;
  }
  const cfg = config();
  if (!cfg) return 2;
  const file = cfg.http.tokensFile;
  const tokens = current(file, io, "revoke");
  if (tokens === undefined) return 1;
  const name = values.name;
  const inEnvironment = [...cfg.http.tokens.values()].some((holder) => sameName(holder.name, name));
  if (inEnvironment && !tokens.tokens.some((token) => sameName(token.name, name))) {
    io.err(
      `fieldq token revoke: "${name}" is in FIELDQ_API_TOKENS, not in the tokens file: remove it there and restart the API`,
    );
    return 1;
  }
  if (!save(file, revokeToken(tokens, name), io, "revoke")) return 1;
  io.err(`Revoked the token of ${values.name}: the API refuses it from its next request.`);
  return 0;
}

export async function tokenCommand(
  args: string[],
  config: () => Config | undefined,
  io: CommandIo,
): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "add":
      return add(rest, config, io);
    case "list":
      return list(rest, config, io);
    case "revoke":
      return revoke(rest, config, io);
    case "--help":
    case "-h":
    case "help":
      io.out(USAGE);
      return 0;
    default:
      io.err(sub === undefined ? "fieldq token: say add, list or revoke" : `fieldq token: unknown "${sub}"`);
      io.err(USAGE);
      return 2;
  }
}
