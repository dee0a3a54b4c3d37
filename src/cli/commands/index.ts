import type { Command } from 'commander';

type Register = (program: Command) => void;

/**
 * Every subcommand, in help order, loaded on demand: `ladder client` never imports the store,
 * fastify or the lab, which keeps each process small (see docs/benchmarks.md, Memory).
 * Each file owns one command and exports register<Name>(program).
 */
export const COMMANDS: ReadonlyArray<{ name: string; load: () => Promise<Register> }> = [
  { name: 'server', load: async () => (await import('./server.js')).registerServer },
  { name: 'client', load: async () => (await import('./client.js')).registerClient },
  { name: 'keys', load: async () => (await import('./keys.js')).registerKeys },
  { name: 'nodes', load: async () => (await import('./nodes.js')).registerNodes },
  { name: 'store', load: async () => (await import('./store.js')).registerStore },
  { name: 'lab', load: async () => (await import('./lab.js')).registerLab },
  { name: 'probe', load: async () => (await import('./probe.js')).registerProbe },
];

/** The registrations needed for this argv: just the named command, or all of them (help). */
export async function loadCommands(argv: readonly string[]): Promise<Register[]> {
  const named = COMMANDS.find((c) => c.name === argv[0]);
  const wanted = named ? [named] : COMMANDS;
  return Promise.all(wanted.map((c) => c.load()));
}
