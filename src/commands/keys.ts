import path from 'node:path';
import { settingsOf, type ResolvedSettings } from '../config/resolve.js';
import type { KeyFlags } from '../core/keys.js';
import { readKeys } from '../core/stages.js';
import type { DecodeKeys } from '../pipeline/codecs/index.js';

/** `--identity` and `--passphrase-file` as commander hands them over. */
export interface DecryptOptions {
  identity?: string[];
  passphraseFile?: string;
}

/**
 * What a backup of each profile is decoded with: the flags' identity files and passphrase
 * file (relative to the working directory) plus the profile's encryption settings. Read
 * once per profile, when a backup of it is first read.
 */
export function keysByProfile(settings: ResolvedSettings, options: DecryptOptions): (profile: string) => DecodeKeys {
  const inCwd = (file: string) => path.resolve(settings.cwd, file);
  const flags: KeyFlags = {
    identity: options.identity?.map(inCwd),
    passphraseFile: options.passphraseFile === undefined ? undefined : inCwd(options.passphraseFile),
  };
  const cache = new Map<string, DecodeKeys>();
  return (profile) => {
    let keys = cache.get(profile);
    if (!keys) {
      keys = readKeys(settingsOf(settings, profile).encryption, flags, settings.env);
      cache.set(profile, keys);
    }
    return keys;
  };
}
