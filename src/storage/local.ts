import { randomBytes } from 'node:crypto';
import { createWriteStream, type Dirent } from 'node:fs';
import { chmod, link, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errnoCode } from '../errors.js';
import { assertKey, NotFoundError, type ObjectInfo, type PutOptions, type Storage } from './storage.js';

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** Temporaries are dot-files: list() skips them, prune removes stale ones. */
const TEMP_PREFIX = '.tmp-';

/** A directory on this machine. The default storage. */
export class LocalStorage implements Storage {
  readonly root: string;
  readonly location: string;
  readonly capabilities = { atomicPut: true, localFiles: true };

  constructor(root: string) {
    this.root = resolve(root);
    this.location = this.root;
  }

  localPath(key: string): string {
    assertKey(key);
    const path = resolve(this.root, ...key.split('/'));
    if (!path.startsWith(this.root + sep)) throw new Error(`unsafe storage key: ${JSON.stringify(key)}`);
    return path;
  }

  private async ensureDir(dir: string): Promise<void> {
    // Create each missing level with 0700 and chmod it, so a permissive umask cannot widen it.
    const missing: string[] = [];
    for (let current = dir; ; current = dirname(current)) {
      try {
        await stat(current);
        break;
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT' || dirname(current) === current) throw error;
        missing.unshift(current);
      }
    }
    for (const path of missing) {
      try {
        await mkdir(path, { mode: DIR_MODE });
      } catch (error) {
        if (errnoCode(error) !== 'EEXIST') throw error;
      }
      await chmod(path, DIR_MODE);
    }
  }

  private tempPathFor(path: string): string {
    return join(dirname(path), `${TEMP_PREFIX}${randomBytes(6).toString('hex')}-${path.slice(dirname(path).length + 1)}`);
  }

  async put(key: string, source: Readable, options: PutOptions = {}): Promise<{ bytes: number }> {
    const path = this.localPath(key);
    await this.ensureDir(dirname(path));
    const temp = this.tempPathFor(path);
    try {
      const sink = createWriteStream(temp, { flags: 'wx', mode: FILE_MODE });
      await pipeline(source, sink, { signal: options.signal });
      await fsyncFile(temp);
      await rename(temp, path);
      await syncDir(dirname(path));
      return { bytes: sink.bytesWritten };
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  async putBytes(key: string, data: Buffer): Promise<void> {
    const path = this.localPath(key);
    await this.ensureDir(dirname(path));
    const temp = this.tempPathFor(path);
    const handle = await open(temp, 'wx', FILE_MODE);
    try {
      await handle.chmod(FILE_MODE);
      await handle.writeFile(data);
      await handle.sync();
      await handle.close();
      await rename(temp, path);
      await syncDir(dirname(path));
    } catch (error) {
      await handle.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw error;
    }
  }

  /**
   * Written complete under a temporary name, then published with link(2), which fails
   * with EEXIST when the key exists: create-if-absent with O_EXCL semantics (also on NFS),
   * and no window in which a reader could see a half-written object. On filesystems
   * without hard links the object is created directly with O_CREAT|O_EXCL.
   */
  async putIfAbsent(key: string, data: Buffer): Promise<boolean> {
    const path = this.localPath(key);
    await this.ensureDir(dirname(path));
    const temp = this.tempPathFor(path);
    await writeSynced(temp, data);
    try {
      await link(temp, path);
    } catch (error) {
      const code = errnoCode(error);
      if (code === 'EEXIST') return false;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
      return createExclusive(path, data);
    } finally {
      await rm(temp, { force: true });
    }
    await syncDir(dirname(path));
    return true;
  }

  async get(key: string): Promise<Readable> {
    const path = this.localPath(key);
    const handle = await open(path, 'r').catch((error: unknown) => {
      throw errnoCode(error) === 'ENOENT' ? new NotFoundError(key) : error;
    });
    return handle.createReadStream();
  }

  async getBytes(key: string, maxBytes: number): Promise<Buffer> {
    const info = await this.stat(key);
    if (info.size > maxBytes) throw new Error(`${key} is ${info.size} bytes, more than the ${maxBytes} allowed`);
    const handle = await open(this.localPath(key), 'r').catch((error: unknown) => {
      // Removed between the stat and the open.
      throw errnoCode(error) === 'ENOENT' ? new NotFoundError(key) : error;
    });
    try {
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }

  async stat(key: string): Promise<ObjectInfo> {
    try {
      const info = await stat(this.localPath(key));
      if (!info.isFile()) throw new NotFoundError(key);
      return { key, size: info.size, modifiedAt: info.mtime };
    } catch (error) {
      if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') throw new NotFoundError(key);
      throw error;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const trimmed = prefix.replace(/\/+$/, '');
    const dir = trimmed === '' ? this.root : this.localPath(trimmed);
    const found: ObjectInfo[] = [];
    await this.walk(dir, trimmed, found);
    return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  private async walk(dir: string, keyPrefix: string, found: ObjectInfo[]): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return;
      throw error;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const key = keyPrefix === '' ? entry.name : `${keyPrefix}/${entry.name}`;
      try {
        assertKey(key);
      } catch {
        continue; // names we never write (spaces, odd characters) are not ours to report
      }
      if (entry.isDirectory()) {
        await this.walk(join(dir, entry.name), key, found);
      } else if (entry.isFile()) {
        const info = await stat(join(dir, entry.name)).catch(() => null);
        if (info) found.push({ key, size: info.size, modifiedAt: info.mtime });
      }
    }
  }

  async remove(key: string): Promise<void> {
    try {
      await unlink(this.localPath(key));
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error;
    }
  }

  async removeStaleTemporaries(prefix: string, olderThan: Date): Promise<{ files: number; bytes: number }> {
    const dir = prefix === '' ? this.root : this.localPath(prefix);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return { files: 0, bytes: 0 };
      throw error;
    }
    let files = 0;
    let bytes = 0;
    for (const name of names) {
      if (!name.startsWith(TEMP_PREFIX)) continue;
      const path = join(dir, name);
      const info = await stat(path).catch(() => null);
      if (!info?.isFile() || info.mtime >= olderThan) continue;
      await rm(path, { force: true });
      files += 1;
      bytes += info.size;
    }
    return { files, bytes };
  }

  async checkWritable(prefix: string): Promise<void> {
    const dir = prefix === '' ? this.root : this.localPath(prefix);
    await this.ensureDir(dir);
    const probe = join(dir, `${TEMP_PREFIX}probe-${randomBytes(4).toString('hex')}`);
    const handle = await open(probe, 'wx', FILE_MODE);
    await handle.close();
    await unlink(probe);
  }
}

/** Creates `path` (which must not exist) with `data`, mode 0600, flushed to stable storage. */
async function writeSynced(path: string, data: Buffer): Promise<void> {
  const handle = await open(path, 'wx', FILE_MODE);
  try {
    await handle.chmod(FILE_MODE);
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(path, { force: true });
    throw error;
  }
  await handle.close();
}

/** O_CREAT|O_EXCL: false when `path` exists. */
async function createExclusive(path: string, data: Buffer): Promise<boolean> {
  try {
    await writeSynced(path, data);
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') return false;
    throw error;
  }
  await syncDir(dirname(path));
  return true;
}

/** Flushes a written file to stable storage (fsync acts on the file, whichever descriptor asks). */
async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  // fsync the directory so the rename itself survives a crash; some filesystems refuse it.
  const handle = await open(dir, 'r').catch(() => null);
  if (!handle) return;
  try {
    await handle.sync();
  } catch {
    // EINVAL/EISDIR on filesystems that cannot sync directories: the data is already synced.
  } finally {
    await handle.close();
  }
}
