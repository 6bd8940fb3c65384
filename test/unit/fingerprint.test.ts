import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEFAULT_FINGERPRINT_RULES,
  type FaultIdentity,
  FingerprintRules,
  fingerprint,
  loadFingerprintRules,
  parseFingerprintRules,
  resolveIssueId,
} from "../../analytics/fingerprint.js";

const rules = (list: unknown[]): FingerprintRules => FingerprintRules.parse({ version: 1, rules: list });

const modem = (code: string, extra: Partial<FaultIdentity> = {}): FaultIdentity => ({
  kind: "modem",
  model: "FQ-Modem 7590",
  code,
  ...extra,
});

describe("fingerprint without rules", () => {
  it("keys a fault by kind, model and code", () => {
    const fp = fingerprint(
      modem("DSL_RESYNC", { component: "dsl", context: { snr_margin_db: 6 } }),
      DEFAULT_FINGERPRINT_RULES,
    );
    expect(fp.key).toBe("modem/FQ-Modem 7590/DSL_RESYNC");
    expect(fp.parts).toEqual({
      kind: "modem",
      model: "FQ-Modem 7590",
      code: "DSL_RESYNC",
      faultCode: "DSL_RESYNC",
      split: {},
    });
  });

  it("gives a pinned id that stays the same across calls", () => {
    const fault = modem("DSL_RESYNC");
    const fp = fingerprint(fault, DEFAULT_FINGERPRINT_RULES);
    expect(fp.id).toBe("yL5ZpojYinkqPsDW");
    expect(fingerprint({ ...fault }, DEFAULT_FINGERPRINT_RULES).id).toBe(fp.id);
    expect(fp.id).toMatch(/^[A-Za-z0-9_-]{16}$/);
  });

  it("gives different ids to different keys", () => {
    const a = fingerprint(modem("DSL_RESYNC"), DEFAULT_FINGERPRINT_RULES);
    const b = fingerprint(modem("DSL_RETRAIN"), DEFAULT_FINGERPRINT_RULES);
    expect(a.id).not.toBe(b.id);
  });

  it.each([
    [{ model: "FQ-Modem 7590/B" }, "modem/FQ-Modem 7590%2FB/DSL_RESYNC"],
    [{ model: "FQ #1" }, "modem/FQ %231/DSL_RESYNC"],
    [{ code: "A=B%" }, "modem/FQ-Modem 7590/A%3DB%25"],
    [{ kind: "line\nbreak" }, "line%0Abreak/FQ-Modem 7590/DSL_RESYNC"],
  ])("escapes separators in %o", (change, key) => {
    expect(fingerprint({ ...modem("DSL_RESYNC"), ...change }, DEFAULT_FINGERPRINT_RULES).key).toBe(key);
  });

  it("keeps a slash in a model apart from the separator between model and code", () => {
    const slashInModel = fingerprint({ kind: "modem", model: "A/B", code: "C" }, DEFAULT_FINGERPRINT_RULES);
    const slashInCode = fingerprint({ kind: "modem", model: "A", code: "B/C" }, DEFAULT_FINGERPRINT_RULES);
    expect(slashInModel.key).not.toBe(slashInCode.key);
    expect(slashInModel.id).not.toBe(slashInCode.id);
  });
});

describe("fingerprint rules", () => {
  const example = rules([
    { match: { kind: "modem", code: ["DSL_RESYNC", "DSL_RETRAIN"] }, mergeAs: "DSL_LINE_UNSTABLE" },
    { match: { code: "WIFI_RADIO_CRASH" }, splitBy: { context: "band" } },
    { match: { kind: "printer" }, addComponent: true },
  ]);

  it("merges the listed codes into one issue under the rule's name", () => {
    const resync = fingerprint(modem("DSL_RESYNC"), example);
    const retrain = fingerprint(modem("DSL_RETRAIN"), example);
    expect(resync.key).toBe("modem/FQ-Modem 7590/DSL_LINE_UNSTABLE");
    expect(retrain.id).toBe(resync.id);
    expect(retrain.parts).toMatchObject({ code: "DSL_LINE_UNSTABLE", faultCode: "DSL_RETRAIN" });
  });

  it("leaves codes the merge does not list alone", () => {
    expect(fingerprint(modem("WAN_DOWN"), example).key).toBe("modem/FQ-Modem 7590/WAN_DOWN");
  });

  it("keeps the model in a merged key, so merges stay per model", () => {
    const other = fingerprint({ ...modem("DSL_RESYNC"), model: "FQ-Modem 5530" }, example);
    expect(other.key).toBe("modem/FQ-Modem 5530/DSL_LINE_UNSTABLE");
  });

  it("splits by a context value", () => {
    const five = fingerprint(
      modem("WIFI_RADIO_CRASH", { context: { band: "5GHz", clients_lost: 3 } }),
      example,
    );
    const two = fingerprint(modem("WIFI_RADIO_CRASH", { context: { band: "2.4GHz" } }), example);
    expect(five.key).toBe("modem/FQ-Modem 7590/WIFI_RADIO_CRASH#band=5GHz");
    expect(five.parts.split).toEqual({ band: "5GHz" });
    expect(two.id).not.toBe(five.id);
  });

  it.each([
    ["absent", undefined],
    ["null", null],
    ["empty", {}],
    ["empty string", { band: "" }],
  ])("leaves the split segment out when the context value is %s", (_, context) => {
    expect(fingerprint(modem("WIFI_RADIO_CRASH", { context }), example).key).toBe(
      "modem/FQ-Modem 7590/WIFI_RADIO_CRASH",
    );
  });

  it("does not take a split value from the object prototype", () => {
    const split = rules([{ match: {}, splitBy: { context: "constructor" } }]);
    expect(fingerprint(modem("X", { context: {} }), split).key).toBe("modem/FQ-Modem 7590/X");
  });

  it.each([
    [5, "#channel=5"],
    [true, "#channel=true"],
    ["a/b#c=d", "#channel=a%2Fb%23c%3Dd"],
  ])("writes the context value %o as %s", (value, segment) => {
    const split = rules([{ match: {}, splitBy: { context: "channel" } }]);
    expect(fingerprint(modem("X", { context: { channel: value } }), split).key).toBe(
      `modem/FQ-Modem 7590/X${segment}`,
    );
  });

  it("splits by several context values in the rule's order", () => {
    const split = rules([{ match: {}, splitBy: { context: ["channel", "band"] } }]);
    const fp = fingerprint(modem("X", { context: { band: "5GHz", channel: 36 } }), split);
    expect(fp.key).toBe("modem/FQ-Modem 7590/X#channel=36#band=5GHz");
  });

  it("adds the component for the kinds a rule names", () => {
    const printer = { kind: "printer", model: "FQ-Print Mk3", code: "NOZZLE_CLOG", component: "extruder" };
    expect(fingerprint(printer, example).key).toBe("printer/FQ-Print Mk3/NOZZLE_CLOG#component=extruder");
    expect(fingerprint(printer, example).parts.component).toBe("extruder");
    expect(fingerprint(modem("WAN_DOWN", { component: "wan" }), example).key).toBe(
      "modem/FQ-Modem 7590/WAN_DOWN",
    );
  });

  it("leaves the component segment out when the fault has none", () => {
    const printer = { kind: "printer", model: "FQ-Print Mk3", code: "NOZZLE_CLOG", component: null };
    const fp = fingerprint(printer, example);
    expect(fp.key).toBe("printer/FQ-Print Mk3/NOZZLE_CLOG");
    expect(fp.parts).not.toHaveProperty("component");
  });

  it("puts the component before the split segments", () => {
    const both = rules([{ match: {}, addComponent: true, splitBy: { context: "band" } }]);
    const fp = fingerprint(modem("X", { component: "wifi", context: { band: "5GHz" } }), both);
    expect(fp.key).toBe("modem/FQ-Modem 7590/X#component=wifi#band=5GHz");
  });

  it("matches on kind, model and code together", () => {
    const narrow = rules([
      { match: { kind: "modem", model: "FQ-Modem 5530", code: "X" }, addComponent: true },
    ]);
    const f = { kind: "modem", model: "FQ-Modem 5530", code: "X", component: "c" };
    expect(fingerprint(f, narrow).key).toBe("modem/FQ-Modem 5530/X#component=c");
    expect(fingerprint({ ...f, model: "FQ-Modem 7590" }, narrow).key).toBe("modem/FQ-Modem 7590/X");
    expect(fingerprint({ ...f, kind: "router" }, narrow).key).toBe("router/FQ-Modem 5530/X");
    expect(fingerprint({ ...f, code: "Y" }, narrow).key).toBe("modem/FQ-Modem 5530/Y");
  });
});

describe("fingerprint rule precedence", () => {
  it("applies the first matching rule of each effect", () => {
    const ordered = rules([
      { match: { code: "A" }, mergeAs: "FIRST" },
      { match: { code: "A" }, mergeAs: "SECOND" },
    ]);
    expect(fingerprint(modem("A"), ordered).parts.code).toBe("FIRST");
  });

  it("combines effects from different rules", () => {
    const layered = rules([
      { match: { code: ["A", "B"] }, mergeAs: "AB" },
      { match: { code: "A" }, splitBy: { context: "band" } },
      { match: {}, addComponent: true },
    ]);
    const fp = fingerprint(modem("A", { component: "c", context: { band: "5GHz" } }), layered);
    expect(fp.key).toBe("modem/FQ-Modem 7590/AB#component=c#band=5GHz");
  });

  it("lets an earlier addComponent: false exempt what a later rule covers", () => {
    const exempt = rules([
      { match: { model: "FQ-Print Mini" }, addComponent: false },
      { match: { kind: "printer" }, addComponent: true },
    ]);
    const mini = { kind: "printer", model: "FQ-Print Mini", code: "X", component: "extruder" };
    expect(fingerprint(mini, exempt).key).toBe("printer/FQ-Print Mini/X");
    expect(fingerprint({ ...mini, model: "FQ-Print Mk3" }, exempt).key).toBe(
      "printer/FQ-Print Mk3/X#component=extruder",
    );
  });

  it("matches later rules on the fault's own code, not on the merged name", () => {
    const chained = rules([
      { match: { code: "A" }, mergeAs: "M" },
      { match: { code: "M" }, addComponent: true },
    ]);
    expect(fingerprint(modem("A", { component: "c" }), chained).key).toBe("modem/FQ-Modem 7590/M");
  });
});

describe("parseFingerprintRules", () => {
  it("accepts the example rules file", async () => {
    const text = await readFile(
      new URL("../../docs/fingerprint-rules.example.json", import.meta.url),
      "utf8",
    );
    const result = parseFingerprintRules(JSON.parse(text));
    expect(result.ok).toBe(true);
  });

  it.each([
    [{ version: 2, rules: [] }, "version"],
    [{ rules: [] }, "version"],
    [{ version: 1, rules: {} }, "rules"],
    [{ version: 1, rules: [{ mergeAs: "X" }] }, "rules[0].match"],
    [{ version: 1, rules: [{ match: { codes: ["A"] }, mergeAs: "X" }] }, "rules[0].match"],
    [{ version: 1, rules: [{ match: { code: [] }, mergeAs: "X" }] }, "rules[0].match.code"],
    [{ version: 1, rules: [{ match: { code: "bad,code" }, mergeAs: "X" }] }, "rules[0].match.code"],
    [{ version: 1, rules: [{ match: {}, mergeAs: "X" }] }, "rules[0].mergeAs"],
    [{ version: 1, rules: [{ match: { kind: "modem" } }] }, "rules[0]"],
    [{ version: 1, rules: [{ match: {}, addComponent: "yes" }] }, "rules[0].addComponent"],
    [{ version: 1, rules: [{ match: {}, splitBy: { context: "component" } }] }, "rules[0].splitBy.context"],
    [{ version: 1, rules: [{ match: {}, splitBy: { field: "band" } }] }, "rules[0].splitBy"],
    [
      {
        version: 1,
        rules: [
          { match: {}, addComponent: true },
          { match: {}, colour: 1 },
        ],
      },
      "rules[1]",
    ],
  ])("refuses %j naming %s", (json, path) => {
    const result = parseFingerprintRules(json);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe("INVALID_RULES");
    expect(result.error.issues.map((issue) => issue.path)).toContain(path);
    expect(result.error.message.startsWith(`${result.error.issues[0]?.path}: `)).toBe(true);
  });
});

describe("loadFingerprintRules", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "fieldq-rules-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("gives the default rules when the file is missing", async () => {
    const result = await loadFingerprintRules(join(dir, "missing.json"));
    expect(result).toEqual({ ok: true, value: DEFAULT_FINGERPRINT_RULES });
  });

  it("reads a valid file", async () => {
    const file = join(dir, "good.json");
    await writeFile(
      file,
      JSON.stringify({ version: 1, rules: [{ match: { kind: "printer" }, addComponent: true }] }),
    );
    const result = await loadFingerprintRules(file);
    expect(result.ok && result.value.rules).toHaveLength(1);
  });

  it("names the file when it is not JSON", async () => {
    const file = join(dir, "broken.json");
    await writeFile(file, "{ version: 1");
    const result = await loadFingerprintRules(file);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toMatchObject({ code: "INVALID_JSON", file });
    expect(result.error.message.startsWith(`${file}: `)).toBe(true);
  });

  it("names the file and the path of a rule that does not fit the schema", async () => {
    const file = join(dir, "invalid.json");
    await writeFile(file, JSON.stringify({ version: 1, rules: [{ match: {}, splitBy: { context: 7 } }] }));
    const result = await loadFingerprintRules(file);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toMatchObject({ code: "INVALID_RULES", file });
    expect(result.error.message).toContain(`${file}: rules[0].splitBy.context: `);
  });

  it("reports a path it cannot read as a file", async () => {
    const result = await loadFingerprintRules(dir);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toMatchObject({ code: "UNREADABLE", file: dir });
  });
});

describe("resolveIssueId", () => {
  it.each([
    ["an unmerged id to itself", [], "a", "a"],
    ["a merged id to its target", [["a", "b"]], "a", "b"],
    [
      "along a chain",
      [
        ["a", "b"],
        ["b", "c"],
      ],
      "a",
      "c",
    ],
    ["a self-merge to itself", [["a", "a"]], "a", "a"],
    [
      "a two-cycle to its smallest id from either end",
      [
        ["b", "a"],
        ["a", "b"],
      ],
      "b",
      "a",
    ],
    [
      "a two-cycle to its smallest id from the other end",
      [
        ["b", "a"],
        ["a", "b"],
      ],
      "a",
      "a",
    ],
    [
      "into a cycle to the cycle's smallest id",
      [
        ["x", "c"],
        ["c", "d"],
        ["d", "c"],
      ],
      "x",
      "c",
    ],
  ])("resolves %s", (_, pairs, start, expected) => {
    const merges = new Map(pairs as [string, string][]);
    expect(resolveIssueId(start, merges)).toBe(expected);
  });

  it("resolves every member of a long cycle to the same id", () => {
    const ids = Array.from({ length: 50 }, (_, i) => `id${String(i).padStart(2, "0")}`);
    const merges = new Map(ids.map((id, i) => [id, ids[(i + 7) % ids.length] ?? id]));
    const targets = new Set(ids.map((id) => resolveIssueId(id, merges)));
    expect([...targets]).toEqual(["id00"]);
  });
});
