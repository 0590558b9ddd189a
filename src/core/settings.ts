import type { Profile } from '../config/schema.js';
import type { LoadedConfigRef } from './profile.js';

/**
 * The settings of a profile as written in the config: the config's `defaults` with the
 * profile's own keys on top (a key of the profile replaces the same key of `defaults` as a
 * whole, e.g. a profile's `notify` replaces the default `notify`). A profile that is not in
 * the config (a run described by flags and the libpq environment) gets `defaults`.
 */
export function profileSettings(loaded: LoadedConfigRef, name: string): Profile {
  const profiles = loaded.config.profiles ?? {};
  const own = Object.hasOwn(profiles, name) ? profiles[name] : undefined;
  return { ...(loaded.config.defaults ?? {}), ...(own ?? {}) };
}
