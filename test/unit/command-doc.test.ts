import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CommandView } from "../../contract/api/commands.js";
import { Command, CommandResult } from "../../contract/messages.js";
import { parseDeviceTopic } from "../../contract/topics.js";

// docs/commands.md's examples stay true to the contract: each payload parses on its topic, the API's answer
// parses as a CommandView.

const DOC = readFileSync(new URL("../../docs/commands.md", import.meta.url), "utf8");
const blocks = [...DOC.matchAll(/```json( topic=(\S+))?\n([\s\S]*?)```/g)].map((m) => ({
  topic: m[2],
  body: JSON.parse(m[3] ?? "") as unknown,
}));

describe("docs/commands.md examples", () => {
  it("has a command, its result and an API answer", () => {
    expect(blocks.map((b) => (b.topic === undefined ? "api" : parseDeviceTopic(b.topic)?.channel))).toEqual([
      "cmd",
      "cmd-result",
      "api",
    ]);
  });

  it.each(blocks.map((b) => [b.topic ?? "the API's answer", b] as const))("%s parses", (_name, block) => {
    const channel = block.topic === undefined ? undefined : parseDeviceTopic(block.topic)?.channel;
    const schema = channel === "cmd" ? Command : channel === "cmd-result" ? CommandResult : CommandView;
    expect(schema.safeParse(block.body).error).toBeUndefined();
  });
});
