/**
 * backupctl.config.example.json is a config an operator copies: every profile in it must
 * work. The example is loaded as written and only its outside world is mapped onto this
 * machine (hosts onto the test cluster, /etc/backupctl files onto generated keys and
 * passwords, storages onto temp directories and the sftp copy onto a real sshd, notify
 * URLs onto a local HTTP server, TLS off: the test server has no certificate); then each
 * profile goes through the commands an operator runs: check, create (with its copies),
 * list, verify, status and prune.
 */
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDirs } from '../helpers/backups.js';
import { assertBuilt } from '../helpers/cli.js';
import { makeOperatorWorld, type OperatorWorld } from '../helpers/operator-world.js';
import { connectProvided } from '../helpers/pg.js';
import { sshdUnavailable, startSshd, type SshdServer } from '../helpers/storage-servers.js';

const EXAMPLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../backupctl.config.example.json');
const cluster = connectProvided();
const unavailable = sshdUnavailable();

type Json = Record<string, unknown>;

let world: OperatorWorld;
let sshd: SshdServer;
let hooks: http.Server;
const received: string[] = [];
const env: Record<string, string> = {};

/** Every string of `value` that still points outside this machine (the drivers' unused settings aside). */
function outside(value: unknown, at = ''): string[] {
  if (typeof value === 'string') return /example\.com|hc-ping\.com|hooks\.slack\.com|^\/etc\/|^\/var\/|^\/mnt\//.test(value) ? [`${at}: ${value}`] : [];
  if (Array.isArray(value)) return value.flatMap((item, i) => outside(item, `${at}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.entries(value as Json)
      .filter(([key]) => !(at === '.storageSettings' && (key === 's3' || key === 'azure')))
      .flatMap(([key, item]) => outside(item, `${at}.${key}`));
  }
  return [];
}

beforeAll(async () => {
  assertBuilt();
  if (unavailable) return;
  sshd = await startSshd();
  hooks = http.createServer((request, response) => {
    received.push(`${request.method} ${request.url}`);
    request.resume();
    response.end('ok');
  });
  await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
  const local = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}`;

  // The world first (its database, keys and directories), then its config: the example, mapped.
  world = await makeOperatorWorld(cluster);
  const etc = path.join(world.dir, 'etc-backupctl');
  const example = JSON.parse(await readFile(EXAMPLE, 'utf8')) as Json;
  const text = JSON.stringify(example)
    .replace(/https:\/\/hc-ping\.com\//g, `${local}/hc/`)
    .replace(/https:\/\/hooks\.slack\.com\//g, `${local}/slack/`)
    .replace(/https:\/\/ops\.example\.com\//g, `${local}/ops/`)
    .replace(/postgresql:\/\/verify@scratch-db\.internal\.example\.com\/postgres/g, `postgresql://${cluster.user}@${cluster.host}:${cluster.port}/postgres`)
    .replace(/postgresql:\/\/billing-db\.internal\.example\.com\/billing/g, `postgresql://${cluster.user}@${cluster.host}:${cluster.port}/${world.db}`)
    .replace(/sftp:\/\/backup@vault\.internal\.example\.com:2222\/srv\/backups\/postgres/g, `sftp://${sshd.user}@127.0.0.1:${sshd.port}${sshd.root}/vault-copy`)
    .replace(/"app-db\.internal\.example\.com"/g, JSON.stringify(cluster.host))
    .replace(/"app_production"/g, JSON.stringify(world.db))
    .replace(/\/usr\/lib\/postgresql\/1\d\/bin/g, path.dirname(cluster.bin('pg_dump')))
    .replace(/"\/var\/backups\/postgres"/g, JSON.stringify(path.join(world.dir, 'backups')))
    .replace(/"\/mnt\/backup-vault\/postgres"/g, JSON.stringify(path.join(world.dir, 'vault')))
    .replace(/"\/var\/tmp\/backupctl"/g, JSON.stringify(path.join(world.dir, 'work')))
    .replace(/"\/etc\/backupctl\/app\.password"/g, JSON.stringify(path.join(world.dir, 'app.password')))
    .replace(/"\/etc\/backupctl\/billing\.recipients"/g, JSON.stringify(path.join(etc, '2026.recipients')))
    .replace(/"\/etc\/backupctl\/billing-(2025|2026)\.key"/g, (_, year: string) => JSON.stringify(path.join(etc, `${year}.key`)))
    .replace(/"\/etc\/backupctl\/app\.passphrase"/g, JSON.stringify(path.join(etc, 'app.passphrase')));
  const config = JSON.parse(text) as Json;
  delete config.$schema;
  // The sftp driver logs in with the test server's key and checks its host key.
  const storageSettings = config.storageSettings as Json;
  storageSettings.sftp = { ...(storageSettings.sftp as Json), key: sshd.keyFile, knownHosts: sshd.knownHostsFile };
  for (const field of ['passphraseFile', 'passphraseEnv', 'passwordFile', 'passwordEnv']) delete (storageSettings.sftp as Json)[field];
  const defaults = config.defaults as Json;
  defaults.user = cluster.user;
  defaults.port = cluster.port;
  defaults.sslmode = 'disable';
  // Recipients are public keys: the example's is the age project's sample key, whose identity nobody here holds.
  (defaults.encryption as Json).recipients = [(await readFile(path.join(etc, 'recipients.txt'), 'utf8')).split('\n').find((line) => line.startsWith('age1'))];
  expect(outside(config)).toEqual([]);
  await writeFile(world.config, JSON.stringify(config, null, 2));
  env.BILLING_DB_PASSWORD = cluster.password;
  env.BACKUPCTL_PASSPHRASE = 'unused: the profiles name their own keys';
}, 120_000);

afterAll(async () => {
  if (unavailable) return;
  hooks?.close();
  await sshd?.stop();
  const names = await cluster.query<{ datname: string }>('postgres', 'select datname from pg_database where starts_with(datname, $1)', ['opw_']);
  for (const { datname } of names) if (world && datname.startsWith(world.db)) await cluster.dropDatabase(datname);
  if (world) await removeDirs([world.dir]);
});

async function run(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  // A wrong PGPASSWORD: each profile's own password source must win over it.
  return world.run(command, { env: { ...env, PGPASSWORD: 'not-the-password' } });
}

describe.skipIf(unavailable !== null)('backupctl.config.example.json, profile by profile', () => {
  it('app (the default profile): check, create, list, verify on the verify server, status, prune', async () => {
    const check = await run('backupctl check');
    expect(check.code, `${check.stdout}\n${check.stderr}`).toBe(0);
    const created = await run('backupctl create --json');
    expect(created.code, created.stderr).toBe(0);
    const id = (JSON.parse(created.stdout) as { id: string; artifact: string }).id;
    expect((JSON.parse(created.stdout) as { artifact: string }).artifact).toBe(`${id}.dump.zst.age`); // its own passphrase
    const shown = JSON.parse((await run('backupctl show latest --json')).stdout) as { dump: { excludeSchemas: string[] }; tables: Array<{ schema: string; name: string }> };
    expect(shown.dump.excludeSchemas).toEqual(['app_scratch']);
    expect(shown.tables.map((t) => `${t.schema}.${t.name}`)).toEqual(expect.arrayContaining(['public.orders', 'app_core.accounts']));
    expect(shown.tables.map((t) => `${t.schema}.${t.name}`)).not.toContain('public.user_sessions');
    for (const command of ['backupctl list', 'backupctl verify latest', 'backupctl status --profile app', 'backupctl prune --dry-run']) {
      const result = await run(command);
      expect(result.code, `${command}\n${result.stdout}\n${result.stderr}`).toBe(0);
    }
    // Its notifications went to its own webhook, Slack and healthchecks URLs.
    expect(received.some((line) => line.startsWith('POST /ops/hooks/backups'))).toBe(true);
    expect(received.some((line) => line.includes('/hc/11111111-1111-1111-1111-111111111111'))).toBe(true);
  });

  it('billing: its own storage, directory format with 4 jobs and pg_dump compression, recipients, a copy over sftp', async () => {
    const check = await run('backupctl check --profile billing');
    expect(check.code, `${check.stdout}\n${check.stderr}`).toBe(0);
    const created = await run('backupctl create --profile billing --json');
    expect(created.code, created.stderr).toBe(0);
    const result = JSON.parse(created.stdout) as { id: string; artifact: string; storage: string; copies: Array<{ result: string }> };
    expect(result.artifact).toBe(`${result.id}.dump.tar.age`);
    expect(result.storage).toBe(path.join(world.dir, 'vault'));
    expect(result.copies.map((c) => c.result)).toEqual(['copied']);
    const copy = `sftp://${sshd.user}@127.0.0.1:${sshd.port}${sshd.root}/vault-copy`;
    for (const command of [
      'backupctl list --profile billing',
      'backupctl verify latest --profile billing',
      `backupctl verify latest --profile billing --storage '${copy}' --level archive`,
      'backupctl status --profile billing',
      'backupctl prune --profile billing --dry-run',
    ]) {
      const outcome = await run(command);
      expect(outcome.code, `${command}\n${outcome.stdout}\n${outcome.stderr}`).toBe(0);
    }
  });
});
