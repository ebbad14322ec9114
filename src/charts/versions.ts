// Picking one chart version from those a repository or registry offers, as helm does: an
// exact version wins as written; otherwise `version` is a semver range (Helm's constraint
// syntax: `^1.2`, `~1.2.3`, `1.x`, `>=1.0 <2.0`, `>=1.0, <2.0`, `1.0 || 2.0`); no version
// means the newest stable one. Pre-releases match only a range that names one, as in helm.
import semver from 'semver';

export type VersionPick = { ok: true; version: string } | { ok: false; reason: string };

/** Normalises Helm's constraint syntax to node-semver's (commas mean "and"). */
function toRange(constraint: string): string {
  return constraint
    .split('||')
    .map((part) => part.replace(/,/g, ' ').replace(/\s+/g, ' ').trim())
    .join(' || ');
}

export function pickVersion(available: readonly string[], constraint: string | undefined): VersionPick {
  const wanted = constraint?.trim();
  if (wanted && available.includes(wanted)) return { ok: true, version: wanted };
  const parsed = available
    .map((v) => ({ v, s: semver.parse(v, { loose: true }) }))
    .filter((x): x is { v: string; s: semver.SemVer } => x.s !== null)
    .sort((a, b) => semver.rcompare(a.s, b.s));
  if (!wanted) {
    const stable = parsed.find((x) => x.s.prerelease.length === 0);
    return stable
      ? { ok: true, version: stable.v }
      : { ok: false, reason: `no stable version among ${summary(available)}` };
  }
  let range: semver.Range;
  try {
    range = new semver.Range(toRange(wanted), { loose: true });
  } catch {
    return { ok: false, reason: `${JSON.stringify(wanted)} is neither a version nor a semver range` };
  }
  const match = parsed.find((x) => range.test(x.s));
  return match
    ? { ok: true, version: match.v }
    : { ok: false, reason: `no version matches ${JSON.stringify(wanted)} (available: ${summary(available)})` };
}

/** True when `constraint` names one exact version (no range can move it). */
export function isExactVersion(constraint: string | undefined): boolean {
  return constraint !== undefined && semver.valid(constraint.trim(), { loose: true }) !== null;
}

function summary(versions: readonly string[]): string {
  if (versions.length === 0) return 'none';
  const sorted = [...versions].sort((a, b) => {
    const x = semver.parse(a, { loose: true });
    const y = semver.parse(b, { loose: true });
    return x && y ? semver.rcompare(x, y) : a.localeCompare(b);
  });
  return sorted.length > 5 ? `${sorted.slice(0, 5).join(', ')}, ...` : sorted.join(', ');
}
