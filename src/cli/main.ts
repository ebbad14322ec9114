// The mooring command line: parses arguments and dispatches to one module per command.
import { Command, CommanderError } from 'commander';
import { MooringError, MooringErrors } from '../errors.js';
import { AgeKeyError } from '../resolve/age-key.js';
import { registerApprove } from './approve.js';
import { registerCompletion } from './completion.js';
import { registerControl } from './control.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { registerExplain } from './explain.js';
import { processIo, type Io } from './output.js';
import { registerPlan } from './plan.js';
import { registerRun } from './run.js';
import { registerStatus } from './status.js';
import { registerValidate } from './validate.js';
import { registerVersion } from './version.js';
import { packageVersion } from '../version.js';

/**
 * commander checks required options before it looks for unknown ones, so `plan --clutser x`
 * would be reported as a missing --cluster. The required options are checked here instead,
 * in a hook that runs once commander has refused unknown options (with a did-you-mean).
 */
function checkRequiredAfterUnknown(command: Command): void {
  const required = command.options.filter((o) => o.mandatory);
  if (required.length === 0) return;
  for (const option of required) option.mandatory = false;
  command.hook('preAction', (cmd) => {
    for (const option of required) {
      if (cmd.getOptionValue(option.attributeName()) === undefined) {
        cmd.error(`error: required option '${option.flags}' not specified`, {
          code: 'commander.missingMandatoryOptionValue',
          exitCode: EXIT.usage,
        });
      }
    }
  });
}

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  let code: ExitCode = EXIT.ok;
  const done = (c: ExitCode) => {
    code = c;
  };
  const program = new Command('mooring')
    .description("Keep every Kubernetes cluster's Helm releases moored to Git.")
    .version(packageVersion(), '-V, --version', 'print the version of mooring')
    .exitOverride()
    .showHelpAfterError('(mooring --help lists the commands)')
    .addHelpText(
      'after',
      `
Examples:
  mooring validate --repo .                                   # every cluster, for CI
  mooring plan --repo . --cluster prod-eu-west --release web  # what one release would run
  mooring status --all-contexts                               # every cluster of the kubeconfig
  mooring plan --help                                         # a command's options and examples
  source <(mooring completion bash)                           # shell completion (also zsh, fish)`,
    )
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
  registerRun(program, io, done);
  registerPlan(program, io, done);
  registerExplain(program, io, done);
  registerValidate(program, io, done);
  registerStatus(program, io, done);
  registerApprove(program, io, done);
  registerControl(program, io, done);
  registerVersion(program, io, done);
  // Last: its script describes every command registered before it.
  registerCompletion(program, io, done);
  for (const command of program.commands) {
    command.exitOverride();
    command.showHelpAfterError(`(mooring ${command.name()} --help shows its options and examples)`);
    checkRequiredAfterUnknown(command);
  }

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version'
        ? EXIT.ok
        : EXIT.usage;
    }
    const json = argv.includes('json');
    if (err instanceof MooringError || err instanceof MooringErrors) {
      const errors = err instanceof MooringErrors ? err.errors : [err];
      if (json) io.out(JSON.stringify({ ok: false, errors: errors.map((e) => e.toJSON()) }, null, 2));
      for (const e of errors) io.err(`error: ${e.describe()}`);
      // An age key that cannot be loaded is local configuration (exit 2), as a bad flag is.
      return err instanceof AgeKeyError ? EXIT.usage : EXIT.failed;
    }
    throw err;
  }
}
