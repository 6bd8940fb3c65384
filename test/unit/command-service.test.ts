import { describe, expect, it } from "vitest";
import { CommandView } from "../../contract/api/commands.js";
import type { ServiceBag } from "../../services/bag.js";
import { batchCreatedMs, type CommandStore, createCommandService } from "../../services/commands.js";
import type { DirectoryEntry } from "../../services/device-directory.js";
import type { AnswerRow, CommandRecords, DeliveredRow, QueuedRow } from "../../storage/command-queries.js";
import type { Point } from "../../storage/schema.js";

// The service on rows of the test's own (the InfluxDB queries run in test/integration/commands.test.ts).

const T0 = 1_800_000_000_000;

function memoryStore() {
  const queued: QueuedRow[] = [];
  const delivered: DeliveredRow[] = [];
  const answers: AnswerRow[] = [];
  const rows = (pick: (q: QueuedRow) => boolean): CommandRecords => {
    const kept = queued.filter(pick);
    const ids = new Set(kept.map((q) => q.id));
    return {
      queued: kept,
      delivered: delivered.filter((d) => ids.has(d.id)),
      answers: answers.filter((a) => ids.has(a.id)),
    };
  };
  const store: CommandStore = {
    async write(points: readonly Point[]) {
      for (const p of points) {
        const f = p.fields as Record<string, unknown>;
        const atMs = Number(BigInt(p.timeNs) / 1_000_000n);
        const device = p.tags.device ?? "";
        if (p.tags.event === "queued") {
          queued.push({
            id: String(f.command_id),
            device,
            type: String(f.type),
            args: String(f.args),
            by: String(f.by),
            createdMs: atMs,
            expiresMs: (f.expires_ms as { int: number }).int,
            batch: f.batch === "" ? null : String(f.batch),
          });
        } else delivered.push({ id: String(f.command_id), device, atMs });
      }
    },
    device: async (device, limit) => {
      const all = rows((q) => q.device === device);
      return { ...all, queued: all.queued.slice(-limit) };
    },
    batch: async (batch) => rows((q) => q.batch === batch),
    recent: async (sinceMs) => rows((q) => q.createdMs >= sinceMs),
  };
  return { store, answers, queued };
}

function bag(now: { ms: number }, devices: Array<{ id: string; model: string; firmware: string }>) {
  const entries = devices.map(
    (d) => ({ id: d.id, hello: { model: d.model, firmware: d.firmware } }) as DirectoryEntry,
  );
  return {
    now: () => now.ms,
    directory: {
      lookup: async (id: string) => entries.find((e) => e.id === id),
      list: async (filter: { model?: string; firmware?: string }) =>
        entries.filter(
          (e) =>
            (filter.model === undefined || e.hello.model === filter.model) &&
            (filter.firmware === undefined || e.hello.firmware === filter.firmware),
        ),
    },
  } as unknown as ServiceBag;
}

const FLEET = [
  { id: "m-1", model: "A", firmware: "1" },
  { id: "m-2", model: "A", firmware: "1" },
  { id: "m-3", model: "A", firmware: "2" },
  { id: "p-1", model: "B", firmware: "1" },
];

describe("createCommandService", () => {
  it("queues a command for a known device with its ttl, and refuses an unknown one", async () => {
    const now = { ms: T0 };
    const { store } = memoryStore();
    const service = createCommandService(bag(now, FLEET), { store, ttlMs: 3_600_000 });
    const sent = await service.send("m-1", { type: "reboot", args: { delay: 5 } }, "ana");
    expect(sent.ok).toBe(true);
    if (!sent.ok) return;
    expect(CommandView.parse(sent.value)).toEqual(sent.value);
    expect(sent.value).toMatchObject({
      device: "m-1",
      type: "reboot",
      args: { delay: 5 },
      status: "queued",
      by: "ana",
      createdAt: new Date(T0).toISOString(),
      expiresAt: new Date(T0 + 3_600_000).toISOString(),
      batch: null,
    });
    expect(await service.send("nobody", { type: "reboot" }, "ana")).toEqual({
      ok: false,
      error: "unknown_device",
    });
    expect(await service.forDevice("nobody", 10)).toBeUndefined();
  });

  it("tells each status from the log, the answers and the clock", async () => {
    const now = { ms: T0 };
    const { store, answers } = memoryStore();
    const service = createCommandService(bag(now, FLEET), { store });
    const a = await service.send("m-1", { type: "reboot", ttlMs: 10_000 }, "ana");
    const b = await service.send("m-1", { type: "diagnostics", ttlMs: 10_000 }, "ana");
    const c = await service.send("m-1", { type: "recalibrate", ttlMs: 10_000 }, "ana");
    const d = await service.send("m-1", { type: "reboot", ttlMs: 10_000 }, "ana");
    if (!a.ok || !b.ok || !c.ok || !d.ok) throw new Error("not queued");
    const pending = await service.pending();
    expect(pending.map((p) => p.id).sort()).toEqual([a.value.id, b.value.id, c.value.id, d.value.id].sort());
    await service.markDelivered(
      pending.find((p) => p.id === a.value.id) as (typeof pending)[number],
      T0 + 100,
    );
    await service.markDelivered(
      pending.find((p) => p.id === b.value.id) as (typeof pending)[number],
      T0 + 100,
    );
    answers.push({ id: b.value.id, device: "m-1", ok: false, message: "busy", atMs: T0 + 200 });
    answers.push({ id: c.value.id, device: "m-1", ok: true, message: null, atMs: T0 + 200 });
    now.ms = T0 + 20_000;
    const status = Object.fromEntries(
      ((await service.forDevice("m-1", 10)) ?? []).map((v) => [v.id, v.status]),
    );
    expect(status).toEqual({
      [a.value.id]: "delivered",
      [b.value.id]: "failed",
      [c.value.id]: "succeeded",
      [d.value.id]: "expired",
    });
    expect(await service.pending()).toEqual([]);
    // The answer proves the delivery: without a PUBACK recorded (c), or with one recorded after it, the command
    // was delivered by the time its answer came.
    const views = new Map(((await service.forDevice("m-1", 10)) ?? []).map((v) => [v.id, v]));
    expect(views.get(c.value.id)?.deliveredAt).toBe(new Date(T0 + 200).toISOString());
    expect(views.get(b.value.id)?.deliveredAt).toBe(new Date(T0 + 100).toISOString());
    expect(views.get(d.value.id)?.deliveredAt).toBeNull();
  });

  it("sends a bulk command to the cohort's devices only, under one batch", async () => {
    const now = { ms: T0 };
    const { store } = memoryStore();
    const service = createCommandService(bag(now, FLEET), { store });
    const queued: string[] = [];
    service.onQueued((commands) => queued.push(...commands.map((c) => c.device)));
    const bulk = await service.bulk({ model: "A", firmware: "1" }, { type: "diagnostics" }, "ben");
    expect(bulk).toMatchObject({ count: 2, type: "diagnostics" });
    expect(batchCreatedMs(bulk.batch)).toBe(T0);
    expect(queued).toEqual(["m-1", "m-2"]);
    const view = await service.batch(bulk.batch);
    expect(view?.items.map((i) => [i.device, i.batch, i.by])).toEqual([
      ["m-1", bulk.batch, "ben"],
      ["m-2", bulk.batch, "ben"],
    ]);
    expect(view?.counts).toEqual({ queued: 2, delivered: 0, succeeded: 0, failed: 0, expired: 0 });
    expect((await service.bulk({ model: "A" }, { type: "reboot" }, "ben")).count).toBe(3);
    expect(await service.batch("b1-0123456789ab")).toBeUndefined();
  });

  it("caps a ttl at the longest a command may wait", async () => {
    const now = { ms: T0 };
    const { store } = memoryStore();
    const service = createCommandService(bag(now, FLEET), { store, maxTtlMs: 60_000 });
    const sent = await service.send("m-1", { type: "reboot", ttlMs: 3_600_000 }, "ana");
    expect(sent.ok && sent.value.expiresAt).toBe(new Date(T0 + 60_000).toISOString());
  });
});
