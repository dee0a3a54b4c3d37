import type { Command } from 'commander';
import { registerServer } from './server.js';
import { registerClient } from './client.js';
import { registerKeys } from './keys.js';
import { registerLab } from './lab.js';

/** Every subcommand, in help order. Each file owns one command. */
export const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  registerServer,
  registerClient,
  registerKeys,
  registerLab,
];
