import { InfluxDB } from "influx";
import type { InfluxConfig } from "../config/env.js";
import { tryEncodePoint } from "./line-protocol.js";
import { MEASUREMENTS, type Point, RP_LONG, RP_RAW } from "./schema.js";

export type { InfluxDB };

export function createInflux(config: InfluxConfig): InfluxDB {
  const url = new URL(config.url);
  return new InfluxDB({
    host: url.hostname,
    port: Number(url.port || (url.protocol === "https:" ? 443 : 80)),
    protocol: url.protocol === "https:" ? "https" : "http",
    database: config.database,
    ...(config.username !== undefined ? { username: config.username } : {}),
    ...(config.password !== undefined ? { password: config.password } : {}),
  });
}

const q = (name: string) => `"${name.replace(/(["\\])/g, "\\$1")}"`;

/** Creates the database, retention policies and continuous queries; safe to run on every start-up. */
export async function ensureSchema(influx: InfluxDB, config: InfluxConfig): Promise<void> {
  const db = config.database;
  // InfluxDB 1.6 has been seen to answer "database not found" to the statement right after CREATE DATABASE
  // on a loaded machine (once in a CI run); creating it again and asking again is harmless.
  let policies: Awaited<ReturnType<InfluxDB["showRetentionPolicies"]>> | undefined;
  for (let attempt = 1; policies === undefined; attempt++) {
    await influx.createDatabase(db);
    try {
      policies = await influx.showRetentionPolicies(db);
    } catch (error) {
      if (attempt >= 5 || !String(error).includes("database not found")) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
  }
  const ensure = async (name: string, duration: string, isDefault: boolean) => {
    const exists = policies.some((p) => p.name === name);
    const statement = exists ? "ALTER" : "CREATE";
    await influx.query(
      `${statement} RETENTION POLICY ${q(name)} ON ${q(db)} DURATION ${duration} REPLICATION 1${isDefault ? " DEFAULT" : ""}`,
    );
  };
  await ensure(RP_RAW, config.rawRetention, true);
  await ensure(RP_LONG, "INF", false);
  const existing = new Set((await influx.showContinousQueries(db)).map((cq) => cq.name));
  const rollups: Array<[string, string]> = [
    [
      "cq_telemetry_1h",
      `SELECT mean(*) INTO ${q(RP_LONG)}.${q(MEASUREMENTS.telemetry1h.name)} FROM ${q(RP_RAW)}.${q(MEASUREMENTS.telemetry.name)} GROUP BY time(1h), *`,
    ],
  ];
  for (const [name, select] of rollups) {
    if (!existing.has(name))
      await influx.query(`CREATE CONTINUOUS QUERY ${q(name)} ON ${q(db)} BEGIN ${select} END`);
  }
  // Earlier versions rolled faults up per device and hour with a CQ, which missed late data; rollup/
  // replaces it.
  if (existing.has("cq_fault_1h")) await influx.query(`DROP CONTINUOUS QUERY "cq_fault_1h" ON ${q(db)}`);
}

/** InfluxDB refused the points themselves (HTTP 400): retrying the same body cannot help. */
export class PointsRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`InfluxDB refused the write (HTTP ${status}): ${body.slice(0, 500)}`);
  }
}

/** InfluxDB would not read the body at all (HTTP 413, over its max-body-size): a smaller one may pass. */
export class BodyTooLarge extends Error {
  constructor(readonly body: string) {
    super(`InfluxDB refused the write as too large (HTTP 413): ${body.slice(0, 200)}`);
  }
}

/** A point has no line protocol (no fields, a non-finite number): no InfluxDB could take it. */
export class PointUnencodable extends Error {
  constructor(readonly body: string) {
    super(`a point cannot be written as line protocol: ${body.slice(0, 200)}`);
  }
}

/** The database is gone (dropped by hand, say): create the schema again, then retry. */
export class DatabaseMissing extends Error {
  constructor(readonly body: string) {
    super(`InfluxDB has no such database: ${body.slice(0, 200)}`);
  }
}

export type PointWriter = (points: readonly Point[]) => Promise<void>;

/**
 * Writes points of one or more retention policies over InfluxDB's HTTP /write, one request per policy.
 * Throws PointUnencodable before sending anything when a point has no line protocol, PointsRefused for a
 * 400, BodyTooLarge for a 413, DatabaseMissing for a 404, any other error for what a retry may cure.
 */
export function createPointWriter(config: InfluxConfig, timeoutMs = 10_000): PointWriter {
  const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
  if (config.username !== undefined) {
    headers.authorization = `Basic ${Buffer.from(`${config.username}:${config.password ?? ""}`).toString("base64")}`;
  }
  return async (points) => {
    const byPolicy = new Map<string, string[]>();
    for (const point of points) {
      const encoded = tryEncodePoint(point);
      if (!encoded.ok) throw new PointUnencodable(encoded.error);
      const lines = byPolicy.get(point.rp) ?? [];
      lines.push(encoded.line);
      byPolicy.set(point.rp, lines);
    }
    for (const [rp, lines] of byPolicy) {
      const query = new URLSearchParams({ db: config.database, rp, precision: "n" });
      const response = await fetch(`${config.url}/write?${query}`, {
        method: "POST",
        headers,
        body: lines.join("\n"),
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.status === 204) continue;
      const body = await response.text();
      if (response.status === 400) throw new PointsRefused(response.status, body);
      if (response.status === 413) throw new BodyTooLarge(body);
      if (response.status === 404) throw new DatabaseMissing(body);
      throw new Error(`InfluxDB write failed (HTTP ${response.status}): ${body.slice(0, 500)}`);
    }
  };
}
