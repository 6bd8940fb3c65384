/** Where a subcommand writes: its output, and its errors and progress. */
export type CommandIo = { out(line: string): void; err(line: string): void };
