import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { unknownProfile, type ProfileSettings, type ResolvedSettings } from '../config/resolve.js';
import { connect } from '../pg/client.js';
import { chooseClient, discoverClients, serverMajor } from '../pg/binaries.js';
import { describeConnection, type ConnectionSettings } from '../pg/connection.js';
import { dropDatabase, MaintenanceConnection, REPLACED_COMMENT_PREFIX, replacedDatabasesLeft, scratchDatabases, unmarkedScratchDatabases } from '../pg/admin.js';
import { probeUrl } from '../notify/notify.js';
import { BackupctlError } from '../errors.js';
import { storageError } from './storage-errors.js';
import { storageAt } from './storages.js';
import { describeStaleReason, lockLiveness, readLock } from './lock.js';
import { resolveProfile } from './profile.js';
import type { Runtime } from './runtime.js';
import { isLeftover } from './scratch.js';
import { describeWriterGone } from '../platform/process.js';
import { serverForBackup } from './server.js';
import { writeStages } from './stages.js';
import { scratchDir } from '../platform/run-dir.js';

/**
 * `backupctl check`, after pgBackRest's: everything a profile needs before it is trusted,
 * each checked for real and reported on one line. Nothing is left behind: the storage
 * probe object and the verify server's probe database are removed, and no notification
 * is sent (a notifier is only connected to).
 */
export interface CheckLine {
  check: 'config' | 'connection' | 'client' | 'stages' | 'storage' | 'work-dir' | 'copies' | 'lock' | 'verify-server' | 'leftovers' | 'notify';
  ok: boolean;
  /** What was checked and found (ok) or what is wrong (failed). */
  detail: string;
  hint?: string | undefined;
}

export interface ProfileCheck {
  profile: string;
  ok: boolean;
  checks: CheckLine[];
}

export interface CheckResult {
  ok: boolean;
  configFile: string | null;
  profiles: ProfileCheck[];
}

function failed(check: CheckLine['check'], error: unknown): CheckLine {
  const hint = (error as { hint?: unknown }).hint;
  const message = error instanceof Error ? error.message : String(error);
  return { check, ok: false, detail: message.replace(/\s*\n\s*/g, ' '), hint: typeof hint === 'string' ? hint : undefined };
}

async function attempt(check: CheckLine['check'], fn: () => Promise<string | CheckLine>): Promise<CheckLine> {
  try {
    const result = await fn();
    return typeof result === 'string' ? { check, ok: true, detail: result } : result;
  } catch (error) {
    return failed(check, error);
  }
}

/** The profiles to check: the named one, else every configured one, else the one the environment describes. */
function profilesToCheck(settings: ResolvedSettings): Array<ProfileSettings | undefined> {
  if (settings.named !== undefined || settings.profiles.size === 0) return [undefined];
  return [...settings.profiles.values()];
}

export async function checkProfiles(settings: ResolvedSettings, runtime: Runtime, flags: { dbUrl?: string | undefined }): Promise<CheckResult> {
  // A name the config does not define is a usage error (exit 2), as in every command, not
  // a failed check: there is no profile to check.
  if (settings.named !== undefined && settings.profiles.size > 0 && !settings.profiles.has(settings.named)) throw unknownProfile(settings, settings.named);
  const profiles: ProfileCheck[] = [];
  for (const chosen of profilesToCheck(settings)) {
    const scoped: ResolvedSettings = chosen ? { ...settings, named: chosen.name } : settings;
    profiles.push(await checkProfile(scoped, runtime, flags));
  }
  return { ok: profiles.every((p) => p.ok), configFile: settings.configFile, profiles };
}

async function checkProfile(settings: ResolvedSettings, runtime: Runtime, flags: { dbUrl?: string | undefined }): Promise<ProfileCheck> {
  const checks: CheckLine[] = [];
  let profile;
  try {
    profile = resolveProfile(settings, { url: flags.dbUrl });
  } catch (error) {
    // One line for the config: this failure, not "valid" and then this.
    checks.push(failed('config', error));
    return { profile: settings.named ?? '(none)', ok: false, checks };
  }
  checks.push({ check: 'config', ok: true, detail: settings.configFile ? `${settings.configFile} is valid` : 'no config file: flags and the libpq environment' });
  const name = profile.name;
  const connection = profile.connection;

  // The server, with the profile's credentials; then the clients for its major version.
  let major: number | null = null;
  checks.push(
    await attempt('connection', async () => {
      const client = await connect(connection);
      try {
        const { rows } = await client.query<{ v: string; num: string }>(`SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS num`);
        major = serverMajor(Number(rows[0]?.num ?? 0));
        return `${describeConnection(connection)} (PostgreSQL ${rows[0]?.v ?? '?'})`;
      } finally {
        await client.end().catch(() => undefined);
      }
    }),
  );
  if (major !== null) {
    const needed: number = major;
    checks.push(
      await attempt('client', async () => {
        const found = [];
        for (const tool of ['pg_dump', 'pg_restore', 'pg_dumpall'] as const) {
          const client = chooseClient(tool, await discoverClients(tool, { pgBinDir: profile.pgBinDir, path: runtime.env.PATH }), needed, profile.pgBinDir ? `pgBinDir ${profile.pgBinDir}` : undefined);
          found.push(`${tool} ${client.version.split(' ')[0]}`);
        }
        return `${found.join(', ')} for PostgreSQL ${needed} (in ${profile.pgBinDir ?? 'PATH and the usual places'})`;
      }),
    );
  }

  // Compression and encryption of new backups: the zstd program, the recipients' keys.
  checks.push(
    await attempt('stages', async () => {
      const stages = writeStages(profile.compression, profile.encryption, {}, runtime.env);
      return stages
        .map((stage) => {
          const record = stage.record();
          if (record.type === 'compression') return record.codec === 'none' ? 'no compression stage' : `${record.codec} level ${record.level}`;
          return `age to ${record.recipients.length} recipient(s)`;
        })
        .join(', ');
    }),
  );

  // The storage: write a probe object, read it back, remove it.
  const storage = storageAt(runtime, profile.storage, profile.settings.storageSettings);
  checks.push(
    await attempt('storage', async () => {
      // In the profile's folder when it has one; at the root before its first backup, so
      // that a check leaves no empty folder behind (a profile to list, on local and SFTP).
      // A store whose credentials reach only the profile's folder cannot list the root: probe there.
      const hasFolder = (await storage.children('').catch(() => [name])).includes(name);
      const key = `${hasFolder ? `${name}/` : ''}check-probe-${randomBytes(6).toString('hex')}`;
      const payload = randomBytes(64);
      await storage.put(key, Readable.from([payload]));
      try {
        const back = await storage.getBytes(key, 1024);
        if (!back.equals(payload)) throw new Error('the probe object read back differs from what was written');
      } finally {
        await storage.remove(key);
      }
      // Said, so that a mistyped storage does not pass unnoticed as one more empty place.
      const first = hasFolder ? '' : ` (nothing of profile ${name} there yet: its first backup will be)`;
      return `${storage.location}: written, read back and removed a probe object${first}`;
    }),
  );
  // The work directory (scratch space for directory-format dumps and decoded archives).
  checks.push(
    await attempt('work-dir', async () => {
      const dir = await scratchDir(profile.workDir, 'check');
      try {
        await writeFile(join(dir, 'probe'), randomBytes(64));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      return `${profile.workDir ?? `${tmpdir()} (the OS temp directory)`}: a private directory made, written and removed`;
    }),
  );
  // Each copy destination is writable (copies are made after every create).
  for (const where of profile.settings.copies ?? []) {
    checks.push(
      await attempt('copies', async () => {
        const destination = storageAt(runtime, where, profile.settings.storageSettings);
        // Named in the line and with a hint, as create's own copy step words it. In the
        // profile's folder when it has one there, else at the root: no empty folder is left.
        const hasFolder = (await destination.children('').catch(() => [name])).includes(name);
        await destination.checkWritable(hasFolder ? name : '').catch((error: unknown) => {
          // The destination is the profile's "copies" entry: the hint says so, not --storage.
          const failure = storageError(error, destination.location, 'checking the copy destination', 'write');
          const hint = failure.hint?.replace('choose another --storage', `fix or replace "${where}" in the profile's copies`);
          throw new BackupctlError(failure.message, { exitCode: failure.exitCode, hint, details: failure.details, cause: error });
        });
        return `${destination.location}: writable`;
      }),
    );
  }
  checks.push(
    await attempt('lock', async () => {
      const lock = await readLock(storage, name);
      if (lock === null) return 'free';
      if (lock.info === null) return { check: 'lock', ok: false, detail: 'held by an unreadable lock object', hint: `backupctl unlock --profile ${name}` };
      const holder = `"${lock.info.command}" (pid ${lock.info.pid} on ${lock.info.host}, since ${lock.info.startedAt})`;
      const judged = lockLiveness(lock.info);
      if (judged.state === 'stale') return `free: a stale lock of ${holder} (${describeStaleReason(judged.why, lock.info.pid)}) is taken over by the next run`;
      return { check: 'lock', ok: false, detail: `held by ${holder}`, hint: 'a run is in progress; or, if it died on another host, backupctl unlock' };
    }),
  );

  // The verify server, when the profile names one: reachable, and may create a database.
  const verifyUrl = profile.settings.verify?.server;
  const servers: ConnectionSettings[] = [connection];
  if (verifyUrl !== undefined) {
    const verifyServer = serverForBackup(settings, { value: undefined, flag: '--verify-url' }, {}, (p) => p.verify?.server)({ profile: name });
    servers.push(verifyServer);
    checks.push(
      await attempt('verify-server', async () => {
        const maintenance = await MaintenanceConnection.open(verifyServer);
        const probe = `backupctl_check_${randomBytes(4).toString('hex')}`;
        try {
          const { version } = await maintenance.version();
          await maintenance.createDatabase(probe);
          await maintenance.dropDatabase(probe);
          return `${describeConnection(verifyServer)} (PostgreSQL ${version}): created and dropped a probe database`;
        } finally {
          await dropDatabase(verifyServer, probe).catch(() => undefined);
          await maintenance.close();
        }
      }),
    );
  }

  // Scratch databases that killed runs left on these servers (verify and restore drop them).
  checks.push(
    await attempt('leftovers', async () => {
      const left: string[] = [];
      let own = 0;
      const otherHosts = new Set<string>();
      for (const server of servers) {
        for (const database of await scratchDatabases(server).catch(() => [])) {
          const judged = isLeftover(database, runtime.now());
          if (judged === null) continue;
          const why = judged.state === 'dead' ? `: ${describeWriterGone(judged.why, database.pid)}` : '';
          left.push(`${database.database} (${database.kind}, pid ${database.pid} on ${database.host}${why}) on ${server.host}:${server.port}`);
          if (judged.state === 'dead') own += 1;
          else otherHosts.add(database.host);
        }
      }
      // Named as scratch but never marked: a run killed while the server created it.
      const unmarked: string[] = [];
      for (const server of servers) {
        for (const database of await unmarkedScratchDatabases(server).catch(() => [])) unmarked.push(`${database} on ${server.host}:${server.port}`);
      }
      // Replaced by a restore that was to drop them right after, and stopped before it could.
      const replaced: string[] = [];
      for (const server of servers) {
        for (const { database, comment } of await replacedDatabasesLeft(server).catch(() => [])) {
          // "restore of backup P/ID at T (pid N on H)", from the note restore wrote.
          const end = comment.indexOf(', which was to drop it');
          const which = comment.slice(REPLACED_COMMENT_PREFIX.length, end < 0 ? undefined : end);
          replaced.push(`${database} on ${server.host}:${server.port} (restore of backup ${which})`);
        }
      }
      if (left.length + unmarked.length + replaced.length === 0) return 'no scratch database left by a killed run';
      const details: string[] = [];
      const hints: string[] = [];
      if (left.length > 0) {
        details.push(`left by runs that ended without dropping them (killed, or their server went away): ${left.join(', ')}`);
        // Only this host's runs are judged dead from here; another host's leftovers are never dropped from here.
        const others = [...otherHosts].join(', ');
        hints.push(
          otherHosts.size === 0
            ? 'the next verify or restore on this host drops them; or drop them by hand'
            : `${own > 0 ? "the next verify or restore on this host drops this host's; " : ''}those of ${others} are dropped by a verify or restore there, or by hand once you know their run is gone`,
        );
      }
      if (unmarked.length > 0) {
        details.push(`named as a verify or restore scratch database but not marked as one, so never dropped by backupctl: ${unmarked.join(', ')} (a run killed while the server created it; or made by hand)`);
        hints.push('unless a verify or restore is starting right now, drop them by hand (DROP DATABASE ...) once you know they hold nothing you need');
      }
      if (replaced.length > 0) {
        details.push(`replaced by a restore that stopped before it dropped them, never dropped by backupctl: ${replaced.join(', ')}`);
        hints.push('unless that restore is finishing right now, drop them by hand (DROP DATABASE ...) once you know you need nothing of what the target held before it');
      }
      return { check: 'leftovers', ok: false, detail: details.join('; '), hint: hints.join('; ') };
    }),
  );

  // Notification targets: connected to (DNS, TCP, TLS), never sent anything.
  const notify = profile.settings.notify;
  const targets = [
    ['webhook', notify?.webhook?.url],
    ['slack', notify?.slack?.url],
    ['healthchecks', notify?.healthchecks?.url],
  ].filter((t): t is [string, string] => t[1] !== undefined);
  for (const [kind, url] of targets) {
    checks.push(await attempt('notify', async () => `${kind} ${await probeUrl(url, notify?.timeoutMs ?? 10_000)}`));
  }
  return { profile: name, ok: checks.every((c) => c.ok), checks };
}

