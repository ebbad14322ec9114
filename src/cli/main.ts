// The mooring command line: parses arguments and dispatches to one module per command.
import { Command, CommanderError } from 'commander';
import { MooringError, MooringErrors } from '../errors.js';
import { AgeKeyError } from '../resolve/age-key.js';
import { registerApprove } from './approve.js';
import { registerControl } from './control.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { registerExplain } from './explain.js';
import { processIo, type Io } from './output.js';
import { registerPlan } from './plan.js';
import { registerRun } from './run.js';
import { registerStatus } from './status.js';
import { registerValidate } from './validate.js';
import { packageVersion } from '../version.js';

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  let code: ExitCode = EXIT.ok;
  const done = (c: ExitCode) => {
    code = c;
  };
  const program = new Command('mooring')
    .description("Keep every Kubernetes cluster's Helm releases moored to Git.")
    .version(packageVersion(), '-V, --version', 'print the version of mooring')
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
  registerRun(program, io, done);
  registerPlan(program, io, done);
  registerExplain(program, io, done);
  registerValidate(program, io, done);
  registerStatus(program, io, done);
  registerApprove(program, io, done);
  registerControl(program, io, done);
  program.commands.forEach((c) => c.exitOverride());

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
