// How numbers read on a page: the same on every page. Times are rendered by components.tsx <When>.

const whole = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });

/** 12,345 */
export const count = (n: number) => whole.format(n);

/** Two significant digits, at most two decimals: 0.42, 3.1, 120. */
export function decimal(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  if (n === 0) return "0";
  const digits = Math.abs(n) >= 10 ? 0 : Math.abs(n) >= 1 ? 1 : 2;
  return n.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** A share (0..1) as a percentage: 12.5% */
export function percent(share: number | null | undefined): string {
  if (share === null || share === undefined || !Number.isFinite(share)) return "–";
  return `${(share * 100).toLocaleString("en", { maximumFractionDigits: share < 0.1 ? 1 : 0 })}%`;
}

/** A rate ratio with its interval: "1.92 (95% CI 1.06–3.69)". */
export function ratioText(ratio: number | null, low: number | null, high: number | null): string {
  if (ratio === null) return "no ratio (no exposure on one side)";
  const interval = low === null || high === null ? "" : ` (95% CI ${decimal(low)}–${decimal(high)})`;
  return `${decimal(ratio)}${interval}`;
}

/** 3 d 4 h, 5 h 12 min, 42 s */
export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return min % 60 === 0 ? `${h} h` : `${h} h ${min % 60} min`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d} d` : `${d} d ${h % 24} h`;
}
