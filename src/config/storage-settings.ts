import { parseSize, type StorageSettings } from '../storage/registry.js';
import { parseFixedDuration } from './duration.js';
import type { Config } from './schema.js';

/** `storageSettings` as the config file writes it (durations and sizes as text). */
export type ConfiguredStorageSettings = NonNullable<Config['storageSettings']>;

const ms = (text: string | undefined) => (text === undefined ? undefined : parseFixedDuration(text));
const bytes = (text: string | undefined) => (text === undefined ? undefined : (parseSize(text) ?? undefined));

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
