import type { Config } from "../config/env.js";
import type { CommandIo } from "./io.js";

// fieldq report --from --to: the management review as printable HTML (and CSV per table). STUB: being built (issue 13).

export async function reportCommand(
  _args: string[],
  _config: () => Config | undefined,
  io: CommandIo,
): Promise<number> {
  io.err("fieldq report: not built yet");
  return 1;
}
