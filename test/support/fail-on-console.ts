import { afterEach, vi } from "vitest";

// Tests are quiet: code logs through an injected pino logger, so a stray console call is a defect.
const methods = ["log", "info", "warn", "error", "debug"] as const;
const calls: string[] = [];
for (const method of methods) {
  vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
    calls.push(`console.${method}: ${args.map(String).join(" ")}`);
  });
}

afterEach(() => {
  if (calls.length > 0) {
    const seen = calls.splice(0);
    throw new Error(`unexpected console output:\n${seen.join("\n")}`);
  }
});
