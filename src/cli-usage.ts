/**
 * Commander output settings shared by the CLI's commands: help and messages go to the given
 * streams, and a usage error becomes one line that names the help command to run and carries
 * ERR_INVALID_ARGUMENT, like every other error of the CLI.
 */
import type { OutputConfiguration } from 'commander';

import type { CliOutput } from './cli.js';

/** Returns the output settings of a command whose help is `helpCommand` ("embed-image run --help"). */
export function commandOutput(output: CliOutput, helpCommand: string): OutputConfiguration {
  return {
    writeOut: output.stdout,
    writeErr: output.stderr,
    outputError: (text, write) =>
      write(`embed-image: ${text.trim().replace(/^error: /, '')} (see "${helpCommand}") (error code ERR_INVALID_ARGUMENT)\n`),
  };
}
