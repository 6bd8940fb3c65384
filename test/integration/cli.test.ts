import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { expect, test } from "vitest";
import { signBody } from "../../alerts/webhook.js";
import { deviceKey } from "../../contract/device-key.js";
import { activityPoint, deviceTags } from "../../ingest/to-points.js";
import { createInflux, createPointWriter, ensureSchema } from "../../storage/influx.js";
import { queryGroups } from "../../storage/influxql.js";
import { testDatabase } from "../support/influx.js";
import { TEST_SECRET } from "../support/stack.js";

const run = promisify(execFile);
const fieldq = ["--import", "tsx", "cli/fieldq.ts"];
const env = (extra: NodeJS.ProcessEnv) => ({
  ...process.env,
  FIELDQ_LOG_FORMAT: "json",
  FIELDQ_DEVICE_SECRET: TEST_SECRET,
  ...extra,
});

/** Log lines of a running fieldq, parsed; resolves a line's fields once one matches. */
function logOf(child: ChildProcess) {
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{
    match: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }> = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    lines.push(line);
    for (const w of waiters.filter((w) => w.match(line))) w.resolve(line);
  });
  return {
    lines,
    waitFor: (match: (l: Record<string, unknown>) => boolean) =>
      new Promise<Record<string, unknown>>((resolve) => {
        const seen = lines.find(match);
        if (seen) resolve(seen);
        else waiters.push({ match, resolve });
      }),
  };
}

test("device-key prints the key the broker expects, and refuses a bad id with exit code 2", async () => {
  const { stdout } = await run("node", [...fieldq, "device-key", "modem-0001"], { env: env({}) });
  expect(stdout.trim()).toBe(deviceKey(TEST_SECRET, "modem-0001"));
  await expect(run("node", [...fieldq, "device-key", "no/slashes"], { env: env({}) })).rejects.toMatchObject({
    code: 2,
  });
});

test("help exits 0 and names every command; an unknown command exits 2", async () => {
  const { stdout } = await run("node", [...fieldq, "help"], { env: env({}) });
  for (const command of ["start", "broker", "api", "device-key", "rollup", "sim"])
    expect(stdout).toContain(command);
  await expect(run("node", [...fieldq, "frobnicate"], { env: env({}) })).rejects.toMatchObject({ code: 2 });
});

test("rollup recomputes the rollups of the hours with raw data, and names a bad range with exit code 2", async () => {
  const db = await testDatabase("cli_rollup");
  const influx = createInflux(db);
  try {
    await ensureSchema(influx, db);
    const hour = Date.UTC(2024, 5, 1, 10);
    const meta = {
      kind: "modem",
      model: "M",
      firmware: "1",
      hardware: "a",
      region: "eu",
      isp: "i",
      serial: "s",
    };
    await createPointWriter(db)([
      activityPoint(deviceTags("modem-1", meta), hour),
      activityPoint(deviceTags("modem-2", meta), hour + 3_600_000),
    ]);
    const dbEnv = env({ FIELDQ_INFLUX_URL: db.url, FIELDQ_INFLUX_DB: db.database });
    const { stdout } = await run(
      "node",
      [...fieldq, "rollup", "--from", "2024-06-01T00:00:00Z", "--to", "2024-06-02T00:00:00Z"],
      { env: dbEnv },
    );
    expect(stdout).toMatch(/^rolled up 2 hours on 1 day \(/);
    const [groups = []] = await queryGroups(influx, [
      `SELECT sum("hours") AS "hours" FROM "long"."cohort_1h" GROUP BY "model"`,
    ]);
    expect(groups.map((g) => [g.tags.model, g.rows[0]?.hours])).toEqual([["M", 2]]);
    await expect(
      run("node", [...fieldq, "rollup", "--from", "yesterday"], { env: dbEnv }),
    ).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("--from and --to take ISO times") });
  } finally {
    await db.drop();
  }
});

test("a configuration problem is named and exits 2", async () => {
  const failed = run("node", [...fieldq, "start"], { env: env({ FIELDQ_HTTP_PORT: "eighty" }) });
  await expect(failed).rejects.toMatchObject({
    code: 2,
    stderr: expect.stringContaining("FIELDQ_HTTP_PORT"),
  });
});

test("start serves MQTT and the API, and SIGTERM shuts it down cleanly with exit code 0", async () => {
  const db = await testDatabase("cli");
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-cli-"));
  const child = spawn("node", [...fieldq, "start"], {
    env: env({
      FIELDQ_INFLUX_URL: db.url,
      FIELDQ_INFLUX_DB: db.database,
      FIELDQ_MQTT_PORT: "0",
      FIELDQ_HTTP_PORT: "0",
      FIELDQ_HTTP_HOST: "127.0.0.1",
      FIELDQ_API_TOKENS: "viewer:viewer-token-1",
      FIELDQ_DATA_DIR: dataDir,
      FIELDQ_TOKENS_FILE: join(dataDir, "tokens.json"),
    }),
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const log = logOf(child);
    const api = await log.waitFor((l) => typeof l.url === "string");
    const health = await fetch(`${api.url}/api/v1/health`);
    expect(health.status).toBe(200);
    const mqtt = await log.waitFor((l) => typeof l.port === "number");
    expect(mqtt.port).toBeGreaterThan(0);
    child.kill("SIGTERM");
    // "close" comes after stdout has drained; "exit" can come before its last lines are read.
    const [code] = await once(child, "close");
    expect(code).toBe(0);
    expect(log.lines.at(-1)).toMatchObject({ msg: "stopped" });
  } finally {
    child.kill("SIGKILL");
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test("a port already in use is reported and the process exits 1 instead of hanging", async () => {
  const taken = createServer().listen(0, "127.0.0.1");
  await once(taken, "listening");
  const db = await testDatabase("cli_port");
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-cli-"));
  try {
    const failed = run("node", [...fieldq, "start"], {
      timeout: 20_000,
      env: env({
        FIELDQ_INFLUX_URL: db.url,
        FIELDQ_INFLUX_DB: db.database,
        FIELDQ_MQTT_HOST: "127.0.0.1",
        FIELDQ_MQTT_PORT: String((taken.address() as AddressInfo).port),
        FIELDQ_DATA_DIR: dataDir,
        FIELDQ_LOG_LEVEL: "silent",
      }),
    });
    await expect(failed).rejects.toMatchObject({
      code: 1,
      killed: false,
      stderr: expect.stringContaining("EADDRINUSE"),
    });
  } finally {
    taken.close();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test("ingest names a missing or wrong broker URL with exit code 2", async () => {
  await expect(run("node", [...fieldq, "ingest"], { env: env({}) })).rejects.toMatchObject({
    code: 2,
    stderr: expect.stringContaining("--broker mqtt://host:1883 or FIELDQ_INGEST_BROKER_URL"),
  });
  await expect(
    run("node", [...fieldq, "ingest", "--broker", "http://broker:1883"], { env: env({}) }),
  ).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("starts with mqtt://") });
});

test("ingest keeps retrying a broker it cannot reach, says so, and SIGTERM stops it with exit code 0", async () => {
  const closed = createServer().listen(0, "127.0.0.1");
  await once(closed, "listening");
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const db = await testDatabase("cli_ingest");
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-cli-"));
  const child = spawn("node", [...fieldq, "ingest", "--broker", `mqtt://127.0.0.1:${port}`], {
    env: env({ FIELDQ_INFLUX_URL: db.url, FIELDQ_INFLUX_DB: db.database, FIELDQ_DATA_DIR: dataDir }),
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const log = logOf(child);
    const unreachable = await log.waitFor((l) => String(l.msg).startsWith("external broker not reachable"));
    expect(unreachable).toMatchObject({ level: 40, url: `mqtt://127.0.0.1:${port}` });
    expect(child.exitCode).toBeNull();
    child.kill("SIGTERM");
    const [code] = await once(child, "close");
    expect(code).toBe(0);
    expect(log.lines.at(-1)).toMatchObject({ msg: "stopped" });
  } finally {
    child.kill("SIGKILL");
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test("webhook-listen prints a correctly signed alert, marks a repeat, and refuses a wrong signature", async () => {
  const secret = "listen-secret-0123456789";
  const child = spawn("node", [...fieldq, "webhook-listen", "--port", "0", "--secret", secret], {
    env: env({}),
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    const stderr = createInterface({ input: child.stderr as NodeJS.ReadableStream });
    const url = await new Promise<string>((resolve) =>
      stderr.on("line", (line) => {
        const found = /listening for alert webhooks on (\S+)/.exec(line)?.[1];
        if (found) resolve(found);
      }),
    );
    const printed: string[] = [];
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (l) => printed.push(l));
    const body = JSON.stringify({
      event: "raised",
      severity: "critical",
      levelName: "support",
      subject: "issue 3f2a91c0",
      title: "New issue on 12 devices",
      idempotencyKey: "a1/raised/0",
      url: null,
    });
    const post = (signature: string) =>
      fetch(url, { method: "POST", body, headers: { "x-fieldq-signature": signature } });
    expect((await post(signBody(secret, body))).status).toBe(204);
    expect((await post(signBody(secret, body))).status).toBe(204);
    expect((await post(signBody("another-secret-0123456", body))).status).toBe(401);
    await expect.poll(() => printed.filter((l) => l.includes("New issue on 12 devices")).length).toBe(2);
    expect(printed.filter((l) => l.includes("delivered before: same idempotency key"))).toHaveLength(1);
    expect(printed.filter((l) => l.includes("signature ok, idempotency key a1/raised/0"))).toHaveLength(2);
  } finally {
    child.kill("SIGTERM");
    await once(child, "exit");
  }
});
