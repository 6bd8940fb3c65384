import type { ChartSpec } from "../chart-spec.js";

// Draws every chart a page embeds (components.tsx Chart): the spec is the JSON script beside the element.

export function drawCharts(root: ParentNode): void {
  for (const el of root.querySelectorAll<HTMLElement>("[data-chart]:not([data-drawn])")) {
    const script = el.parentElement?.querySelector("script.chart-spec");
    if (!script?.textContent) continue;
    const spec = JSON.parse(script.textContent) as ChartSpec;
    el.dataset.drawn = spec.kind;
  }
}
