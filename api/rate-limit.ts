import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { ApiEnv, Credentials } from "./auth.js";
import { ApiError } from "./errors.js";

// Per-client request rate: a token bucket per token digest, or per remote address without a valid token.
// The bucket functions are pure; RateLimiter keeps the buckets, and only those of recent clients.

/** Tokens added per second, and the most a bucket holds (the burst). */
export type RateLimit = { rate: number; burst: number };

/** Tokens left, as of atMs. */
export type Bucket = { tokens: number; atMs: number };

export type Take = { ok: true; bucket: Bucket } | { ok: false; bucket: Bucket; retryAfterMs: number };

/** The bucket at nowMs: a new one is full; a clock that went back adds nothing. */
export function refill(bucket: Bucket | undefined, limit: RateLimit, nowMs: number): Bucket {
  if (bucket === undefined) return { tokens: limit.burst, atMs: nowMs };
  if (nowMs <= bucket.atMs) return bucket;
  const tokens = Math.min(limit.burst, bucket.tokens + ((nowMs - bucket.atMs) / 1000) * limit.rate);
  return { tokens, atMs: nowMs };
}

/** Takes one token, or says how long until there is one; a refusal takes nothing. */
export function take(bucket: Bucket | undefined, limit: RateLimit, nowMs: number): Take {
  const current = refill(bucket, limit, nowMs);
  if (current.tokens >= 1) return { ok: true, bucket: { tokens: current.tokens - 1, atMs: current.atMs } };
  return { ok: false, bucket: current, retryAfterMs: Math.ceil(((1 - current.tokens) / limit.rate) * 1000) };
}

/** A full bucket is the same as none: it can be forgotten. */
export const isIdle = (bucket: Bucket, limit: RateLimit, nowMs: number) =>
  refill(bucket, limit, nowMs).tokens >= limit.burst;

export const DEFAULT_MAX_CLIENTS = 10_000;

/** Buckets by client key, least recently used first; at most maxClients of them. */
export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();

  constructor(
    readonly limit: RateLimit,
    readonly maxClients = DEFAULT_MAX_CLIENTS,
  ) {}

  take(key: string, nowMs: number): Take {
    const result = take(this.#buckets.get(key), this.limit, nowMs);
    this.#buckets.delete(key);
    this.#buckets.set(key, result.bucket);
    this.#evict(nowMs);
    return result;
  }

  /** Clients with a bucket that is not full. */
  get size(): number {
    return this.#buckets.size;
  }

  // Idle buckets go from the front; past maxClients the least recently used goes even if not idle (it then
  // starts again full: under that many clients the limit loosens rather than memory growing).
  #evict(nowMs: number) {
    for (const [key, bucket] of this.#buckets) {
      if (this.#buckets.size <= this.maxClients && !isIdle(bucket, this.limit, nowMs)) break;
      this.#buckets.delete(key);
    }
  }
}

/** The peer's address from @hono/node-server; undefined elsewhere (app.request in tests). */
function remoteAddress(c: Context): string | undefined {
  const env = c.env as { incoming?: unknown; server?: unknown } | undefined;
  if (env?.incoming === undefined && env?.server === undefined) return undefined;
  return getConnInfo(c).remote.address;
}

/** Whose bucket a request takes from: its valid token's digest, else its address (one shared key if unknown). */
export function clientKey(c: Context<ApiEnv>): string {
  return keyOf(c.get("credentials"), c);
}

/** The same key for a request whose credentials were resolved elsewhere (the dashboard's session cookie). */
export function keyOf(credentials: Credentials | undefined, c: Context): string {
  if (credentials?.role !== undefined) return `token:${credentials.digest}`;
  return `address:${remoteAddress(c) ?? "unknown"}`;
}

export type RateLimitOptions = RateLimit & {
  now: () => number;
  maxClients?: number;
  /** Called for each request answered 429. */
  onLimited?: () => void;
};

/** 429 RATE_LIMITED with Retry-After (whole seconds) over the rate; runs after authenticate. */
export function rateLimit(options: RateLimitOptions) {
  const limiter = new RateLimiter({ rate: options.rate, burst: options.burst }, options.maxClients);
  return createMiddleware<ApiEnv>(async (c, next) => {
    const result = limiter.take(clientKey(c), options.now());
    if (!result.ok) {
      options.onLimited?.();
      throw new ApiError({
        code: "RATE_LIMITED",
        message: `more than ${options.rate} requests per second (burst ${options.burst}): try again later`,
        headers: { "Retry-After": String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))) },
      });
    }
    await next();
  });
}
