/**
 * Every example of every command's --help runs, as printed, against a real server (the
 * built binary on PATH, a config with the profile the examples name; test/helpers/
 * operator-world.ts maps their host and database names onto the test cluster), in the
 * order an operator meets them: backups first, then what reads them.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/commands/specs/index.js';
import { removeDirs } from '../helpers/backups.js';
import { assertBuilt, runBin } from '../helpers/cli.js';
import { makeOperatorWorld, type OperatorWorld } from '../helpers/operator-world.js';
import { connectProvided } from '../helpers/pg.js';

const cluster = connectProvided();
let world: OperatorWorld;

beforeAll(async () => {
  assertBuilt();
  world = await makeOperatorWorld(cluster);
});

afterAll(async () => {
  // The databases the examples made, and those restore kept (<target>_old_<time>).
  const names = await cluster.query<{ datname: string }>('postgres', 'select datname from pg_database where starts_with(datname, $1)', ['opw_']);
  for (const { datname } of names) if ([world.db, ...world.made].some((db) => datname.startsWith(db))) await cluster.dropDatabase(datname);
  await removeDirs([world.dir]);
});

const examples = COMMANDS.flatMap((spec) => spec.examples.map((example, index) => ({ name: spec.name, first: index === 0, ...example })));

/** What a command's examples need to find in the world before the first of them runs. */
const prepare: Record<string, () => Promise<void>> = {
  // delete names two backups by the random part of their ids, and removes those tagged scratch;
  // a newer backup stays, as the newest good one may not be deleted without --force.
  async delete() {
    const made: string[] = [];
    for (const args of [['--tag', 'scratch'], ['--tag', 'scratch'], [], [], []]) {
      const run = await world.run(`backupctl create --profile app --json ${args.join(' ')} | jq -r .id`);
      expect(run.code, run.stderr).toBe(0);
      made.push(run.stdout.trim());
    }
    world.alias('1a2b3c', (made[2] as string).slice(17));
    world.alias('4d5e6f', (made[3] as string).slice(17));
  },
  // rekey's first example turns a passphrase-encrypted backup over to a key.
  async rekey() {
    const run = await world.run(world.rewrite('backupctl create --profile app --passphrase-file /etc/backupctl/app.passphrase --json | jq -r .id'));
    expect(run.code, run.stderr).toBe(0);
    world.alias('7f3e9a', run.stdout.trim().slice(17));
  },
};

describe('--help examples', () => {
  it('every command has examples; its --help prints them and the global options it accepts', async () => {
    for (const spec of COMMANDS) {
      expect(spec.examples.length, spec.name).toBeGreaterThan(0);
      const help = await runBin([spec.name, '--help']);
      expect(help.code).toBe(0);
      for (const example of spec.examples) expect(help.stdout).toContain(`$ ${example.command}`);
      expect(help.stdout).toMatch(/Global Options:[\s\S]*--profile <name>[\s\S]*--json/);
    }
  });

  it.each(examples)('runs: $command', async ({ name, first, command, comment }) => {
    if (first) await prepare[name]?.();
    let script = world.rewrite(command);
    if (comment?.startsWith('no config')) {
      // As the comment says: a directory without a config, the libpq environment only.
      const bare = path.join(world.dir, 'no-config');
      await mkdir(bare, { recursive: true });
      await writeFile(path.join(bare, 'package.json'), '{}\n');
      script = `cd ${bare} && ${script} --storage ${world.storage}`;
    }
    const run = await world.run(script);
    expect(run.code, `${script}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`).toBe(0);
  });
});
