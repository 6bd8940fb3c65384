import type { Config } from "../config/env.js";
import type { CommandIo } from "./io.js";

// fieldq token add|list|revoke: the API's named tokens, kept as hashes in FIELDQ_TOKENS_FILE. STUB: being built (issue 13).

export async function tokenCommand(
  _args: string[],
  _config: () => Config | undefined,
  io: CommandIo,
): Promise<number> {
  io.err("fieldq token: not built yet");
  return 1;
}
