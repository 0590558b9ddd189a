import { constants } from 'node:fs';
import { access, readdir, realpath } from 'node:fs/promises';
import { basename, delimiter, join } from 'node:path';
import { execa } from 'execa';
import { BackupctlError, ExitCode } from '../errors.js';
import { offlineEnv } from './child-env.js';

export type ClientTool = 'pg_dump' | 'pg_dumpall' | 'pg_restore' | 'psql';

export interface ClientBinary {
  tool: ClientTool;
  path: string;
  /** As printed by `--version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`. */
  version: string;
  major: number;
}

/** Parses `pg_dump (PostgreSQL) 15.18 (Debian ...)` into its version text and major. */
export function parseClientVersion(output: string): { version: string; major: number } | null {
  const match = /\(PostgreSQL\)\s+((\d+)(?:\.\d+)?\S*(?:\s+\(.*\))?)/.exec(output.trim());
  if (!match?.[1] || !match[2]) return null;
  return { version: match[1].trim(), major: Number(match[2]) };
}

/** Major version from server_version_num: 150018 -> 15, 90624 -> 9 (9.6 counts as 9). */
export function serverMajor(versionNum: number): number {
  return Math.floor(versionNum / 10000);
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function globVersionDirs(pattern: (n: string) => string, parent: string, namePattern: RegExp): Promise<string[]> {
  try {
    const names = await readdir(parent);
    return names.filter((name) => namePattern.test(name)).map(pattern);
  } catch {
    return [];
  }
}

/**
 * Directories to look in. A configured pgBinDir is the only place looked at: an operator
 * who names a directory means those clients, and a surprise substitute would be worse
 * than a clear error. Otherwise: PATH, then the usual install locations.
 */
export async function candidateDirs(options: { pgBinDir?: string | undefined; path?: string | undefined }): Promise<string[]> {
  if (options.pgBinDir) return [options.pgBinDir];
  const dirs: string[] = [];
  dirs.push(...(options.path ?? '').split(delimiter).filter(Boolean));
  dirs.push(
    ...(await globVersionDirs((n) => `/usr/lib/postgresql/${n}/bin`, '/usr/lib/postgresql', /^\d+(\.\d+)?$/)),
    ...(await globVersionDirs((n) => `/usr/${n}/bin`, '/usr', /^pgsql-\d+$/)),
    ...(await globVersionDirs((n) => `/opt/homebrew/opt/${n}/bin`, '/opt/homebrew/opt', /^postgresql@\d+$/)),
    ...(await globVersionDirs((n) => `/usr/local/opt/${n}/bin`, '/usr/local/opt', /^postgresql@\d+$/)),
    '/usr/local/pgsql/bin',
    '/opt/homebrew/bin',
  );
  return [...new Set(dirs)];
}

/** Versions already asked, by real path: each binary is run with --version once per process. */
const versions = new Map<string, { version: string; major: number } | null>();

/**
 * Every distinct copy of `tool` found, with its version. Unrunnable copies are skipped,
 * and so is Debian's pg_wrapper (/usr/bin/pg_dump on Debian and Ubuntu) outside an
 * explicit pgBinDir: it picks a version from the local cluster configuration, not from
 * the server we back up, and the real binaries it would run are found in
 * /usr/lib/postgresql/<N>/bin anyway.
 */
export async function discoverClients(
  tool: ClientTool,
  options: { pgBinDir?: string | undefined; path?: string | undefined },
): Promise<ClientBinary[]> {
  const found: ClientBinary[] = [];
  const seen = new Set<string>();
  for (const dir of await candidateDirs(options)) {
    const path = join(dir, tool);
    if (!(await isExecutable(path))) continue;
    const real = await realpath(path).catch(() => path);
    if (seen.has(real)) continue;
    seen.add(real);
    if (!options.pgBinDir && basename(real) === 'pg_wrapper') continue;
    if (versions.has(real)) {
      const known = versions.get(real);
      if (known) found.push({ tool, path, ...known });
      continue;
    }
    versions.set(real, null);
    try {
      const { stdout } = await execa(path, ['--version'], { timeout: 10_000, env: offlineEnv(process.env), extendEnv: false });
      const parsed = parseClientVersion(stdout);
      versions.set(real, parsed);
      if (parsed) found.push({ tool, path, ...parsed });
    } catch {
      // a broken wrapper script or foreign binary: not a client we can use
    }
  }
  return found;
}

/**
 * Chooses the client for a server: among copies whose major is >= the server's, the
 * closest major (an archive written by a newer pg_dump needs an equally new
 * pg_restore), the earliest found first among equals. A server newer than every client
 * found is a USAGE error that names the package to install. `of` says what the major is
 * of, for the message: the server's, or (pg_restore of a backup) the pg_dump that wrote
 * the archive; 0 means any version.
 */
export function chooseClient(
  tool: ClientTool,
  candidates: readonly ClientBinary[],
  serverMajorVersion: number,
  where = 'PATH or the usual install locations',
  of: 'server' | 'archive' = 'server',
): ClientBinary {
  const usable = candidates.filter((c) => c.major >= serverMajorVersion);
  if (usable.length === 0) {
    const seen = candidates.map((c) => `${c.path} is ${c.major}`).join(', ');
    const needs = of === 'server' ? `the server is PostgreSQL ${serverMajorVersion}` : `the backup was written by pg_dump ${serverMajorVersion}`;
    const client = serverMajorVersion > 0 ? `PostgreSQL ${serverMajorVersion} client` : 'PostgreSQL client';
    const versioned = (name: string) => (serverMajorVersion > 0 ? `${name}${serverMajorVersion}` : name.replace(/-$/, ''));
    throw new BackupctlError(
      candidates.length === 0
        ? `${tool} was not found in ${where}${serverMajorVersion > 0 ? ` (${needs})` : ''}`
        : `every ${tool} found is older than ${of === 'server' ? 'the server' : "the backup's pg_dump"} (${of === 'server' ? 'PostgreSQL' : 'pg_dump'} ${serverMajorVersion}): ${seen}`,
      {
        exitCode: ExitCode.USAGE,
        hint:
          `install the ${client}: Debian/Ubuntu: apt-get install ${versioned('postgresql-client-')} ` +
          `from the PostgreSQL (PGDG) apt repository when the distribution has no such version (https://apt.postgresql.org, see https://wiki.postgresql.org/wiki/Apt); ` +
          `RHEL: ${versioned('postgresql')} from https://yum.postgresql.org; macOS: brew install ${serverMajorVersion > 0 ? `postgresql@${serverMajorVersion}` : 'libpq'}; ${where.startsWith('pgBinDir ') ? `or point pgBinDir at its bin directory (it is ${where.slice('pgBinDir '.length)})` : 'or set pgBinDir in the config, or put its bin directory first on PATH'}`,
      },
    );
  }
  const best = Math.min(...usable.map((c) => c.major));
  return usable.find((c) => c.major === best) as ClientBinary;
}

export async function findClient(
  tool: ClientTool,
  serverMajorVersion: number,
  options: { pgBinDir?: string | undefined; path?: string | undefined; of?: 'server' | 'archive' },
): Promise<ClientBinary> {
  const where = options.pgBinDir ? `pgBinDir ${options.pgBinDir}` : undefined;
  return chooseClient(tool, await discoverClients(tool, options), serverMajorVersion, where, options.of);
}
