import { resolve } from 'node:path';
import { usageError } from '../errors.js';
import { LocalStorage } from './local.js';
import type { Storage } from './storage.js';

/**
 * Maps a `--storage` value to a driver. A plain path (or file:// URL) is local;
 * other schemes get their own driver here as they land (s3://, sftp://).
 */
export function openStorage(location: string, cwd: string): Storage {
  if (location.startsWith('file://')) return new LocalStorage(new URL(location).pathname);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1];
  if (scheme) {
    throw usageError(
      `storage scheme "${scheme}://" is not supported yet`,
      'use a local directory path (the default is ./backups)',
    );
  }
  return new LocalStorage(resolve(cwd, location));
}
