/**
 * Restore targets at the edges and scratch databases, against the real test cluster:
 * databases a restore must never replace or write into (templates, another run's staging
 * database); a run's clean-up drops only the scratch database that carries its mark; names
 * derived from a long multibyte target; verify --keep hands its database over unmarked.
 */
import path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackup, makeTempDir, removeDirs } from '../helpers/backups.js';
import { baseEnv, runCli, type CliOutcome } from '../helpers/cli.js';
import { failureLines } from '../helpers/failure-kit.js';
import { connectionSettings, connectProvided, uniqueName } from '../helpers/pg.js';
import { REPLACED_COMMENT_PREFIX, replacedDatabasesLeft, restoreComment, swapDatabases } from '../../src/pg/admin.js';

const cluster = connectProvided();
const dirs: string[] = [];
const databases: string[] = [];
const source = uniqueName('rtg_src');
/** A backup whose restore takes a few seconds: room to act while pg_restore runs. */
const slowSource = uniqueName('rtg_slow');
let work: string;
let storage: string;
let id: string;
let slowId: string;

function newDb(prefix: string): string {
  const name = uniqueName(prefix);
  databases.push(name);
  return name;
}

function restore(args: string[], backup = id): Promise<CliOutcome> {
  return runCli(['restore', backup, '--storage', storage, ...args], { env: baseEnv(cluster.env('postgres')), cwd: work });
}

/** The one staging database of `target` once pg_restore works in it (a session there). */
async function stagingAtWork(target: string): Promise<string> {
  for (let i = 0; i < 600; i++) {
    const rows = await cluster.query<{ datname: string }>(
      'postgres',
      `SELECT d.datname FROM pg_database d WHERE starts_with(d.datname, $1)
          AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname AND a.pid <> pg_backend_pid())`,
      [`${target}_restoring_`],
    );
    if (rows[0]) return rows[0].datname;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no staging database of ${target} at work`);
}

/** Databases whose name starts with `<target>_<word>`. */
async function relatives(target: string, word: 'restoring' | 'old'): Promise<string[]> {
  const rows = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1', [`${target}_${word}`]);
  return rows.map((r) => r.datname);
}

beforeAll(async () => {
  work = await makeTempDir('rtg');
  dirs.push(work);
  storage = path.join(work, 'storage');
  databases.push(source);
  await cluster.createDatabase(source);
  await cluster.query(source, `CREATE TABLE public.items (id int PRIMARY KEY, note text); INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 200) g;`);
  id = await createBackup(cluster, source, storage, work);
  databases.push(slowSource);
  await cluster.createDatabase(slowSource);
  await cluster.query(slowSource, `CREATE TABLE public.bulk AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 400000) g; CREATE INDEX ON public.bulk (v);`);
  slowId = await createBackup(cluster, slowSource, storage, work);
}, 180_000);

afterAll(async () => {
  const all = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database');
  for (const { datname } of all) {
    if (databases.some((db) => datname === db || datname.startsWith(`${db}_restoring_`) || datname.startsWith(`${db}_old_`))) {
      await cluster.query('postgres', `ALTER DATABASE "${datname.replace(/"/g, '""')}" IS_TEMPLATE false`).catch(() => undefined);
      await cluster.dropDatabase(datname);
    }
  }
  await removeDirs(dirs);
});

describe('restore: a template database is never a target', () => {
  it('an empty template (what CREATE DATABASE copies) is refused in every mode (exit 2): it stays a template with nothing in it, no staging or old database (it used to be swapped away without a question)', async () => {
    const template = newDb('rtg_tmpl');
    await cluster.createDatabase(template);
    await cluster.query('postgres', `ALTER DATABASE ${template} IS_TEMPLATE true`);
    for (const flags of [[], ['--clean', '--yes'], ['--force', '--yes']]) {
      const run = await restore(['--target-db', template, ...flags]);
      expect(run.code, `${flags.join(' ')}: ${run.stderr}`).toBe(2);
      const { error, hint } = failureLines(run.stderr);
      expect(error).toContain(`"${template}" is a template database`);
      expect(hint).toContain(`ALTER DATABASE "${template}" IS_TEMPLATE false`);
    }
    const dry = await restore(['--target-db', template, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(2);
    expect(dry.stdout).toContain(`refused: target database "${template}" is a template database`);
    const [row] = await cluster.query<{ template: boolean; tables: string }>('postgres', 'SELECT datistemplate AS template FROM pg_database WHERE datname = $1', [template]);
    expect(row?.template).toBe(true);
    expect(await cluster.query(template, "SELECT 1 FROM pg_class WHERE relname = 'items'")).toEqual([]);
    expect(await relatives(template, 'restoring')).toEqual([]);
    expect(await relatives(template, 'old')).toEqual([]);
  });
});

describe('restore: its clean-up drops only its own staging database', () => {
  it('a failed restore whose staging database was renamed away and replaced meanwhile (as another restore\'s swap does) leaves the database now under that name: it no longer carries the run\'s mark', async () => {
    const target = newDb('rtg_moved');
    const running = restore(['--target-db', target, '--create'], slowId);
    const staging = await stagingAtWork(target);
    // Someone else's database takes the staging database's name: pg_restore's session is
    // ended and the names swapped in one transaction, as restore --clean does to its target.
    const other = newDb('rtg_other');
    await cluster.createDatabase(other);
    await cluster.query(other, "CREATE TABLE public.precious (x int); INSERT INTO public.precious VALUES (42);");
    const q = (name: string) => `"${name.replace(/"/g, '""')}"`;
    await cluster.query(
      'postgres',
      `BEGIN;
       ALTER DATABASE ${q(staging)} ALLOW_CONNECTIONS false;
       SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${staging}' AND pid <> pg_backend_pid();
       ALTER DATABASE ${q(staging)} RENAME TO ${q(`${staging}_moved`)};
       ALTER DATABASE ${q(other)} RENAME TO ${q(staging)};
       COMMIT;`,
    );
    const run = await running;
    expect(run.code, run.stderr).toBe(1);
    expect(await cluster.query<{ x: number }>(staging, 'SELECT x FROM public.precious')).toEqual([{ x: 42 }]);
    expect(run.stderr).toContain(`the staging database ${staging} is not this run's any more (it does not carry its mark): left as it is`);
  });
});

describe('restore: another run\'s scratch database is never a target', () => {
  it('--clean into the staging database of a restore at work is refused (exit 2): that restore goes on and succeeds (it used to be failed, and the database restored in its staging database\'s place dropped by its clean-up)', async () => {
    const target = newDb('rtg_first');
    const running = restore(['--target-db', target, '--create'], slowId);
    const staging = await stagingAtWork(target);
    const second = await restore(['--target-db', staging, '--clean', '--yes']);
    expect(second.code, second.stderr).toBe(2);
    expect(failureLines(second.stderr).error).toContain(`target database "${staging}" is a scratch database of a backupctl run`);
    const first = await running;
    expect(first.code, first.stderr).toBe(0);
    expect(await cluster.query<{ n: string }>(target, 'SELECT count(*)::text AS n FROM public.bulk')).toEqual([{ n: '400000' }]);
    expect(await relatives(target, 'restoring')).toEqual([]);
  });
});

describe('restore: names derived from a long multibyte target', () => {
  it('a 63-byte target of 4-byte characters: the staging and old names are cut between characters, and the old name the result gives is the database kept (it held a lone surrogate, and the server a U+FFFD)', async () => {
    const target = `${'😀'.repeat(15)}${uniqueName('r').slice(-3)}`;
    expect(Buffer.byteLength(target)).toBe(63);
    databases.push(target);
    const created = await restore(['--target-db', target, '--create', '--json']);
    expect(created.code, created.stderr).toBe(0);
    const run = await restore(['--target-db', target, '--clean', '--yes', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const { oldKeptAs, plan } = JSON.parse(run.stdout) as { oldKeptAs: string; plan: { staging: string } };
    databases.push(oldKeptAs);
    for (const name of [oldKeptAs, plan.staging]) {
      // Well-formed UTF-16: what UTF-8 round-trips unchanged (a lone surrogate becomes U+FFFD).
      expect(Buffer.from(name, 'utf8').toString('utf8'), JSON.stringify(name)).toBe(name);
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
    }
    expect(await cluster.query('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [oldKeptAs])).toHaveLength(1);
  });
});

describe('verify --keep: the kept database is the operator\'s', () => {
  it('its scratch mark is replaced by a kept note even when the maintenance session ended during the restore (the mark stayed, and the next verify or restore on this host would drop the kept database)', async () => {
    const running = runCli(['verify', slowId, '--level', 'restore', '--keep', '--json', '--storage', storage], { env: baseEnv(cluster.env('postgres')), cwd: work });
    const prefix = `backupctl_verify_${slowId.toLowerCase().replace(/[^a-z0-9]/g, '_')}_`;
    let atWork = false;
    for (let i = 0; i < 600 && !atWork; i++) {
      const rows = await cluster.query('postgres', `SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, $1)`, [prefix]);
      atWork = rows.length > 0;
      if (!atWork) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(atWork).toBe(true);
    // The run's maintenance session (in postgres, idle while pg_restore works) goes, as a firewall or a restarted pooler would end it.
    await cluster.query('postgres', `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'postgres' AND backend_type = 'client backend' AND pid <> pg_backend_pid()`);
    const run = await running;
    expect(run.code, run.stderr).toBe(0);
    const kept = (JSON.parse(run.stdout) as { outcomes: Array<{ keptDatabase?: string }> }).outcomes[0]?.keptDatabase as string;
    databases.push(kept);
    expect(kept.startsWith(prefix)).toBe(true);
    const [row] = await cluster.query<{ comment: string | null }>('postgres', `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`, [kept]);
    expect(row?.comment).toMatch(/^backupctl: kept by verify --keep of backup \S+ at \S+; drop it when done$/);
  });
});

describe('restore: an empty target name', () => {
  it('-d "" is a usage error (exit 2) before anything is restored (it restored the whole backup into "_restoring_<time>", then failed to rename it, exit 1)', async () => {
    const run = await restore(['--target-db', '', '--create']);
    expect(run.code, run.stderr).toBe(2);
    expect(failureLines(run.stderr).error).toContain('the target database name is empty');
    expect(run.stderr).not.toContain('restoring ');
  });
});

describe('restore: an empty target with sessions', () => {
  it('the plan says the swap ends the sessions on it (it did, without a word: an empty target needs no --clean and no question)', async () => {
    const target = newDb('rtg_busy');
    await cluster.createDatabase(target);
    const session = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: target });
    await session.connect();
    session.on('error', () => undefined);
    try {
      const dry = await restore(['--target-db', target, '--dry-run']);
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toContain(`end the 1 session(s) on "${target}" and swap it with the empty "${target}"`);
    } finally {
      await session.end().catch(() => undefined);
    }
  });
});

describe('restore: an empty target written to while the restore runs', () => {
  it('is kept, not dropped, once swapped out: it held objects by then (it was dropped as the empty database it had been, with what was written to it)', async () => {
    const target = newDb('rtg_late');
    await cluster.createDatabase(target);
    const running = restore(['--target-db', target, '--json'], slowId);
    await stagingAtWork(target);
    await cluster.query(target, 'CREATE TABLE public.late (x int); INSERT INTO public.late VALUES (7);');
    const run = await running;
    expect(run.code, run.stderr).toBe(0);
    const { oldKeptAs } = JSON.parse(run.stdout) as { oldKeptAs: string | null };
    expect(oldKeptAs).not.toBeNull();
    expect(await cluster.query<{ x: number }>(oldKeptAs as string, 'SELECT x FROM public.late')).toEqual([{ x: 7 }]);
    expect(run.stderr).toMatch(new RegExp(`"${target}" was empty when the restore began and holds \\d+ object\\(s\\) now: kept as "${oldKeptAs}"`));
    // Kept after all: its own comment (none), not the note that the restore was to drop it.
    expect(await databaseComment(oldKeptAs as string)).toBeNull();
    expect((await replacedDatabasesLeft(connectionSettings(cluster, 'postgres'))).map((left) => left.database)).not.toContain(oldKeptAs);
  });
});

describe('restore: the old database it is to drop after the swap', () => {
  it('carries a note from the swap\'s own transaction, found by check\'s query, until it is dropped (a run stopped between swap and drop left it unreported); the swap reopens it in that transaction', async () => {
    const target = newDb('rtg_swap');
    const staging = `${target}_restoring_20261203_120000`;
    const keepAs = `${target}_old_20261203_120000`;
    await cluster.createDatabase(target);
    await cluster.query('postgres', `COMMENT ON DATABASE ${target} IS 'own'`);
    await cluster.createDatabase(staging);
    databases.push(keepAs);
    const note = `${REPLACED_COMMENT_PREFIX}app/20261203T120000Z-abcdef at 2026-12-03T12:00:00.000Z (pid 1 on here), which was to drop it (it was empty); that restore stopped before it could`;
    const server = connectionSettings(cluster, 'postgres');
    const swapped = await swapDatabases(server, target, staging, keepAs, { toDropNote: note });
    // What a run killed right after the swap leaves: the old database under the note, open.
    expect(swapped).toEqual({ refused: null, oldComment: 'own' });
    expect(await databaseComment(keepAs)).toBe(note);
    const [row] = await cluster.query<{ allowconn: boolean }>('postgres', 'SELECT datallowconn AS allowconn FROM pg_database WHERE datname = $1', [keepAs]);
    expect(row?.allowconn).toBe(true);
    expect(await replacedDatabasesLeft(server)).toContainEqual({ database: keepAs, comment: note });
    // And without a note (the old database is kept), nothing is found.
    await restoreComment(server, keepAs, swapped.oldComment);
    expect(await databaseComment(keepAs)).toBe('own');
    expect((await replacedDatabasesLeft(server)).map((left) => left.database)).not.toContain(keepAs);
  });

  it('an empty target replaced and dropped leaves nothing for check to report', async () => {
    const target = newDb('rtg_gone');
    await cluster.createDatabase(target);
    const run = await restore(['--target-db', target, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect((JSON.parse(run.stdout) as { oldKeptAs: string | null }).oldKeptAs).toBeNull();
    expect((await replacedDatabasesLeft(connectionSettings(cluster, 'postgres'))).filter((left) => left.database.startsWith(target))).toEqual([]);
  });
});

async function databaseComment(name: string): Promise<string | null> {
  const [row] = await cluster.query<{ comment: string | null }>('postgres', `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`, [name]);
  return row?.comment ?? null;
}

describe('restore: the printed rollback of a target whose name holds a control character', () => {
  it('pasted into sh as printed, it puts the old database back (the name\'s newline was printed as \\n, which named another database)', async () => {
    const target = `${newDb('rtg_nl')}\nend`;
    databases.push(target);
    expect((await restore(['--target-db', target, '--create'])).code).toBe(0);
    await cluster.query(target, 'CREATE TABLE public.mine (x int); INSERT INTO public.mine VALUES (1);');
    const run = await restore(['--target-db', target, '--clean', '--yes']);
    expect(run.code, run.stderr).toBe(0);
    const rollback = /To roll back:\s+(.+)$/m.exec(run.stdout)?.[1] as string;
    expect(rollback, run.stdout).toBeDefined();
    await execa('sh', ['-c', rollback], {
      env: { PGPASSWORD: cluster.password, PATH: `${cluster.binDir}:${process.env.PATH ?? ''}` },
      extendEnv: false,
      stdin: 'ignore',
      reject: false,
    });
    expect(await cluster.query<{ x: number }>(target, 'SELECT x FROM public.mine')).toEqual([{ x: 1 }]);
    const [failed] = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE datname = $1', [`${target}_failed`]);
    if (failed) databases.push(failed.datname);
    expect(failed).toBeDefined();
  });
});
