/**
 * The database password never leaks: not into a client program's command line or
 * environment (it goes through a temporary 0600 passfile, removed after the run), not
 * into stdout, stderr, the sidecar or anything else in the storage. A password on the
 * command line (--db-url) is refused without being echoed, and URLs that carry one are
 * printed redacted.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, runBin, type CliOutcome } from '../helpers/cli.js';
import {
  closedPort,
  failureLines,
  leftovers,
  listFiles,
  scratchSetup,
  sh,
  tempDir,
  wrapperBinDir,
  writeConfig,
} from '../helpers/failure-kit.js';
import { uniqueName } from '../helpers/pg.js';

/** A role of our own, so the password is one only this test knows (and easy to grep for). */
const role = uniqueName('secret_role');
const password = `Pw-${uniqueName('x')}-Zz9`;
const scratch = scratchSetup('secrets', {
  built: true,
  seed: async () => {
    await cluster.createRole(role, password, 'SUPERUSER');
    await cluster.query(db, `CREATE TABLE public.things (id int PRIMARY KEY, name text)`);
    await cluster.query(db, `INSERT INTO public.things SELECT g, 'thing ' || g FROM generate_series(1, 50) g`);
  },
  teardown: async () => {
    await cluster.query('postgres', `DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
  },
});
const { cluster, db } = scratch;

interface Invocation {
  tool: string;
  args: string[];
  env: Map<string, string>;
  rawCmdline: string;
  rawEnviron: string;
  passfileMode: string | null;
}

/** A client program that records its command line, environment and passfile mode, then execs the real one. */
function recorder(tool: string, real: string, dir: string): string {
  return `#!/bin/sh
stamp="${tool}-$(date +%s%N)-$$"
cp /proc/$$/cmdline ${sh(dir)}/"$stamp.cmdline"
cp /proc/$$/environ ${sh(dir)}/"$stamp.environ"
if [ -n "$PGPASSFILE" ] && [ -e "$PGPASSFILE" ]; then stat -c '%a' "$PGPASSFILE" > ${sh(dir)}/"$stamp.mode"; fi
exec ${sh(real)} "$@"
`;
}

async function readInvocations(dir: string): Promise<Invocation[]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.cmdline')).sort();
  return Promise.all(
    names.map(async (name) => {
      const stamp = name.slice(0, -'.cmdline'.length);
      const rawCmdline = await readFile(path.join(dir, name), 'utf8');
      const rawEnviron = await readFile(path.join(dir, `${stamp}.environ`), 'utf8');
      const modeFile = path.join(dir, `${stamp}.mode`);
      const env = new Map(
        rawEnviron
          .split('\0')
          .filter(Boolean)
          .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)] as [string, string]),
      );
      // argv of the wrapper: [/bin/sh, <wrapper path>, ...args]
      const argv = rawCmdline.split('\0').filter(Boolean);
      return {
        tool: stamp.slice(0, stamp.indexOf('-')),
        args: argv.slice(2),
        env,
        rawCmdline,
        rawEnviron,
        passfileMode: existsSync(modeFile) ? (await readFile(modeFile, 'utf8')).trim() : null,
      };
    }),
  );
}

function envWithPassword(extra: Record<string, string> = {}): Record<string, string> {
  return baseEnv({
    HOME: scratch.cwd,
    PGHOST: cluster.host,
    PGPORT: String(cluster.port),
    PGUSER: role,
    PGDATABASE: db,
    PGPASSWORD: password,
    ...extra,
  }) as Record<string, string>;
}

async function storageText(storage: string): Promise<string> {
  const files = await listFiles(storage);
  const texts = await Promise.all(files.map((file) => readFile(path.join(storage, file), 'latin1')));
  return texts.join('\n');
}

describe('the password in PGPASSWORD', () => {
  let records: string;
  let storage: string;
  let result: CliOutcome;
  let invocations: Invocation[];

  beforeAll(async () => {
    records = await tempDir('rec');
    storage = await tempDir('st');
    const bin = await wrapperBinDir(cluster, {
      pg_dump: recorder('pg_dump', cluster.bin('pg_dump'), records),
      pg_restore: recorder('pg_restore', cluster.bin('pg_restore'), records),
      pg_dumpall: recorder('pg_dumpall', cluster.bin('pg_dumpall'), records),
    });
    const config = await writeConfig(await tempDir('cfg'), { pgBinDir: bin });
    result = await runBin(['create', '--config', config, '--storage', storage, '--json', '--verbose'], { env: envWithPassword(), cwd: scratch.cwd });
    invocations = await readInvocations(records);
  });

  it('the backup itself succeeds', () => {
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ id: expect.any(String) });
  });

  it('is in no client command line nor environment (--version runs included)', () => {
    const tools = new Set(invocations.map((i) => i.tool));
    expect(tools).toEqual(new Set(['pg_dump', 'pg_restore', 'pg_dumpall']));
    expect(invocations.some((i) => i.tool === 'pg_dump' && i.args[0] !== '--version')).toBe(true);
    for (const invocation of invocations) {
      const what = `${invocation.tool} ${invocation.args.join(' ')}`;
      expect(invocation.rawCmdline, what).not.toContain(password);
      expect(invocation.rawEnviron, what).not.toContain(password);
      expect(invocation.env.has('PGPASSWORD'), what).toBe(false);
      expect(invocation.env.has('DATABASE_URL'), what).toBe(false);
    }
  });

  it('reaches pg_dump, pg_dumpall and pg_restore through a 0600 PGPASSFILE that is gone after the run', () => {
    const working = invocations.filter((i) => i.args[0] !== '--version');
    expect(working.map((i) => i.tool)).toEqual(expect.arrayContaining(['pg_dump', 'pg_restore', 'pg_dumpall']));
    const passfiles = new Set<string>();
    for (const invocation of working) {
      const passfile = invocation.env.get('PGPASSFILE');
      expect(passfile, invocation.tool).toBeDefined();
      passfiles.add(passfile as string);
      expect(invocation.passfileMode, `${invocation.tool}: mode of ${passfile}`).toBe('600');
    }
    expect(passfiles.size).toBe(1); // one passfile per run
    for (const passfile of passfiles) expect(existsSync(passfile), passfile).toBe(false);
  });

  it('is nowhere in stdout, stderr, the sidecar or any other file in the storage', async () => {
    expect(result.stdout).not.toContain(password);
    expect(result.stderr).not.toContain(password);
    const files = await listFiles(storage);
    expect(files.some((file) => file.endsWith('.json') && !file.endsWith('lock.json'))).toBe(true);
    expect(await storageText(storage)).not.toContain(password);
  });

  it('is not printed by list and show either', async () => {
    for (const args of [['list'], ['list', '--json'], ['show', 'latest'], ['show', 'latest', '--json']]) {
      const out = await runBin([...args, '--storage', storage], { env: envWithPassword(), cwd: scratch.cwd });
      expect(out.code, `${args.join(' ')}: ${out.stderr}`).toBe(0);
      expect(out.stdout + out.stderr).not.toContain(password);
    }
  });

  it('a failed run removes the passfile too, and does not print the password with --verbose', async () => {
    const failRecords = await tempDir('rec');
    const failStorage = await tempDir('st');
    const realDump = cluster.bin('pg_dump');
    const dying = `#!/bin/sh
if [ "$1" = "--version" ]; then exec ${sh(realDump)} --version; fi
printf '%s\\n' "$PGPASSFILE" > ${sh(failRecords)}/passfile
${sh(realDump)} "$@" | head -c 1000
echo "pg_dump: error: simulated failure" >&2
exit 1
`;
    const bin = await wrapperBinDir(cluster, { pg_dump: dying });
    const config = await writeConfig(await tempDir('cfg'), { pgBinDir: bin });
    const out = await runBin(['create', '--config', config, '--storage', failStorage, '--verbose'], { env: envWithPassword(), cwd: scratch.cwd });
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/^error: pg_dump failed \(exit status 1\): simulated failure$/m);
    expect(out.stdout + out.stderr).not.toContain(password);
    const passfile = (await readFile(path.join(failRecords, 'passfile'), 'utf8')).trim();
    expect(passfile).toMatch(/\.pgpass$/);
    expect(existsSync(passfile)).toBe(false);
    expect(await leftovers(failStorage)).toEqual([]);
    expect(await storageText(failStorage)).not.toContain(password);
  });
});

describe("the password in a profile's passwordEnv variable", () => {
  it('is passed on neither to pg_dump nor to any other client program', async () => {
    const records = await tempDir('rec');
    const storage = await tempDir('st');
    const bin = await wrapperBinDir(cluster, {
      pg_dump: recorder('pg_dump', cluster.bin('pg_dump'), records),
      pg_restore: recorder('pg_restore', cluster.bin('pg_restore'), records),
      pg_dumpall: recorder('pg_dumpall', cluster.bin('pg_dumpall'), records),
    });
    const config = await writeConfig(await tempDir('cfg'), {
      pgBinDir: bin,
      storage,
      profiles: {
        app: { host: cluster.host, port: cluster.port, user: role, database: db, passwordEnv: 'APP_DB_SECRET' },
      },
    });
    const env = baseEnv({ HOME: scratch.cwd, APP_DB_SECRET: password }) as Record<string, string>;
    const out = await runBin(['create', '--config', config, '--quiet'], { env, cwd: scratch.cwd });
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toBe('');
    expect(out.stdout + out.stderr).not.toContain(password);
    const invocations = await readInvocations(records);
    expect(invocations.filter((i) => i.tool === 'pg_dump' && i.args[0] !== '--version')).toHaveLength(1);
    for (const invocation of invocations) {
      const what = `${invocation.tool} ${invocation.args.join(' ')}`;
      expect(invocation.env.has('APP_DB_SECRET'), what).toBe(false);
      expect(invocation.rawEnviron, what).not.toContain(password);
      expect(invocation.rawCmdline, what).not.toContain(password);
    }
    expect(await storageText(storage)).not.toContain(password);
  });
});

describe('passwords on the command line and in URLs', () => {
  it('--db-url with a password is refused with exit 2, and the password is not echoed', async () => {
    const storage = await tempDir('st');
    const out = await runBin(['create', '--storage', storage, '--db-url', 'postgres://u:secret@host/db'], { env: baseEnv({ HOME: scratch.cwd }) as Record<string, string>, cwd: scratch.cwd });
    expect(out.code).toBe(2);
    const { error } = failureLines(out.stderr, { strict: true });
    expect(error).toMatch(/connection URL on the command line must not contain a password/);
    expect(out.stdout + out.stderr).not.toContain('secret');
    expect(await leftovers(storage)).toEqual([]);
  });

  it('also in the ?password= form', async () => {
    const out = await runBin(['create', '--db-url', 'postgres://u@host/db?password=secret'], { env: baseEnv({ HOME: scratch.cwd }) as Record<string, string>, cwd: scratch.cwd });
    expect(out.code).toBe(2);
    expect(out.stdout + out.stderr).not.toContain('secret');
  });

  it('an invalid DATABASE_URL with a password is printed redacted', async () => {
    const out = await runBin(['create', '--storage', await tempDir('st')], {
      env: baseEnv({ HOME: scratch.cwd, DATABASE_URL: 'postgres://u:hunter2pw@db.example.com:notaport/app' }) as Record<string, string>,
      cwd: scratch.cwd,
    });
    expect(out.code).toBe(2);
    const { error } = failureLines(out.stderr, { strict: true });
    expect(error).toContain('DATABASE_URL');
    expect(error).toContain('u:***@');
    expect(out.stdout + out.stderr).not.toContain('hunter2pw');
  });

  it('a DATABASE_URL of the wrong scheme is printed redacted', async () => {
    const out = await runBin(['create'], {
      env: baseEnv({ HOME: scratch.cwd, DATABASE_URL: 'mysql://u:hunter2pw@db.example.com/app' }) as Record<string, string>,
      cwd: scratch.cwd,
    });
    expect(out.code).toBe(2);
    const { hint } = failureLines(out.stderr, { strict: true });
    expect(hint).toContain('***');
    expect(out.stdout + out.stderr).not.toContain('hunter2pw');
  });

  it('a DATABASE_URL password never shows up, even with --verbose on a failed connection', async () => {
    const port = await closedPort();
    const storage = await tempDir('st');
    const out = await runBin(['create', '--storage', storage, '--verbose'], {
      env: baseEnv({ HOME: scratch.cwd, DATABASE_URL: `postgres://u:hunter2pw@127.0.0.1:${port}/app` }) as Record<string, string>,
      cwd: scratch.cwd,
    });
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/connection refused/);
    expect(out.stdout + out.stderr).not.toContain('hunter2pw');
    expect(await storageText(storage)).not.toContain('hunter2pw');
  });
});
