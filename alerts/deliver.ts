import type { Logger } from "../observe/logger.js";
import { writeAlertLog } from "../storage/alert-log.js";
import { BodyTooLarge, PointsRefused, PointUnencodable, type PointWriter } from "../storage/influx.js";
import { type BackoffPolicy, DEFAULT_BACKOFF, nextRetry } from "./backoff.js";
import { LOG_TARGET, type Outbox, type Queued, targetOf } from "./outbox.js";
import type { SendOutcome, Target } from "./target.js";

// Drains the outbox: one lane per target, each sending its deliveries one at a time in commit order, retried
// with backoff until delivered, refused for good or given up. Lanes share nothing but the outbox, so a dead
// or slow receiver delays only its own lane; nothing in fieldq waits on a lane. The alert log is a lane of its
// own that writes its entries to InfluxDB in batches and never gives up.

export const ATTEMPT_TIMEOUT_MS = 10_000;
const LOG_BATCH = 200;
/** The longest a timer may wait (setTimeout's limit); an idle lane sleeps this long or until woken. */
const IDLE_MS = 2 ** 31 - 1;

export type DeliveryOptions = {
  outbox: Outbox<unknown>;
  targets: readonly Target[];
  /** Where the alert log is written: createPointWriter(config.influx). */
  log: PointWriter;
  logger: Logger;
  now?: () => number;
  random?: () => number;
  backoff?: Partial<BackoffPolicy>;
  attemptTimeoutMs?: number;
};

export type DeliveryHandle = { close(): Promise<void> };

type Lane = { items: Queued[]; wake: () => void; running: Promise<void> };

export async function startDelivery(options: DeliveryOptions): Promise<DeliveryHandle> {
  const { outbox, logger } = options;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const policy: BackoffPolicy = { ...DEFAULT_BACKOFF, ...options.backoff };
  const logPolicy: BackoffPolicy = { ...policy, giveUpAfterMs: Number.POSITIVE_INFINITY };
  const timeoutMs = options.attemptTimeoutMs ?? ATTEMPT_TIMEOUT_MS;
  const targets = new Map(options.targets.map((t) => [t.name, t]));
  const stop = new AbortController();
  const lanes = new Map<string, Lane>();
  const known = new Set<string>();

  /** Sleeps until ms have passed, the lane is woken, or delivery stops. */
  const sleeper = () => {
    let wake = () => {};
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(Math.max(ms, 0), IDLE_MS));
        timer.unref();
        wake = done;
        function done() {
          clearTimeout(timer);
          wake = () => {};
          resolve();
        }
      });
    return { sleep, wake: () => wake() };
  };

  const add = (items: readonly Queued[]) => {
    for (const q of items) {
      if (known.has(q.key)) continue;
      known.add(q.key);
      const name = targetOf(q);
      let lane = lanes.get(name);
      if (lane === undefined) {
        lane = startLane(name);
        lanes.set(name, lane);
      }
      // In key order: a reload at start can interleave with a commit.
      const after = lane.items.findIndex((other) => other.key > q.key);
      if (after < 0) lane.items.push(q);
      else lane.items.splice(after, 0, q);
      lane.wake();
    }
  };

  function startLane(name: string): Lane {
    const { sleep, wake } = sleeper();
    const lane: Lane = { items: [], wake, running: Promise.resolve() };
    const step = name === LOG_TARGET ? () => logStep(lane, sleep) : () => noticeStep(name, lane, sleep);
    lane.running = (async () => {
      await Promise.resolve();
      while (!stop.signal.aborted) {
        try {
          await step();
        } catch (error) {
          // The outbox could not be written: the item stays queued; try again shortly.
          logger.error({ err: error, target: name }, "alert delivery could not record an attempt");
          await sleep(policy.baseMs);
        }
      }
    })();
    return lane;
  }

  async function noticeStep(name: string, lane: Lane, sleep: (ms: number) => Promise<void>) {
    const head = lane.items[0];
    if (head === undefined || head.item.kind !== "notice") {
      if (head !== undefined) lane.items.shift();
      await sleep(IDLE_MS);
      return;
    }
    const wait = head.nextAtMs - now();
    if (wait > 0) {
      await sleep(wait);
      return;
    }
    const { notice } = head.item;
    const target = targets.get(name);
    const attempt = head.attempts + 1;
    const atMs = now();
    let outcome: SendOutcome;
    if (target === undefined) {
      outcome = {
        ok: false,
        permanent: true,
        status: null,
        error: `no target named "${name}" is configured`,
      };
    } else {
      const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), stop.signal]);
      outcome = await target.send(notice, signal).catch(
        (error: unknown): SendOutcome => ({
          ok: false,
          permanent: false,
          status: null,
          error: error instanceof Error ? error.message : String(error),
        }),
      );
    }
    // Cut short by shutdown: not an attempt; the item stays queued for the next start.
    if (stop.signal.aborted && !outcome.ok) return;
    const base = {
      type: "delivery" as const,
      alertId: notice.alertId,
      atMs,
      idempotencyKey: notice.idempotencyKey,
      target: name,
      attempt,
      status: outcome.status,
    };
    const context = { target: name, alert: notice.alertId, key: notice.idempotencyKey, attempt };
    if (outcome.ok) {
      await outbox.settle({
        done: [head.key],
        log: [{ ...base, outcome: "delivered", error: null, nextTryMs: null }],
      });
      logger.info(context, "alert delivered");
      finish(lane, head);
      return;
    }
    if (outcome.permanent) {
      await outbox.settle({
        done: [head.key],
        log: [{ ...base, outcome: "rejected", error: outcome.error, nextTryMs: null }],
      });
      logger.warn({ ...context, error: outcome.error }, "alert refused by its receiver; not retried");
      finish(lane, head);
      return;
    }
    const decision = nextRetry(
      {
        attempt,
        queuedAtMs: head.queuedAtMs,
        nowMs: now(),
        random: random(),
        retryAfterMs: outcome.retryAfterMs,
      },
      policy,
    );
    if (!decision.retry) {
      await outbox.settle({
        done: [head.key],
        log: [{ ...base, outcome: "gave_up", error: outcome.error, nextTryMs: null }],
      });
      logger.error({ ...context, error: outcome.error }, "alert delivery gave up");
      finish(lane, head);
      return;
    }
    const retry: Queued = { ...head, attempts: attempt, nextAtMs: decision.atMs, lastError: outcome.error };
    await outbox.settle({
      retry,
      log: [{ ...base, outcome: "failed", error: outcome.error, nextTryMs: decision.atMs }],
    });
    logger.warn(
      { ...context, error: outcome.error, nextTry: new Date(decision.atMs).toISOString() },
      "alert delivery failed; will retry",
    );
    if (lane.items[0] === head) lane.items[0] = retry;
  }

  /**
   * The log's lane: every ready entry (up to a batch) in one write; a failed write waits and tries again. An
   * entry InfluxDB refuses (HTTP 400, too large, no line protocol) would be refused forever: the batch is then
   * written one entry at a time, and the entry refused on its own is dropped with an error in fieldq's log,
   * so one bad entry cannot hold up the alert log.
   */
  let logAttempts = 0;
  let singly = 0;
  async function logStep(lane: Lane, sleep: (ms: number) => Promise<void>) {
    const at = now();
    const ready = lane.items.filter((q) => q.nextAtMs <= at).slice(0, singly > 0 ? 1 : LOG_BATCH);
    if (ready.length === 0) {
      const soonest = Math.min(...lane.items.map((q) => q.nextAtMs));
      await sleep(Number.isFinite(soonest) ? soonest - at : IDLE_MS);
      return;
    }
    const entries = ready.flatMap((q) => (q.item.kind === "log" ? [q.item.entry] : []));
    try {
      await writeAlertLog(options.log, entries);
    } catch (error) {
      const refused =
        error instanceof PointsRefused || error instanceof BodyTooLarge || error instanceof PointUnencodable;
      if (refused && ready.length > 1) {
        singly = ready.length;
        return;
      }
      if (refused) {
        const [entry] = entries;
        logger.error(
          { err: error, alert: entry?.alertId, type: entry?.type },
          "alert log entry refused by InfluxDB; dropped",
        );
        singly = Math.max(0, singly - 1);
        await outbox.settle({ done: ready.map((q) => q.key) });
        for (const q of ready) finish(lane, q);
        return;
      }
      logAttempts += 1;
      const decision = nextRetry(
        { attempt: logAttempts, queuedAtMs: at, nowMs: at, random: random() },
        logPolicy,
      );
      const until = decision.retry ? decision.atMs : at + logPolicy.maxMs;
      logger.warn(
        { err: error, entries: entries.length, attempt: logAttempts },
        "alert log not written; will retry",
      );
      for (const q of ready) q.nextAtMs = until;
      return;
    }
    logAttempts = 0;
    singly = Math.max(0, singly - ready.length);
    await outbox.settle({ done: ready.map((q) => q.key) });
    for (const q of ready) finish(lane, q);
  }

  function finish(lane: Lane, q: Queued) {
    const index = lane.items.indexOf(q);
    if (index >= 0) lane.items.splice(index, 1);
    known.delete(q.key);
  }

  outbox.onQueued(add);
  add(await outbox.queued());

  return {
    async close() {
      stop.abort();
      for (const lane of lanes.values()) lane.wake();
      await Promise.all([...lanes.values()].map((lane) => lane.running));
    },
  };
}
