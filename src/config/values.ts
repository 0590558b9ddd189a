/**
 * Values and patterns of the configuration that code outside the schema needs too
 * (option parsers, defaults). Kept apart from schema.ts so that using them does not load
 * zod: `create` without a config file never validates anything.
 */

/** Where backups live when neither the config nor `--storage` says. */
export const DEFAULT_STORAGE = './backups';

/** A backup tag: 1-64 characters, safe in file names and on a command line. */
export const TAG_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/** An environment variable name, as accepted by `passwordEnv`. */
export const ENV_VAR_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A pg_dump `--compress` string (`pgCompress`): a method with an optional level. */
export const PG_COMPRESS_PATTERN = /^(none|gzip|lz4|zstd)(:\d{1,2})?$/;

/** The artifact's compression stage (`compress`): zstd (levels 1-19), gzip (1-9) or none. */
export const COMPRESS_PATTERN = /^(none|gzip(:[1-9])?|zstd(:(1[0-9]|[1-9]))?)$/;

/** An age X25519 recipient (public key), as `age-keygen` prints it. */
export const AGE_RECIPIENT_PATTERN = /^age1[02-9ac-hj-np-z]{58}$/;

/** A PostgreSQL time value for `--lock-wait-timeout`: milliseconds by default. */
export const LOCK_WAIT_TIMEOUT_PATTERN = /^\d+(ms|s|min|h)?$/;

/** A libpq connection URI. */
export const POSTGRES_URL_PATTERN = new RegExp('^postgres(ql)?://');

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export const DUMP_FORMATS = ['custom', 'directory'] as const;
