// `mooring completion bash|zsh|fish`: a completion script for the shell, generated from the
// command definitions themselves (commands, options, option values), so it never lags
// behind them. Values the shell can find on its own are completed there, without starting
// mooring (Node.js start-up is too slow for a key press): files and folders, clusters (the
// folders under clusters/ of --repo, with --path), kube contexts (through kubectl, when it
// is installed), and the fixed choices of -o, --approval, --drift and the like.
import { Argument, type Command, type Option } from 'commander';
import { AGENT_SETTINGS } from '../agent/config.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import type { Io } from './output.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** What the value of an option (or a positional argument) can be. */
export type ValueKind =
  | { kind: 'choices'; choices: readonly string[] }
  | { kind: 'file' | 'dir' | 'cluster' | 'context' | 'command' | 'text' };

export interface OptionSpec {
  long?: string;
  short?: string;
  description: string;
  /** Absent for a flag that takes no value. */
  value?: ValueKind;
}

export interface CommandSpec {
  name: string;
  description: string;
  options: OptionSpec[];
  /** The first positional argument, when the command takes one. */
  argument?: ValueKind;
}

/** The completion model of `program`: every visible command, its options and their values. */
export function completionModel(program: Command): CommandSpec[] {
  const commands = program.commands.map((command): CommandSpec => {
    const first = command.registeredArguments[0];
    return {
      name: command.name(),
      description: command.description(),
      options: [
        ...command.options.filter((o) => !o.hidden).map((o) => optionSpec(command, o)),
        { long: '--help', short: '-h', description: 'display help for command' },
      ],
      ...(first ? { argument: argumentKind(first) } : {}),
    };
  });
  // commander adds `help [command]` only when it parses; complete it as it is shown.
  commands.push({
    name: 'help',
    description: 'display help for command',
    options: [],
    argument: { kind: 'command' },
  });
  return commands;
}

function optionSpec(command: Command, option: Option): OptionSpec {
  const spec: OptionSpec = {
    ...(option.long ? { long: option.long } : {}),
    ...(option.short ? { short: option.short } : {}),
    description: option.description,
  };
  if (!option.required && !option.optional) return spec;
  return { ...spec, value: valueKind(command, option) };
}

function valueKind(command: Command, option: Option): ValueKind {
  if (option.argChoices) return { kind: 'choices', choices: option.argChoices };
  // `mooring run` validates its enumerations itself (flags and variables alike).
  const setting =
    command.name() === 'run' ? AGENT_SETTINGS.find((s) => `--${s.flag}` === option.long) : undefined;
  if (setting?.values) return { kind: 'choices', choices: setting.values };
  if (option.long === '--cluster') return { kind: 'cluster' };
  if (option.long === '--context') return { kind: 'context' };
  const placeholder = /[<[](\w+)/.exec(option.flags)?.[1];
  if (placeholder === 'file') return { kind: 'file' };
  if (placeholder === 'dir') return { kind: 'dir' };
  return { kind: 'text' };
}

function argumentKind(argument: Argument): ValueKind {
  return argument.argChoices ? { kind: 'choices', choices: argument.argChoices } : { kind: 'text' };
}

export function completionScript(shell: Shell, commands: CommandSpec[]): string {
  if (shell === 'bash') return bashScript(commands);
  if (shell === 'zsh') return zshScript(commands);
  return fishScript(commands);
}

const flagsOf = (o: OptionSpec) => [o.short, o.long].filter((f): f is string => f !== undefined);
const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();
/** A word in single quotes for a POSIX shell (and zsh). */
const sq = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

// The folders under clusters/ of the --repo (and --path) on the command line, else of ".".
const BASH_HELPERS = `_mooring_clusters() {
  local repo=. path= i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      --repo) repo="\${COMP_WORDS[i+1]}" ;;
      --repo=*) repo="\${COMP_WORDS[i]#--repo=}" ;;
      --path) path="\${COMP_WORDS[i+1]}" ;;
      --path=*) path="\${COMP_WORDS[i]#--path=}" ;;
    esac
  done
  local dir="\${repo/#\\~/$HOME}/\${path:+$path/}clusters" d
  for d in "$dir"/*/; do
    [ -d "$d" ] || continue
    d="\${d%/}"
    printf '%s\\n' "\${d##*/}"
  done
}

_mooring_contexts() {
  command -v kubectl >/dev/null 2>&1 && kubectl config get-contexts -o name 2>/dev/null
}
`;

function bashValue(value: ValueKind, commands: CommandSpec[]): string {
  switch (value.kind) {
    case 'choices':
      return `COMPREPLY=($(compgen -W ${sq(value.choices.join(' '))} -- "$cur"))`;
    case 'file':
      return `compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur"))`;
    case 'dir':
      return `compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur"))`;
    case 'cluster':
      return `COMPREPLY=($(compgen -W "$(_mooring_clusters)" -- "$cur"))`;
    case 'context':
      return `COMPREPLY=($(compgen -W "$(_mooring_contexts)" -- "$cur"))`;
    case 'command':
      return `COMPREPLY=($(compgen -W ${sq(commands.map((c) => c.name).join(' '))} -- "$cur"))`;
    case 'text':
      return 'COMPREPLY=()';
  }
}

function bashScript(commands: CommandSpec[]): string {
  const cases = commands.map((c) => {
    const valued = c.options.filter((o) => o.value);
    const flags = c.options.flatMap((o) => (o.long ? [o.long] : []));
    const lines = [`    ${c.name})`];
    if (valued.length) {
      lines.push('      case "$prev" in');
      for (const o of valued)
        lines.push(`        ${flagsOf(o).join('|')}) ${bashValue(o.value!, commands)}; return ;;`);
      lines.push('      esac');
    }
    const flagWords = `COMPREPLY=($(compgen -W ${sq(flags.join(' '))} -- "$cur"))`;
    if (c.argument && c.argument.kind !== 'text') {
      // A command whose argument has values to offer (completion, help): flags after a dash.
      lines.push(
        `      if [[ "$cur" == -* ]]; then ${flagWords}; else ${bashValue(c.argument, commands)}; fi`,
      );
    } else {
      lines.push(`      ${flagWords}`);
    }
    lines.push('      ;;');
    return lines.join('\n');
  });
  return `# bash completion for mooring. Load it in the current shell with
#   source <(mooring completion bash)
# or for every shell: mooring completion bash > ~/.local/share/bash-completion/completions/mooring
${BASH_HELPERS}
_mooring() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" cmd= i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      -*) ;;
      *) cmd="\${COMP_WORDS[i]}"; break ;;
    esac
  done
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W ${sq([...commands.map((c) => c.name), '--help', '--version'].join(' '))} -- "$cur"))
    return
  fi
  case "$cmd" in
${cases.join('\n')}
  esac
}

complete -F _mooring mooring
`;
}

/** Text inside an _arguments description (`[...]`): brackets and colons escaped. */
const zshDescription = (text: string) => oneLine(text).replace(/[[\]:\\]/g, (c) => `\\${c}`);

function zshAction(value: ValueKind): string {
  switch (value.kind) {
    case 'choices':
      return `(${value.choices.join(' ')})`;
    case 'file':
      return '_files';
    case 'dir':
      return '_files -/';
    case 'cluster':
      return '_mooring_clusters';
    case 'context':
      return '_mooring_contexts';
    case 'command':
      return '_mooring_commands';
    case 'text':
      return ' ';
  }
}

function zshScript(commands: CommandSpec[]): string {
  const describe = commands
    .map((c) => `    ${sq(`${c.name}:${oneLine(c.description).replace(/:/g, '\\:')}`)}`)
    .join('\n');
  const cases = commands.map((c) => {
    const specs = c.options.map((o) => {
      const flags = flagsOf(o);
      const value = o.value ? `:${o.value.kind}:${zshAction(o.value)}` : '';
      const description = `[${zshDescription(o.description)}]${value}`;
      if (flags.length === 1) return sq(`${flags[0]}${description}`);
      // -o and --output exclude each other: `'(-o --output)'{-o,--output}'[...]:...'`.
      return `${sq(`(${flags.join(' ')})`)}{${flags.join(',')}}${sq(description)}`;
    });
    if (c.argument) specs.push(sq(`1:${c.argument.kind}:${zshAction(c.argument)}`));
    return [
      `    ${c.name})`,
      `      _arguments -s \\`,
      ...specs.map((s) => `        ${s} \\`),
      '      ;;',
    ].join('\n');
  });
  return `#compdef mooring
# zsh completion for mooring. Load it in the current shell (after compinit) with
#   source <(mooring completion zsh)
# or for every shell: mooring completion zsh > "\${fpath[1]}/_mooring"
compdef _mooring mooring

_mooring_commands() {
  local -a commands
  commands=(
${describe}
  )
  _describe -t commands 'mooring command' commands
}

_mooring_clusters() {
  local repo=. path= i
  for ((i = 2; i < CURRENT; i++)); do
    case $words[i] in
      --repo) repo=$words[i+1] ;;
      --repo=*) repo=\${words[i]#--repo=} ;;
      --path) path=$words[i+1] ;;
      --path=*) path=\${words[i]#--path=} ;;
    esac
  done
  local -a clusters
  clusters=(\${~repo}/\${path:+$path/}clusters/*(N/:t))
  compadd -a clusters
}

_mooring_contexts() {
  (( $+commands[kubectl] )) || return 1
  local -a contexts
  contexts=(\${(f)"$(kubectl config get-contexts -o name 2>/dev/null)"})
  compadd -a contexts
}

_mooring() {
  if (( CURRENT == 2 )); then
    _mooring_commands
    return
  fi
  local command=$words[2]
  shift words
  (( CURRENT-- ))
  case $command in
${cases.join('\n')}
  esac
}

# When loaded from fpath, zsh runs this file as the function itself.
if [ "$funcstack[1]" = "_mooring" ]; then
  _mooring "$@"
fi
`;
}

/** A word for fish in single quotes. */
const fq = (text: string) => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

function fishValue(value: ValueKind, commands: CommandSpec[]): string {
  switch (value.kind) {
    case 'choices':
      return `-x -a ${fq(value.choices.join(' '))}`;
    case 'file':
      return '-r -F';
    case 'dir':
      return "-x -a '(__fish_complete_directories)'";
    case 'cluster':
      return "-x -a '(__mooring_clusters)'";
    case 'context':
      return "-x -a '(__mooring_contexts)'";
    case 'command':
      return `-x -a ${fq(commands.map((c) => c.name).join(' '))}`;
    case 'text':
      return '-x';
  }
}

function fishScript(commands: CommandSpec[]): string {
  const lines: string[] = [];
  for (const c of commands) {
    lines.push(`complete -c mooring -n __fish_use_subcommand -a ${c.name} -d ${fq(oneLine(c.description))}`);
    const when = `-n '__fish_seen_subcommand_from ${c.name}'`;
    for (const o of c.options) {
      const flags = [o.long ? `-l ${o.long.slice(2)}` : '', o.short ? `-s ${o.short.slice(1)}` : '']
        .filter(Boolean)
        .join(' ');
      const value = o.value ? ` ${fishValue(o.value, commands)}` : '';
      lines.push(`complete -c mooring ${when} ${flags}${value} -d ${fq(oneLine(o.description))}`);
    }
    if (c.argument && c.argument.kind !== 'text') {
      lines.push(`complete -c mooring ${when} ${fishValue(c.argument, commands)}`);
    }
  }
  return `# fish completion for mooring. Load it in the current shell with
#   mooring completion fish | source
# or for every shell: mooring completion fish > ~/.config/fish/completions/mooring.fish

# The folders under clusters/ of the --repo (and --path) on the command line, else of ".".
function __mooring_clusters
    set -l words (commandline -opc)
    set -l repo .
    set -l path ''
    for i in (seq (count $words))
        switch $words[$i]
            case --repo
                set repo $words[(math $i + 1)]
            case '--repo=*'
                set repo (string replace -- --repo= '' $words[$i])
            case --path
                set path $words[(math $i + 1)]/
            case '--path=*'
                set path (string replace -- --path= '' $words[$i])/
        end
    end
    # (An empty list would make the whole word empty: $path is '' when not given.)
    for dir in $repo/$path'clusters'/*/
        basename $dir
    end
end

function __mooring_contexts
    command -q kubectl; and kubectl config get-contexts -o name 2>/dev/null
end

# No file names unless an option takes a file.
complete -c mooring -f
complete -c mooring -n __fish_use_subcommand -s h -l help -d 'display help'
complete -c mooring -n __fish_use_subcommand -s V -l version -d 'print the version of mooring'
${lines.join('\n')}
`;
}

export function registerCompletion(program: Command, io: Io, done: (code: ExitCode) => void): void {
  program
    .command('completion')
    .description('print a shell completion script for bash, zsh or fish')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(SHELLS))
    .addHelpText(
      'after',
      `
Examples:
  source <(mooring completion bash)                     # this bash session
  mooring completion bash > ~/.local/share/bash-completion/completions/mooring
  source <(mooring completion zsh)                      # this zsh session (after compinit)
  mooring completion zsh > "\${fpath[1]}/_mooring"       # every zsh session
  mooring completion fish > ~/.config/fish/completions/mooring.fish

Commands, options and option values complete; --cluster offers the folders under clusters/
of the --repo on the command line (else of the current folder), --context the contexts
kubectl knows (when kubectl is installed), file options file names.`,
    )
    .action((shell: Shell) => {
      io.out(completionScript(shell, completionModel(program)));
      done(EXIT.ok);
    });
}
