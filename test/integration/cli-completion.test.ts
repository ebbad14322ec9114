// `mooring completion bash|zsh|fish`, loaded into the real shells and asked what they
// complete, as a user pressing TAB would: bash through its programmable completion
// (COMP_WORDS, the function `complete -F` registered), zsh through its completion system
// (compinit, an interactive zsh on a pseudo-terminal, TAB), fish through `complete -C`.
// The scripts come from the real `bin/mooring.js`.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MOORING = join(ROOT, 'bin', 'mooring.js');
const EXAMPLE = join(ROOT, 'example-repo');
const EXAMPLE_CLUSTERS = ['dev-us-east', 'prod-eu-west', 'prod-us-west', 'staging-eu-west'];

for (const shell of ['bash', 'zsh', 'fish']) {
  if (!['/usr/bin', '/bin', '/usr/local/bin'].some((dir) => existsSync(join(dir, shell)))) {
    throw new Error(
      `the completion tests need ${shell}: apt-get install ${shell} (bash .ci/run installs it)`,
    );
  }
}

const work = mkdtempSync(join(tmpdir(), 'mooring-completion-'));
const scripts: Record<string, string> = {};

beforeAll(async () => {
  for (const shell of ['bash', 'zsh', 'fish']) {
    const r = await execa(process.execPath, [MOORING, 'completion', shell]);
    scripts[shell] = join(work, `mooring.${shell}`);
    writeFileSync(scripts[shell], r.stdout);
  }
  // A repository whose layout sits in a sub-folder (--path).
  mkdirSync(join(work, 'mono'));
  cpSync(EXAMPLE, join(work, 'mono', 'deploy'), { recursive: true });
  rmSync(join(work, 'mono', 'deploy', 'clusters', 'dev-us-east'), { recursive: true });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What bash completes for the words (the last one is being typed). */
function bash(...words: string[]): string[] {
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const out = execFileSync(
    'bash',
    [
      '-c',
      `source '${scripts.bash}'
fn=$(complete -p mooring | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')
COMP_WORDS=(${quoted}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=()
"$fn"
printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { encoding: 'utf8' },
  );
  return out.split('\n').filter(Boolean);
}

/** What fish completes for the command line (values without their descriptions). */
function fish(line: string): string[] {
  const out = execFileSync('fish', ['-c', `source '${scripts.fish}'; complete -C ${JSON.stringify(line)}`], {
    encoding: 'utf8',
  });
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t')[0]!);
}

// zsh completes only in its line editor: an interactive zsh on a pseudo-terminal (zpty),
// compinit loaded, the script sourced, the line typed with a TAB. compadd is wrapped to
// print every candidate between markers, which are read back from the terminal.
const ZSH_INIT = `PS1=''
autoload -U compinit; compinit -u -D
compadd () {
  if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd "$@"; return $?; fi
  typeset -a hits
  builtin compadd -A hits "$@"
  (( $#hits )) || return
  local h; for h in $hits; do print -r -- "<CAND""IDATE>$h</CAND""IDATE>"; done
}
`;
const ZSH_DRIVER = `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "source \${1}; source \${2}; print READY"
local out='' line i quiet=0
for i in {1..200}; do
  while zpty -r -t z line 2>/dev/null; do out+=$line; done
  [[ $out == *READY*READY* ]] && break
  sleep 0.1
done
out=''
zpty -n -w z "\${3}"$'\\t'
for i in {1..200}; do
  if zpty -r -t z line 2>/dev/null; then out+=$line; quiet=0; else (( quiet++ )); sleep 0.1; fi
  (( quiet >= 5 )) && [[ $out == *'</CANDIDATE>'* ]] && break
done
zpty -d z
print -r -- "$out"
`;

async function zsh(line: string, cwd = work): Promise<string[]> {
  const init = join(work, 'zsh-init.zsh');
  const driver = join(work, 'zsh-driver.zsh');
  writeFileSync(init, ZSH_INIT);
  writeFileSync(driver, ZSH_DRIVER);
  const r = await execa('zsh', ['-f', driver, init, scripts.zsh!, line], { cwd, timeout: 60_000 });
  return [...r.stdout.matchAll(/<CANDIDATE>([^<]*)<\/CANDIDATE>/g)].map((m) => m[1]!);
}

describe('bash', () => {
  it('completes commands, options and option values', () => {
    expect(bash('mooring', 'pl')).toEqual(['plan']);
    expect(bash('mooring', 'plan', '--cl')).toEqual(['--cluster']);
    expect(bash('mooring', 'validate', '-o', '')).toEqual(['text', 'json', 'yaml']);
    expect(bash('mooring', 'run', '--approval', '')).toEqual(['auto', 'manual']);
    expect(bash('mooring', 'run', '--drift', 'c')).toEqual(['correct']);
    expect(bash('mooring', 'completion', '')).toEqual(['bash', 'zsh', 'fish']);
    expect(bash('mooring', 'help', 'val')).toEqual(['validate']);
  });

  it('offers the clusters of --repo, under --path when given', () => {
    expect(bash('mooring', 'plan', '--repo', EXAMPLE, '--cluster', '')).toEqual(EXAMPLE_CLUSTERS);
    expect(bash('mooring', 'validate', `--repo=${EXAMPLE}`, '--cluster', 'prod')).toEqual([
      'prod-eu-west',
      'prod-us-west',
    ]);
    const mono = join(work, 'mono');
    expect(bash('mooring', 'plan', '--repo', mono, '--path', 'deploy', '--cluster', '')).toEqual(
      EXAMPLE_CLUSTERS.filter((c) => c !== 'dev-us-east'),
    );
  });

  it("offers every option a command's help lists (help read in-process)", async () => {
    for (const command of ['plan', 'validate', 'status', 'run', 'approve']) {
      const lines: string[] = [];
      await main([command, '--help'], { out: (t) => lines.push(t), err: () => {}, colour: false });
      const help = lines.join('\n');
      const options = help.slice(help.indexOf('Options:'));
      const listed = [...options.slice(0, options.indexOf('\n\n')).matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)]
        .map((m) => m[1]!)
        .sort();
      expect(bash('mooring', command, '--').sort(), command).toEqual(listed);
    }
  });
});

describe('zsh', () => {
  it('completes commands, options and option values', async () => {
    expect(await zsh('mooring pl')).toEqual(['plan']);
    expect(await zsh('mooring plan --cl')).toEqual(['--cluster']);
    expect((await zsh('mooring validate -o ')).sort()).toEqual(['json', 'text', 'yaml']);
    expect((await zsh('mooring run --approval ')).sort()).toEqual(['auto', 'manual']);
    expect((await zsh('mooring completion ')).sort()).toEqual(['bash', 'fish', 'zsh']);
  });

  it('offers the clusters of --repo', async () => {
    expect((await zsh(`mooring plan --repo ${EXAMPLE} --cluster `)).sort()).toEqual(EXAMPLE_CLUSTERS);
  });
});

describe('fish', () => {
  it('completes commands, options and option values', () => {
    expect(fish('mooring pl')).toEqual(['plan']);
    expect(fish('mooring plan --cl')).toEqual(['--cluster']);
    expect(fish('mooring validate -o ').sort()).toEqual(['json', 'text', 'yaml']);
    expect(fish('mooring run --approval ').sort()).toEqual(['auto', 'manual']);
    expect(fish('mooring completion ').sort()).toEqual(['bash', 'fish', 'zsh']);
  });

  it('offers the clusters of --repo, under --path when given', () => {
    expect(fish(`mooring plan --repo ${EXAMPLE} --cluster `)).toEqual(EXAMPLE_CLUSTERS);
    expect(fish(`mooring plan --repo ${join(work, 'mono')} --path deploy --cluster `)).toEqual(
      EXAMPLE_CLUSTERS.filter((c) => c !== 'dev-us-east'),
    );
  });
});
