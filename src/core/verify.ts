import { randomBytes } from 'node:crypto';
import type { Catalog} from '../catalog/catalog.js';
import { artifactKey, sidecarKey } from '../catalog/catalog.js';
import { qualifiedName, type Sidecar, type Verification } from '../catalog/sidecar.js';
import { BackupctlError, errnoCode, ExitCode, throwIfAborted } from '../errors.js';
import type { NotifyConfig } from '../notify/notify.js';
import { countDatabaseRows, countLargeObjects, createSchemas, databaseAnswers, dropEmptyPublicSchema, isSuperuser, MaintenanceConnection, missingRoles, scratchMark, movablePartitions, unavailableExtensions, type TableName } from '../pg/admin.js';
import { chooseClient, discoverClients, findClient, serverMajor, type ClientBinary } from '../pg/binaries.js';
import { childEnv, offlineEnv } from '../pg/child-env.js';
import type { ConnectionSettings } from '../pg/connection.js';
import type { CountedTable } from '../pg/counts.js';
import { endedBySignal, type ChildRun } from '../pg/dump.js';
import { RestoreCounter } from '../pg/restore-counts.js';
import { RestoreProgress } from '../pg/restore-progress.js';
import { archiveNeeds, pgRestoreArgs, policyRoles, readArchiveThrough, RestoreInputError, runRestore, schemaSetup } from '../pg/restore.js';
import { holdsLargeObjects, type TocEntry } from '../pg/toc.js';
import { NotFoundError, type Storage } from '../storage/storage.js';
import { archiveProblems, ArchiveUnreadableError, ArtifactHostileError, ArtifactMissingError, digestMismatches, hashStored, openArchive, readStoredFile, storedAsIs, withScratchDir, type LocalArchive } from './archive.js';
import type { DecodeKeys } from '../pipeline/codecs/index.js';
import { assertDecryptable } from './stages.js';
import { recordedHeaderProblems } from './age-header.js';
import { openStreamedArchive } from './streamed-archive.js';
import { withRunReport } from './report-run.js';
import { dropWithinGrace, scratchTag, sweepScratchDatabases } from './scratch.js';
import type { Runtime } from './runtime.js';
import { workDirFailure } from './work-dir.js';
import { findBackup, scanScope, type BackupScope, type LocatedBackup } from './scope.js';

export const VERIFY_LEVELS = ['checksum', 'archive', 'restore'] as const;
export type VerifyLevel = (typeof VERIFY_LEVELS)[number];

export interface VerifyRequest {
  scope: BackupScope;
  /** An id (or a unique prefix) or `latest`; ignored with `all`. */
  ref?: string | undefined;
  all?: boolean | undefined;
  tag?: string | undefined;
  level: VerifyLevel;
  /** Keep the throwaway database (restore level) for inspection. */
  keep: boolean;
  /** Parallel pg_restore jobs for a backup of this profile. */
  jobs: (profile: string) => number;
  /** Where the restore level restores a backup (the profile's server, --verify-url or verify.server); null for the other levels. */
  server: ((sidecar: Sidecar) => ConnectionSettings) | null;
  /** The clients' directory of a profile (its pgBinDir, the config's, or none). */
  pgBinDir: (profile: string) => string | undefined;
  /** What an encrypted (or compressed) backup of a profile is decoded with; read at the archive and restore levels only. */
  keys?: ((profile: string) => DecodeKeys) | undefined;
  workDir?: string | undefined;
  /** Where a profile's verify runs are notified. */
  notify?: ((profile: string) => NotifyConfig | undefined) | undefined;
}

/**
 * - passed / failed: the backup's own content was checked; the verdict is recorded in its
 *   sidecar (failed: exit 3).
 * - error: the check could not be made (the verify server stopped, a connection failed, a
 *   client is missing, the storage could not be read): exit 1, and NOT recorded as the
 *   backup's verdict: a good backup is never reported corrupt because of its surroundings.
 * - skipped: the backup was removed (pruned, deleted) while the run went on.
 */
export type VerifyVerdict = 'passed' | 'failed' | 'error' | 'skipped';

export interface VerifyOutcome {
  id: string;
  profile: string;
  database: string;
  level: VerifyLevel;
  result: VerifyVerdict;
  durationMs: number;
  /** Every difference found: digests, TOC entries, row counts. */
  mismatches: string[];
  /** Why the check could not complete (an unreadable archive, a failed restore, a failing server). */
  error?: string | undefined;
  /** With `error`: the exit code of the failure behind it. */
  errorExitCode?: number | undefined;
  serverVersion?: string | undefined;
  /** With --keep: the throwaway database left for inspection. */
  keptDatabase?: string | undefined;
  /** Set when the verification could not be recorded in the sidecar. */
  recordWarning?: string | undefined;
}

export interface VerifyResult {
  storage: string;
  outcomes: VerifyOutcome[];
}

/** 3 when a backup's content failed, else 1 when a check could not be made, else 0. */
export function verifyExitCode(result: VerifyResult): number {
  if (result.outcomes.some((o) => o.result === 'failed')) return ExitCode.VERIFY_FAILED;
  const errored = result.outcomes.find((o) => o.result === 'error');
  if (errored) return errored.errorExitCode ?? ExitCode.FAILED;
  return ExitCode.OK;
}

/** Verification failed: the backup is not what its sidecar says. Carries its outcome. */
class Mismatch extends Error {
  constructor(readonly problems: string[], readonly failure?: string) {
    super(failure ?? problems[0] ?? 'mismatch');
  }
}

/**
 * Verifies backups, each level including the ones before it:
 * - checksum: the stored artifact (and globals) re-hashed: size and sha256 as recorded;
 * - archive: pg_restore reads the whole archive through to the end, and its table of
 *   contents has the number of entries recorded at create time;
 * - restore: the archive is restored into a throwaway database (unique name, always
 *   dropped, even on failure or interrupt, unless `keep`), and every table's row count
 *   is compared with the count recorded in the snapshot at backup time.
 * Every verdict is appended to the backup's sidecar, and every run (per profile) to the
 * profile's run log.
 */
export async function verifyBackups(request: VerifyRequest, runtime: Runtime): Promise<VerifyResult> {
  const { scope } = request;
  let targets: LocatedBackup[];
  // With --all: sidecars that are there but cannot be read are backups that cannot be
  // restored through backupctl as they are: FAILED (exit 3), never silently left out.
  // Nothing is recorded: the sidecar stays as found, for inspection.
  const unreadable: VerifyOutcome[] = [];
  if (request.all) {
    const scan = await scanScope(scope);
    for (const warning of scan.warnings) runtime.reporter.warn(warning);
    targets = scan.backups.filter((b) => request.tag === undefined || b.sidecar.tags.includes(request.tag));
    for (const entry of scan.unreadable) {
      unreadable.push({ id: entry.id, profile: entry.profile, database: '?', level: request.level, result: 'failed', durationMs: 0, mismatches: [`its sidecar cannot be read: ${entry.reason}`] });
    }
  } else {
    targets = [await findBackup(scope, request.ref ?? 'latest', { tag: request.tag })];
  }
  const outcomes: VerifyOutcome[] = [];
  // One reported run per profile, in the order the backups come (newest first).
  const profiles = [...new Set(targets.map((t) => `${t.storage.location}\u0000${t.sidecar.profile}`))];
  for (const key of profiles) {
    const group = targets.filter((t) => `${t.storage.location}\u0000${t.sidecar.profile}` === key);
    const first = group[0] as LocatedBackup;
    const profile = first.sidecar.profile;
    await withRunReport(
      // The database too, as create's notification has it (the backups of a profile are of one database).
      { command: 'verify', profile, database: first.sidecar.database.name, storage: first.storage, notify: request.notify?.(profile) },
      runtime,
      async (started) => {
        started();
        const done: VerifyOutcome[] = [];
        for (const { sidecar, storage, catalog } of group) {
          throwIfAborted(runtime.signal);
          const outcome = await verifyOne(storage, catalog, sidecar, request, runtime);
          if (outcome.result === 'passed' || outcome.result === 'failed') {
            const recorded = await record(catalog, sidecar, outcome, runtime.now());
            if (recorded === REMOVED_MEANWHILE) {
              // Deleted or pruned while it was checked: no verdict on a backup that is gone.
              Object.assign(outcome, { result: 'skipped', mismatches: [], error: 'removed (pruned or deleted) while it was being verified' });
            } else if (recorded !== undefined) {
              outcome.recordWarning = recorded;
              runtime.reporter.warn(recorded);
            }
          } else if (outcome.result === 'error') {
            runtime.reporter.warn(`could not verify ${sidecar.profile}/${sidecar.id}: ${outcome.error ?? 'unknown error'} (not recorded as its verdict)`);
          }
          done.push(outcome);
          outcomes.push(outcome);
        }
        return done;
      },
      (done) => ({ id: done.length === 1 ? done[0]?.id : undefined }),
      (done) => {
        const failed = done.filter((o) => o.result === 'failed');
        const errored = done.filter((o) => o.result === 'error');
        if (failed.length === 0 && errored.length === 0) return null;
        const worst = failed[0] ?? (errored[0] as VerifyOutcome);
        const what = failed.length > 0 ? `${failed.length} backup(s) failed verification` : `${errored.length} backup(s) could not be verified`;
        return {
          exitCode: verifyExitCode({ storage: '', outcomes: done }),
          error: `${what}; ${worst.id}: ${worst.error ?? worst.mismatches[0] ?? worst.result}`,
        };
      },
    );
  }
  outcomes.push(...unreadable);
  return { storage: scope.locations.map((l) => l.storage.location).join(', '), outcomes };
}

async function verifyOne(storage: Storage, catalog: Catalog, sidecar: Sidecar, request: VerifyRequest, runtime: Runtime): Promise<VerifyOutcome> {
  const started = performance.now();
  const level = levelFor(request.level, sidecar);
  if (level !== request.level) runtime.reporter.warn(`${sidecar.profile}/${sidecar.id} is a --data-only backup, with no schema to restore into: checked at level archive`);
  const base = { id: sidecar.id, profile: sidecar.profile, database: sidecar.database.name, level };
  runtime.reporter.info(`verifying ${sidecar.profile}/${sidecar.id} (${request.level})`);
  const outcome = (result: VerifyVerdict, extra: Partial<VerifyOutcome> = {}): VerifyOutcome => ({
    ...base,
    result,
    durationMs: Math.round(performance.now() - started),
    mismatches: [],
    ...extra,
  });
  let archive: LocalArchive | null = null;
  try {
    const keys = request.level === 'checksum' ? undefined : request.keys?.(sidecar.profile);
    if (request.level !== 'checksum') assertDecryptable(sidecar, keys);
    const mismatches = await checkGlobals(storage, sidecar, request.level, keys, runtime.signal);
    if (request.level === 'checksum') {
      const key = artifactKey(sidecar.profile, sidecar.artifact.file);
      const differs = digestMismatches('artifact', sidecar.artifact, await hashStored(storage, key, runtime.signal));
      // Bytes as recorded: an encrypted one's header must still hold the recorded recipients.
      mismatches.push(...(differs.length > 0 ? differs : await recordedHeaderProblems(storage, key, sidecar.artifact, runtime.signal)));
      return outcome(mismatches.length ? 'failed' : 'passed', { mismatches });
    }
    // pg_restore reads the archive once, from its stdin, as it is decoded, unless it
    // restores in parallel (--jobs needs a file it can seek in).
    const streamed = level === 'archive' || request.jobs(sidecar.profile) <= 1;
    const opening = (streamed ? openStreamedArchive : openArchive)(storage, sidecar, { workDir: request.workDir, signal: runtime.signal, keys });
    archive = await opening.catch((error: unknown) => {
      if (!(error instanceof ArchiveUnreadableError)) throw error;
      const stored = digestMismatches('artifact', sidecar.artifact, error.digest);
      // Damaged stored bytes explain why they cannot be decoded: the damage alone is reported.
      if (stored.length > 0) throw new Mismatch([...mismatches, ...stored]);
      throw new Mismatch(mismatches, `the archive cannot be read back: ${error.reason}`);
    });
    // The re-hash runs alongside the checks below (it reads the file; they run pg_restore
    // and the server), and a digest mismatch wins over whatever they found.
    const opened = archive;
    const corrupt = async (): Promise<string[]> => [...mismatches, ...(await archiveProblems(sidecar, opened))];
    if (!opened.inPlace && !opened.stream) {
      // Downloaded or unpacked: the stored digest is known already, so corruption stops us
      // here (the decoded file's own digest is still being computed: checked with the verdict).
      const problems = [...mismatches, ...digestMismatches('artifact', sidecar.artifact, await opened.digest())];
      if (problems.length) throw new Mismatch(problems);
    }
    let checked: VerifyOutcome;
    try {
      checked = await checkArchive(sidecar, opened, request, runtime, outcome);
    } catch (error) {
      if (runtime.signal.aborted) throw error;
      const problems = await corrupt().catch(() => []);
      if (problems.length) {
        // Corruption explains whatever else went wrong (pg_restore read an archive cut short
        // where the damage was found): it alone is reported (exit 3).
        throw new Mismatch(problems);
      }
      throw error;
    }
    const problems = await corrupt();
    if (problems.length) {
      const { error, serverVersion, keptDatabase } = checked;
      return outcome('failed', { mismatches: [...new Set([...problems, ...checked.mismatches])], error, serverVersion, keptDatabase });
    }
    return checked;
  } catch (error) {
    throwIfAborted(runtime.signal);
    if (error instanceof ArtifactHostileError) return outcome('failed', { mismatches: [error.reason] });
    if (error instanceof ArtifactMissingError) {
      // Removed by a prune or delete while this run went on: not a verdict on anything.
      if (!(await sidecarExists(catalog, sidecar))) return outcome('skipped', { error: 'removed while the run went on' });
      return outcome('failed', { mismatches: [`${error.key} is missing`] });
    }
    if (error instanceof Mismatch) return outcome('failed', { mismatches: error.problems, error: error.failure });
    if (error instanceof BackupctlError || errnoCode(error) !== undefined) {
      const failure = await workDirFailure(error, request.workDir, { custom: sidecar.artifact.container === 'tar' ? false : request.jobs(sidecar.profile) > 1 ? true : undefined });
      return outcome('error', { error: errorText(failure), errorExitCode: failure instanceof BackupctlError ? failure.exitCode : ExitCode.FAILED });
    }
    throw error;
  } finally {
    await archive?.dispose();
  }
}

async function sidecarExists(catalog: Catalog, sidecar: Sidecar): Promise<boolean> {
  try {
    await catalog.storage.stat(sidecarKey(sidecar.profile, sidecar.id));
    return true;
  } catch (error) {
    if (error instanceof NotFoundError) return false;
    return true;
  }
}

function errorText(error: unknown): string {
  const message = (error as Error).message ?? String(error);
  const hint = error instanceof BackupctlError && error.hint ? ` (${error.hint.split('\n')[0]})` : '';
  return message + hint;
}

/**
 * The check could not be made for a reason outside the backup (the verify server went
 * away mid-restore, a count's connection broke): exit 1, never recorded as a verdict.
 */
class VerifyEnvironmentError extends BackupctlError {}

/**
 * The level a backup is checked (and its verdict recorded) at: as asked, but a data-only
 * backup has no tables to restore its rows into, so the deepest check it can have is the
 * archive level.
 */
function levelFor(requested: VerifyLevel, sidecar: Sidecar): VerifyLevel {
  return requested === 'restore' && sidecar.dump.dataOnly ? 'archive' : requested;
}

/** The archive and restore levels, after the archive is readable on this machine. */
async function checkArchive(
  sidecar: Sidecar,
  archive: LocalArchive,
  request: VerifyRequest,
  runtime: Runtime,
  outcome: (result: 'passed' | 'failed', extra?: Partial<VerifyOutcome>) => VerifyOutcome,
): Promise<VerifyOutcome> {
  const dumpMajor = Number.parseInt(sidecar.engine.pgDumpVersion, 10) || 0;
  const level = levelFor(request.level, sidecar);
  const server = level === 'restore' && request.server ? request.server(sidecar) : null;
  if (server) return restoreCheck(sidecar, archive, dumpMajor, request, server, runtime, outcome);
  const pgRestore = await findClient('pg_restore', dumpMajor, { pgBinDir: request.pgBinDir(sidecar.profile), path: runtime.env.PATH, of: 'archive' });
  const run = { env: offlineEnv(runtime.env), signal: runtime.signal };
  await checkToc(sidecar, archive, pgRestore, run);
  if (level === 'archive') {
    const failure = archive.stream
      ? await readArchiveThrough(pgRestore.path, null, run, await archive.stream.open())
      : await readArchiveThrough(pgRestore.path, archive.path, run);
    if (failure) throw new Mismatch([], `the archive cannot be read to the end: ${failure}`);
    return outcome('passed');
  }
  throw new BackupctlError('the restore level needs a server to restore into');
}

/** The archive's table of contents: readable, with the number of entries recorded at create time. */
async function checkToc(sidecar: Sidecar, archive: LocalArchive, pgRestore: ClientBinary, run: ChildRun): Promise<TocEntry[]> {
  const toc = await archive.toc(pgRestore.path, run).catch((error: unknown) => {
    // This machine's failure (a full scratch disk for a streamed archive's head) is no verdict.
    if (errnoCode(error) !== undefined) throw error;
    throw new Mismatch([], `the archive's table of contents is unreadable: ${(error as Error).message}`);
  });
  if (toc.length !== sidecar.dump.tocEntries) {
    throw new Mismatch([`table of contents has ${toc.length} entries, the sidecar says ${sidecar.dump.tocEntries}`]);
  }
  return toc;
}

/**
 * The globals file, when the backup has one: present, and size and sha256 as recorded;
 * beyond the checksum level also decoded through its stages (decrypted and authenticated,
 * decompressed), as the archive is.
 */
async function checkGlobals(storage: Storage, sidecar: Sidecar, level: VerifyLevel, keys: DecodeKeys | undefined, signal?: AbortSignal): Promise<string[]> {
  const globals = sidecar.globals;
  if (globals.status !== 'included') return [];
  const key = artifactKey(sidecar.profile, globals.file);
  try {
    if (level !== 'checksum' && !storedAsIs(globals.stages)) {
      await readStoredFile(storage, key, globals, keys);
      return [];
    }
    const differs = digestMismatches('globals', globals, await hashStored(storage, key, signal));
    return differs.length > 0 ? differs : await recordedHeaderProblems(storage, key, globals, signal);
  } catch (error) {
    if (error instanceof ArtifactMissingError) return [`globals file ${globals.file} is missing`];
    if (error instanceof ArtifactHostileError) return [error.reason];
    if (error instanceof ArchiveUnreadableError) return [`globals file ${globals.file}: ${error.reason}`];
    throw error;
  }
}

/** A name no one else uses: backupctl_verify_<id>_<random>, at most 63 bytes. */
export function throwawayName(id: string): string {
  return `backupctl_verify_${id.toLowerCase().replace(/[^a-z0-9]/g, '_')}_${randomBytes(3).toString('hex')}`;
}

/**
 * The restore level: the archive level's TOC check, then a restore into a throwaway
 * database and the row counts. Off the critical path: pg_restore's discovery runs while
 * the one maintenance connection is opened (its minimum major needs the server's version),
 * CREATE DATABASE while pg_restore is chosen and reads the TOC, and the row counts while
 * pg_restore builds indexes and constraints (see RestoreCounter). The throwaway database
 * is dropped whatever happens (a failed check, a failure, Ctrl-C; also when CREATE
 * DATABASE was still running then), unless --keep, which applies from the restore on.
 */
async function restoreCheck(
  sidecar: Sidecar,
  archive: LocalArchive,
  dumpMajor: number,
  request: VerifyRequest,
  server: ConnectionSettings,
  runtime: Runtime,
  outcome: (result: 'passed' | 'failed', extra?: Partial<VerifyOutcome>) => VerifyOutcome,
): Promise<VerifyOutcome> {
  const pgBinDir = request.pgBinDir(sidecar.profile);
  const jobs = request.jobs(sidecar.profile);
  const clients = discoverClients('pg_restore', { pgBinDir, path: runtime.env.PATH });
  clients.catch(() => undefined);
  const maintenance = await MaintenanceConnection.open(server);
  // Throwaway databases of verify runs that were killed go now, alongside this one's work.
  const sweeping = sweepScratchDatabases(server, runtime);
  const name = throwawayName(sidecar.id);
  // Its mark: what its drop checks, so that only this run's own goes.
  const mark = scratchTag('verify', runtime);
  let creating: Promise<void> | null = null;
  let created = false;
  /** The restore began: --keep keeps the database from here on (before, it is empty and unnamed to the user). */
  let restoring = false;
  let counter: RestoreCounter | null = null;
  try {
    const { version, num } = await maintenance.version();
    creating = maintenance
      .createDatabase(name, {
        encoding: sidecar.database.encoding,
        locale: sidecar.database.locale,
        scratch: mark,
        onFallback: (reason) => runtime.reporter.warn(`throwaway database ${name} ${reason}`),
      })
      .then(() => {
        created = true;
      });
    creating.catch(() => undefined); // awaited below, or settled in finally
    const where = pgBinDir ? `pgBinDir ${pgBinDir}` : undefined;
    // As new as the dump, not as the server: restoring last night's backup on the next
    // major version (an upgrade rehearsal) needs nothing newer than the pg_dump that made it.
    const pgRestore = chooseClient('pg_restore', await clients, dumpMajor, where, 'archive');
    if (serverMajor(num) > pgRestore.major) {
      runtime.reporter.debug(`restoring with ${pgRestore.path} ${pgRestore.version} into PostgreSQL ${version}: an upgrade rehearsal`);
    }
    const offline = { env: offlineEnv(runtime.env), signal: runtime.signal };
    const toc = await checkToc(sidecar, archive, pgRestore, offline);
    await checkVerifyServer(server, pgRestore.path, archive.path, toc, request.workDir, offline);
    // A --table dump holds its tables but not their schemas: create those first.
    const schemas = await withScratchDir(request.workDir, (dir) => schemaSetup(pgRestore.path, archive.path, toc, { tablesOnly: sidecar.dump.tables.length > 0, publicSchema: sidecar.database.publicSchema }, dir, offline));
    const env = await childEnv(server, runtime.env, name);
    try {
      await creating;
      if (schemas.dropPublic) await dropEmptyPublicSchema(server, name);
      await createSchemas(server, name, schemas.create);
      restoring = true;
      runtime.reporter.info(`restoring into throwaway database ${name}`);
      const args = pgRestoreArgs(archive.stream ? null : archive.path, name, {
        schemas: [],
        tables: [],
        noOwner: true,
        noAcl: true,
        noTablespaces: true,
        jobs,
        singleTransaction: false,
      });
      // pg_restore 12+ says when each table's data is loaded (--verbose): count it then.
      const progress = pgRestore.major >= 12 ? new RestoreProgress(toc, jobs > 1) : null;
      const early = progress ? new RestoreCounter(server, name, toc) : null;
      counter = early;
      try {
        await runRestore(
          pgRestore.path,
          args,
          { env: env.env, signal: runtime.signal },
          {
            onProgress: progress && early ? (message) => early.done(progress.message(message)) : undefined,
            input: archive.stream ? await archive.stream.open() : undefined,
          },
        );
      } catch (error) {
        if (runtime.signal.aborted) throw error;
        // The archive stream failed: damage (reported from the digests) or the storage.
        if (error instanceof RestoreInputError) throw error;
        // pg_restore's exit status says that it failed, not why: a server that went away
        // fails it as surely as a damaged archive does. Only a server that is still sound
        // (the throwaway database answers) makes it the backup's fault.
        if (!(await databaseAnswers(server, name))) {
          throw new VerifyEnvironmentError(`the verify server failed during the restore: ${(error as Error).message}`, {
            hint: `check the server at ${server.host}:${server.port}; the backup itself was not judged`,
            cause: error,
          });
        }
        if (error instanceof BackupctlError && error.exitCode === ExitCode.USAGE) throw error; // pg_restore could not start
        // Killed (the OOM killer, an operator): it did not get to say anything of the backup.
        const killed = endedBySignal(error);
        if (killed !== undefined) {
          throw new VerifyEnvironmentError(`pg_restore was killed by ${killed} during the restore`, {
            hint: 'something outside backupctl ended it (the OOM killer, an operator); the backup itself was not judged',
            cause: error,
          });
        }
        // A filtered dump (--table, --schema, --exclude-*) need not restore on its own: the
        // types, sequences, functions, extensions and parent tables its tables use may live
        // outside it. Its bytes are pg_dump's (the digests), so this is no verdict on it.
        const { tables, schemas, excludeTables, excludeSchemas } = sidecar.dump;
        if (tables.length + schemas.length + excludeTables.length + excludeSchemas.length > 0) {
          throw new VerifyEnvironmentError(`the backup does not restore on its own into an empty database: ${errorText(error)}`, {
            hint: 'a --table, --schema or --exclude-* backup may use tables, types, sequences or functions it does not hold: check it with --level archive, or restore it into a database that has them',
            cause: error,
          });
        }
        // A role that is not a superuser cannot restore everything a sound dump holds
        // (extensions, event triggers, some settings): its failure is no verdict either.
        if (!(await isSuperuser(server).catch(() => true))) {
          throw new VerifyEnvironmentError(`the backup does not restore as ${server.user}, who is not a superuser: ${errorText(error)}`, {
            hint: 'a dump may hold what only a superuser can restore (extensions, event triggers, some settings): verify as a superuser (--verify-url) to judge the backup',
            cause: error,
          });
        }
        throw new Mismatch([], `the backup does not restore: ${errorText(error)}`);
      }
      const counted = Promise.all([
        early ? early.finish(runtime.signal) : countDatabaseRows(server, name, runtime.signal),
        countLargeObjects(server, name),
      ]);
      const [restored, largeObjects] = await counted.catch((error: unknown) => {
        if (runtime.signal.aborted) throw error;
        throw new VerifyEnvironmentError(`could not count the restored rows: ${(error as Error).message}`, {
          hint: error instanceof BackupctlError ? error.hint : undefined,
          cause: error,
        });
      });
      if (early) runtime.reporter.debug(`counted ${early.countedEarly} of ${restored.length} tables while pg_restore ran`);
      const movable = await movablePartitions(server, name).catch((error: unknown) => {
        throw new VerifyEnvironmentError(`could not read the restored partition trees: ${(error as Error).message}`, { cause: error });
      });
      const mismatches = [...compareCounts(sidecar, restored, toc, movable), ...compareLargeObjects(sidecar, toc, largeObjects)];
      return outcome(mismatches.length ? 'failed' : 'passed', {
        mismatches,
        serverVersion: version,
        keptDatabase: request.keep ? name : undefined,
      });
    } catch (error) {
      if (error instanceof Mismatch) {
        return outcome('failed', { mismatches: error.problems, error: error.failure, serverVersion: version, keptDatabase: request.keep && created ? name : undefined });
      }
      throw error;
    } finally {
      await env.dispose();
    }
  } finally {
    await counter?.close();
    // Not subject to the run's abort signal: the throwaway database must go, even on Ctrl-C.
    await creating?.catch(() => undefined);
    if (created && !(request.keep && restoring)) {
      const drop = maintenance.dropDatabase(name, { restored: true, mark: scratchMark(mark) }).then((ours) => {
        if (!ours) runtime.reporter.warn(`the throwaway database ${name} is not this run's any more (it does not carry its mark): left as it is`);
      });
      const dropped = await dropWithinGrace(drop, runtime.signal).catch((error: unknown) => {
        runtime.reporter.warn(`could not drop the throwaway database ${name}: ${(error as Error).message}`);
        return true;
      });
      if (!dropped) runtime.reporter.warn(`left the throwaway database ${name}: the server did not answer in time; the next verify or restore on this host drops it`);
    } else if (created) {
      const note = `backupctl: kept by verify --keep of backup ${sidecar.profile}/${sidecar.id} at ${runtime.now().toISOString()}; drop it when done`;
      await maintenance.markKept(name, note).catch((error: unknown) => {
        runtime.reporter.warn(
          `the kept database ${name} still carries its scratch mark, so the next verify or restore on this host would drop it: ${(error as Error).message}; ` +
            `remove the mark: COMMENT ON DATABASE ${name} IS NULL`,
        );
      });
    }
    await sweeping;
    await maintenance.close();
  }
}

/**
 * What a sound dump needs of the server it is restored on, besides room and rights: the
 * extensions it creates, and the roles its policies and user mappings name (the restore
 * runs with --no-owner --no-acl, which do without owners and grantees, not without these).
 * A verify server without them would fail the restore for its own sake: NOT VERIFIED,
 * never a verdict on the backup.
 */
async function checkVerifyServer(server: ConnectionSettings, pgRestore: string, archive: string, toc: readonly TocEntry[], workDir: string | undefined, run: ChildRun): Promise<void> {
  const extensions = await unavailableExtensions(server, archiveNeeds(toc).extensions);
  if (extensions.length > 0) {
    throw new VerifyEnvironmentError(`the verify server cannot install extensions the backup needs: ${extensions.join(', ')}`, {
      hint: 'install their packages on the verify server, or verify on a server that has them (--verify-url)',
    });
  }
  const roles = await missingRoles(server, await withScratchDir(workDir, (dir) => policyRoles(pgRestore, archive, toc, dir, run)));
  if (roles.length > 0) {
    throw new VerifyEnvironmentError(`the verify server lacks roles the backup's policies or user mappings name: ${roles.join(', ')}`, {
      hint: 'create them on the verify server (the backup\'s globals file has them), or verify on a server that has them (--verify-url)',
    });
  }
}

/**
 * Row counts after restore against the counts recorded at backup time. Sidecars written
 * before materialized views were left out of the counts (see listCountableTables) have
 * theirs: those the archive's TOC names as materialized views are not compared. The
 * partitions in `movable` (movablePartitions: under hash partitioning, where a restore may
 * route a row into a sibling) are compared as one total per partition tree.
 */
export function compareCounts(
  sidecar: Sidecar,
  restored: ReadonlyArray<Pick<CountedTable, 'schema' | 'name' | 'rows'>>,
  toc: readonly TocEntry[] = [],
  movable: ReadonlyMap<string, TableName> = new Map(),
): string[] {
  const problems: string[] = [];
  const restoredKeyed = keyedByName(restored);
  const found = new Map(restoredKeyed.map(([key, t]) => [key, t.rows]));
  const views = toc.filter((e) => e.type === 'MATERIALIZED VIEW').map((e) => e.rest);
  const isView = (schema: string, name: string) => views.some((rest) => rest.startsWith(`${schema} ${name} `) || rest === `${schema} ${name}`);
  const trees = new Map<string, { root: TableName; before: number; after: number }>();
  const treeOf = (table: TableName) => {
    const root = movable.get(`${table.schema}\u0000${table.name}`);
    if (!root) return undefined;
    const key = `${root.schema}\u0000${root.name}`;
    let tree = trees.get(key);
    if (!tree) trees.set(key, (tree = { root, before: 0, after: 0 }));
    return tree;
  };
  const expected = new Set<string>();
  for (const [key, table] of keyedByName(sidecar.tables)) {
    expected.add(key);
    const tree = treeOf(table);
    if (tree) {
      tree.before += table.rows;
      continue;
    }
    if (!found.has(key) && isView(table.schema, table.name)) continue;
    const rows = found.get(key);
    const name = qualifiedName(table);
    if (rows === undefined) problems.push(`${name}: missing after restore (expected ${table.rows} rows)`);
    else if (rows !== table.rows) problems.push(`${name}: ${rows} rows after restore, ${table.rows} at backup time`);
  }
  for (const [key, table] of restoredKeyed) {
    const tree = treeOf(table);
    if (tree) tree.after += table.rows;
    else if (!expected.has(key) && table.rows > 0) {
      problems.push(`${qualifiedName(table)}: ${table.rows} rows after restore, not in the backup's counts`);
    }
  }
  for (const { root, before, after } of trees.values()) {
    if (before !== after) problems.push(`${qualifiedName(root)}: ${after} rows in its partitions after restore, ${before} at backup time (hash partitions, compared as a whole)`);
  }
  return problems;
}

/**
 * Tables keyed by schema, name and rank among those of that name: in a SQL_ASCII database
 * a name that is not UTF-8 is written with `\xNN` escapes, which another table's name may
 * spell literally, so two tables can share a recorded name. Both sides list tables in the
 * server's order of their raw names (counts.ts), sorted stably by recorded name as the
 * sidecar is, so the k-th of a name is the same table on both.
 */
function keyedByName<T extends { schema: string; name: string }>(tables: readonly T[]): Array<[string, T]> {
  const ranks = new Map<string, number>();
  const byName = (a: T, b: T) => (a.schema === b.schema ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.schema < b.schema ? -1 : 1);
  return [...tables].sort(byName).map((table) => {
    const base = `${table.schema}\u0000${table.name}`;
    const rank = ranks.get(base) ?? 0;
    ranks.set(base, rank + 1);
    return [`${base}\u0000${rank}`, table];
  });
}

/**
 * The large objects after a restore of the whole archive against the number in it: the
 * sidecar's `dump.largeObjects`, or for older sidecars the database's count when the
 * archive holds large objects (an archive without them says nothing about that count).
 */
export function compareLargeObjects(sidecar: Sidecar, toc: readonly TocEntry[], restored: number): string[] {
  const expected = sidecar.dump.largeObjects ?? (holdsLargeObjects(toc) ? sidecar.database.largeObjects : undefined);
  if (expected === undefined || expected === restored) return [];
  return [`large objects: ${restored} after restore, ${expected} at backup time`];
}

/** Appends the outcome to the sidecar; a failure to record is a warning, not a verification failure. */
/** What record() answers when the backup is gone: its sidecar was removed, or it took it back. */
const REMOVED_MEANWHILE = Symbol('removed meanwhile');

async function record(catalog: Catalog, sidecar: Sidecar, outcome: VerifyOutcome, now: Date): Promise<string | typeof REMOVED_MEANWHILE | undefined> {
  if (outcome.result !== 'passed' && outcome.result !== 'failed') return undefined;
  // Within the sidecar schema's bounds, however many tables differ.
  const mismatches = outcome.mismatches.length > 1000 ? [...outcome.mismatches.slice(0, 999), `... and ${outcome.mismatches.length - 999} more`] : outcome.mismatches;
  const entry: Verification = {
    at: now.toISOString(),
    level: outcome.level,
    result: outcome.result,
    durationMs: outcome.durationMs,
    serverVersion: outcome.serverVersion?.slice(0, 1000),
    mismatches: mismatches.map((m) => m.slice(0, 20_000)),
    error: outcome.error?.slice(0, 20_000),
  };
  try {
    const fresh = await catalog.read(sidecar.profile, sidecar.id).catch((error: unknown) => {
      if (error instanceof NotFoundError) return null;
      throw error;
    });
    if (fresh === null) return REMOVED_MEANWHILE;
    await catalog.write({ ...fresh, verifications: [...fresh.verifications, entry].slice(-100) });
    // A prune may have removed this backup while we verified it: if the artifact is gone
    // now, take back the sidecar we just rewrote (see removeItem in core/prune.ts).
    // Not when this verification found it missing already: the sidecar was still there
    // after that (a prune removes it first), so the artifact is lost, and the failed
    // verification is the record of it.
    const artifact = artifactKey(sidecar.profile, sidecar.artifact.file);
    const missingBefore = outcome.mismatches.includes(`${artifact} is missing`);
    // Only a definite "not found" takes the sidecar back: a hostile entry or a storage error
    // says nothing about a prune, and a sidecar is never removed on a guess.
    const gone = await catalog.storage.stat(artifact).then(
      () => false,
      (error: unknown) => error instanceof NotFoundError,
    );
    if (!missingBefore && gone) {
      await catalog.storage.remove(sidecarKey(sidecar.profile, sidecar.id));
      return REMOVED_MEANWHILE;
    }
    return undefined;
  } catch (error) {
    return `could not record the verification in ${sidecar.profile}/${sidecar.id}.json: ${(error as Error).message}`;
  }
}
