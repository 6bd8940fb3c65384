import { execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect, test } from "vitest";
import { SESSION_COOKIE } from "../../dashboard/session.js";
import { silentLogger } from "../../observe/logger.js";
import { startFieldq } from "../../stack/start-stack.js";
import { faultyDevices } from "../support/faulty-devices.js";
import { testDatabase } from "../support/influx.js";
import { TEST_SECRET, testConfig } from "../support/stack.js";

// Named people through the real stack: `fieldq token add` (the real CLI, in its own process) writes the tokens
// file, the running API and dashboard accept the printed token without a restart, the issue's history names its
// holder, and `fieldq token revoke` refuses it from the next request. Each CLI run starts node with tsx (seconds
// on a busy machine), hence the long timeouts.

const run = promisify(execFile);
const API_TOKENS = "viewer:viewer-token-1,operator:operator-token-1,admin:admin-token-1";

async function fieldqToken(tokensFile: string, ...args: string[]) {
  return run("node", ["--import", "tsx", "cli/fieldq.ts", "token", ...args], {
    env: {
      ...process.env,
      FIELDQ_TOKENS_FILE: tokensFile,
      FIELDQ_API_TOKENS: API_TOKENS,
      FIELDQ_DEVICE_SECRET: TEST_SECRET,
      FIELDQ_LOG_LEVEL: "silent",
    },
  });
}

test("a token from fieldq token add works in the running API and dashboard at once, names its holder in the issue's history, and stops at revoke", {
  timeout: 120_000,
}, async () => {
  const db = await testDatabase("tokens");
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-tokens-"));
  const config = testConfig(db, dataDir);
  const tokensFile = config.http.tokensFile;
  const stack = await startFieldq(config, { logger: silentLogger }, { broker: true, api: true });
  const api = (path: string, token: string, init: RequestInit = {}) =>
    fetch(`${stack.apiUrl}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers },
    });
  try {
    await faultyDevices(stack.mqttPort ?? 0, ["printer-0001"], { code: "E42" });
    let issueId = "";
    await expect
      .poll(
        async () => {
          const issues = (await (await api("/api/v1/issues", "viewer-token-1")).json()) as {
            items: Array<{ id: string; key: string }>;
          };
          issueId = issues.items.find((issue) => issue.key === "printer/FQ-Print Mk3/E42")?.id ?? "";
          return issueId;
        },
        { timeout: 20_000, interval: 200 },
      )
      .not.toBe("");

    const added = await fieldqToken(tokensFile, "add", "--role", "operator", "--name", "Ana Lima");
    const token = added.stdout.trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(added.stderr).toContain("Ana Lima (operator)");
    expect((await stat(tokensFile)).mode & 0o777).toBe(0o600);
    const listed = await fieldqToken(tokensFile, "list");
    expect(listed.stdout).toMatch(/^Ana Lima +operator +\d{4}-\d\d-\d\dT[\d:.]+Z +[0-9a-f]{8}… +file$/m);
    expect(listed.stdout).not.toContain(token);

    // No restart: the API re-reads the file when it changes.
    const note = await api(`/api/v1/issues/${issueId}/notes`, token, {
      method: "POST",
      body: JSON.stringify({ text: "asked the customer for logs" }),
    });
    expect(note.status).toBe(200);
    const issue = (await (await api(`/api/v1/issues/${issueId}`, "viewer-token-1")).json()) as {
      history: Array<{ event: { type: string; actor: string; text?: string } }>;
    };
    expect(issue.history.map((entry) => entry.event)).toContainEqual(
      expect.objectContaining({ type: "note", actor: "Ana Lima", text: "asked the customer for logs" }),
    );

    // The dashboard signs in with the same book and says who is signed in.
    const origin = stack.apiUrl ?? "";
    const signIn = await fetch(`${origin}/sign-in`, {
      method: "POST",
      redirect: "manual",
      headers: { origin, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token, next: "/" }).toString(),
    });
    expect(signIn.status).toBe(303);
    const cookie = { cookie: `${SESSION_COOKIE}=${token}` };
    const page = await fetch(`${origin}/issues`, { headers: cookie, redirect: "manual" });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("Signed in as <strong>Ana Lima</strong> (operator)");

    await fieldqToken(tokensFile, "revoke", "--name", "ana lima");
    const refused = await api(`/api/v1/issues/${issueId}`, token);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({
      error: { code: "UNAUTHORIZED", message: "the bearer token is not valid" },
    });
    const signedOut = await fetch(`${origin}/issues`, { headers: cookie, redirect: "manual" });
    expect(signedOut.status).toBe(303);
    expect(signedOut.headers.get("location")).toBe(`/sign-in?next=${encodeURIComponent("/issues")}`);
    // The environment's tokens were never in the file and still work.
    expect((await api(`/api/v1/issues/${issueId}`, "viewer-token-1")).status).toBe(200);
  } finally {
    await stack.close();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test("fieldq token refuses an unknown role, a name in use and a name it does not know, with exit codes", {
  timeout: 120_000,
}, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-tokens-cli-"));
  const tokensFile = join(dataDir, "folder", "tokens.json");
  try {
    await expect(fieldqToken(tokensFile, "add", "--role", "root", "--name", "ana")).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('unknown role "root": one of viewer, operator, admin'),
    });
    await fieldqToken(tokensFile, "add", "--role", "viewer", "--name", "ana");
    await expect(fieldqToken(tokensFile, "add", "--role", "admin", "--name", "ANA")).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('a token named "ana" exists already'),
    });
    await expect(fieldqToken(tokensFile, "revoke", "--name", "carla")).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('no token named "carla" in the tokens file (there are: ana)'),
    });
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test("a viewer's token is refused every write the API has (403), a file token as much as the environment's", {
  timeout: 120_000,
}, async () => {
  const db = await testDatabase("tokens_viewer");
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-tokens-viewer-"));
  const config = testConfig(db, dataDir);
  const added = await fieldqToken(config.http.tokensFile, "add", "--role", "viewer", "--name", "vic");
  const fileViewer = added.stdout.trim();
  const stack = await startFieldq(config, { logger: silentLogger }, { broker: false, api: true });
  try {
    const doc = (await (await fetch(`${stack.apiUrl}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const writes = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods)
        .filter((method) => ["post", "put", "patch", "delete"].includes(method))
        .map((method) => ({ method: method.toUpperCase(), path: path.replace(/\{[^}]+\}/g, "x-1") })),
    );
    // The issue routes at least: a document without writes would prove nothing.
    expect(writes.length).toBeGreaterThanOrEqual(4);
    for (const viewer of ["viewer-token-1", fileViewer]) {
      for (const { method, path } of writes) {
        const response = await fetch(`${stack.apiUrl}${path}`, {
          method,
          headers: { authorization: `Bearer ${viewer}`, "content-type": "application/json" },
          body: "{}",
        });
        expect({ method, path, status: response.status }).toEqual({ method, path, status: 403 });
      }
    }
  } finally {
    await stack.close();
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
