import { parseSize, type StorageSettings } from '../storage/registry.js';
import { parseFixedDuration } from './duration.js';
import type { Config } from './schema.js';

/** `storageSettings` as the config file writes it (durations and sizes as text). */
export type ConfiguredStorageSettings = NonNullable<Config['storageSettings']>;

const ms = (text: string | undefined) => (text === undefined ? undefined : parseFixedDuration(text));
const bytes = (text: string | undefined) => (text === undefined ? undefined : (parseSize(text) ?? undefined));

const FILE_KEYS = {
  s3: [] as const,
  azure: ['connectionStringFile', 'accountKeyFile', 'sasTokenFile'] as const,
  sftp: ['key', 'passphraseFile', 'passwordFile', 'knownHosts'] as const,
};

/**
 * Layers of `storageSettings` (the top level, `defaults`, a profile's own), later ones
 * winning key by key, within each driver's block too: a profile that sets only its
 * `stallTimeout` keeps the SFTP key and S3 endpoint of the top level. File paths are made
 * absolute by `absolute` (relative to the config file).
 */
export function mergeStorageSettings(
  layers: ReadonlyArray<ConfiguredStorageSettings | undefined>,
  absolute: (path: string) => string,
): ConfiguredStorageSettings | undefined {
  const present = layers.filter((layer): layer is ConfiguredStorageSettings => layer !== undefined);
  if (present.length === 0) return undefined;
  const merged: Record<string, unknown> = {};
  for (const layer of present) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      merged[key] = key in FILE_KEYS ? { ...(merged[key] as object | undefined), ...(value as object) } : value;
    }
  }
  for (const [driver, keys] of Object.entries(FILE_KEYS)) {
    const block = merged[driver] as Record<string, unknown> | undefined;
    if (!block) continue;
    for (const key of keys) if (typeof block[key] === 'string') block[key] = absolute(block[key]);
  }
  return merged as ConfiguredStorageSettings;
}

/** The config's storage settings as the drivers take them (milliseconds, bytes). */
export function toDriverSettings(configured: ConfiguredStorageSettings | undefined): StorageSettings {
  if (!configured) return {};
  const { s3, azure, sftp } = configured;
  return {
    stallTimeoutMs: ms(configured.stallTimeout),
    retryDeadlineMs: ms(configured.retryDeadline),
    s3: s3 && {
      stallTimeoutMs: ms(s3.stallTimeout),
      retryDeadlineMs: ms(s3.retryDeadline),
      endpoint: s3.endpoint,
      region: s3.region,
      pathStyle: s3.pathStyle,
      storageClass: s3.storageClass,
      sse: s3.sse,
      sseKmsKeyId: s3.sseKmsKeyId,
      profile: s3.profile,
      partSizeBytes: bytes(s3.partSize),
      queueSize: s3.queueSize,
      conditionalCreate: s3.conditionalCreate,
    },
    azure: azure && {
      stallTimeoutMs: ms(azure.stallTimeout),
      retryDeadlineMs: ms(azure.retryDeadline),
      account: azure.account,
      endpoint: azure.endpoint,
      connectionStringFile: azure.connectionStringFile,
      connectionStringEnv: azure.connectionStringEnv,
      accountKeyFile: azure.accountKeyFile,
      accountKeyEnv: azure.accountKeyEnv,
      sasTokenFile: azure.sasTokenFile,
      sasTokenEnv: azure.sasTokenEnv,
      blockSizeBytes: bytes(azure.blockSize),
      concurrency: azure.concurrency,
      accessTier: azure.accessTier,
    },
    sftp: sftp && {
      stallTimeoutMs: ms(sftp.stallTimeout),
      retryDeadlineMs: ms(sftp.retryDeadline),
      keyFile: sftp.key,
      passphraseFile: sftp.passphraseFile,
      passphraseEnv: sftp.passphraseEnv,
      passwordFile: sftp.passwordFile,
      passwordEnv: sftp.passwordEnv,
      knownHostsFile: sftp.knownHosts,
      agent: sftp.agent === 'none' ? false : sftp.agent,
      connectTimeoutMs: ms(sftp.connectTimeout),
    },
  };
}
