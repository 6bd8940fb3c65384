import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { request } from "node:https";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import mqtt from "mqtt";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { WebSocket } from "ws";
import { startListeners } from "../../broker/listeners.js";
import { deviceKey } from "../../contract/device-key.js";
import { faultTopic } from "../../contract/topics.js";
import { silentLogger } from "../../observe/logger.js";
import { startFieldq, startIngestBroker } from "../../stack/start-stack.js";
import { testDatabase } from "../support/influx.js";
import { TEST_SECRET, testConfig } from "../support/stack.js";

const run = promisify(execFile);

let certs: string;
let ca: Buffer;
let tlsEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  certs = await mkdtemp(join(tmpdir(), "fieldq-tls-"));
  await run("bash", ["scripts/dev-certs.sh", certs]);
  ca = await readFile(join(certs, "ca.crt"));
  tlsEnv = {
    FIELDQ_TLS_CERT: join(certs, "server.crt"),
    FIELDQ_TLS_KEY: join(certs, "server.key"),
    FIELDQ_MQTTS_PORT: "0",
  };
});
afterAll(() => rm(certs, { recursive: true, force: true }));

/** Log lines of a pino logger at debug, parsed. */
function capturedLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines };
}

/** Broker and ingest on port 0 with a database and data folder of their own. */
async function startStack(label: string, env: NodeJS.ProcessEnv, logger = silentLogger) {
  const db = await testDatabase(label);
  const dataDir = await mkdtemp(join(tmpdir(), `fieldq-${label}-`));
  const config = testConfig(db, dataDir, env);
  const cleanup = async () => {
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const stack = await startIngestBroker(config, { logger });
    return {
      stack,
      async drained() {
        while (stack.journal.backlog.entries > 0) await new Promise((r) => setTimeout(r, 25));
      },
      async faults() {
        const response = await fetch(
          `${db.url}/query?${new URLSearchParams({ db: db.database, q: `SELECT "seq", "code", "device" FROM "long"."fault"` })}`,
        );
        const rows = (await response.json()) as {
          results?: Array<{ series?: Array<{ values?: unknown[][] }> }>;
        };
        return rows.results?.[0]?.series?.[0]?.values ?? [];
      },
      async close() {
        await stack.close();
        await cleanup();
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

function mosquittoPub(port: number, id: string, trust: string[], payload: string) {
  const args = ["-h", "localhost", "-p", String(port), "-V", "mqttv311", "-i", id, "-u", id];
  return run("mosquitto_pub", [
    ...args,
    "-P",
    deviceKey(TEST_SECRET, id),
    ...trust,
    "-q",
    "1",
    "-t",
    faultTopic(id),
    "-m",
    payload,
  ]);
}

const fault = (seq: number) => JSON.stringify({ ts: Date.now(), seq, code: "WAN_DOWN", severity: "error" });

async function takenPort(): Promise<Server> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}
const portOf = (server: Server) => (server.address() as AddressInfo).port;

describe("MQTT over TLS", () => {
  test("mosquitto_pub with the CA publishes over TLS and the message is stored; plain MQTT stays on beside it", async () => {
    const { logger, lines } = capturedLogger();
    const s = await startStack("tls_pub", tlsEnv, logger);
    try {
      const { mqtt: plain, mqtts } = s.stack.mqttPorts;
      expect(plain).toBeGreaterThan(0);
      expect(mqtts).toBeGreaterThan(0);
      expect(s.stack.mqttPort).toBe(plain);
      await mosquittoPub(mqtts as number, "modem-0001", ["--cafile", join(certs, "ca.crt")], fault(1));
      await s.drained();
      expect(await s.faults()).toEqual([[expect.any(String), 1, "WAN_DOWN", "modem-0001"]]);
      expect(lines.filter((l) => l.msg === "TLS handshake failed")).toEqual([]);
    } finally {
      await s.close();
    }
  });

  test("a client that does not trust the CA fails the handshake, is logged at debug, and costs nothing else", async () => {
    const { logger, lines } = capturedLogger();
    const s = await startStack("tls_untrusted", tlsEnv, logger);
    try {
      const port = s.stack.mqttPorts.mqtts as number;
      // The system's CAs do not include the development CA.
      const untrusted = mosquittoPub(port, "modem-0002", ["--capath", "/etc/ssl/certs"], fault(1));
      await expect(untrusted).rejects.toMatchObject({
        stderr: expect.stringMatching(/TLS error/i),
      });
      const node = mqtt.connectAsync(`mqtts://localhost:${port}`, {
        clientId: "modem-0002",
        username: "modem-0002",
        password: deviceKey(TEST_SECRET, "modem-0002"),
        reconnectPeriod: 0,
      });
      await expect(node).rejects.toMatchObject({ code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
      expect(s.stack.broker.connectedDevices()).toBe(0);

      await mosquittoPub(port, "modem-0003", ["--cafile", join(certs, "ca.crt")], fault(1));
      await s.drained();
      expect(await s.faults()).toEqual([[expect.any(String), 1, "WAN_DOWN", "modem-0003"]]);
      const failed = lines.filter((l) => l.msg === "TLS handshake failed");
      expect(failed.length).toBeGreaterThanOrEqual(2);
      expect(failed.every((l) => l.level === 20 && l.transport === "mqtts")).toBe(true);
    } finally {
      await s.close();
    }
  });

  test("sockets waiting in a TLS handshake count against the address's share, and closing them frees it", async () => {
    const s = await startStack("tls_pending", { ...tlsEnv, FIELDQ_MAX_CONNECTIONS_PER_IP: "3" });
    const pending: Socket[] = [];
    try {
      const port = s.stack.mqttPorts.mqtts as number;
      // Raw TCP sockets that never start their handshake: what a slow or hostile client would hold open.
      for (let i = 0; i < 3; i++) {
        const socket = connect(port, "127.0.0.1");
        await once(socket, "connect");
        pending.push(socket);
      }
      const tooMany = mosquittoPub(port, "modem-0005", ["--cafile", join(certs, "ca.crt")], fault(1));
      await expect(tooMany).rejects.toMatchObject({ stderr: expect.any(String) });
      for (const socket of pending) socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await mosquittoPub(port, "modem-0005", ["--cafile", join(certs, "ca.crt")], fault(2));
      await s.drained();
      expect(await s.faults()).toEqual([[expect.any(String), 2, "WAN_DOWN", "modem-0005"]]);
    } finally {
      for (const socket of pending) socket.destroy();
      await s.close();
    }
  });

  test("FIELDQ_MQTT_PLAIN=false leaves no plain listener, not even on its configured port", async () => {
    const plainPort = await takenPort();
    // Were a plain listener started, it would fail on this port with EADDRINUSE.
    const s = await startStack("tls_only", {
      ...tlsEnv,
      FIELDQ_MQTT_PLAIN: "false",
      FIELDQ_MQTT_PORT: String(portOf(plainPort)),
    });
    try {
      expect(Object.keys(s.stack.mqttPorts)).toEqual(["mqtts"]);
      expect(s.stack.mqttPort).toBe(s.stack.mqttPorts.mqtts);
      await mosquittoPub(s.stack.mqttPort, "modem-0004", ["--cafile", join(certs, "ca.crt")], fault(1));
    } finally {
      await s.close();
      plainPort.close();
    }
  });

  test("a certificate file that is missing, or a key that is not the certificate's, stops the start naming the variables", async () => {
    await expect(
      startStack("tls_missing", { ...tlsEnv, FIELDQ_TLS_CERT: join(certs, "missing.crt") }),
    ).rejects.toThrow(/FIELDQ_TLS_CERT: cannot read .*missing\.crt \(ENOENT\)/);
    await expect(
      startStack("tls_mismatch", { ...tlsEnv, FIELDQ_TLS_KEY: join(certs, "ca.key") }),
    ).rejects.toThrow(/FIELDQ_TLS_CERT, FIELDQ_TLS_KEY: .*key values mismatch/);
  });

  test("a listener that cannot bind fails the start and closes the listeners already started", async () => {
    const taken = await takenPort();
    const free = await takenPort();
    const plain = portOf(free);
    await new Promise((r) => free.close(r));
    const tls = {
      cert: await readFile(tlsEnv.FIELDQ_TLS_CERT as string),
      key: await readFile(tlsEnv.FIELDQ_TLS_KEY as string),
    };
    try {
      const started = startListeners(
        { host: "127.0.0.1", port: plain, tls: { ...tls, port: portOf(taken) } },
        (stream) => stream.destroy(),
      );
      await expect(started).rejects.toMatchObject({ code: "EADDRINUSE" });
      // The plain listener started first and was closed again: its port is free.
      const again = createServer().listen(plain, "127.0.0.1");
      await once(again, "listening");
      again.close();
    } finally {
      taken.close();
    }
  });
});

describe("MQTT over WebSocket", () => {
  const device = (id: string) => ({
    clientId: id,
    username: id,
    password: deviceKey(TEST_SECRET, id),
    protocolVersion: 4 as const,
    reconnectPeriod: 0,
  });

  test("a device publishes over ws:// and its QoS 1 message is acknowledged", async () => {
    const s = await startStack("ws_plain", { FIELDQ_MQTT_WS_PORT: "0" });
    try {
      const port = s.stack.mqttPorts.ws as number;
      const client = await mqtt.connectAsync(`ws://127.0.0.1:${port}/mqtt`, device("modem-0010"));
      // A QoS 1 publish resolves once its PUBACK has come back.
      await client.publishAsync(faultTopic("modem-0010"), fault(1), { qos: 1 });
      await client.endAsync();
      await s.drained();
      expect(await s.faults()).toEqual([[expect.any(String), 1, "WAN_DOWN", "modem-0010"]]);
      const stray = await fetch(`http://127.0.0.1:${port}/`);
      expect(stray.status).toBe(426);
    } finally {
      await s.close();
    }
  });

  test("a device publishes over wss:// trusting the CA and its QoS 1 message is acknowledged", async () => {
    const s = await startStack("ws_secure", { ...tlsEnv, FIELDQ_MQTT_WS_PORT: "0" });
    try {
      const url = `wss://localhost:${s.stack.mqttPorts.ws}/mqtt`;
      const client = await mqtt.connectAsync(url, { ...device("modem-0011"), ca });
      await client.publishAsync(faultTopic("modem-0011"), fault(1), { qos: 1 });
      await client.endAsync();
      await s.drained();
      expect(await s.faults()).toEqual([[expect.any(String), 1, "WAN_DOWN", "modem-0011"]]);
      await expect(mqtt.connectAsync(url, device("modem-0011"))).rejects.toMatchObject({
        code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      });
    } finally {
      await s.close();
    }
  });

  test('a WebSocket connection gets the "mqtt" subprotocol, and a frame larger than the largest packet closes it unread', async () => {
    const s = await startStack("ws_frame", { FIELDQ_MQTT_WS_PORT: "0", FIELDQ_MAX_PAYLOAD_BYTES: "1024" });
    try {
      const socket = new WebSocket(`ws://127.0.0.1:${s.stack.mqttPorts.ws}/mqtt`, ["mqttv3.1", "mqtt"]);
      await once(socket, "open");
      expect(socket.protocol).toBe("mqtt");
      socket.send(Buffer.alloc(1024 * 1024));
      const [code] = await once(socket, "close");
      expect(code).toBe(1009);
    } finally {
      await s.close();
    }
  });
});

describe("the API over HTTPS", () => {
  function health(url: string, options: { ca?: Buffer }) {
    return new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
      const req = request(`${url}/api/v1/health`, options, (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on("end", () => resolve({ status: response.statusCode, body }));
      });
      req.on("error", reject);
      req.end();
    });
  }

  test("answers /api/v1/health to a client trusting the CA and fails the handshake of one that does not", async () => {
    const db = await testDatabase("tls_api");
    const dataDir = await mkdtemp(join(tmpdir(), "fieldq-tls-api-"));
    const stack = await startFieldq(
      testConfig(db, dataDir, tlsEnv),
      { logger: silentLogger },
      {
        broker: true,
        api: true,
      },
    );
    try {
      const url = (stack.apiUrl as string).replace("127.0.0.1", "localhost");
      expect(url).toMatch(/^https:\/\//);
      const answered = await health(url, { ca });
      expect(answered.status).toBe(200);
      expect(JSON.parse(answered.body)).toMatchObject({ status: expect.any(String) });
      await expect(health(url, {})).rejects.toMatchObject({ code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
      await expect(fetch(`${url.replace("https", "http")}/api/v1/health`)).rejects.toThrow();
    } finally {
      await stack.close();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

test("fieldq broker logs every listening port: plain MQTT, MQTT over TLS and secure WebSocket", async () => {
  const db = await testDatabase("tls_cli");
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-tls-cli-"));
  const child = spawn("node", ["--import", "tsx", "cli/fieldq.ts", "broker"], {
    env: {
      ...process.env,
      ...tlsEnv,
      FIELDQ_MQTT_HOST: "127.0.0.1",
      FIELDQ_MQTT_PORT: "0",
      FIELDQ_MQTT_WS_PORT: "0",
      FIELDQ_INFLUX_URL: db.url,
      FIELDQ_INFLUX_DB: db.database,
      FIELDQ_DATA_DIR: dataDir,
      FIELDQ_DEVICE_SECRET: TEST_SECRET,
      FIELDQ_LOG_FORMAT: "json",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const listening: Array<Record<string, unknown>> = [];
    for await (const text of createInterface({ input: child.stdout })) {
      const line = JSON.parse(text) as Record<string, unknown>;
      if (typeof line.listener === "string") listening.push(line);
      if (listening.length === 3) break;
    }
    child.stdout.resume();
    expect(listening.map((l) => [l.listener, l.msg])).toEqual([
      ["mqtt", `MQTT listening on port ${listening[0]?.port}`],
      ["mqtts", `MQTT over TLS listening on port ${listening[1]?.port}`],
      ["ws", `MQTT over secure WebSocket listening on port ${listening[2]?.port}`],
    ]);
    await mosquittoPub(
      listening[1]?.port as number,
      "modem-0020",
      ["--cafile", join(certs, "ca.crt")],
      fault(1),
    );
    child.kill("SIGTERM");
    const [code] = await once(child, "close");
    expect(code).toBe(0);
  } finally {
    child.kill("SIGKILL");
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
