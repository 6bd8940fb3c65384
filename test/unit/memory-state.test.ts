import type { Readable } from "node:stream";
import persistence from "aedes-persistence";
import { describe, expect, it } from "vitest";
import { memoryPersistence, RetainedTree, topicMatches } from "../../broker/memory-state.js";
import { createRandom } from "../../device-sim/random.js";

// The broker's retained messages are kept by topic level (broker/memory-state.ts). Whatever a filter asks,
// the answer must be the one aedes-persistence's own memory persistence (a Map tested with qlobber) gives.

type RetainedApi = {
  storeRetained(packet: object): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): Readable;
};

const unindexed = () => (persistence as unknown as () => RetainedApi)();
const indexed = () => memoryPersistence() as RetainedApi;

const retained = (topic: string, payload = `on ${topic}`) => ({
  cmd: "publish",
  topic,
  payload: Buffer.from(payload),
  qos: 1,
  retain: true,
});

async function topicsOf(store: RetainedApi, patterns: string[]): Promise<string[]> {
  const topics: string[] = [];
  for await (const packet of store.createRetainedStreamCombi(patterns))
    topics.push((packet as { topic: string }).topic);
  return topics.sort();
}

/** Topics like a fleet's, with the odd shapes MQTT allows: empty levels, `$` topics, a leading `/`. */
function randomTopic(next: () => number): string {
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)] as T;
  const device = `dev-${Math.floor(next() * 12)}`;
  const shape = next();
  if (shape < 0.6) return `fq/v1/${device}/${pick(["hello", "status", "cmd/c1", "cmd/c2", "errors"])}`;
  if (shape < 0.7) return pick(["$SYS/broker/uptime", "$SYS/x", "$share/g/t"]);
  const depth = 1 + Math.floor(next() * 4);
  return Array.from({ length: depth }, () => pick(["a", "b", "", "fq", device])).join("/");
}

/** Filters made from a topic (levels turned into `+`, cut short with `#`), and the usual broad ones. */
function randomFilter(next: () => number, topic: string): string {
  const shape = next();
  if (shape < 0.1)
    return ["#", "+", "+/+", "/#", "fq/v1/+/status", "+/v1/#", "$SYS/#"][Math.floor(next() * 7)] as string;
  const levels = topic.split("/").map((level) => (next() < 0.3 ? "+" : level));
  if (shape < 0.45) {
    const cut = Math.floor(next() * (levels.length + 1));
    return [...levels.slice(0, cut), "#"].join("/");
  }
  // `#` before the last level: no MQTT filter, but the matcher takes it.
  if (shape < 0.5) return [...levels.slice(0, 1), "#", ...levels.slice(1)].join("/");
  return levels.join("/");
}

describe("memory persistence with retained messages by topic level", () => {
  it("answers every filter as the unindexed persistence does, on random topics, filters and clears", async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const next = createRandom(seed).next;
      const [plain, tree] = [unindexed(), indexed()];
      const topics = Array.from({ length: 60 }, () => randomTopic(next));
      for (const topic of topics) {
        // Some topics are cleared again (an empty payload) and some overwritten.
        const packet = next() < 0.15 ? retained(topic, "") : retained(topic);
        await plain.storeRetained(packet);
        await tree.storeRetained(packet);
      }
      for (let i = 0; i < 80; i++) {
        const filters = [randomFilter(next, topics[Math.floor(next() * topics.length)] as string)];
        if (next() < 0.2) filters.push(randomFilter(next, topics[0] as string));
        expect(await topicsOf(tree, filters), `seed ${seed}, filters ${filters.join(" , ")}`).toEqual(
          await topicsOf(plain, filters),
        );
      }
    }
  });

  it("finds only a device's own retained messages for its command filter, and all of them for #", async () => {
    const tree = indexed();
    for (let i = 0; i < 100; i++) {
      await tree.storeRetained(retained(`fq/v1/dev-${i}/hello`));
      await tree.storeRetained(retained(`fq/v1/dev-${i}/status`));
    }
    await tree.storeRetained(retained("fq/v1/dev-7/cmd/c1"));
    expect(await topicsOf(tree, ["fq/v1/dev-7/cmd/+"])).toEqual(["fq/v1/dev-7/cmd/c1"]);
    expect(await topicsOf(tree, ["fq/v1/dev-8/cmd/+"])).toEqual([]);
    expect(await topicsOf(tree, ["#"])).toHaveLength(201);
    expect(await topicsOf(tree, ["fq/v1/+/status"])).toHaveLength(100);
    expect(await topicsOf(tree, ["fq/v1/dev-7/#"])).toEqual([
      "fq/v1/dev-7/cmd/c1",
      "fq/v1/dev-7/hello",
      "fq/v1/dev-7/status",
    ]);
  });

  it("keeps the newest message of a topic and forgets cleared ones", () => {
    const tree = new RetainedTree();
    tree.set({ topic: "fq/v1/a/hello", payload: "1" });
    tree.set({ topic: "fq/v1/a/hello", payload: "2" });
    tree.set({ topic: "fq/v1/a/status", payload: "on" });
    expect(tree.size).toBe(2);
    expect([...tree.match("fq/v1/a/hello")].map((p) => p.payload)).toEqual(["2"]);
    tree.delete("fq/v1/a/hello");
    tree.delete("fq/v1/a/hello");
    tree.delete("fq/v1/a/none");
    expect(tree.size).toBe(1);
    tree.delete("fq/v1/a/status");
    expect(tree.size).toBe(0);
    expect([...tree.match("#")]).toEqual([]);
  });

  it("matches + as one non-empty level and # as zero or more levels, as qlobber does", () => {
    const matches = (filter: string, topic: string) => topicMatches(filter.split("/"), topic);
    expect(matches("a/#", "a")).toBe(true);
    expect(matches("a/#", "a/")).toBe(true);
    expect(matches("a/+", "a/")).toBe(false);
    expect(matches("a/+/b", "a//b")).toBe(false);
    expect(matches("#", "$SYS/x")).toBe(true);
    expect(matches("a/#/b", "a/b")).toBe(true);
    expect(matches("a/#/b", "a/x/y/b")).toBe(true);
    expect(matches("a/#/b", "a/x/y/c")).toBe(false);
    expect(matches("+/+", "a/b/c")).toBe(false);
  });
});
