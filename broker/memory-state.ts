import { createRequire } from "node:module";
import { Readable } from "node:stream";
import mqemitter from "mqemitter";
import type { BrokerState } from "./start-broker.js";

// One broker's state in its own memory: sessions, subscriptions and retained messages (aedes-persistence 11's
// memory persistence), and publishes routed within the process (mqemitter).
//
// Its retained messages are kept in a tree of topic levels instead of one Map. aedes asks for the retained
// messages matching every filter a client subscribes to; the Map answers by testing every retained topic, so
// with each device keeping a retained hello and status, a fleet of N devices connecting costs N² tests (bench:
// connect, docs/performance.md). The tree walks only the levels a filter names: a device's
// fq/v1/{id}/cmd/+ looks at that device's branch alone, and `#` or fq/v1/+/status still find every match.

const require = createRequire(import.meta.url);

/** A retained message as aedes stores it (aedes-packet); only the topic and payload matter here. */
type RetainedPacket = { topic: string; payload: Buffer | string };

/** aedes-persistence 11's in-memory persistence (asyncPersistence.js), the parts overridden here. */
type AsyncMemoryPersistence = {
  storeRetained(packet: RetainedPacket): Promise<void>;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
};
type AsyncMemoryPersistenceClass = new (options?: object) => AsyncMemoryPersistence;
/** The callback layer aedes talks to, wrapped around an async persistence (callBackPersistence.js). */
type CallBackPersistenceClass = new (factory: (options?: object) => unknown, options?: object) => unknown;

const MemoryPersistence = require("aedes-persistence/asyncPersistence.js") as AsyncMemoryPersistenceClass;
const { CallBackPersistence } = require("aedes-persistence/callBackPersistence.js") as {
  CallBackPersistence: CallBackPersistenceClass;
};

const SEPARATOR = "/";
const ONE = "+";
const SOME = "#";

/** A topic level: the message retained on the topic ending here, and the levels below it. */
type RetainedNode = { packet: RetainedPacket | undefined; children: Map<string, RetainedNode> | undefined };
const newNode = (): RetainedNode => ({ packet: undefined, children: undefined });

/**
 * Retained messages by topic level, answering a filter with the same messages aedes-persistence's matcher
 * (qlobber, `+` and `#` as aedes configures them) finds: `+` is exactly one non-empty level, `#` zero or more
 * levels, empty ones included, so `a/#` matches `a` and `a/`.
 */
export class RetainedTree {
  #root: RetainedNode = newNode();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  set(packet: RetainedPacket): void {
    let node = this.#root;
    for (const level of packet.topic.split(SEPARATOR)) {
      node.children ??= new Map();
      let child = node.children.get(level);
      if (child === undefined) {
        child = newNode();
        node.children.set(level, child);
      }
      node = child;
    }
    if (node.packet === undefined) this.#size += 1;
    node.packet = packet;
  }

  delete(topic: string): void {
    const path: Array<[RetainedNode, string]> = [];
    let node: RetainedNode | undefined = this.#root;
    for (const level of topic.split(SEPARATOR)) {
      const child: RetainedNode | undefined = node.children?.get(level);
      if (child === undefined) return;
      path.push([node, level]);
      node = child;
    }
    if (node.packet === undefined) return;
    node.packet = undefined;
    this.#size -= 1;
    // Levels left with no message and nothing below are dropped, so a fleet that comes and goes leaves no trail.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i] as [RetainedNode, string];
      const child = parent.children?.get(level);
      if (child === undefined || child.packet !== undefined || (child.children?.size ?? 0) > 0) break;
      parent.children?.delete(level);
    }
  }

  /** The retained messages whose topic the filter matches, each once. */
  *match(filter: string): Generator<RetainedPacket> {
    const levels = filter.split(SEPARATOR);
    const some = levels.indexOf(SOME);
    if (some !== -1 && some !== levels.length - 1) {
      // `#` before the last level is no MQTT filter (aedes refuses it), but the matcher allows it: test each.
      for (const packet of this.#all(this.#root)) if (topicMatches(levels, packet.topic)) yield packet;
      return;
    }
    yield* this.#walk(this.#root, levels, 0);
  }

  *#walk(node: RetainedNode, levels: readonly string[], at: number): Generator<RetainedPacket> {
    if (at === levels.length) {
      if (node.packet !== undefined) yield node.packet;
      return;
    }
    const level = levels[at] as string;
    if (level === SOME) {
      yield* this.#all(node);
    } else if (level === ONE) {
      for (const [name, child] of node.children ?? []) {
        if (name !== "") yield* this.#walk(child, levels, at + 1);
      }
    } else {
      const child = node.children?.get(level);
      if (child !== undefined) yield* this.#walk(child, levels, at + 1);
    }
  }

  /** The node's own message and every one below it. */
  *#all(node: RetainedNode): Generator<RetainedPacket> {
    if (node.packet !== undefined) yield node.packet;
    for (const child of node.children?.values() ?? []) yield* this.#all(child);
  }
}

/** Whether the filter's levels match the topic, as qlobber does with aedes's options (`#` anywhere). */
export function topicMatches(filter: readonly string[], topic: string): boolean {
  const levels = topic.split(SEPARATOR);
  const from = (f: number, t: number): boolean => {
    if (f === filter.length) return t === levels.length;
    const level = filter[f] as string;
    if (level === SOME) {
      for (let skip = t; skip <= levels.length; skip++) if (from(f + 1, skip)) return true;
      return false;
    }
    if (t === levels.length) return false;
    if (level === ONE) return levels[t] !== "" && from(f + 1, t + 1);
    return level === levels[t] && from(f + 1, t + 1);
  };
  return from(0, 0);
}

/** aedes-persistence's memory persistence with its retained messages in a RetainedTree. */
class IndexedMemoryPersistence extends MemoryPersistence {
  readonly retained = new RetainedTree();

  override async storeRetained(packet: RetainedPacket): Promise<void> {
    // An empty payload clears the topic's retained message [MQTT-3.3.1-10] [MQTT-3.3.1-11].
    if (packet.payload.length === 0) this.retained.delete(packet.topic);
    else this.retained.set({ ...packet });
  }

  override createRetainedStream(pattern: string): Readable {
    return Readable.from(this.retained.match(pattern));
  }

  override createRetainedStreamCombi(patterns: string[]): Readable {
    const retained = this.retained;
    return Readable.from(
      (function* () {
        for (const pattern of patterns) yield* retained.match(pattern);
      })(),
    );
  }
}

/** An aedes persistence: aedes-persistence's memory one, with retained messages found by topic level. */
export function memoryPersistence(options: object = {}): unknown {
  return new CallBackPersistence((o) => new IndexedMemoryPersistence(o), options);
}

export function memoryState(): BrokerState {
  return { persistence: memoryPersistence(), mq: mqemitter() };
}
