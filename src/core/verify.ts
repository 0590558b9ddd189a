import { randomBytes } from 'node:crypto';
import { artifactKey, Catalog, sidecarKey } from '../catalog/catalog.js';
import type { Sidecar, Verification } from '../catalog/sidecar.js';
import { BackupctlError, throwIfAborted } from '../errors.js';
import { countDatabaseRows, MaintenanceConnection } from '../pg/admin.js';
import { chooseClient, discoverClients, findClient, serverMajor, type ClientBinary } from '../pg/binaries.js';
import { childEnv, offlineEnv } from '../pg/child-env.js';
import type { ConnectionSettings } from '../pg/connection.js';
import type { CountedTable } from '../pg/counts.js';
import type { ChildRun } from '../pg/dump.js';
import { RestoreCounter } from '../pg/restore-counts.js';
import { RestoreProgress } from '../pg/restore-progress.js';
import { pgRestoreArgs, readArchiveThrough, runRestore } from '../pg/restore.js';
import { readToc, type TocEntry } from '../pg/toc.js';
import { openStorage } from '../storage/registry.js';
import type { Storage } from '../storage/storage.js';
import { ArchiveUnreadableError, ArtifactMissingError, digestMismatches, hashStored, openArchive, type LocalArchive } from './archive.js';
import type { Runtime } from './runtime.js';
import { storageError } from './storage-errors.js';

export const VERIFY_LEVELS = ['checksum', 'archive', 'restore'] as const;
export type VerifyLevel = (typeof VERIFY_LEVELS)[number];

export interface VerifyRequest {
  storage: string;
  /** An id or `latest`; ignored with `all`. */
  ref?: string | undefined;
  all?: boolean | undefined;
  profile?: string | undefined;
  tag?: string | undefined;
  level: VerifyLevel;
  /** Keep the throwaway database (restore level) for inspection. */
  keep: boolean;
  jobs: number;
  /** Where the restore level restores a backup (the profile's server, --verify-url or verify.server); null for the other levels. */
  server: ((sidecar: Sidecar) => ConnectionSettings) | null;
  pgBinDir?: string | undefined;
  workDir?: string | undefined;
}

export interface VerifyOutcome {
  id: string;
  profile: string;
  database: string;
  level: VerifyLevel;
  result: 'passed' | 'failed';
  durationMs: number;
  /** Every difference found: digests, TOC entries, row counts. */
  mismatches: string[];
  /** Why the check could not complete (an unreadable archive, a failed restore). */
  error?: string | undefined;
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
 * Every run is appended to the backup's sidecar.
 */
export async function verifyBackups(request: VerifyRequest, runtime: Runtime): Promise<VerifyResult> {
  const storage = openStorage(request.storage, runtime.cwd);
  const catalog = new Catalog(storage);
  let targets: Sidecar[];
  if (request.all) {
    const scan = await catalog.scan(request.profile).catch((error: unknown) => {
      throw storageError(error, storage.location, 'listing backups');
    });
    for (const warning of scan.warnings) runtime.reporter.warn(warning);
    targets = scan.backups.filter((b) => request.tag === undefined || b.tags.includes(request.tag));
  } else {
    targets = [await catalog.find(request.ref ?? 'latest', { profile: request.profile, tag: request.tag })];
  }
  const outcomes: VerifyOutcome[] = [];
  for (const sidecar of targets) {
    throwIfAborted(runtime.signal);
    const outcome = await verifyOne(storage, sidecar, request, runtime);
    outcome.recordWarning = await record(catalog, sidecar, outcome, runtime.now());
    if (outcome.recordWarning) runtime.reporter.warn(outcome.recordWarning);
    outcomes.push(outcome);
  }
  return { storage: storage.location, outcomes };
}

async function verifyOne(storage: Storage, sidecar: Sidecar, request: VerifyRequest, runtime: Runtime): Promise<VerifyOutcome> {
  const started = performance.now();
  const base = { id: sidecar.id, profile: sidecar.profile, database: sidecar.database.name, level: request.level };
  runtime.reporter.info(`verifying ${sidecar.profile}/${sidecar.id} (${request.level})`);
  const outcome = (result: 'passed' | 'failed', extra: Partial<VerifyOutcome> = {}): VerifyOutcome => ({
    ...base,
    result,
    durationMs: Math.round(performance.now() - started),
    mismatches: [],
    ...extra,
  });
  let archive: LocalArchive | null = null;
  try {
    const mismatches = await checkGlobals(storage, sidecar);
    if (request.level === 'checksum') {
      const digest = await hashStored(storage, artifactKey(sidecar.profile, sidecar.artifact.file));
      mismatches.push(...digestMismatches('artifact', sidecar.artifact, digest));
      return outcome(mismatches.length ? 'failed' : 'passed', { mismatches });
    }
    archive = await openArchive(storage, sidecar, { workDir: request.workDir, signal: runtime.signal }).catch((error: unknown) => {
      if (!(error instanceof ArchiveUnreadableError)) throw error;
      mismatches.push(...digestMismatches('artifact', sidecar.artifact, error.digest));
      throw new Mismatch(mismatches, `the archive cannot be unpacked: ${error.reason}`);
    });
    // The re-hash runs alongside the checks below (it reads the file; they run pg_restore
    // and the server), and a digest mismatch wins over whatever they found.
    const opened = archive;
    const digestProblems = opened.digest.then((digest) => digestMismatches('artifact', sidecar.artifact, digest));
    digestProblems.catch(() => undefined);
    const corrupt = async (): Promise<string[]> => [...mismatches, ...(await digestProblems)];
    if (!opened.inPlace) {
      // Downloaded or unpacked: the digest is known already, so corruption stops us here.
      const problems = await corrupt();
      if (problems.length) throw new Mismatch(problems);
    }
    let checked: VerifyOutcome;
    try {
      checked = await checkArchive(sidecar, opened, request, runtime, outcome);
    } catch (error) {
      if (runtime.signal.aborted) throw error;
      const problems = await corrupt();
      if (problems.length) {
        // Corruption explains whatever else went wrong: report it (exit 3) with the rest.
        const found = error instanceof Mismatch ? error : null;
        throw new Mismatch([...problems, ...(found?.problems ?? [])], found?.failure ?? (found ? undefined : (error as Error).message));
      }
      throw error;
    }
    const problems = await corrupt();
    if (problems.length) {
      const { error, serverVersion, keptDatabase } = checked;
      return outcome('failed', { mismatches: [...problems, ...checked.mismatches], error, serverVersion, keptDatabase });
    }
    return checked;
  } catch (error) {
    throwIfAborted(runtime.signal);
    if (error instanceof Mismatch) return outcome('failed', { mismatches: error.problems, error: error.failure });
    if (error instanceof ArtifactMissingError) return outcome('failed', { mismatches: [`${error.key} is missing`] });
    throw error;
  } finally {
    await archive?.dispose();
  }
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
  const server = request.level === 'restore' && request.server ? request.server(sidecar) : null;
  if (server) return restoreCheck(sidecar, archive, dumpMajor, request, server, runtime, outcome);
  const pgRestore = await findClient('pg_restore', dumpMajor, { pgBinDir: request.pgBinDir, path: runtime.env.PATH });
  const run = { env: offlineEnv(runtime.env), signal: runtime.signal };
  await checkToc(sidecar, archive, pgRestore, run);
  if (request.level === 'archive') {
    const failure = await readArchiveThrough(pgRestore.path, archive.path, run);
    if (failure) throw new Mismatch([], `the archive cannot be read to the end: ${failure}`);
    return outcome('passed');
  }
  throw new BackupctlError('the restore level needs a server to restore into');
}

/** The archive's table of contents: readable, with the number of entries recorded at create time. */
async function checkToc(sidecar: Sidecar, archive: LocalArchive, pgRestore: ClientBinary, run: ChildRun): Promise<TocEntry[]> {
  const toc = await readToc(pgRestore.path, archive.path, run).catch((error: unknown) => {
    throw new Mismatch([], `the archive's table of contents is unreadable: ${(error as Error).message}`);
  });
  if (toc.length !== sidecar.dump.tocEntries) {
    throw new Mismatch([`table of contents has ${toc.length} entries, the sidecar says ${sidecar.dump.tocEntries}`]);
  }
  return toc;
}

/** The globals file, when the backup has one: present, and size and sha256 as recorded. */
async function checkGlobals(storage: Storage, sidecar: Sidecar): Promise<string[]> {
  if (sidecar.globals.status !== 'included') return [];
  try {
    const digest = await hashStored(storage, artifactKey(sidecar.profile, sidecar.globals.file));
    return digestMismatches('globals', sidecar.globals, digest);
  } catch (error) {
    if (error instanceof ArtifactMissingError) return [`globals file ${sidecar.globals.file} is missing`];
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
  const clients = discoverClients('pg_restore', { pgBinDir: request.pgBinDir, path: runtime.env.PATH });
  clients.catch(() => undefined);
  const maintenance = await MaintenanceConnection.open(server);
  const name = throwawayName(sidecar.id);
  let creating: Promise<void> | null = null;
  let created = false;
  /** The restore began: --keep keeps the database from here on (before, it is empty and unnamed to the user). */
  let restoring = false;
  let counter: RestoreCounter | null = null;
  try {
    const { version, num } = await maintenance.version();
    creating = maintenance.createDatabase(name, { encoding: sidecar.database.encoding }).then(() => {
      created = true;
    });
    creating.catch(() => undefined); // awaited below, or settled in finally
    const where = request.pgBinDir ? `pgBinDir ${request.pgBinDir}` : undefined;
    const pgRestore = chooseClient('pg_restore', await clients, Math.max(dumpMajor, serverMajor(num)), where);
    const toc = await checkToc(sidecar, archive, pgRestore, { env: offlineEnv(runtime.env), signal: runtime.signal });
    const env = await childEnv(server, runtime.env, name);
    try {
      await creating;
      restoring = true;
      runtime.reporter.info(`restoring into throwaway database ${name}`);
      const args = pgRestoreArgs(archive.path, name, {
        schemas: [],
        tables: [],
        noOwner: true,
        noAcl: true,
        jobs: request.jobs,
        singleTransaction: false,
      });
      // pg_restore 12+ says when each table's data is loaded (--verbose): count it then.
      const progress = pgRestore.major >= 12 ? new RestoreProgress(toc, request.jobs > 1) : null;
      const early = progress ? new RestoreCounter(server, name, toc) : null;
      counter = early;
      try {
        await runRestore(
          pgRestore.path,
          args,
          { env: env.env, signal: runtime.signal },
          progress && early ? (message) => early.done(progress.message(message)) : undefined,
        );
      } catch (error) {
        if (runtime.signal.aborted) throw error;
        const hint = error instanceof BackupctlError && error.hint ? ` (${error.hint.split('\n')[0]})` : '';
        throw new Mismatch([], `the backup does not restore: ${(error as Error).message}${hint}`);
      }
      const restored = early ? await early.finish(runtime.signal) : await countDatabaseRows(server, name, runtime.signal);
      if (early) runtime.reporter.debug(`counted ${early.countedEarly} of ${restored.length} tables while pg_restore ran`);
      const mismatches = compareCounts(sidecar, restored);
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
      await maintenance.dropDatabase(name).catch((error: unknown) => {
        runtime.reporter.warn(`could not drop the throwaway database ${name}: ${(error as Error).message}`);
      });
    }
    await maintenance.close();
  }
}

/** Row counts after restore against the counts recorded at backup time. */
export function compareCounts(sidecar: Sidecar, restored: ReadonlyArray<Pick<CountedTable, 'schema' | 'name' | 'rows'>>): string[] {
  const problems: string[] = [];
  const found = new Map(restored.map((t) => [`${t.schema}\u0000${t.name}`, t.rows]));
  const expected = new Set<string>();
  for (const table of sidecar.tables) {
    const key = `${table.schema}\u0000${table.name}`;
    expected.add(key);
    const rows = found.get(key);
    const name = `${quote(table.schema)}.${quote(table.name)}`;
    if (rows === undefined) problems.push(`${name}: missing after restore (expected ${table.rows} rows)`);
    else if (rows !== table.rows) problems.push(`${name}: ${rows} rows after restore, ${table.rows} at backup time`);
  }
  for (const table of restored) {
    if (!expected.has(`${table.schema}\u0000${table.name}`) && table.rows > 0) {
      problems.push(`${quote(table.schema)}.${quote(table.name)}: ${table.rows} rows after restore, not in the backup's counts`);
    }
  }
  return problems;
}

function quote(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/** Appends the outcome to the sidecar; a failure to record is a warning, not a verification failure. */
async function record(catalog: Catalog, sidecar: Sidecar, outcome: VerifyOutcome, now: Date): Promise<string | undefined> {
  const entry: Verification = {
    at: now.toISOString(),
    level: outcome.level,
    result: outcome.result,
    durationMs: outcome.durationMs,
    serverVersion: outcome.serverVersion,
    mismatches: outcome.mismatches,
    error: outcome.error,
  };
  try {
    const fresh = await catalog.read(sidecar.profile, sidecar.id);
    await catalog.write({ ...fresh, verifications: [...fresh.verifications, entry].slice(-100) });
    // A prune may have removed this backup while we verified it: if the artifact is gone
    // now, take back the sidecar we just rewrote (see removeItem in core/prune.ts).
    // Not when this verification found it missing already: the sidecar was still there
    // after that (a prune removes it first), so the artifact is lost, and the failed
    // verification is the record of it.
    const artifact = artifactKey(sidecar.profile, sidecar.artifact.file);
    const missingBefore = outcome.mismatches.includes(`${artifact} is missing`);
    if (!missingBefore && !(await catalog.storage.stat(artifact).then(() => true, () => false))) {
      await catalog.storage.remove(sidecarKey(sidecar.profile, sidecar.id));
      return `backup ${sidecar.profile}/${sidecar.id} was removed (pruned) while it was being verified`;
    }
    return undefined;
  } catch (error) {
    return `could not record the verification in ${sidecar.profile}/${sidecar.id}.json: ${(error as Error).message}`;
  }
}
