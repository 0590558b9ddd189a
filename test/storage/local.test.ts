import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { LocalStorage } from '../../src/storage/local.js';
import { openStorage } from '../../src/storage/registry.js';
import { storageConformance, type ConformanceHooks } from './conformance.js';

const base = await mkdtemp(path.join(os.tmpdir(), 'backupctl-local-conformance-'));
const root = path.join(base, 'store');
const mounts: string[] = [];
afterAll(async () => {
  for (const mount of mounts) execFileSync('umount', [mount]);
  await rm(base, { recursive: true, force: true });
});

/** Every dot-entry (temporaries, probes) left anywhere under the root. */
async function leftovers(): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, prefix: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const key = `${prefix}${entry.name}`;
      if (entry.name.startsWith('.')) found.push(key);
      else if (entry.isDirectory()) await walk(path.join(dir, entry.name), `${key}/`);
    }
  };
  await walk(root, '');
  return found;
}

/**
 * A storage whose writes the file system refuses. Root ignores mode bits, so as root a
 * read-only tmpfs is mounted (when this machine allows mounts); otherwise a 0500 directory.
 */
async function denied(): Promise<LocalStorage> {
  const dir = path.join(base, 'denied');
  await mkdir(dir, { recursive: true });
  if (process.getuid?.() === 0) {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', dir]);
    mounts.push(dir);
  } else {
    await chmod(dir, 0o500);
  }
  return new LocalStorage(dir);
}

function canDeny(): string | null {
  if (process.getuid?.() !== 0) return null;
  const probe = path.join(os.tmpdir(), `backupctl-mount-probe-${process.pid}`);
  try {
    execFileSync('mkdir', ['-p', probe]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe]);
    return null;
  } catch {
    return 'running as root and cannot mount a read-only tmpfs here';
  } finally {
    execFileSync('rm', ['-rf', probe]);
  }
}

const noDeny = canDeny();
if (noDeny) console.info(`local: permission case not checked: ${noDeny}`);
/** A temporary file of a put killed midway, two days old. */
async function plantStaleTemporary(prefix: string): Promise<{ bytes: number }> {
  const file = path.join(root, ...prefix.split('/'), '.tmp-0123456789ab-20261201T000000Z-aaaaaa.dump');
  await writeFile(file, 'half a dump');
  const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
  await utimes(file, twoDaysAgo, twoDaysAgo);
  return { bytes: 'half a dump'.length };
}

const hooks: ConformanceHooks = { leftovers, plantStaleTemporary, ...(noDeny ? {} : { denied }) };

storageConformance('local', () => openStorage(root, '/'), hooks);
