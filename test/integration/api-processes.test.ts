import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { addToken, EMPTY_TOKENS_FILE, writeTokensFile } from "../../api/token-book.js";
import type { CommandList, CommandView } from "../../contract/api/commands.js";
import type { IssueDetail, IssuePage } from "../../contract/api/issues.js";
import { deviceKey } from "../../contract/device-key.js";
import { commandFilter, faultTopic, helloTopic } from "../../contract/topics.js";
import { silentLogger } from "../../observe/logger.js";
import { type FieldqHandle, startFieldq } from "../../stack/start-stack.js";
import { httpRequest } from "../support/app-request.js";
import { testDatabase } from "../support/influx.js";
import { TEST_SECRET, testConfig } from "../support/stack.js";

// Several API processes (`fieldq api`) over one InfluxDB and one tokens file, beside one broker process: what
// one API writes (a command, an issue's transition) the other reads, and a token added to the file opens both.
// The API keeps nothing of its own that another must see: reads go to InfluxDB, writes too.

const OPERATOR = "operator-token-1";
const DEVICE = "modem-api-procs-1";

let db: Awaited<ReturnType<typeof testDatabase>>;
const dirs: string[] = [];
let broker: FieldqHandle;
const apis: FieldqHandle[] = [];
let tokensFile: string;
let device: mqtt.MqttClient;

const call = (api: FieldqHandle, method: "GET" | "POST", path: string, body?: unknown, token = OPERATOR) =>
  httpRequest(api.apiUrl ?? "", method, path, token, body);

beforeAll(async () => {
  db = await testDatabase("api_processes");
  const dir = async () => {
    const made = await mkdtemp(join(tmpdir(), "fieldq-api-procs-"));
    dirs.push(made);
    return made;
  };
  const shared = await dir();
  tokensFile = join(shared, "tokens.json");
  writeTokensFile(tokensFile, EMPTY_TOKENS_FILE);
  broker = await startFieldq(
    testConfig(db, await dir()),
    { logger: silentLogger },
    { broker: true, api: false },
  );
  for (let i = 0; i < 2; i++) {
    const config = testConfig(db, await dir(), { FIELDQ_TOKENS_FILE: tokensFile });
    apis.push(await startFieldq(config, { logger: silentLogger }, { broker: false, api: true }));
  }
  device = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.mqttPort}`, {
    clientId: DEVICE,
    username: DEVICE,
    password: deviceKey(TEST_SECRET, DEVICE),
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  const hello = { kind: "modem", model: "FQ-Api 1", firmware: "1.0", hardware: "A", serial: "SN-API-1" };
  await device.publishAsync(helloTopic(DEVICE), JSON.stringify(hello), { qos: 1, retain: true });
}, 60_000);

afterAll(async () => {
  await device?.endAsync(true).catch(() => {});
  for (const api of apis) await api.close();
  await broker?.close();
  await db?.drop();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const [first, second] = [() => apis[0] as FieldqHandle, () => apis[1] as FieldqHandle];

describe("two API processes over one InfluxDB", () => {
  test("both list the device the broker's process heard, alike", async () => {
    const listed = async (api: FieldqHandle) => {
      const answer = await call(api, "GET", `/api/v1/devices/${DEVICE}`);
      return answer.status === 200 ? answer.body : answer.status;
    };
    await expect.poll(() => listed(first()), { timeout: 15_000 }).toMatchObject({ id: DEVICE });
    await expect.poll(() => listed(second()), { timeout: 15_000 }).toEqual(await listed(first()));
  }, 30_000);

  test("a command queued through one is listed through the other, and delivered", async () => {
    const got: string[] = [];
    device.on("message", (topic) => got.push(topic));
    await device.subscribeAsync(commandFilter(DEVICE), { qos: 1 });
    const queued = await call(first(), "POST", `/api/v1/devices/${DEVICE}/commands`, { type: "reboot" });
    expect(queued.status).toBe(202);
    const id = (queued.body as CommandView).id;
    const statusThrough = async (api: FieldqHandle) => {
      const list = await call(api, "GET", `/api/v1/devices/${DEVICE}/commands`);
      return (list.body as CommandList).items.find((c) => c.id === id)?.status;
    };
    expect(await statusThrough(second())).toMatch(/queued|delivered/);
    await expect.poll(() => got.length, { timeout: 15_000 }).toBe(1);
    await expect.poll(() => statusThrough(second()), { timeout: 15_000 }).toBe("delivered");
    expect(await statusThrough(first())).toBe("delivered");
  }, 30_000);

  test("an issue acknowledged through one shows acknowledged through the other", async () => {
    const fault = { ts: Date.now(), seq: 1, code: "API_PROCS_E1", severity: "error" };
    await device.publishAsync(faultTopic(DEVICE), JSON.stringify(fault), { qos: 1 });
    const issueId = async () => {
      const page = await call(second(), "GET", "/api/v1/issues");
      return (page.body as IssuePage).items.find((i) => i.codes.includes("API_PROCS_E1"))?.id;
    };
    await expect.poll(issueId, { timeout: 15_000 }).toBeDefined();
    const id = (await issueId()) as string;
    const moved = await call(first(), "POST", `/api/v1/issues/${id}/transitions`, { to: "acknowledged" });
    expect(moved.status).toBe(200);
    const detail = await call(second(), "GET", `/api/v1/issues/${id}`);
    expect(detail.status).toBe(200);
    expect((detail.body as IssueDetail).status).toBe("acknowledged");
  }, 30_000);

  test("a token added to the shared tokens file opens both", async () => {
    const token = "api-procs-token-0123456789abcdef";
    const added = addToken(EMPTY_TOKENS_FILE, { name: "Ada", role: "viewer", token, created: new Date() });
    if (!added.ok) throw new Error(added.error);
    expect((await call(first(), "GET", "/api/v1/devices", undefined, token)).status).toBe(401);
    writeTokensFile(tokensFile, added.value);
    for (const api of [first(), second()]) {
      await expect
        .poll(async () => (await call(api, "GET", "/api/v1/devices", undefined, token)).status, {
          timeout: 10_000,
        })
        .toBe(200);
    }
  }, 30_000);
});
