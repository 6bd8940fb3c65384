// Ordering of firmware labels. The rule, in order:
// 1. A leading "v" or "V" before a digit is ignored ("v2.4" == "2.4"); build metadata after "+" is ignored
//    (semver §10).
// 2. A label that does not start with a digit ("unknown", "beta", "R7.57") is not a version: it sorts
//    before every version, so it is never "at least" a real fix version. Such labels order among themselves
//    by the segment rule below.
// 3. A version is `release[-prerelease]`, split at the first "-". Release segments are split on "." and
//    compared one by one; a missing segment counts as "0", so "1.0" == "1.0.0".
// 4. A segment is compared as runs of digits and of other characters: digit runs numerically ("10" > "9",
//    "01" == "1"), other runs case-insensitively by code unit, a digit run before a text run, and a segment
//    that is a prefix of the other comes first ("57" < "57b").
// 5. With equal releases, a pre-release comes before the release ("2.4.0-rc1" < "2.4.0"); two pre-releases
//    compare identifier by identifier (split on "."), the shorter list first when one is a prefix of the
//    other ("1.0-rc" < "1.0-rc.1", semver §11).
// Labels that differ only in ways these rules ignore (case, "v", build metadata, trailing ".0") are equal.

type Parsed =
  | { version: false; segments: string[] }
  | { version: true; release: string[]; prerelease: string[] | null };

function parse(label: string): Parsed {
  const trimmed = label.trim();
  const plus = trimmed.indexOf("+");
  const withoutBuild = plus === -1 ? trimmed : trimmed.slice(0, plus);
  const bare = /^[vV]\d/.test(withoutBuild) ? withoutBuild.slice(1) : withoutBuild;
  if (!/^\d/.test(bare)) return { version: false, segments: bare.split(".") };
  const dash = bare.indexOf("-");
  const release = (dash === -1 ? bare : bare.slice(0, dash)).split(".");
  const prerelease = dash === -1 ? null : bare.slice(dash + 1).split(".");
  return { version: true, release, prerelease };
}

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);

function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, "");
  const y = b.replace(/^0+(?=\d)/, "");
  if (x.length !== y.length) return sign(x.length - y.length);
  return x < y ? -1 : x > y ? 1 : 0;
}

function compareSegment(a: string, b: string): number {
  const ta = a.match(/\d+|\D+/g) ?? [];
  const tb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ta.length, tb.length); i++) {
    const x = ta[i] ?? "";
    const y = tb[i] ?? "";
    const xDigits = /^\d/.test(x);
    const yDigits = /^\d/.test(y);
    if (xDigits !== yDigits) return xDigits ? -1 : 1;
    const order = xDigits ? compareDigits(x, y) : compareText(x, y);
    if (order !== 0) return order;
  }
  return sign(ta.length - tb.length);
}

function compareText(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Segment lists of equal standing; `pad` fills the shorter one ("1.0" == "1.0.0"). */
function compareLists(a: readonly string[], b: readonly string[], pad: string | null): number {
  const length = Math.max(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a[i] ?? pad;
    const y = b[i] ?? pad;
    if (x === null) return -1;
    if (y === null) return 1;
    const order = compareSegment(x, y);
    if (order !== 0) return order;
  }
  return 0;
}

/** -1, 0 or 1 as firmware label `a` is older than, as new as, or newer than `b`; see the rule above. */
export function compareVersions(a: string, b: string): number {
  const x = parse(a);
  const y = parse(b);
  if (!x.version && !y.version) return compareLists(x.segments, y.segments, null);
  if (!x.version) return -1;
  if (!y.version) return 1;
  const release = compareLists(x.release, y.release, "0");
  if (release !== 0) return release;
  if (x.prerelease === null || y.prerelease === null) {
    if (x.prerelease === y.prerelease) return 0;
    return x.prerelease === null ? 1 : -1;
  }
  return compareLists(x.prerelease, y.prerelease, null);
}

/** True when `version` is `floor` or newer. */
export const isAtLeast = (version: string, floor: string): boolean => compareVersions(version, floor) >= 0;
