import * as z from 'zod';
import { PROFILE_PATTERN } from '../catalog/id.js';
import { isValidTimeZone } from '../retention/periods.js';
import { parseDuration } from '../retention/policy.js';
import { FIXED_DURATION_HELP, FIXED_DURATION_PATTERN } from './duration.js';
import {
  TAG_PATTERN,
  ENV_VAR_PATTERN,
  COMPRESS_PATTERN,
  PG_COMPRESS_PATTERN,
  AGE_RECIPIENT_PATTERN,
  LOCK_WAIT_TIMEOUT_PATTERN,
  POSTGRES_URL_PATTERN,
  SSL_MODES,
  DUMP_FORMATS,
} from './values.js';

/**
 * The configuration file, as one zod schema. Every key carries a description: they end
 * up in schema/backupctl.schema.json (see json-schema.ts), which editors use for
 * completion and hover help. Every object is strict, so a typo is an error rather than a
 * silently ignored setting. Messages are written for operators: `loadConfig` prints them
 * after the key path, e.g. `profiles.app.port: expected an integer between 1 and 65535`.
 *
 * Defaults (storage, format, globals...) are deliberately NOT applied here: the code that
 * uses a setting owns its default, so this schema's input and output are the same shape.
 */

// ---------------------------------------------------------------------------------------
// Building blocks that carry operator-friendly messages.

type UnknownRecord = Record<string, unknown>;

function isRecord(value: unknown): value is UnknownRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Run cross-field checks even when other keys of the same object already failed. */
const whenObject = { when: (payload: { value: unknown }) => isRecord(payload.value) };

function text(description: string) {
  return z
    .string({ error: 'expected a string' })
    .min(1, { error: 'must not be empty' })
    .optional()
    .describe(description);
}

/**
 * An integer in [min, max]. Not `z.int()`: its "not an integer" issue aborts the parse of
 * the enclosing objects, which would hide the cross-field problems of the same file.
 * `meta({ type: 'integer' })` keeps `"type": "integer"` in the JSON Schema.
 */
function integer(min: number, max: number, message = `expected an integer between ${min} and ${max}`) {
  return z
    .number({ error: message })
    .min(min, { error: message })
    .max(max, { error: message })
    .refine(Number.isInteger, { error: message })
    .meta({ type: 'integer' });
}

function bool(description: string) {
  return z.boolean({ error: 'expected true or false' }).optional().describe(description);
}

function stringList(description: string, what = 'a non-empty string') {
  return z
    .array(z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}` }), {
      error: 'expected an array of strings',
    })
    .optional()
    .describe(description);
}

/** A strict object whose type error reads like the others (unknown keys are listed by loadConfig). */
function strictObject<Shape extends z.core.$ZodLooseShape>(shape: Shape) {
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? 'unknown key' : 'expected an object'),
  });
}

/** pg_dump's own compression that compresses nothing: 0, "none", "gzip:0". */
export function pgCompressIsOff(value: unknown): boolean {
  return value === 0 || value === 'none' || value === 'gzip:0' || value === 'none:0';
}

const PG_COMPRESS_MESSAGE =
  'expected an integer 0-9, or "none", "gzip", "lz4" or "zstd" optionally followed by ":level" (e.g. "zstd:3")';
const COMPRESS_MESSAGE =
  'expected "zstd" (levels "zstd:1" to "zstd:19"), "gzip" ("gzip:1" to "gzip:9") or "none"; pg_dump\'s own compression (a level 0-9, lz4...) is "pgCompress"';
const LOCK_WAIT_TIMEOUT_MESSAGE =
  'expected a PostgreSQL time value like "30s", "5min", "1500ms" or "1h", or a number of milliseconds';
const PROFILE_NAME_MESSAGE =
  'invalid profile name: use 1-63 characters from A-Z a-z 0-9 _ . -, starting with a letter or digit, without ".."';
const TAG_MESSAGE =
  'invalid tag: use 1-64 characters from A-Z a-z 0-9 _ . : -, starting with a letter or digit';

// ---------------------------------------------------------------------------------------
// Profile

const DURATION_MESSAGE = `expected ${FIXED_DURATION_HELP}`;

function fixedDuration(description: string) {
  return z
    .string({ error: DURATION_MESSAGE })
    .regex(FIXED_DURATION_PATTERN, { error: DURATION_MESSAGE })
    .refine((value) => !/^(0+[a-z]+)+$/.test(value), { error: 'must be longer than 0' })
    .optional()
    .describe(description);
}

/** `status` thresholds of a profile; the command-line flags override them. */
export const StatusSettingsSchema = strictObject({
  maxAge: fixedDuration(
    'Unhealthy when the newest backup finished longer ago than this, or when there is none (status --max-age), e.g. "25h".',
  ),
  maxVerifyAge: fixedDuration(
    'Unhealthy when no backup of the profile passed a verification within this time (status --max-verify-age), e.g. "8d".',
  ),
  minSizeRatio: z
    .number({ error: 'expected a number from 0 to 1' })
    .min(0, { error: 'expected a number from 0 to 1' })
    .max(1, { error: 'expected a number from 0 to 1' })
    .optional()
    .describe(
      'Unhealthy when the newest backup is smaller than this fraction of the median of the previous (up to 5) backups ' +
        'taken with the same dump options (status --min-size-ratio), e.g. 0.5.',
    ),
  allowFailures: bool(
    'Failed runs since the last successful backup are reported but do not make the profile unhealthy (status --allow-failures). Default false.',
  ),
});

const URL_MESSAGE = 'expected an http:// or https:// URL';
const NOTIFY_EVENTS = ['success', 'failure', 'busy'] as const;
/** The commands that notify (core/report-run.ts). */
export const NOTIFIED_COMMANDS = ['create', 'verify', 'copy', 'delete', 'rekey'] as const;

function notifyUrl(description: string) {
  return z.url({ protocol: /^https?$/, error: URL_MESSAGE }).describe(description);
}

function notifyEvents(description: string) {
  return z
    .array(z.enum(NOTIFY_EVENTS, { error: 'expected "success", "failure" or "busy"' }), { error: 'expected an array of events' })
    .min(1, { error: 'list at least one event, or remove the target' })
    .optional()
    .describe(description);
}

/** `notify` of a profile: where to report the outcome of runs. */
export const NotifySettingsSchema = strictObject({
  webhook: strictObject({
    url: notifyUrl('URL that receives a POST with a JSON body for each run (it may hold a token: it is never printed in full).'),
    events: notifyEvents('Which outcomes are sent: "success", "failure", "busy" (the run found the profile locked by another run: exit 4). Default ["success", "failure"].'),
  })
    .optional()
    .describe(
      'Generic JSON webhook: {event: "backup.succeeded"|"backup.failed", profile, id, database, startedAt, finishedAt, ' +
        'durationMs, bytes, error, exitCode, host}.',
    ),
  slack: strictObject({
    url: notifyUrl('Slack (or Mattermost, Rocket.Chat...) incoming webhook URL. It holds a token: it is never printed in full.'),
    events: notifyEvents('Which outcomes are sent: "success", "failure", "busy" (the run found the profile locked by another run: exit 4). Default ["success", "failure"].'),
  })
    .optional()
    .describe('Slack-compatible incoming webhook: one short message {text} per run.'),
  healthchecks: strictObject({
    url: notifyUrl('Ping URL, e.g. "https://hc-ping.com/<uuid>": <url>/start when a run starts, <url> on success, <url>/fail with the error on failure.'),
    commands: z
      .array(z.enum(NOTIFIED_COMMANDS, { error: `expected one of ${NOTIFIED_COMMANDS.map((c) => `"${c}"`).join(', ')}` }), { error: 'expected an array of commands' })
      .min(1, { error: 'list at least one command, or remove the target' })
      .optional()
      .describe(
        'Which commands ping the check: default ["create"] (the scheduled backup). Any command that pings success resets the check, ' +
          'so a verify or delete run would hide a backup job that stopped: add one only when it runs on the same schedule.',
      ),
  })
    .optional()
    .describe('healthchecks.io-style ping URLs (start, success, fail) for the backup job. Also alerts when a run never happens.'),
  timeoutMs: integer(100, 300_000)
    .optional()
    .describe('Time limit of one attempt to notify, in milliseconds. Default 10000.'),
  retries: integer(0, 10).optional().describe('Further attempts after a failed one (network error, timeout, HTTP 408/429/5xx). Default 2.'),
});

const KEEP_COUNT_MESSAGE = 'expected a whole number >= 0, or -1 for unlimited';

function keepCount(description: string) {
  return integer(-1, 1_000_000, KEEP_COUNT_MESSAGE).optional().describe(description);
}

/** What a retention duration looks like, for editors (parseDuration gives the exact message). */
const RETENTION_DURATION_PATTERN = /^\s*(\d+(y|mo|m|w|d|h|min))+\s*$/;

/** A keep-within* duration: the pattern for editors, parseDuration for the exact rules and message. */
function retentionDuration(description: string) {
  return z
    .string({ error: 'expected a duration string such as "14d"' })
    .regex(RETENTION_DURATION_PATTERN, {
      error: 'expected a duration like "14d", "2w", "6m" or "1y6m" (units y, m = months, w, d, h, min, in any order)',
    })
    .superRefine((value, ctx) => {
      try {
        parseDuration(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    })
    .optional()
    .describe(description);
}

const DURATION_UNITS_TEXT = 'Units y, m (months, as in restic), w, d, h, min, in any order, each unit once.';

function withinPeriod(period: string, flag: string): string {
  return (
    `Keep the newest backup of each ${period} among the backups made within this duration before the NEWEST backup ` +
    `(${flag}, as restic's), e.g. "30d", "1y". The oldest backup is kept too when it lies in the window. ${DURATION_UNITS_TEXT}`
  );
}

/** A tag of keep-tags; "a,b" (restic's command-line form of an AND group) gets a pointer to the list form. */
const keepTag = z.string({ error: TAG_MESSAGE }).regex(TAG_PATTERN, {
  error: (issue) =>
    typeof issue.input === 'string' && issue.input.includes(',')
      ? `a tag cannot contain ","; a group of tags that a backup must all carry is a list: ${JSON.stringify(
          issue.input.split(',').map((tag) => tag.trim()),
        )}`
      : TAG_MESSAGE,
});

/** `retention` of a profile: the policy "prune" applies (restic semantics); prune's flags override it key by key. */
export const RetentionSettingsSchema = strictObject({
  keepLast: keepCount('Keep the N newest backups (prune --keep-last). -1: all.'),
  keepHourly: keepCount('Keep the newest backup of each of the N most recent hours that have one (--keep-hourly). -1: unlimited.'),
  keepDaily: keepCount('Keep the newest backup of each of the N most recent days that have one (--keep-daily). -1: unlimited.'),
  keepWeekly: keepCount('Keep the newest backup of each of the N most recent ISO weeks (Monday start) that have one (--keep-weekly).'),
  keepMonthly: keepCount('Keep the newest backup of each of the N most recent months that have one (--keep-monthly).'),
  keepYearly: keepCount('Keep the newest backup of each of the N most recent years that have one (--keep-yearly).'),
  keepWithin: retentionDuration(
    'Keep every backup made within this duration before the NEWEST backup (not before now, so a stalled schedule ' +
      `never wipes the history) (--keep-within), e.g. "14d", "1y6m". ${DURATION_UNITS_TEXT}`,
  ),
  keepWithinHourly: retentionDuration(withinPeriod('hour', '--keep-within-hourly')),
  keepWithinDaily: retentionDuration(withinPeriod('day', '--keep-within-daily')),
  keepWithinWeekly: retentionDuration(withinPeriod('ISO week (Monday start)', '--keep-within-weekly')),
  keepWithinMonthly: retentionDuration(withinPeriod('month', '--keep-within-monthly')),
  keepWithinYearly: retentionDuration(withinPeriod('year', '--keep-within-yearly')),
  keepTags: z
    .array(
      z.union([keepTag, z.array(keepTag, { error: 'expected a list of tags' }).min(1, { error: 'a tag group must list at least one tag' })], {
        error: 'expected a tag, or a group of tags (a list)',
      }),
      { error: 'expected an array of tags and tag groups' },
    )
    .optional()
    .describe(
      'Keep every backup that matches any entry (--keep-tag): a tag, or a group of tags (a list) that the backup must ALL ' +
        'carry. ["pre-migration", "keep"] keeps backups tagged pre-migration OR keep; [["db", "monthly"]] keeps backups ' +
        'tagged db AND monthly (restic: --keep-tag db,monthly).',
    ),
  timeZone: z
    .string({ error: 'expected an IANA time zone name such as "Europe/Berlin"' })
    .refine((zone) => isValidTimeZone(zone), { error: 'not a known IANA time zone (e.g. "UTC", "Europe/Berlin")' })
    .optional()
    .describe(
      'Time zone of the calendar periods of keepHourly..keepYearly and keepWithinHourly..keepWithinYearly, and of the ' +
        'keepWithin* calendar steps (--time-zone). Default "UTC".',
    ),
});

// ---------------------------------------------------------------------------------------
// Storage drivers' settings (the same as the storage URL's query parameters, which win)

const SIZE_PATTERN = /^\d+(\.\d+)?\s*(b|kb|mb|gb|kib|mib|gib|k|m|g)?$/i;
const SIZE_MESSAGE = 'expected a size like "8MiB", "16MB" or a number of bytes';

function sizeText(description: string) {
  return z.string({ error: SIZE_MESSAGE }).regex(SIZE_PATTERN, { error: SIZE_MESSAGE }).optional().describe(description);
}

const commonStorage = {
  stallTimeout: fixedDuration('A transfer with no byte acknowledged for this long while data waits fails (URL: stall-timeout). Default "60s".'),
  retryDeadline: fixedDuration('Transient failures (timeouts, 5xx, resets) are retried until this long after the first attempt (URL: retry-deadline). Default "2min".'),
};

export const StorageSettingsSchema = strictObject({
  ...commonStorage,
  s3: strictObject({
    ...commonStorage,
    endpoint: z.url({ protocol: /^https?$/, error: URL_MESSAGE }).optional().describe('Endpoint of an S3-compatible store, e.g. "https://minio.internal:9000" (URL: endpoint). Default AWS, or AWS_ENDPOINT_URL_S3.'),
    region: text('Region (URL: region). Default: the AWS chain (AWS_REGION, ~/.aws/config), else "us-east-1" with a custom endpoint.'),
    pathStyle: bool('Path-style addressing (URL: path-style). Default true with a custom endpoint, false on AWS.'),
    storageClass: text('Storage class of new objects, e.g. "STANDARD_IA" (URL: storage-class).'),
    sse: z.enum(['AES256', 'aws:kms', 'aws:kms:dsse'], { error: 'expected "AES256", "aws:kms" or "aws:kms:dsse"' }).optional().describe('Server-side encryption (URL: sse).'),
    sseKmsKeyId: text('KMS key id or ARN for aws:kms (URL: sse-kms-key-id).'),
    profile: text('Profile of ~/.aws/credentials and ~/.aws/config (URL: profile). Default AWS_PROFILE.'),
    partSize: sizeText('Multipart part size, at least 5 MiB (URL: part-size). Default "8MiB".'),
    queueSize: integer(1, 64).optional().describe('Parts uploaded at once (URL: queue-size). Default 2; each costs a part of memory.'),
    conditionalCreate: z.enum(['auto', 'on', 'off'], { error: 'expected "auto", "on" or "off"' }).optional().describe('Use If-None-Match: * for create-if-absent: "auto" probes once (default), "on" trusts it, "off" never (locks use write-then-check).'),
  }).optional().describe('Settings of s3:// storages.'),
  azure: strictObject({
    ...commonStorage,
    account: text('Storage account name (URL: account). Default: from the connection string, or AZURE_STORAGE_ACCOUNT.'),
    endpoint: z.url({ protocol: /^https?$/, error: URL_MESSAGE }).optional().describe('Blob service endpoint, e.g. for Azurite (URL: endpoint).'),
    connectionStringFile: text('File holding a connection string (URL: connection-string-file).'),
    connectionStringEnv: z.string().regex(ENV_VAR_PATTERN).optional().describe('Variable holding a connection string (URL: connection-string-env). Default AZURE_STORAGE_CONNECTION_STRING.'),
    accountKeyFile: text('File holding the account key (URL: account-key-file).'),
    accountKeyEnv: z.string().regex(ENV_VAR_PATTERN).optional().describe('Variable holding the account key (URL: account-key-env). Default AZURE_STORAGE_KEY.'),
    sasTokenFile: text('File holding a SAS token (URL: sas-token-file).'),
    sasTokenEnv: z.string().regex(ENV_VAR_PATTERN).optional().describe('Variable holding a SAS token (URL: sas-token-env). Default AZURE_STORAGE_SAS_TOKEN.'),
    blockSize: sizeText('Block size (URL: block-size). Default "8MiB".'),
    concurrency: integer(1, 64).optional().describe('Blocks uploaded at once (URL: concurrency). Default 4.'),
    accessTier: z.enum(['Hot', 'Cool', 'Cold'], { error: 'expected "Hot", "Cool" or "Cold"' }).optional().describe('Access tier of new blobs (URL: access-tier).'),
  }).optional().describe('Settings of azblob:// storages.'),
  sftp: strictObject({
    ...commonStorage,
    key: text('Private key file (URL: key). Default: the agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa.'),
    passphraseFile: text('File holding the key passphrase (URL: passphrase-file).'),
    passphraseEnv: z.string().regex(ENV_VAR_PATTERN).optional().describe('Variable holding the key passphrase (URL: passphrase-env).'),
    passwordFile: text('File holding the password; password authentication only with this or passwordEnv (URL: password-file).'),
    passwordEnv: z.string().regex(ENV_VAR_PATTERN).optional().describe('Variable holding the password (URL: password-env).'),
    knownHosts: text('known_hosts file (URL: known-hosts). Default ~/.ssh/known_hosts.'),
    agent: text('ssh-agent socket, or "none" (URL: agent). Default SSH_AUTH_SOCK.'),
    connectTimeout: fixedDuration('Connection and handshake timeout (URL: connect-timeout). Default "20s".'),
  }).optional().describe('Settings of sftp:// storages.'),
}).meta({ id: 'StorageSettings', title: 'Storage settings', description: 'Settings of the storage drivers; query parameters of the storage URL win.' });

export const ProfileSchema = strictObject({
  // Connection
  url: z
    .string({ error: 'expected a string' })
    .regex(POSTGRES_URL_PATTERN, { error: 'expected a URL starting with postgres:// or postgresql://' })
    .optional()
    .describe(
      'libpq connection URI, e.g. "postgresql://backup@db.example.com:5432/app?sslmode=verify-full". ' +
        'Prefer passwordFile or passwordEnv over a password inside the URL.',
    ),
  host: text('Server host name or IP address, or the directory of the Unix-domain socket (e.g. "/var/run/postgresql").'),
  port: integer(1, 65535).optional().describe('Server port (default 5432).'),
  user: text('Role to connect as. It needs read access to everything it dumps (e.g. a member of pg_read_all_data).'),
  database: text('Name of the database to back up.'),
  passwordFile: text(
    'Path of a file whose first line is the password. Keep it readable by the backup user only. ' +
      'Cannot be combined with passwordEnv.',
  ),
  passwordEnv: z
    .string({ error: 'expected a string' })
    .regex(ENV_VAR_PATTERN, {
      error: 'expected an environment variable name: letters, digits and _, not starting with a digit',
    })
    .optional()
    .describe('Name of the environment variable holding the password. Cannot be combined with passwordFile.'),
  sslmode: z
    .enum(SSL_MODES, { error: `expected one of ${SSL_MODES.join(', ')}` })
    .optional()
    .describe('libpq sslmode. Use "verify-full" when the server is reached over a network you do not control.'),

  // Overrides of top-level settings
  storage: text('Where this profile\'s backups live: a directory path or a URL. Overrides the top-level "storage".'),
  storageSettings: StorageSettingsSchema.optional().describe(
    'Settings of this profile\'s storage driver (S3, Azure, SFTP; query parameters of the storage URL win). Overrides the top-level "storageSettings".',
  ),
  copies: z
    .array(z.string({ error: 'expected a storage path or URL' }).min(1), { error: 'expected an array of storage locations' })
    .max(8, { error: 'at most 8 copies' })
    .optional()
    .describe('Storages every new backup of this profile is copied to once it completes (3-2-1): paths or URLs, e.g. ["s3://offsite/prod"]. A failed copy is reported, never a failed backup.'),
  pgBinDir: text(
    'Directory holding pg_dump, pg_restore, psql and pg_dumpall for this profile. Overrides the top-level "pgBinDir".',
  ),

  // Dump
  format: z
    .enum(DUMP_FORMATS, { error: 'expected "custom" or "directory"' })
    .optional()
    .describe(
      'pg_dump output format: "custom" (one file) or "directory" (one file per table, allows parallel "jobs"; ' +
        'packed into one archive after the dump). Default "custom".',
    ),
  jobs: integer(1, 64)
    .optional()
    .describe('Number of parallel pg_dump jobs. Only meaningful with format "directory". Default 1.'),
  compress: z
    .string({ error: COMPRESS_MESSAGE })
    .regex(COMPRESS_PATTERN, { error: COMPRESS_MESSAGE })
    .optional()
    .describe(
      'Compression of the stored artifact, done by backupctl while streaming: "zstd" (default, level 3, ' +
        'multi-threaded; "zstd:1" to "zstd:19"), "gzip" ("gzip:1" to "gzip:9") or "none". The zstd program must be installed.',
    ),
  pgCompress: z
    .union(
      [
        integer(0, 9, PG_COMPRESS_MESSAGE),
        z.string({ error: PG_COMPRESS_MESSAGE }).regex(PG_COMPRESS_PATTERN, { error: PG_COMPRESS_MESSAGE }),
      ],
      { error: PG_COMPRESS_MESSAGE },
    )
    .optional()
    .describe(
      'pg_dump\'s own compression (--compress), instead of the "compress" stage: a gzip level 0-9, or "none", ' +
        '"gzip", "lz4", "zstd" with an optional ":level" (lz4 and zstd need pg_dump 16 or later). ' +
        'When set, "compress" defaults to "none".',
    ),
  schemas: stringList('Dump only the schemas matching these pg_dump patterns (--schema).', 'a schema pattern'),
  excludeSchemas: stringList('Do not dump the schemas matching these pg_dump patterns (--exclude-schema).', 'a schema pattern'),
  tables: stringList(
    'Dump only the tables matching these pg_dump patterns (--table), e.g. "public.orders" or "audit.*".',
    'a table pattern',
  ),
  excludeTables: stringList('Do not dump the tables matching these pg_dump patterns (--exclude-table).', 'a table pattern'),
  schemaOnly: bool('Dump only the object definitions, no data (--schema-only). Cannot be combined with dataOnly.'),
  dataOnly: bool('Dump only the data, no definitions (--data-only). Cannot be combined with schemaOnly.'),
  lockWaitTimeout: z
    .union(
      [
        integer(0, 2_147_483_647, LOCK_WAIT_TIMEOUT_MESSAGE),
        z.string({ error: LOCK_WAIT_TIMEOUT_MESSAGE }).regex(LOCK_WAIT_TIMEOUT_PATTERN, { error: LOCK_WAIT_TIMEOUT_MESSAGE }),
      ],
      { error: LOCK_WAIT_TIMEOUT_MESSAGE },
    )
    .optional()
    .describe(
      'Fail instead of waiting longer than this for the shared table locks (--lock-wait-timeout): ' +
        'a PostgreSQL time value like "30s", "5min", "1500ms", "1h", or a number of milliseconds.',
    ),
  globals: bool(
    'Also dump roles and tablespaces (pg_dumpall --globals-only) beside the dump, so the backup can be restored ' +
      'on an empty server. Default true.',
  ),
  tags: z
    .array(z.string({ error: TAG_MESSAGE }).regex(TAG_PATTERN, { error: TAG_MESSAGE }), {
      error: 'expected an array of tags',
    })
    .optional()
    .describe(
      'Tags recorded with every backup of this profile, for filtering in "list" and retention rules ' +
        '(1-64 characters from A-Z a-z 0-9 _ . : -).',
    ),
  note: z
    .string({ error: 'expected a string' })
    .optional()
    .describe('Free text recorded with every backup of this profile.'),

  // Encryption
  encryption: strictObject({
    recipients: z
      .array(z.string({ error: 'expected an age recipient' }).regex(AGE_RECIPIENT_PATTERN, { error: 'expected an age X25519 recipient: "age1" and 58 more characters, as age-keygen prints it' }), {
        error: 'expected an array of age recipients',
      })
      .optional()
      .describe('age X25519 recipients (public keys, "age1..."): new backups are encrypted to all of them.'),
    recipientsFile: text('A file of age recipients, one per line ("#" comments), as "age -R" reads it.'),
    identityFile: z
      .union([z.string({ error: 'expected a path' }).min(1), z.array(z.string({ error: 'expected a path' }).min(1)).min(1)], {
        error: 'expected a path or an array of paths',
      })
      .optional()
      .describe('age identity file(s) (private keys, as age-keygen writes them) that verify, restore, copy and rekey decrypt with. Keep them off the database server if you can.'),
    passphraseFile: text('A file whose content is the passphrase (scrypt), to encrypt new backups with when there are no recipients, and to decrypt.'),
    passphraseEnv: z
      .string({ error: 'expected a string' })
      .regex(ENV_VAR_PATTERN, { error: 'expected an environment variable name: letters, digits and _, not starting with a digit' })
      .optional()
      .describe('Name of the environment variable holding the passphrase. Cannot be combined with passphraseFile.'),
  })
    .superRefine((value, ctx) => {
      const e = value as UnknownRecord;
      if (e.passphraseFile !== undefined && e.passphraseEnv !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['passphraseEnv'], message: 'passphraseFile and passphraseEnv cannot be used together: keep one' });
      }
    })
    .optional()
    .describe(
      'age encryption of new backups (the file format of the standard "age" tool). Recipients (public keys) are ' +
        'enough to back up; identities or the passphrase are needed to verify beyond checksums and to restore. ' +
        'A profile\'s "encryption" replaces the one in "defaults" as a whole.',
    ),

  // Verification
  verify: strictObject({
    server: z
      .string({ error: 'expected a string' })
      .regex(POSTGRES_URL_PATTERN, { error: 'expected a URL starting with postgres:// or postgresql://' })
      .optional()
      .describe(
        'Server that "verify" restores into (a throwaway database is created and dropped there), e.g. ' +
          '"postgresql://verify@scratch-db.internal/postgres", so that production is not loaded. ' +
          'Default: the profile\'s own server. Its password comes from PGPASSWORD or the libpq password file ' +
            '(~/.pgpass, PGPASSFILE); the profile\'s passwordFile/passwordEnv is sent only to the profile\'s own role and server.',
      ),
    jobs: integer(1, 64).optional().describe('Parallel pg_restore jobs for verification restores. Default 1.'),
  })
    .optional()
    .describe('How "verify" checks this profile\'s backups.'),

  // Unattended runs
  status: StatusSettingsSchema.optional().describe(
    'Thresholds of "backupctl status" for this profile (flags override them). Each check is off until set.',
  ),
  notify: NotifySettingsSchema.optional().describe(
    'Notifications about runs of this profile. A failing notification is a warning, never a failed run. ' +
      'A profile\'s "notify" replaces the one in "defaults" as a whole.',
  ),

  // Retention
  retention: RetentionSettingsSchema.optional().describe(
    'Retention policy applied by "backupctl prune" (restic semantics: a backup is kept if any rule keeps it). ' +
      'A profile\'s "retention" replaces the one in "defaults" as a whole; prune\'s flags override it key by key. ' +
      'The newest backup and the newest verified backup are always kept.',
  ),
})
  .superRefine((profile, ctx) => {
    // `when`: runs even if other keys failed, so `profile` may hold values of any type.
    const p = profile as UnknownRecord;
    if (p.passwordFile !== undefined && p.passwordEnv !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['passwordEnv'],
        message: 'passwordFile and passwordEnv cannot be used together: keep one',
      });
    }
    if (typeof p.compress === 'string' && p.compress !== 'none' && p.pgCompress !== undefined && !pgCompressIsOff(p.pgCompress)) {
      ctx.addIssue({
        code: 'custom',
        path: ['pgCompress'],
        message: 'compress and pgCompress cannot both compress (compressed bytes do not compress again): keep one, or set the other to "none"',
      });
    }
    if (p.schemaOnly === true && p.dataOnly === true) {
      ctx.addIssue({
        code: 'custom',
        path: ['dataOnly'],
        message: 'schemaOnly and dataOnly cannot both be true',
      });
    }
    if (p.format === 'custom' && typeof p.jobs === 'number' && p.jobs > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['jobs'],
        message: 'jobs > 1 needs format "directory": pg_dump writes in parallel only to a directory',
      });
    }
  }, whenObject)
  .meta({
    id: 'Profile',
    title: 'Profile',
    description: 'How to reach one database and how to dump it. Every key is optional.',
  });

// ---------------------------------------------------------------------------------------
// Whole file

export const ConfigSchema = strictObject({
  $schema: z
    .string({ error: 'expected a string' })
    .optional()
    .describe('JSON Schema of this file, for editors, e.g. "./schema/backupctl.schema.json". Ignored by backupctl.'),
  storage: text(
    'Where backups live: a directory path or a URL. Default "./backups". A profile\'s "storage" overrides it.',
  ),
  storageSettings: StorageSettingsSchema.optional().describe(
    'Settings of the storage driver (S3, Azure, SFTP): endpoint, region, credentials files, part sizes, timeouts. Query parameters of the storage URL win.',
  ),
  defaultProfile: z
    .string({ error: 'expected a string' })
    .regex(PROFILE_PATTERN, { error: PROFILE_NAME_MESSAGE })
    .optional()
    .describe('Profile used when --profile and BACKUPCTL_PROFILE are not given and several profiles exist.'),
  pgBinDir: text(
    'Directory holding pg_dump, pg_restore, psql and pg_dumpall, e.g. "/usr/lib/postgresql/17/bin". ' +
      'When set, it is the only place clients are looked for; unset, PATH and the usual install locations are searched.',
  ),
  workDir: text(
    'Local scratch directory for directory-format dumps before they are packed. Default: the OS temp directory.',
  ),
  defaults: ProfileSchema.optional().describe(
    'Settings applied to every profile; a profile\'s own keys take precedence. Same keys as a profile.',
  ),
  profiles: z
    .record(
      z
        .string()
        .regex(PROFILE_PATTERN, { error: PROFILE_NAME_MESSAGE })
        .refine((name) => !name.includes('..'), { error: PROFILE_NAME_MESSAGE }),
      ProfileSchema,
      { error: 'expected an object mapping profile names to profiles' },
    )
    .optional()
    .describe(
      'Named profiles, one per database to back up. Names: 1-63 characters from A-Z a-z 0-9 _ . -, ' +
        'starting with a letter or digit; they become directory names in the storage.',
    ),
})
  .superRefine((config, ctx) => {
    const c = config as UnknownRecord;
    if (typeof c.defaultProfile === 'string' && isRecord(c.profiles) && !Object.hasOwn(c.profiles, c.defaultProfile)) {
      const names = Object.keys(c.profiles);
      ctx.addIssue({
        code: 'custom',
        path: ['defaultProfile'],
        message:
          names.length === 0
            ? `no profile named "${c.defaultProfile}": "profiles" is empty`
            : `no profile named "${c.defaultProfile}" (profiles: ${names.join(', ')})`,
      });
    }
  }, whenObject)
  .meta({
    title: 'backupctl configuration',
    description:
      'Configuration of backupctl (PostgreSQL backups with pg_dump). Found as backupctl.config.json, .backupctlrc, ' +
      '.backupctlrc.json, .backupctlrc.yaml, .backupctlrc.yml or the "backupctl" key of package.json; ' +
      'or named by --config or BACKUPCTL_CONFIG.',
  });

export type Config = z.output<typeof ConfigSchema>;
export type Profile = z.output<typeof ProfileSchema>;
/** A profile's `encryption` (after resolve.ts: every path absolute, identityFile a list). */
export type EncryptionSettings = NonNullable<Profile['encryption']>;
/** The `defaults` block: the same keys as a profile. */
export type ProfileSettings = Profile;
