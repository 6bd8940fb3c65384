import { jsx } from "hono/jsx";
import { describe, expect, it } from "vitest";
import { Chart, When } from "../../dashboard/components.js";

// What every page is made of, rendered as the server sends it.

describe("a chart's embedded spec", () => {
  it("cannot be closed by a label: a device-supplied '</script>' stays text inside the JSON", async () => {
    const label = "</script><script>alert(1)</script>";
    const html = String(
      await jsx(Chart, {
        chart: {
          title: "Top issues",
          summary: "One issue.",
          spec: { kind: "pareto", labels: [label], values: [1] },
        },
      }),
    );
    expect(html).not.toContain("<script>alert(1)");
    const json = /<script type="application\/json" class="chart-spec">(.*?)<\/script>/.exec(html)?.[1] ?? "";
    expect(JSON.parse(json)).toEqual({ kind: "pareto", labels: [label], values: [1] });
  });
});

describe("a time", () => {
  it("is UTC text with its instant for the browser to show in local time, UTC on hover", async () => {
    const html = String(await jsx(When, { iso: "2026-12-02T14:05:09.000Z" }));
    expect(html).toBe(
      '<time datetime="2026-12-02T14:05:09.000Z" title="2026-12-02 14:05 UTC" data-format="datetime">2026-12-02 14:05 UTC</time>',
    );
  });
});
