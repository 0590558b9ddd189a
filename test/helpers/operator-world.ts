/**
 * A world in which an operator's command lines run as written: the built `backupctl` on
 * PATH, a config in the working directory with a profile `app`, a database shaped like the
 * one the examples talk about (orders, audit tables, several schemas), and a password in a
 * file. The host, role and database names of the examples (db1, app-db.internal,
 * scratch-db, backup, verify, app...) are mapped onto the test cluster, and the paths they
 * name (/etc/backupctl, /mnt/offsite/backups, the node_exporter directory) into the world's
 * directory, by `rewrite`: the only change made to a command before it runs.
 */
import { execa } from 'execa';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeTempDir } from './backups.js';
import { BIN } from './cli.js';
import type { ClusterClient } from './cluster.js';
import { uniqueName } from './pg.js';
import { formatIdentityFile, generateIdentity } from '../../src/pipeline/age/index.js';

/** The age project's example recipient: an auditor whose key the examples add. */
const AUDITOR = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';

export interface OperatorWorld {
  dir: string;
  /** The database behind the profile `app` (and behind `app` in the examples). */
  db: string;
  /** Databases made by the commands run (restore targets): drop them afterwards. */
  made: string[];
  storage: string;
  config: string;
  /** A command line as the examples write it, mapped onto the test cluster. */
  rewrite(command: string): string;
  /** From now on, `rewrite` replaces the word `placeholder` (e.g. an example's id) with `real`. */
  alias(placeholder: string, real: string): void;
  /** Runs a shell script in the world with `bash -eo pipefail` (GitHub Actions' default shell). */
  run(script: string, options?: { shell?: 'bash' | 'sh'; env?: Record<string, string> }): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** The tables the examples name: orders (and orders_items), audit tables, a second schema. */
const SCHEMA_SQL = `
  create table public.orders (id int primary key, amount numeric(10, 2) not null, placed_at date not null);
  create table public.orders_items (order_id int references public.orders(id), sku text, qty int);
  create table public.audit_log (id bigserial primary key, at timestamptz default now(), what text);
  create table public.user_sessions (id text primary key, data jsonb);
  insert into public.orders select g, g * 1.5, date '2026-01-01' + (g % 300) from generate_series(1, 500) g;
  insert into public.orders_items select g, 'sku-' || (g % 17), 1 + g % 3 from generate_series(1, 500) g;
  insert into public.audit_log (what) select 'event ' || g from generate_series(1, 200) g;
  insert into public.user_sessions select 's' || g, '{}' from generate_series(1, 50) g;
  create schema app_core;
  create table app_core.accounts (id int primary key, name text);
  insert into app_core.accounts select g, 'account ' || g from generate_series(1, 30) g;
  create schema app_jobs;
  create table app_jobs.queue_default (id int primary key, payload text);
  create table app_jobs.history (id int primary key, done_at date);
  insert into app_jobs.history select g, date '2026-01-01' + g from generate_series(1, 40) g;
  create schema app_scratch;
  create table app_scratch.tmp (x int);
  create schema billing;
  create table billing.customers (id int primary key, name text);
  create table billing.invoices (id int primary key, customer_id int references billing.customers(id), total numeric);
  create table billing.invoice_lines (invoice_id int references billing.invoices(id), line int, amount numeric);
  create table billing.payments (id int primary key, invoice_id int references billing.invoices(id), paid numeric);
  insert into billing.customers select g, 'customer ' || g from generate_series(1, 20) g;
  insert into billing.invoices select g, 1 + g % 20, g * 10 from generate_series(1, 60) g;
  insert into billing.invoice_lines select 1 + g % 60, g, g from generate_series(1, 120) g;
  insert into billing.payments select g, g, g * 10 from generate_series(1, 45) g;
`;

export async function makeOperatorWorld(cluster: ClusterClient, options: { config?: Record<string, unknown> } = {}): Promise<OperatorWorld> {
  const dir = await makeTempDir('operator');
  const db = uniqueName('opw_app');
  await cluster.createDatabase(db);
  await cluster.query(db, SCHEMA_SQL);
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  await writeFile(path.join(bin, 'backupctl'), `#!/bin/sh\nexec '${process.execPath}' '${BIN}' "$@"\n`);
  await chmod(path.join(bin, 'backupctl'), 0o755);
  await writeFile(path.join(dir, 'app.password'), `${cluster.password}\n`, { mode: 0o600 });
  // /etc/backupctl of the examples: age keys of 2025 and 2026, the recipients files that
  // name them (2026's with an auditor's key too), and a passphrase.
  const etc = path.join(dir, 'etc-backupctl');
  await mkdir(etc);
  const keys = { 2025: generateIdentity(), 2026: generateIdentity() };
  for (const [year, key] of Object.entries(keys)) await writeFile(path.join(etc, `${year}.key`), formatIdentityFile(key.identity), { mode: 0o600 });
  await writeFile(path.join(etc, 'recipients.txt'), `# ops, 2025\n${keys[2025].recipient.toString()}\n`);
  await writeFile(path.join(etc, '2026.recipients'), `${keys[2026].recipient.toString()}\n# the auditor\n${AUDITOR}\n`);
  await writeFile(path.join(etc, 'app.passphrase'), 'correct horse battery staple\n', { mode: 0o600 });
  const storage = path.join(dir, 'backups');
  const config = path.join(dir, 'backupctl.config.json');
  await writeFile(
    config,
    JSON.stringify(
      options.config ?? {
        storage,
        defaults: { host: cluster.host, port: cluster.port, user: cluster.user, passwordFile: path.join(dir, 'app.password') },
        profiles: {
          app: {
            database: db,
            retention: { keepLast: 3, keepDaily: 7, keepTags: ['pre-migration'] },
            status: { maxAge: '25h' },
            encryption: { identityFile: [path.join(etc, '2025.key'), path.join(etc, '2026.key')] },
          },
        },
      },
      null,
      2,
    ),
  );
  const made: string[] = [];
  const server = `${cluster.host}:${cluster.port}`;
  const target = (name: string) => {
    const real = uniqueName(`opw_${name}`);
    made.push(real);
    return real;
  };
  const targets = new Map<string, string>();
  const aliases = new Map<string, string>();
  const rewrite = (command: string): string =>
    [...aliases]
      .reduce((text, [placeholder, real]) => text.replace(new RegExp(`\\b${placeholder}\\b`, 'g'), real), command)
      .replace(/postgres(ql)?:\/\/verify@scratch-db(\.[a-z.]+)?\//g, `postgres://${cluster.user}@${server}/`)
      // Another server, the URL naming the target database: the test cluster, a database of the world's.
      .replace(/postgres(ql)?:\/\/admin@staging-db(\.[a-z.]+)?(:5432)?\/(app_[a-z]+)\b/g, (_, _ql, _domain, _port, name: string) => {
        if (!targets.has(name)) targets.set(name, target(name));
        return `postgres://${cluster.user}@${server}/${targets.get(name) as string}`;
      })
      .replace(/\bPGHOST=(db1|app-db)(\.[a-z.]+)?/g, `PGHOST=${cluster.host} PGPORT=${cluster.port}`)
      .replace(/-h (db1|app-db)(\.[a-z.]+)? -p 5432/g, `-h ${cluster.host} -p ${cluster.port}`)
      .replace(/\bPGUSER=backup\b/g, `PGUSER=${cluster.user}`)
      .replace(/-U backup\b/g, `-U ${cluster.user}`)
      .replace(/\bPGDATABASE=app\b/g, `PGDATABASE=${db}`)
      .replace(/(-d|--target-db|createdb) (app_[a-z]+)\b/g, (_, flag: string, name: string) => {
        if (!targets.has(name)) targets.set(name, target(name));
        return `${flag} ${targets.get(name) as string}`;
      })
      .replace(/(-d|--target-db) app\b/g, `$1 ${db}`)
      .replace(/\/etc\/backupctl\//g, `${etc}/`)
      .replace(/\/mnt\/offsite\/backups\b/g, path.join(dir, 'offsite'))
      .replace(/\/var\/lib\/(node_exporter|prometheus)\/[a-z_/-]+\/backupctl\.prom/g, path.join(dir, 'backupctl.prom'));
  const run: OperatorWorld['run'] = async (script, runOptions = {}) => {
    const shell = runOptions.shell ?? 'bash';
    const result = await execa(shell, shell === 'bash' ? ['-eo', 'pipefail', '-c', script] : ['-e', '-c', script], {
      cwd: dir,
      env: {
        PATH: `${bin}:${process.env.PATH ?? ''}`,
        HOME: dir,
        NO_COLOR: '1',
        PGPASSWORD: cluster.password,
        ...runOptions.env,
      },
      extendEnv: false,
      stdin: 'ignore',
      reject: false,
      timeout: 120_000,
    });
    return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
  };
  return { dir, db, made, storage, config, rewrite, alias: (placeholder, real) => aliases.set(placeholder, real), run };
}
