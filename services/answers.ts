// A small memo of a service's answers by request, each valid for one version of the rollups it was computed
// from (RollupView.version): asking the same thing again costs a revision check, not the computation.

export function answers<T>(max = 200) {
  const held = new Map<string, { version: string; value: T }>();
  return (key: string, version: string | undefined, compute: () => T): T => {
    const known = held.get(key);
    if (version !== undefined && known?.version === version) return known.value;
    const value = compute();
    if (version === undefined) return value;
    held.delete(key);
    held.set(key, { version, value });
    for (const oldest of held.keys()) {
      if (held.size <= max) break;
      held.delete(oldest);
    }
    return value;
  };
}
