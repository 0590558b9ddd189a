import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { artifactKey } from '../catalog/catalog.js';
import type { Sidecar } from '../catalog/sidecar.js';
import { BackupctlError, ExitCode, throwIfAborted, usageError } from '../errors.js';
import {
  countDatabaseRows,
  createDatabase,
  createSchemas,
  countLargeObjects,
  dropEmptyPublicSchema,
  dropDatabase,
  existingRoles,
  existingTablespaces,
  inspectDatabase,
  lockRestoreTarget,
  isSuperuser,
  canRenameDatabase,
  databaseNames,
  missingRoles,
  missingTablespaces,
  movablePartitions,
  rolesNotAssumable,
  renameDatabase,
  REPLACED_COMMENT_PREFIX,
  restoreComment,
  scratchMark,
  subscriptionNames,
  swapDatabases,
  unavailableExtensions,
  type CreateOptions,
  type DatabasePropertyKind,
  type TargetState,
} from '../pg/admin.js';
import { findClient, type ClientBinary } from '../pg/binaries.js';
import { sqlState } from '../pg/client.js';
import { scratchDir } from '../platform/run-dir.js';
import { childEnv, offlineEnv } from '../pg/child-env.js';
import { describeConnection, type ConnectionSettings } from '../pg/connection.js';
import { filterGlobals, globalsNames, runScript } from '../pg/globals.js';
import { aclRoles, archiveNeeds, archiveTablespaces, databaseProperties, propertyKinds, pgRestoreArgs, policyRoles, runRestore, schemaSetup, schemasOfTables, selectedEntries, selectionList, tablesWithoutRows, unmatchedSelection, type ArchiveNeeds } from '../pg/restore.js';
import type { TocEntry } from '../pg/toc.js';
import { describeLocale, type DatabaseLocale } from '../pg/locale.js';
import { endedBySignal, type ChildRun } from '../pg/dump.js';
import type { Storage } from '../storage/storage.js';
import { archiveProblems, ArchiveUnreadableError, ArtifactHostileError, ArtifactMissingError, digestMismatches, openArchive, readStoredFile, withScratchDir, type LocalArchive } from './archive.js';
import { openStreamedArchive } from './streamed-archive.js';
import type { DecodeKeys } from '../pipeline/codecs/index.js';
import { assertDecryptable } from './stages.js';
import { workDirFailure } from './work-dir.js';
import type { Runtime } from './runtime.js';
import { dropWithinGrace, scratchTag, sweepScratchDatabases } from './scratch.js';
import { findBackup, type BackupScope } from './scope.js';
import { compareCounts, compareLargeObjects } from './verify.js';

export interface RestoreRequest {
  scope: BackupScope;
  ref: string;
  tag?: string | undefined;
  /** The target server; its `database` is ignored (see targetDb). */
  server: (sidecar: Sidecar) => ConnectionSettings;
  /** Default: the backup's database name. */
  targetDb?: string | undefined;
  create: boolean;
  clean: boolean;
  force: boolean;
  dropOld: boolean;
  globals: boolean;
  schemas: string[];
  tables: string[];
  noOwner: boolean;
  noAcl: boolean;
  /** Everything in the target's default tablespace (pg_restore --no-tablespaces). */
  noTablespaces: boolean;
  jobs: number;
  /** The clients' directory of a profile (its pgBinDir, the config's, or none). */
  pgBinDir: (profile: string) => string | undefined;
  /** What an encrypted (or compressed) backup of a profile is decoded with. */
  keys?: ((profile: string) => DecodeKeys) | undefined;
  workDir?: string | undefined;
}

/**
 * How the restore will go:
 * - create:        the target does not exist; restore into a staging database, check it, rename it.
 * - replace-empty: the target exists and is empty; staging, check, swap; the old empty database is dropped.
 * - replace:       (--clean) staging, check, then in one transaction end the target's sessions and swap
 *                  the names; the old database is kept under `keepOldAs` (or dropped with --drop-old).
 * - into-existing: (--force) pg_restore into the target as it is (one transaction when --jobs is 1).
 */
export type RestoreMode = 'create' | 'replace-empty' | 'replace' | 'into-existing';

export interface RestorePlan {
  backup: { id: string; profile: string; database: string; createdAt: string; bytes: number };
  server: string;
  target: string;
  targetState: TargetState;
  /** The owner the staging database is created with: the target's, or for a new one the backup's database owner (when that role exists and not --no-owner); null: the restoring role. */
  owner: string | null;
  mode: RestoreMode | null;
  /** What the replaced target has of its own that the restore does not bring back (TargetState.ownSettings), in a sentence; null when nothing. */
  notCarriedOver: string | null;
  /** Selected tables (--table) whose rows the selection leaves out (a partitioned table's), in a sentence; null when none. */
  notRestored: string | null;
  /** Why the restore would be refused as asked; null when it can go ahead. */
  refusal: string | null;
  /** Hint that goes with the refusal. */
  refusalHint: string | null;
  staging: string | null;
  /**
   * The encoding and locale the staging database is created with: the target's when it
   * replaces an existing database (replace-empty, replace: `pg_restore -d target` keeps its
   * target as it is, an operator's `createdb -E UTF8 -T template0` to convert a LATIN1
   * backup included), the backup's for a new one (create); `differences` name where they
   * differ from the backup's ("encoding LATIN1 -> UTF8, as the target"). null without a
   * staging database.
   */
  databaseLocale: { from: 'backup' | 'target'; encoding: string; locale: DatabaseLocale | null; differences: string[] } | null;
  /** The name the current target gets when the staging database takes its place. */
  keepOldAs: string | null;
  dropOld: boolean;
  /** The restore drops or overwrites data that exists now: needs --yes or a confirmation. */
  destructive: boolean;
  archive: { entries: number; objects: Record<string, number> };
  /** What the server lacks: roles, extensions, and tablespaces the archive's objects go into (none asked for with --no-tablespaces). */
  missing: { roles: string[]; extensions: string[]; tablespaces: string[] };
  globals: { requested: boolean; available: boolean; roles: string[] };
  steps: string[];
}

export interface RestoreResult {
  plan: RestorePlan;
  dryRun: boolean;
  durationMs: number;
  /** Where the previous target now lives, when it was kept (null when dropped or there was none). */
  oldKeptAs: string | null;
  globalsSkipped: string[];
  /** The shell command that puts the previous database back (null when none was kept). */
  rollback: string | null;
  /** The shell command that drops the kept previous database once it is no longer needed. */
  dropOld: string | null;
  countsChecked: boolean;
}

function stamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '_');
}

/** derivedName(base, suffix), or with `_2`, `_3`... when a database of that name exists. */
function freeName(base: string, suffix: string, taken: ReadonlySet<string>): string {
  for (let n = 1; ; n++) {
    const name = derivedName(base, n === 1 ? suffix : `${suffix}_${n}`);
    if (!taken.has(name)) return name;
  }
}

/** The bytes PostgreSQL keeps of an identifier (NAMEDATALEN - 1). */
const MAX_IDENTIFIER_BYTES = 63;

/**
 * `<base><suffix>` cut to PostgreSQL's 63-byte identifier limit, keeping the suffix; cut
 * between characters (code points), never inside a surrogate pair: half of one is no
 * character (the server would get U+FFFD, and --json a lone surrogate).
 */
function derivedName(base: string, suffix: string): string {
  const chars = [...base];
  while (Buffer.byteLength(chars.join('') + suffix) > MAX_IDENTIFIER_BYTES) chars.pop();
  return chars.join('') + suffix;
}

interface Prepared {
  storage: Storage;
  sidecar: Sidecar;
  archive: LocalArchive;
  pgRestore: ClientBinary;
  server: ConnectionSettings;
  plan: RestorePlan;
  globalsSql: string | null;
  toc: TocEntry[];
  /** What a new database needs first (schemaSetup): the schemas of a --table dump's tables, and whether its `public` goes. */
  schemas: { create: string[]; dropPublic: boolean };
  /** The dump ids the --schema/--table selection restores (checkSelection); null without one. */
  selected: Set<number> | null;
  /** The backup's database properties for the restored database, once in the target's place (databaseProperties); null when none, or into an existing one. */
  properties: { statements: string[]; entries: number } | null;
  /** Ends the restore's hold on its target (lockRestoreTarget); a dry run holds nothing. */
  release: () => Promise<void>;
}

/**
 * Everything before the first change: find the backup, check its checksum (exit 3 on a
 * mismatch, before any database is touched), read its table of contents, inspect the
 * target and what the archive needs from the server, and decide the mode.
 */
async function prepare(request: RestoreRequest, runtime: Runtime, options: { lock?: boolean } = {}): Promise<Prepared> {
  const { sidecar, storage } = await findBackup(request.scope, request.ref, { tag: request.tag, into: request.targetDb });
  const pgBinDir = request.pgBinDir(sidecar.profile);
  if (request.clean && request.force) throw usageError('--clean and --force cannot be used together', '--clean replaces the target; --force restores into it as it is');
  const server = request.server(sidecar);
  const target = request.targetDb ?? sidecar.database.name;
  // PostgreSQL cuts a longer name to 63 bytes: the database made would not be the one named
  // (and a second run would look for the whole name and not find it).
  if (target === '') throw usageError('the target database name is empty', 'name a database with --target-db (or in --target-url)');
  if (Buffer.byteLength(target) > MAX_IDENTIFIER_BYTES) {
    throw usageError(`the target database name is ${Buffer.byteLength(target)} bytes long: PostgreSQL keeps at most ${MAX_IDENTIFIER_BYTES} bytes of a name`, 'choose a shorter --target-db');
  }

  const keys = request.keys?.(sidecar.profile);
  assertDecryptable(sidecar, keys);
  let archive: LocalArchive;
  try {
    // With --jobs 1 into a staging database (anything but --force), pg_restore reads the
    // archive from its stdin as it is decoded; the stored checksum is still read first, and
    // the decoded archive's own checks come before the staging database takes the target's place.
    const options = { workDir: request.workDir, signal: runtime.signal, keys };
    archive = request.jobs <= 1 && !request.force ? await openStreamedArchive(storage, sidecar, { ...options, checksumFirst: true }) : await openArchive(storage, sidecar, options);
  } catch (error) {
    if (error instanceof ArtifactHostileError) {
      throw new BackupctlError(`backup ${sidecar.id} cannot be restored: ${error.message}; nothing was changed`, { exitCode: ExitCode.VERIFY_FAILED });
    }
    if (error instanceof ArtifactMissingError) {
      throw new BackupctlError(`backup ${sidecar.id} cannot be restored: ${error.message}`, { exitCode: ExitCode.VERIFY_FAILED });
    }
    if (error instanceof ArchiveUnreadableError) {
      const differs = digestMismatches('artifact', sidecar.artifact, error.digest);
      throw new BackupctlError(`backup ${sidecar.id} is corrupt, nothing was changed: ${[...differs, error.message].join('; ')}`, {
        exitCode: ExitCode.VERIFY_FAILED,
        hint: 'restore another backup (backupctl list)',
      });
    }
    throw error;
  }
  let lock: { release: () => Promise<void> } | null = null;
  try {
    const mismatches = digestMismatches('artifact', sidecar.artifact, await archive.digest());
    if (mismatches.length) {
      throw new BackupctlError(`backup ${sidecar.id} is corrupt, nothing was changed: ${mismatches.join('; ')}`, {
        exitCode: ExitCode.VERIFY_FAILED,
        hint: 'restore another backup (backupctl list)',
      });
    }
    const dumpMajor = Number.parseInt(sidecar.engine.pgDumpVersion, 10) || 0;
    const pgRestore = await findClient('pg_restore', dumpMajor, { pgBinDir, path: runtime.env.PATH, of: 'archive' });
    const offline = { env: offlineEnv(runtime.env), signal: runtime.signal };
    const toc = await archive.toc(pgRestore.path, offline).catch((error: unknown) =>
      damageOr(error, sidecar, archive).catch((failure: unknown) => {
        throw tocUnreadable(failure, sidecar, runtime.signal);
      }),
    );
    // A run that will change something holds the target's lock from before it looks at it.
    if (options.lock) {
      lock = await lockRestoreTarget(server, target);
      if (!lock) {
        throw new BackupctlError(`another restore into "${target}" is running on ${describeServer(server)}; nothing was changed`, {
          exitCode: ExitCode.BUSY,
          hint: `wait for it to end (SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = 'backupctl'), then run this again`,
        });
      }
    }
    const targetState = await inspectDatabase(server, target);

    let globalsSql: string | null = null;
    let globalsText: string | null = null;
    const globals = sidecar.globals;
    if (globals.status === 'included') {
      // Read whole, decoded and checked against the sidecar before anything runs it.
      const read = readStoredFile(storage, artifactKey(sidecar.profile, globals.file), globals, keys).then((bytes) => bytes.toString('utf8'));
      // Without --globals the file only helps to read role names in the TOC: not having it is no reason to refuse.
      globalsText = request.globals
        ? await read.catch((error: unknown) => {
            if (error instanceof ArtifactMissingError || error instanceof ArtifactHostileError) {
              throw new BackupctlError(`backup ${sidecar.id} cannot be restored with --globals: ${error.message}; nothing was changed`, { exitCode: ExitCode.VERIFY_FAILED });
            }
            if (error instanceof ArchiveUnreadableError) {
              throw new BackupctlError(`backup ${sidecar.id} is corrupt, nothing was changed: globals file ${globals.file}: ${error.reason}`, { exitCode: ExitCode.VERIFY_FAILED });
            }
            throw error;
          })
        : await read.catch(() => null);
      if (request.globals) globalsSql = globalsText;
    }
    const knownRoles = new Set([...(await existingRoles(server)), ...(globalsText ? globalsNames(globalsText).roles : [])]);
    const needs = archiveNeeds(toc, knownRoles);
    if (!request.noAcl) needs.grantees = await granteesOf(pgRestore.path, archive.path, toc, request.workDir, runtime);
    const selection = await checkSelection(request, sidecar, pgRestore.path, archive.path, toc, offline);
    const restored = selection.selected ? toc.filter((entry) => selection.selected?.has(entry.dumpId)) : toc;
    needs.referenced = await withScratchDir(request.workDir, (dir) => policyRoles(pgRestore.path, archive.path, restored, dir, offline));
    const tablespaces = request.noTablespaces ? [] : await withScratchDir(request.workDir, (dir) => archiveTablespaces(pgRestore.path, archive.path, restored, dir, offline));
    // A database backupctl creates gets the backup's database properties, as pg_restore --create
    // gives them (with --force nothing is created: the target keeps its own).
    const backupProperties = request.force
      ? null
      : await withScratchDir(request.workDir, (dir) => databaseProperties(pgRestore.path, archive.path, { dumped: sidecar.database.name, target, noAcl: request.noAcl }, dir, offline));
    const carried = propertyKinds(backupProperties?.statements ?? []);
    const plan = await makePlan(request, runtime.now(), sidecar, server, target, targetState, toc.length, needs, globalsSql, selection, carried, tablespaces);
    const properties = plan.staging ? backupProperties : null;
    if (properties) {
      const at = plan.steps.findIndex((step) => step.startsWith('NOT '));
      const step = `give "${plan.target}" the backup's database settings, privileges and comment (${properties.statements.length} statement(s): ALTER DATABASE ... SET, GRANT/REVOKE ... ON DATABASE, COMMENT ON DATABASE)`;
      plan.steps.splice(at < 0 ? plan.steps.length : at, 0, step);
    }
    const schemas = await withScratchDir(request.workDir, (dir) => schemaSetup(pgRestore.path, archive.path, toc, { tablesOnly: sidecar.dump.tables.length > 0, publicSchema: sidecar.database.publicSchema }, dir, offline));
    // The decoded archive's own checks (its digest, computed alongside the reads above):
    // before anything changes when the restore goes into the target itself (--force);
    // otherwise once pg_restore has read it, before the staging database takes the
    // target's place (see restoreBackup), so that hashing overlaps the restore.
    if (!plan.staging) await assertIntact(sidecar, archive);
    return { storage, sidecar, archive, pgRestore, server, plan, globalsSql, toc, schemas, properties, selected: selection.selected, release: lock ? lock.release : async () => undefined };
  } catch (error) {
    await lock?.release();
    await archive.dispose();
    throw error;
  }
}

/**
 * Exit 3, "nothing was changed", when the archive as read differs from its sidecar or a
 * stage found damage. Waits for a streamed archive to be read to its end.
 */
async function assertIntact(sidecar: Sidecar, archive: LocalArchive): Promise<void> {
  const problems = await archiveProblems(sidecar, archive);
  if (problems.length) {
    throw new BackupctlError(`backup ${sidecar.id} is corrupt, nothing was changed: ${problems.join('; ')}`, {
      exitCode: ExitCode.VERIFY_FAILED,
      hint: 'restore another backup (backupctl list)',
    });
  }
}

/**
 * Rejects with the archive's damage when it has some (it explains whatever failed:
 * pg_restore, a streamed archive's stream), else with `error`.
 */
async function damageOr(error: unknown, sidecar: Sidecar, archive: LocalArchive): Promise<never> {
  const corrupt = (e: unknown) => e instanceof BackupctlError && e.exitCode === ExitCode.VERIFY_FAILED;
  if (!corrupt(error)) {
    await assertIntact(sidecar, archive).catch((found: unknown) => {
      if (corrupt(found)) throw found;
    });
  }
  throw error;
}

/**
 * pg_restore ran and could not read the table of contents of an archive whose stored
 * bytes (and, through its stages, plaintext) match the sidecar: the archive is not what a
 * backup holds (a sidecar that names stages the file never went through, say), exit 3 as
 * verify says. Not when pg_restore could not run or was killed (a signal, the run's own
 * interruption): that is this machine's failure, and stays as it was.
 */
function tocUnreadable(error: unknown, sidecar: Sidecar, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted || !(error instanceof BackupctlError) || error.exitCode !== ExitCode.FAILED || endedBySignal(error) !== undefined) return error;
  return new BackupctlError(`backup ${sidecar.id} is corrupt, nothing was changed: the archive's table of contents is unreadable: ${error.message}`, {
    exitCode: ExitCode.VERIFY_FAILED,
    hint: 'restore another backup (backupctl list)',
    cause: error,
  });
}

/** Roles the archive's GRANTs name, read from a private scratch directory. */
async function granteesOf(pgRestore: string, archive: string, toc: readonly TocEntry[], workDir: string | undefined, runtime: Runtime): Promise<string[]> {
  return withScratchDir(workDir, (dir) => aclRoles(pgRestore, archive, toc, dir, { env: offlineEnv(runtime.env), signal: runtime.signal }));
}

/** What a --schema/--table selection selects: a refusal when a name selects nothing, and the selected tables without rows. */
interface SelectionCheck {
  refusal: string | null;
  hint: string | null;
  withoutRows: string[];
  /** The dump ids pg_restore's --schema/--table select (the run restores from a list of them); null without a selection. */
  selected: Set<number> | null;
}

async function checkSelection(request: RestoreRequest, sidecar: Sidecar, pgRestore: string, archive: string, toc: readonly TocEntry[], run: ChildRun): Promise<SelectionCheck> {
  const none: SelectionCheck = { refusal: null, hint: null, withoutRows: [], selected: null };
  if (request.schemas.length === 0 && request.tables.length === 0) return none;
  const missing = await unmatchedSelection(pgRestore, archive, request, run);
  if (missing.schemas.length > 0 || missing.tables.length > 0) {
    const names = [
      ...missing.schemas.map((schema) => `schema "${schema}"`),
      ...missing.tables.map((table) => `table "${table}"${request.schemas.length > 0 ? ` in schema ${request.schemas.map((s) => `"${s}"`).join(', ')}` : ''}`),
    ];
    const dotted = missing.tables.find((table) => table.includes('.'));
    // pg_restore compares names byte for byte in the archive's encoding; backupctl passes UTF-8.
    const encoding = sidecar.database.encoding;
    const unreachable = encoding !== 'UTF8' && encoding !== 'SQL_ASCII' && [...missing.schemas, ...missing.tables].some((name) => /[\u0080-\uffff]/.test(name));
    return {
      refusal: `nothing to restore for ${names.join(', ')}: backup ${sidecar.id} has no such ${missing.tables.length > 0 ? 'table' : 'schema'}`,
      hint: unreachable
        ? `the backup's database is ${encoding}: pg_restore matches names in that encoding and backupctl can pass it only UTF-8, so a name with characters outside ASCII cannot be selected; restore the whole backup into a new database (-d NAME -C) and take the table from there`
        : dotted
          ? `--table takes a table's name without its schema, as pg_restore does: --schema ${dotted.slice(0, dotted.indexOf('.'))} --table ${dotted.slice(dotted.indexOf('.') + 1)}`
          : `names are exact and case-sensitive, without quotes; "backupctl show ${sidecar.id}" lists the backup's tables`,
      withoutRows: [],
      selected: null,
    };
  }
  const { selected, dependencies } = await selectedEntries(pgRestore, archive, request, run);
  // Only for --table: a --schema selection takes the partitions of its schema along.
  return { ...none, selected, withoutRows: request.tables.length > 0 ? tablesWithoutRows(toc, selected, dependencies) : [] };
}

/** How to run the same restore as a superuser: same server, same target (never the maintenance database). */
function superuserHint(server: ConnectionSettings, target: string): string {
  const url = server.host.startsWith('/') ? '' : `, or --target-url postgres://postgres@${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}/${encodeURIComponent(target)}`;
  return `restore as a superuser (-U postgres${url}; its password from PGPASSWORD or ~/.pgpass)`;
}

async function makePlan(
  request: RestoreRequest,
  now: Date,
  sidecar: Sidecar,
  server: ConnectionSettings,
  target: string,
  state: TargetState,
  entries: number,
  needs: ArchiveNeeds,
  globalsSql: string | null,
  selection: SelectionCheck,
  carried: ReadonlySet<DatabasePropertyKind>,
  tablespaces: readonly string[],
): Promise<RestorePlan> {
  const fromGlobals = globalsSql ? new Set(globalsNames(globalsSql).roles) : new Set<string>();
  // Owners matter unless --no-owner, grantees unless --no-acl; the roles of policies and user mappings always.
  const needed = [...new Set([...(request.noOwner ? [] : needs.roles), ...(request.noAcl ? [] : needs.grantees), ...needs.referenced])].sort();
  const roles = (await missingRoles(server, needed)).filter((r) => !fromGlobals.has(r));
  const owners = request.noOwner ? [] : needs.roles.filter((r) => !roles.includes(r) && !fromGlobals.has(r));
  const notAssumable = await rolesNotAssumable(server, owners);
  const extensions = await unavailableExtensions(server, needs.extensions);
  // Tablespaces the archive's objects go into (none with --no-tablespaces) that the server
  // lacks and --globals does not create: pg_restore would fail on the first such object.
  const globalTablespaces = globalsSql ? new Set(globalsNames(globalsSql).tablespaces) : new Set<string>();
  const spaces = (await missingTablespaces(server, tablespaces)).filter((name) => !globalTablespaces.has(name));
  const when = stamp(now);
  let mode: RestoreMode | null = null;
  let refusal: string | null = null;
  let refusalHint: string | null = null;
  if (!state.exists) {
    if (request.create) mode = 'create';
    else {
      refusal = `target database "${target}" does not exist on ${describeServer(server)}`;
      refusalHint = 'add --create to create it';
    }
  } else if (request.force) {
    mode = 'into-existing';
    if (state.objects === null) {
      refusal = `target database "${target}" refuses connections (ALLOW_CONNECTIONS false): --force cannot restore into it`;
      refusalHint = '--clean replaces it (it keeps refusing connections under its new name), or ALTER DATABASE ... ALLOW_CONNECTIONS true first';
    }
  }
  else if (state.objects === 0) mode = 'replace-empty';
  else if (request.clean) mode = 'replace';
  else {
    refusal = `target database "${target}" is not empty (${state.objects === null ? 'it refuses connections, so it is taken as not empty' : `${state.objects} objects`})`;
    refusalHint = '--clean replaces it (the old one is kept under a dated name), --force restores into it as it is; or choose another --target-db';
  }
  if (selection.refusal) {
    refusal = selection.refusal;
    refusalHint = selection.hint;
  }
  // A template is what CREATE DATABASE copies: swapped (it is "empty": no flag, no question)
  // or restored into, every database created after would hold the backup, and the restored
  // one would not even be a template (IS_TEMPLATE is not carried).
  if (state.template) {
    refusal = `target database "${target}" is a template database (what CREATE DATABASE copies): a restore does not replace or write into it`;
    refusalHint = `restore into another database (--target-db ${derivedName(target, '_restored')} --create); to make "${target}" an ordinary database first: ALTER DATABASE ${quoteIdentifier(target)} IS_TEMPLATE false`;
  }
  // Another run's staging or throwaway database: replaced or written into, that run would
  // fail (its sessions ended) and what this restore put there would be a scratch database.
  if (state.scratch !== null) {
    refusal = `target database "${target}" is a scratch database of a backupctl run (a restore's staging or verify's throwaway database, marked ${JSON.stringify(state.scratch)}): not a restore target`;
    refusalHint = 'restore into another database; the run that made it drops it, and a leftover of a killed run is dropped by the next verify or restore on its host (backupctl check lists them)';
  }
  // --clean swaps a whole database in: with a selection, the target would hold only it
  // (pg_restore --clean --table drops and recreates that table in place, which a swap cannot).
  if (!refusal && mode === 'replace' && (request.schemas.length > 0 || request.tables.length > 0)) {
    const what = request.tables.length > 0 ? '--table' : '--schema';
    refusal = `--clean replaces the whole database "${target}": with ${what} it would hold only what is selected, and everything else in it would be left in the old one`;
    refusalHint = `restore the selection into a new database (-d ${derivedName(target, '_part')} --create) and move what you need from there, or into "${target}" as it is with --force (a table that is there already is an error)`;
  }
  // A data-only archive holds rows but no tables: it loads only into a database that has
  // them, with their triggers off while it does (as pg_restore advises), else an audit
  // trigger would log every row again.
  if (!refusal && sidecar.dump.dataOnly && mode !== null && mode !== 'into-existing') {
    refusal = `backup ${sidecar.id} is --data-only: it holds rows but no tables to load them into`;
    refusalHint = 'restore it with --force into a database that has the schema';
  }
  if (!refusal && sidecar.dump.dataOnly && mode === 'into-existing' && !(await isSuperuser(server))) {
    refusal = `a --data-only restore turns the target's triggers off while it loads (pg_restore --disable-triggers), which needs a superuser; ${server.user} is not one`;
    refusalHint = superuserHint(server, target);
  }
  if (!refusal && roles.length) {
    refusal = `the archive needs roles the target server lacks: ${roles.join(', ')}`;
    // --no-owner --no-acl do without owners and grantees, not without the roles policies and user mappings name.
    const bypass = roles.every((role) => !needs.referenced.includes(role)) ? ', or use --no-owner --no-acl' : '';
    const named = roles.filter((role) => needs.referenced.includes(role));
    refusalHint =
      (sidecar.globals.status === 'included' ? `add --globals to create them from the backup, or create them${bypass}` : `create them${bypass}`) +
      (named.length > 0 ? ` (${named.join(', ')}: named by the backup's policies or user mappings)` : '');
  }
  if (!refusal && spaces.length) {
    refusal = `the archive puts objects in tablespaces the target server lacks: ${spaces.join(', ')}`;
    refusalHint =
      'add --no-tablespaces (everything goes into the target\'s default tablespace), or create them first (CREATE TABLESPACE ... LOCATION ...)' +
      (sidecar.globals.status === 'included' ? ', or add --globals to create them from the backup where their directories exist on this server' : '');
  }
  if (!refusal && notAssumable.length) {
    refusal = `restoring ownership needs membership in roles that ${server.user} is not a member of: ${notAssumable.join(', ')}`;
    refusalHint = `add --no-owner --no-acl (the objects will belong to ${server.user}), or ${superuserHint(server, target)}`;
  }
  if (!refusal && extensions.length) {
    refusal = `the archive needs extensions the target server cannot install: ${extensions.join(', ')}`;
    refusalHint = 'install their packages on the target server first';
  }
  // The swap renames the target: caught here, it is a refusal before anything is restored,
  // not a failure after the whole staging restore.
  if (!refusal && (mode === 'replace' || mode === 'replace-empty') && !(await canRenameDatabase(server, target))) {
    refusal = `${server.user} cannot swap a restored database into the place of "${target}": renaming a database needs a superuser, or its owner (${state.owner ?? 'unknown'}) with CREATEDB`;
    refusalHint = `${superuserHint(server, target)}; or restore into a new database (--target-db ${derivedName(target, '_restored')} --create)`;
  }
  // Two restores of one target in the same second (a CI retry) must not collide on these names.
  const taken = await databaseNames(server);
  const staging = mode && mode !== 'into-existing' ? freeName(target, `_restoring_${when}`, taken) : null;
  const keepOldAs = mode === 'replace' || mode === 'replace-empty' ? freeName(target, `_old_${when}`, taken) : null;
  // The target's own properties (TargetState.ownSettings) of a kind the backup does not set:
  // the backup's comment, settings, privileges or connection limit take the place of the
  // target's of the same kind, the others are lost with the replaced database.
  const lost = state.ownSettings.filter((_, i) => !carried.has(state.ownKinds[i] as DatabasePropertyKind));
  // An empty target is dropped once replaced, unless it has properties of its own that the
  // restore does not bring: then it is kept like a full one.
  const dropOld = mode === 'replace-empty' ? lost.length === 0 || request.dropOld : mode === 'replace' && request.dropOld;
  const destructive = mode === 'replace' || mode === 'into-existing';
  // A new database belongs to the backup's database owner where that role exists (or is
  // made from the backup's globals first), unless --no-owner; a replaced one keeps its own.
  const backupOwner = sidecar.database.owner ?? null;
  let owner: string | null = state.owner ?? null;
  let ownerLost: string | null = null;
  if (mode === 'create' && backupOwner !== null && !request.noOwner) {
    const willExist = (await missingRoles(server, [backupOwner])).length === 0 || (request.globals && fromGlobals.has(backupOwner));
    if (willExist) owner = backupOwner;
    else ownerLost = `the backup's database owner ${backupOwner} does not exist on ${describeServer(server)}: "${target}" will belong to ${server.user} (create the role first, or add --globals, to keep it)`;
  }
  const databaseLocale = staging ? stagingLocale(mode, sidecar, state) : null;
  const steps: string[] = [];
  if (globalsSql) steps.push('create the roles and tablespaces of the backup that the server lacks (existing ones are left as they are)');
  if (staging && databaseLocale) {
    const made =
      databaseLocale.from === 'target'
        ? `with the target's encoding and locale${databaseLocale.differences.length > 0 ? ` (${databaseLocale.differences.join(', ')}, as the target)` : ''}`
        : "with the backup's encoding and locale";
    steps.push(`restore into a new staging database "${staging}" ${made} (pg_restore --exit-on-error${request.jobs > 1 ? ` --jobs ${request.jobs}` : ''})`);
  }
  if (staging) steps.push('compare every table\'s row count with the backup\'s');
  if (mode === 'create') steps.push(`rename "${staging}" to "${target}"${owner && owner !== server.user ? `, owned by ${owner} as the backup's database was` : ''}`);
  if (mode === 'replace-empty') {
    // The swap ends them as --clean's does; an empty target needs no question, so the plan says it.
    const sessions = state.sessions > 0 ? `end the ${state.sessions} session(s) on "${target}" and ` : '';
    steps.push(`${sessions}swap it with the empty "${target}", then ${dropOld ? 'drop the empty one (kept if it holds anything by then)' : `keep the empty one as "${keepOldAs}"`}`);
  }
  if (mode === 'replace') {
    steps.push(`end the ${state.sessions} session(s) on "${target}" and swap the names in one transaction`);
    steps.push(dropOld ? `drop the current "${target}" (--drop-old)` : `keep the current "${target}" as "${keepOldAs}"`);
  }
  const ownSettingsLost =
    (mode === 'replace' || mode === 'replace-empty') && lost.length > 0
      ? `the current "${target}" has ${lost.join(', ')}, which a restore does not bring back ` +
        `(${dropOld ? 'lost with it: see them first with \\l+ and \\drds in psql' : `they stay with "${keepOldAs}": reapply them to the new "${target}"`})`
      : null;
  const notCarriedOver = ownSettingsLost ?? ownerLost;
  if (notCarriedOver) steps.push(`NOT carried over: ${notCarriedOver}`);
  const notRestored =
    selection.withoutRows.length > 0
      ? `${selection.withoutRows.join(', ')}: no rows of ${selection.withoutRows.length === 1 ? 'its' : 'their'} own in the backup ` +
        '(a partitioned table keeps its rows in its partitions: select them with --table too)'
      : null;
  if (notRestored) steps.push(`NO ROWS restored: ${notRestored}`);
  if (mode === 'into-existing') {
    steps.push(
      `restore into "${target}" as it is${request.jobs <= 1 ? ', in one transaction' : ''}` +
        (sidecar.dump.dataOnly ? ', with its triggers off while the rows load (a data-only backup)' : ' (existing objects may conflict)'),
    );
  }
  return {
    backup: { id: sidecar.id, profile: sidecar.profile, database: sidecar.database.name, createdAt: sidecar.startedAt, bytes: sidecar.artifact.bytes },
    server: describeServer(server),
    target,
    targetState: state,
    owner,
    notCarriedOver,
    notRestored,
    mode,
    refusal,
    refusalHint,
    staging,
    databaseLocale,
    keepOldAs,
    dropOld,
    destructive,
    archive: { entries, objects: needs.objects },
    missing: { roles, extensions, tablespaces: spaces },
    globals: { requested: request.globals, available: sidecar.globals.status === 'included', roles: [...fromGlobals] },
    steps,
  };
}

/**
 * What the staging database is created with (RestorePlan.databaseLocale): a new database
 * (create) gets the backup's encoding and locale; one that takes an existing database's
 * place gets that database's, as `pg_restore -d target` leaves its target as it is.
 */
function stagingLocale(mode: RestoreMode | null, sidecar: Sidecar, state: TargetState): NonNullable<RestorePlan['databaseLocale']> {
  const backup = { encoding: sidecar.database.encoding, locale: sidecar.database.locale ?? null };
  if (mode === 'create' || state.encoding === null) return { from: 'backup', ...backup, differences: [] };
  const differences: string[] = [];
  if (state.encoding !== backup.encoding) differences.push(`encoding ${backup.encoding} -> ${state.encoding}`);
  if (state.locale && backup.locale) {
    const [was, now] = [describeLocale(backup.locale), describeLocale(state.locale)];
    if (was !== now) differences.push(`locale ${was} -> ${now}`);
    else if (backup.locale.icuRules !== state.locale.icuRules) differences.push('ICU rules of the target');
  }
  return { from: 'target', encoding: state.encoding, locale: state.locale, differences };
}

function describeServer(server: ConnectionSettings): string {
  return describeConnection(server).replace(/\/[^/]*$/, '');
}

/** The plan only: what `restore --dry-run` prints. Changes nothing. */
export async function planRestore(request: RestoreRequest, runtime: Runtime): Promise<RestorePlan> {
  const prepared = await prepare(request, runtime);
  await prepared.archive.dispose();
  return prepared.plan;
}

/**
 * Restores a backup. `confirm` is asked, with the plan, before a destructive restore;
 * the caller decides how (a prompt on a TTY, --yes, or a refusal).
 * If anything fails, the target is as it was and the staging database is gone.
 */
export async function restoreBackup(
  request: RestoreRequest,
  runtime: Runtime,
  confirm: (plan: RestorePlan) => Promise<void>,
): Promise<RestoreResult> {
  try {
    return await restoreWith(request, runtime, confirm);
  } catch (error) {
    throw await workDirFailure(error, request.workDir);
  }
}

async function restoreWith(request: RestoreRequest, runtime: Runtime, confirm: (plan: RestorePlan) => Promise<void>): Promise<RestoreResult> {
  const started = performance.now();
  const prepared = await prepare(request, runtime, { lock: true });
  const { plan, sidecar, archive, pgRestore, server } = prepared;
  try {
    if (plan.refusal || !plan.mode) {
      throw new BackupctlError(`${plan.refusal ?? 'restore refused'}; nothing was changed`, { exitCode: ExitCode.USAGE, hint: plan.refusalHint ?? undefined });
    }
    if (plan.destructive) await confirm(plan);
    throwIfAborted(runtime.signal);
    if (plan.notCarriedOver) runtime.reporter.warn(`not carried over by this restore: ${plan.notCarriedOver}`);
    if (plan.notRestored) runtime.reporter.warn(`no rows restored (the table itself is): ${plan.notRestored}`);

    let globalsSkipped: string[] = [];
    if (prepared.globalsSql !== null) {
      const psql = await findClient('psql', 0, { pgBinDir: request.pgBinDir(sidecar.profile), path: runtime.env.PATH });
      const script = filterGlobals(prepared.globalsSql, await existingRoles(server), await existingTablespaces(server));
      globalsSkipped = script.skipped;
      for (const skipped of script.skipped) runtime.reporter.info(`${skipped} exists: left as it is`);
      const env = await childEnv(server, runtime.env, 'postgres');
      try {
        await runScript(psql.path, script.sql, { env: env.env, signal: runtime.signal });
      } finally {
        await env.dispose();
      }
    }

    const into = plan.staging ?? plan.target;
    let countsChecked = false;
    // The old database's own comment, which the swap replaced with the note that it is to be dropped.
    let oldComment: string | null = null;
    // The staging database's mark: what its drop checks, so that only this run's own goes.
    const mark = scratchTag('staging', runtime);
    // Staging databases of restores that were killed go first.
    await sweepScratchDatabases(server, runtime);
    if (plan.staging) {
      const made = plan.databaseLocale ?? { encoding: sidecar.database.encoding, locale: sidecar.database.locale ?? null };
      await createStaging(server, plan, {
        encoding: made.encoding,
        locale: made.locale ?? undefined,
        scratch: mark,
        onFallback: (reason) => runtime.reporter.warn(`database ${plan.target} is ${reason}; text sorts and compares by bytes there`),
      }, (message) => runtime.reporter.warn(message));
      if (prepared.schemas.dropPublic) await dropEmptyPublicSchema(server, plan.staging);
    }
    try {
      await createSchemas(server, into, prepared.schemas.create);
      runtime.reporter.info(`restoring ${sidecar.profile}/${sidecar.id} into "${into}" on ${plan.server}`);
      const env = await childEnv(server, runtime.env, into);
      let listDir: string | null = null;
      try {
        let useList: string | undefined;
        const selected = prepared.selected;
        if (selected) {
          // pg_restore --schema/--table leave out the schema itself: restore from a list that has it.
          const schemas = [...new Set([...request.schemas, ...schemasOfTables(prepared.toc, selected)])];
          listDir = await scratchDir(request.workDir, `${sidecar.id}-list`);
          useList = join(listDir, 'restore.list');
          await writeFile(useList, selectionList(prepared.toc, selected, schemas), { mode: 0o600 });
        }
        const args = pgRestoreArgs(archive.stream ? null : archive.path, into, {
          schemas: request.schemas,
          tables: request.tables,
          noOwner: request.noOwner,
          noAcl: request.noAcl,
          jobs: request.jobs,
          singleTransaction: plan.mode === 'into-existing',
          noTablespaces: request.noTablespaces,
          useList,
          disableTriggers: sidecar.dump.dataOnly,
        });
        await runRestore(pgRestore.path, args, { env: env.env, signal: runtime.signal }, { input: archive.stream ? await archive.stream.open() : undefined }).catch((error: unknown) => {
          throw selected ? withSelectionHint(error) : error;
        });
      } finally {
        await env.dispose();
        if (listDir) await rm(listDir, { recursive: true, force: true });
      }
      // Every byte pg_restore read is checked now (if it was not before), before anything else.
      await assertIntact(sidecar, archive);
      if (plan.staging) {
        const restored = await countDatabaseRows(server, plan.staging, runtime.signal);
        const selected = request.schemas.length > 0 || request.tables.length > 0;
        const present = new Set(restored.map((t) => `${t.schema}\u0000${t.name}`));
        const expected = selected ? { ...sidecar, tables: sidecar.tables.filter((t) => present.has(`${t.schema}\u0000${t.name}`)) } : sidecar;
        const mismatches = compareCounts(expected, restored, prepared.toc, await movablePartitions(server, plan.staging));
        // A --schema/--table restore leaves the large objects out, as pg_restore does.
        if (!selected) mismatches.push(...compareLargeObjects(sidecar, prepared.toc, await countLargeObjects(server, plan.staging)));
        if (mismatches.length) {
          throw new BackupctlError(`the restored data does not match the backup, nothing was changed: ${mismatches.slice(0, 3).join('; ')}`, {
            exitCode: ExitCode.VERIFY_FAILED,
          });
        }
        countsChecked = true;
        throwIfAborted(runtime.signal);
        // The backup's database properties go on in the rename's (or swap's) transaction, after
        // the move took away the staging database's scratch comment: killed at any point, the
        // target's name never holds the restored database without its privileges (REVOKE
        // CONNECT ...) and settings. Its data is sound and complete: a property the server
        // refuses (a role it lacks for a GRANT, a setting it does not know) is a warning.
        const properties = prepared.properties?.statements ?? [];
        // An old database to be dropped right after carries a note until then: a run stopped
        // before the drop leaves it where `check` finds it.
        const toDropNote = plan.dropOld
          ? `${REPLACED_COMMENT_PREFIX}${sidecar.profile}/${sidecar.id} at ${mark.startedAt} (pid ${mark.pid} on ${mark.host}), which was to drop it (${request.dropOld ? '--drop-old' : 'it was empty'}); that restore stopped before it could`
          : undefined;
        let refused: Error | null;
        if (plan.mode === 'create') {
          refused = await renameDatabase(server, plan.staging, plan.target, properties);
        } else {
          const swapped = await swapDatabases(server, plan.target, plan.staging, plan.keepOldAs as string, { reopenOld: plan.targetState.objects !== null, properties, toDropNote });
          refused = swapped.refused;
          oldComment = swapped.oldComment;
        }
        if (refused) runtime.reporter.warn(`not all of the backup's database settings, privileges and comment were carried over: ${refused.message}`);
      }
    } catch (error) {
      if (plan.staging) {
        const drop = dropDatabase(server, plan.staging, { restored: true, mark: scratchMark(mark) }).then((ours) => {
          if (!ours) runtime.reporter.warn(`the staging database ${plan.staging} is not this run's any more (it does not carry its mark): left as it is`);
        });
        const dropped = await dropWithinGrace(drop, runtime.signal).catch((dropError: unknown) => {
          runtime.reporter.warn(`could not drop the staging database ${plan.staging}: ${(dropError as Error).message}`);
          return true;
        });
        if (!dropped) runtime.reporter.warn(`left the staging database ${plan.staging}: the server did not answer in time; the next restore or verify on this host drops it`);
      }
      throwIfAborted(runtime.signal);
      const converted = plan.databaseLocale?.from === 'target' && plan.databaseLocale.encoding !== sidecar.database.encoding;
      if (converted && !countsChecked && !(error instanceof BackupctlError && error.exitCode === ExitCode.VERIFY_FAILED)) {
        runtime.reporter.warn(
          `"${plan.target}" is ${plan.databaseLocale?.encoding ?? ''} and the backup's database was ${sidecar.database.encoding}: the data was converted, and data ${plan.databaseLocale?.encoding ?? ''} cannot hold fails the restore ` +
            `("${plan.target}" is unchanged); restore into a new database (--target-db ${derivedName(plan.target, '_restored')} --create) to keep the backup's encoding`,
        );
      }
      // Damage explains whatever failed (pg_restore, a streamed archive's stream).
      await damageOr(error, sidecar, archive);
    }

    // After the swap: the old database is dropped when it was empty or --drop-old says so.
    // One that could not be dropped is still there: the result keeps its name, its
    // rollback and its drop command (it used to say nothing was kept).
    let oldKeptAs: string | null = plan.keepOldAs;
    let dropFailed: string | null = null;
    let dropOld = plan.dropOld;
    // An empty target is dropped unasked only if it is empty still: it was inspected when the
    // restore began, and whatever was written to it since would go with it.
    if (plan.keepOldAs && dropOld && plan.mode === 'replace-empty' && !request.dropOld) {
      const objects = await inspectDatabase(server, plan.keepOldAs).then((state) => state.objects, () => null);
      if (objects !== 0) {
        dropOld = false;
        const now = objects === null ? 'could not be checked again' : `holds ${objects} object(s) now`;
        runtime.reporter.warn(`"${plan.target}" was empty when the restore began and ${now}: kept as "${plan.keepOldAs}", not dropped`);
      }
    }
    if (plan.keepOldAs && dropOld) {
      try {
        await dropDatabase(server, plan.keepOldAs);
        oldKeptAs = null;
      } catch (error) {
        dropFailed = (error as Error).message;
      }
    }
    // Kept after all: its own comment again, in place of the note that it is to be dropped.
    if (oldKeptAs && plan.dropOld) {
      await restoreComment(server, oldKeptAs, oldComment).catch((error: unknown) => {
        runtime.reporter.warn(`could not give "${oldKeptAs}" its comment back (it says a restore was to drop it): ${(error as Error).message}`);
      });
    }
    // The old database's subscriptions (the operator's, maybe live): never touched by
    // backupctl, but DROP DATABASE refuses a database that has any, so the drop command
    // given detaches them from their replication slots and drops them first.
    const subscriptions = oldKeptAs ? await subscriptionNames(server, oldKeptAs) : [];
    if (oldKeptAs && dropFailed !== null) {
      const held = subscriptions.length > 0
        ? `; it holds subscriptions (${subscriptions.join(', ')}), which DROP DATABASE refuses: the drop command below disables each, detaches it from its replication slot and drops it first (the slots stay on the publisher: drop them there when no subscriber is to use them)`
        : '';
      runtime.reporter.warn(`the restore succeeded, but the old database "${oldKeptAs}" could not be dropped and is kept: ${dropFailed}${held}`);
    }
    return {
      plan,
      dryRun: false,
      durationMs: Math.round(performance.now() - started),
      oldKeptAs,
      globalsSkipped,
      rollback: oldKeptAs
        ? psqlCommand(server, [
            `ALTER DATABASE ${quoteIdentifier(plan.target)} RENAME TO ${quoteIdentifier(derivedName(plan.target, '_failed'))}`,
            `ALTER DATABASE ${quoteIdentifier(oldKeptAs)} RENAME TO ${quoteIdentifier(plan.target)}`,
          ], plan.target)
        : null,
      dropOld: oldKeptAs ? dropCommand(server, oldKeptAs, subscriptions) : null,
      countsChecked,
    };
  } finally {
    await prepared.release();
    await archive.dispose();
  }
}

/** A double-quoted SQL identifier. */
function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A control character: what the terminal output prints escaped (output/format.ts sanitize). */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * Quoted for a POSIX shell. Text holding a control character (a database name with a
 * newline) becomes `"$(printf '%b' '...')"` with each such character as an octal escape of
 * its UTF-8 bytes: the command holds none, so it reads the same printed on a terminal
 * (which shows them escaped) as in --json. (A trailing newline is lost to `$(...)`.)
 */
function shellQuote(text: string): string {
  if (/^[A-Za-z0-9_./:@=+-]+$/.test(text)) return text;
  const single = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;
  if (!new RegExp(CONTROL.source).test(text)) return single(text);
  const escaped = text.replace(/\\/g, '\\\\').replace(CONTROL, (ch) => [...Buffer.from(ch, 'utf8')].map((byte) => `\\0${byte.toString(8).padStart(3, '0')}`).join(''));
  return `"$(printf '%b' ${single(escaped)})"`;
}

/**
 * A psql command line that runs `statements` on the target's server: with -h, -p and -U,
 * so that pasted on a host with several clusters it reaches the right one; never a
 * password (psql finds it where backupctl did: PGPASSWORD, ~/.pgpass).
 */
export function psqlCommand(server: ConnectionSettings, statements: readonly string[], target?: string): string {
  // Not from inside the database the statements rename or drop.
  const from = target === 'postgres' ? 'template1' : 'postgres';
  const args = ['psql', '-h', server.host, '-p', String(server.port), '-U', server.user, '-d', from, ...statements.flatMap((sql) => ['-c', sql])];
  return args.map(shellQuote).join(' ');
}

/**
 * psql commands that drop a kept database: its subscriptions first, from inside it
 * (disabled, detached from their slot, dropped: nothing is asked of the publisher), then
 * the database.
 */
function dropCommand(server: ConnectionSettings, database: string, subscriptions: readonly string[]): string {
  const drop = psqlCommand(server, [`DROP DATABASE ${quoteIdentifier(database)}`], database);
  if (subscriptions.length === 0) return drop;
  const detach = subscriptions.flatMap((name) => [
    `ALTER SUBSCRIPTION ${quoteIdentifier(name)} DISABLE`,
    `ALTER SUBSCRIPTION ${quoteIdentifier(name)} SET (slot_name = NONE)`,
    `DROP SUBSCRIPTION ${quoteIdentifier(name)}`,
  ]);
  const inside = ['psql', '-h', server.host, '-p', String(server.port), '-U', server.user, '-d', database, ...detach.flatMap((sql) => ['-c', sql])];
  return `${inside.map(shellQuote).join(' ')} && ${drop}`;
}

/**
 * The staging database gets the plan's owner (the target's, or the backup's database
 * owner for a new one) when we may give it, so the swap changes no ownership.
 */
async function createStaging(server: ConnectionSettings, plan: RestorePlan, options: CreateOptions, warn: (message: string) => void): Promise<void> {
  const staging = plan.staging as string;
  const owner = plan.owner ?? undefined;
  try {
    await createDatabase(server, staging, { ...options, owner });
  } catch (error) {
    // insufficient_privilege: the role may not give the database to that owner;
    // undefined_object: the role is gone since the plan was made.
    if (!owner || !['42501', '42704'].includes(sqlState(error) ?? '')) throw error;
    warn(`"${plan.target}" will belong to ${server.user}, not to ${owner}: ${server.user} may not create a database owned by ${owner} (${(error as Error).message})`);
    // Nothing to drop first: a database the first attempt made and could not mark, it
    // dropped itself (createDatabase); a database of this name now is someone else's.
    await createDatabase(server, staging, options);
  }
}

/**
 * A --table or --schema restore that pg_restore failed: what it selects may use what it
 * does not bring (a table comes with what belongs to it, never a type, function, sequence,
 * extension or parent table of its own: `ERROR: type "app.mood" does not exist`), so the
 * hint says where such a restore works, before pg_restore's own lines. Any other failure
 * (a signal, a usage error) is left as it is; damage is judged after this (damageOr).
 */
function withSelectionHint(error: unknown): unknown {
  if (!(error instanceof BackupctlError) || error.exitCode !== ExitCode.FAILED) return error;
  const ours =
    'a --table or --schema restore brings the selected tables and what belongs to them, not the types, functions, sequences, extensions or parent tables they use from outside the selection: ' +
    'restore into a database that has them (--force), select their schemas too, or restore the whole backup into a new database';
  return new BackupctlError(error.message, { exitCode: error.exitCode, hint: error.hint ? `${ours}\n${error.hint}` : ours, details: error.details, cause: error.cause ?? error });
}

