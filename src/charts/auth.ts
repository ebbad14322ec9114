// Credentials and trust for chart repositories and OCI registries (`--chart-auth-file`, SPEC 6):
// a YAML list of entries matched by URL prefix, the longest match winning. They come from the
// agent's configuration (a mounted Secret), never from Git, and leave this module only as
// request headers and TLS options: `secrets()` lists every value to scrub from anything printed.
import { readFileSync, statSync } from 'node:fs';
import { MooringError } from '../errors.js';
import { bool, list, object, refine, str, validate, type Schema } from '../model/schema.js';
import { parseYaml } from '../model/yaml.js';

export interface ChartAuthEntry {
  /** `https://host/path/` or `oci://host/path/`: the prefix of the URLs this entry covers. */
  url: string;
  username?: string;
  password?: string;
  /** Bearer token; instead of username and password. */
  token?: string;
  /** PEM bundle trusted besides the public roots. */
  ca?: string;
  /** OCI over plain http (a registry on a private network). */
  plainHTTP?: boolean;
}

/** What one request to a repository or registry is sent with. */
export interface ChartCredentials {
  /** `Basic ...` or `Bearer ...`, when the entry has credentials. */
  authorization?: string;
  username?: string;
  password?: string;
  ca?: string;
  plainHTTP: boolean;
}

const entrySchema: Schema<ChartAuthEntry> = object(
  {
    url: refine(str(), (v) =>
      /^(https?|oci):\/\/[^/\s]+/.test(v) ? undefined : 'expected an http(s):// or oci:// URL prefix',
    ),
    username: str(),
    password: str(),
    token: str(),
    ca: str(),
    plainHTTP: bool(),
  },
  { required: ['url'] },
) as Schema<ChartAuthEntry>;

export class ChartAuth {
  private readonly entries: ChartAuthEntry[];

  constructor(entries: ChartAuthEntry[] = []) {
    this.entries = [...entries].sort((a, b) => prefixOf(b.url).length - prefixOf(a.url).length);
  }

  /** The credentials for `url` (`https://...` or `oci://...`): the longest matching prefix. */
  for(url: string): ChartCredentials {
    const target = prefixOf(url);
    const entry = this.entries.find((e) => target.startsWith(prefixOf(e.url)));
    if (!entry) return { plainHTTP: false };
    const authorization = entry.token
      ? `Bearer ${entry.token}`
      : entry.username !== undefined
        ? `Basic ${Buffer.from(`${entry.username}:${entry.password ?? ''}`).toString('base64')}`
        : undefined;
    return {
      ...(authorization ? { authorization } : {}),
      ...(entry.username !== undefined ? { username: entry.username, password: entry.password ?? '' } : {}),
      ...(entry.ca ? { ca: entry.ca } : {}),
      plainHTTP: entry.plainHTTP === true,
    };
  }

  /** Every secret value in the file, and the forms it travels in, for scrubbing output. */
  secrets(): string[] {
    const out: string[] = [];
    for (const e of this.entries) {
      if (e.password) out.push(e.password, encodeURIComponent(e.password));
      if (e.token) out.push(e.token);
      if (e.username !== undefined && e.password)
        out.push(Buffer.from(`${e.username}:${e.password}`).toString('base64'));
    }
    return out.filter((s) => s.length >= 4);
  }
}

/** `https://Host/a` and `https://host/a/` cover the same URLs; `/a` never covers `/ab`. */
function prefixOf(url: string): string {
  const m = /^([a-z]+:\/\/)([^/]*)(.*)$/i.exec(url.trim());
  if (!m) return url;
  const path = m[3]!.replace(/\/*$/, '/');
  return `${m[1]!.toLowerCase()}${m[2]!.toLowerCase()}${path}`;
}

/** Reads and checks `--chart-auth-file`. Errors name the file and the entry's field. */
export function loadChartAuth(file: string | undefined): ChartAuth {
  if (file === undefined) return new ChartAuth();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new MooringError(`cannot read --chart-auth-file (${(err as NodeJS.ErrnoException).code ?? err})`, {
      file,
    });
  }
  return parseChartAuth(text, file);
}

export function parseChartAuth(text: string, file: string): ChartAuth {
  const doc = parseYaml(text, file);
  if (doc === null) return new ChartAuth();
  const entries = validate(list(entrySchema), doc, file);
  entries.forEach((e, i) => {
    const field = (name: string) => ({ file, field: `[${i}].${name}` });
    if (/^[a-z]+:\/\/[^/]*@/i.test(e.url)) {
      throw new MooringError(
        'the URL must not carry credentials; use username and password (or token)',
        field('url'),
      );
    }
    if (e.token !== undefined && (e.username !== undefined || e.password !== undefined)) {
      throw new MooringError('give either token or username and password, not both', field('token'));
    }
    if (e.password !== undefined && e.username === undefined) {
      throw new MooringError('password needs a username', field('username'));
    }
    if (e.plainHTTP === true && !e.url.startsWith('oci://')) {
      throw new MooringError('plainHTTP applies to oci:// registries only; write http:// instead', field('plainHTTP'));
    }
    if (e.ca !== undefined && !e.ca.includes('-----BEGIN CERTIFICATE-----')) {
      throw new MooringError('ca must hold PEM certificates (-----BEGIN CERTIFICATE-----)', field('ca'));
    }
  });
  return new ChartAuth(entries);
}

/** Removes every secret of `auth` from `text`. */
export function scrubChartSecrets(text: string, auth: ChartAuth): string {
  let out = text;
  for (const s of auth.secrets().sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
  return out;
}

/**
 * Reads `--chart-auth-file` again whenever it changed on disk (a rotated Secret), else answers
 * from memory. A file that turns unreadable or invalid keeps the last good credentials.
 */
export function chartAuthLoader(file: string | undefined, onError?: (err: unknown) => void): () => ChartAuth {
  let auth = loadChartAuth(file);
  let stamp = file ? statStamp(file) : '';
  return () => {
    if (!file) return auth;
    const now = statStamp(file);
    if (now !== stamp) {
      try {
        auth = loadChartAuth(file);
        stamp = now;
      } catch (err) {
        onError?.(err);
      }
    }
    return auth;
  };
}

function statStamp(file: string): string {
  try {
    const st = statSync(file);
    return `${st.mtimeMs}:${st.size}:${st.ino}`;
  } catch {
    return 'missing';
  }
}
