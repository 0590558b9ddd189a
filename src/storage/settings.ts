/**
 * Storage locations and driver settings: parsed from the URL (query parameters, for
 * scripts) and from a settings object (fed from the config file), with no SDK and no zod,
 * so the registry can parse and redact a location synchronously.
 *
 * Precedence: a URL query parameter overrides the same setting in the settings object.
 * Unknown query parameters are refused (a typo must not silently change nothing).
 * Credentials never come from the URL except an Azure SAS token (accepted for
 * BACKUPCTL_STORAGE and config files, always redacted; `locationHasSecrets()` lets the
 * CLI refuse it on a command line).
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFixedDuration } from '../config/duration.js';
import { ConfigurationError } from './errors.js';
import { normalizePrefix } from './storage.js';

/** Settings every remote driver understands. */
export interface CommonSettings {
  /** A put (or a read with a waiting reader) with no byte acknowledged for this long fails with StalledError. Default 60 s. URL: `stall-timeout=60s`. */
  stallTimeoutMs?: number | undefined;
  /** Transient failures are retried (exponential backoff) until this long after the first attempt. Default 120 s. URL: `retry-deadline=2min`. */
  retryDeadlineMs?: number | undefined;
}

/** `s3://bucket/prefix?...`: AWS S3 and S3-compatible stores. */
export interface S3Settings extends CommonSettings {
  /** Endpoint URL of an S3-compatible store, e.g. `http://127.0.0.1:9000`. Default: AWS (or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL). URL: `endpoint=`. */
  endpoint?: string | undefined;
  /** Region. Default: the AWS chain (AWS_REGION, ~/.aws/config), else `us-east-1` with a custom endpoint. URL: `region=`. */
  region?: string | undefined;
  /** Path-style addressing (`endpoint/bucket/key`). Default: true with a custom endpoint, false on AWS. URL: `path-style=true`. */
  pathStyle?: boolean | undefined;
  /** Storage class of new objects (STANDARD, STANDARD_IA, GLACIER_IR, ...). URL: `storage-class=`. */
  storageClass?: string | undefined;
  /** Server-side encryption: `AES256`, `aws:kms` or `aws:kms:dsse`. URL: `sse=`. */
  sse?: 'AES256' | 'aws:kms' | 'aws:kms:dsse' | undefined;
  /** KMS key id or ARN for `aws:kms`. URL: `sse-kms-key-id=`. */
  sseKmsKeyId?: string | undefined;
  /** Profile of the shared AWS config/credentials files. Default: AWS_PROFILE, else `default`. URL: `profile=`. */
  profile?: string | undefined;
  /** Multipart part size in bytes (>= 5 MiB). Default 8 MiB, raised for an expected size above 80 GB. URL: `part-size=16MiB`. */
  partSizeBytes?: number | undefined;
  /** Parts uploaded at once (memory: (queueSize + 1) x partSize, allocated once per put). Default 2. URL: `queue-size=4`. */
  queueSize?: number | undefined;
  /**
   * Conditional create (If-None-Match: *): `auto` probes the server once (default), `on`
   * trusts it without probing, `off` never uses it (locks then use write-then-check).
   * URL: `conditional-create=auto|on|off`.
   */
  conditionalCreate?: 'auto' | 'on' | 'off' | undefined;
}

/** `azblob://container/prefix?...`: Azure Blob Storage (block blobs). */
export interface AzureSettings extends CommonSettings {
  /** Storage account name (default: from the connection string, or AZURE_STORAGE_ACCOUNT). URL: `account=`. */
  account?: string | undefined;
  /** Blob service endpoint, e.g. `http://127.0.0.1:10000/devstoreaccount1` (default `https://<account>.blob.core.windows.net`). URL: `endpoint=`. */
  endpoint?: string | undefined;
  /** File holding a connection string. URL: `connection-string-file=`. */
  connectionStringFile?: string | undefined;
  /** Environment variable holding a connection string (default AZURE_STORAGE_CONNECTION_STRING). URL: `connection-string-env=`. */
  connectionStringEnv?: string | undefined;
  /** File holding the account key. URL: `account-key-file=`. */
  accountKeyFile?: string | undefined;
  /** Environment variable holding the account key (default AZURE_STORAGE_KEY). URL: `account-key-env=`. */
  accountKeyEnv?: string | undefined;
  /** File holding a SAS token. URL: `sas-token-file=`. */
  sasTokenFile?: string | undefined;
  /** Environment variable holding a SAS token (default AZURE_STORAGE_SAS_TOKEN). URL: `sas-token-env=`. */
  sasTokenEnv?: string | undefined;
  /** Block size in bytes. Default 8 MiB. URL: `block-size=8MiB`. */
  blockSizeBytes?: number | undefined;
  /** Blocks uploaded at once (memory: about (concurrency + 1) x blockSize). Default 4. URL: `concurrency=4`. */
  concurrency?: number | undefined;
  /** Access tier of new blobs: Hot, Cool, Cold. URL: `access-tier=Cool`. */
  accessTier?: 'Hot' | 'Cool' | 'Cold' | undefined;
}

/** `sftp://user@host:port/path?...`: OpenSSH-compatible SFTP servers. */
export interface SftpSettings extends CommonSettings {
  /** Private key file (default: the agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa). URL: `key=/path`. */
  keyFile?: string | undefined;
  /** File holding the key's passphrase. URL: `passphrase-file=`. */
  passphraseFile?: string | undefined;
  /** Environment variable holding the key's passphrase. URL: `passphrase-env=`. */
  passphraseEnv?: string | undefined;
  /** File holding the password (password authentication is used only when this or passwordEnv is set). URL: `password-file=`. */
  passwordFile?: string | undefined;
  /** Environment variable holding the password. URL: `password-env=`. */
  passwordEnv?: string | undefined;
  /** known_hosts file (default ~/.ssh/known_hosts). URL: `known-hosts=/path`. */
  knownHostsFile?: string | undefined;
  /** ssh-agent socket (default SSH_AUTH_SOCK); `false` to never use an agent. URL: `agent=/path` or `agent=none`. */
  agent?: string | false | undefined;
  /** Connection (and handshake) timeout. Default 20 s. URL: `connect-timeout=20s`. */
  connectTimeoutMs?: number | undefined;
}

/** Driver settings as the config file gives them (every field optional). */
export interface StorageSettings extends CommonSettings {
  s3?: S3Settings | undefined;
  azure?: AzureSettings | undefined;
  sftp?: SftpSettings | undefined;
}

/** Resolved settings shared by every remote location. */
export interface ResolvedCommon {
  stallTimeoutMs: number;
  retryDeadlineMs: number;
}

export interface LocalLocation {
  scheme: 'file';
  /** Absolute path of the storage root. */
  root: string;
  display: string;
}

export interface MemLocation {
  scheme: 'mem';
  /** Name of the in-process store: every `mem://name` of a process shares it. */
  name: string;
  prefix: string;
  display: string;
}

export interface S3Location extends ResolvedCommon {
  scheme: 's3';
  bucket: string;
  /** Key prefix inside the bucket, '' or ending with '/'. */
  prefix: string;
  display: string;
  settings: S3Settings;
}

export interface AzureLocation extends ResolvedCommon {
  scheme: 'azblob';
  container: string;
  prefix: string;
  display: string;
  settings: AzureSettings;
  /** A SAS token given in the URL's query (secret; never displayed). */
  urlSasToken: string | undefined;
}

export interface SftpLocation extends ResolvedCommon {
  scheme: 'sftp';
  user: string | undefined;
  host: string;
  port: number;
  /** Remote directory of the storage root: absolute, or relative to the login directory (`sftp://h/~/dir`). */
  path: string;
  display: string;
  settings: SftpSettings;
}

export type StorageLocation = LocalLocation | MemLocation | S3Location | AzureLocation | SftpLocation;

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/** The URL scheme of a location (`s3`, `azblob`...), or `file` for a plain path. */
export function schemeOf(location: string): string {
  const match = SCHEME.exec(location);
  return match ? (match[1] as string).toLowerCase() : 'file';
}

/**
 * Parses a location (plain path or URL) and its settings. Throws ConfigurationError
 * naming every problem at once; the message never repeats a secret.
 */
export function parseStorageLocation(location: string, cwd: string, settings: StorageSettings = {}): StorageLocation {
  const scheme = schemeOf(location);
  if (scheme === 'file' && !SCHEME.test(location)) {
    const root = resolve(cwd, location);
    return { scheme: 'file', root, display: root };
  }
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new ConfigurationError(`invalid storage URL ${redactStorageLocation(location)}`, {
      hint: 'expected a directory path, file:///path, s3://bucket/prefix, azblob://container/prefix or sftp://user@host:port/path',
    });
  }
  switch (scheme) {
    case 'file':
      return parseFile(url);
    case 'mem':
      return parseMem(url);
    case 's3':
      return parseS3(url, settings);
    case 'azblob':
      return parseAzure(url, settings);
    case 'sftp':
      return parseSftp(url, settings);
    default:
      throw new ConfigurationError(`storage scheme "${scheme}://" is not supported`, {
        hint: 'use a directory path, file://, s3://, azblob:// or sftp://',
      });
  }
}

function parseFile(url: URL): LocalLocation {
  if (url.host !== '' && url.host !== 'localhost') {
    throw new ConfigurationError(`file:// URLs name this machine only (got host "${url.host}")`, { hint: 'write file:///absolute/path' });
  }
  const root = fileURLToPath(new URL(`file://${url.pathname}`));
  return { scheme: 'file', root, display: root };
}

function parseMem(url: URL): MemLocation {
  const name = url.hostname;
  if (!/^[a-z0-9][a-z0-9-]*$/i.test(name)) throw new ConfigurationError('mem:// needs a name: mem://name/prefix');
  const prefix = pathPrefix(url, 'mem');
  return { scheme: 'mem', name, prefix, display: `mem://${name}/${prefix}` };
}

/** Collects problems so that one error names all of them. */
class Problems {
  readonly list: string[] = [];
  add(problem: string): void {
    this.list.push(problem);
  }
  throwIfAny(what: string): void {
    if (this.list.length === 0) return;
    throw new ConfigurationError(`invalid ${what} storage settings: ${this.list.join('; ')}`);
  }
}

type QueryReader = {
  string(name: string): string | undefined;
  bool(name: string): boolean | undefined;
  duration(name: string): number | undefined;
  size(name: string): number | undefined;
  int(name: string, min: number, max: number): number | undefined;
};

function queryReader(url: URL, known: readonly string[], problems: Problems, secretParams: readonly string[] = []): QueryReader {
  const seen = new Set<string>();
  for (const name of url.searchParams.keys()) {
    if (seen.has(name)) problems.add(`query parameter "${name}" is given twice`);
    seen.add(name);
    if (!known.includes(name) && !secretParams.includes(name)) problems.add(`unknown query parameter "${name}" (known: ${known.join(', ')})`);
  }
  const raw = (name: string) => url.searchParams.get(name) ?? undefined;
  return {
    string: (name) => {
      const value = raw(name);
      if (value === '') problems.add(`"${name}" is empty`);
      return value === '' ? undefined : value;
    },
    bool: (name) => {
      const value = raw(name);
      if (value === undefined) return undefined;
      if (['true', '1', 'yes', 'on'].includes(value)) return true;
      if (['false', '0', 'no', 'off'].includes(value)) return false;
      problems.add(`"${name}" must be true or false`);
      return undefined;
    },
    duration: (name) => {
      const value = raw(name);
      if (value === undefined) return undefined;
      try {
        return parseFixedDuration(value);
      } catch (error) {
        problems.add(`"${name}": ${(error as Error).message}`);
        return undefined;
      }
    },
    size: (name) => {
      const value = raw(name);
      if (value === undefined) return undefined;
      const bytes = parseSize(value);
      if (bytes === null) problems.add(`"${name}" must be a size like 8MiB, 16MB or 5242880`);
      return bytes ?? undefined;
    },
    int: (name, min, max) => {
      const value = raw(name);
      if (value === undefined) return undefined;
      const number = /^\d+$/.test(value) ? Number(value) : NaN;
      if (!Number.isSafeInteger(number) || number < min || number > max) {
        problems.add(`"${name}" must be a whole number from ${min} to ${max}`);
        return undefined;
      }
      return number;
    },
  };
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** Bytes of "8MiB", "16MB", "5242880"; null when unreadable. */
export function parseSize(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  if (!match) return null;
  const unit = SIZE_UNITS[(match[2] as string).toLowerCase()];
  if (unit === undefined) return null;
  const bytes = Math.round(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : null;
}

function common(query: QueryReader, settings: StorageSettings, own: CommonSettings | undefined, problems: Problems): ResolvedCommon {
  const stallTimeoutMs = query.duration('stall-timeout') ?? own?.stallTimeoutMs ?? settings.stallTimeoutMs ?? 60_000;
  const retryDeadlineMs = query.duration('retry-deadline') ?? own?.retryDeadlineMs ?? settings.retryDeadlineMs ?? 120_000;
  if (!(stallTimeoutMs > 0)) problems.add('stall-timeout must be longer than 0');
  if (!(retryDeadlineMs >= 0)) problems.add('retry-deadline must not be negative');
  return { stallTimeoutMs, retryDeadlineMs };
}

const COMMON_PARAMS = ['stall-timeout', 'retry-deadline'] as const;

/** `/a/b/` -> `a/b/`; '' for the root. Every segment must be a valid key segment. */
function pathPrefix(url: URL, what: string): string {
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    throw new ConfigurationError(`invalid ${what} prefix (bad percent-encoding)`);
  }
  const trimmed = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '') return '';
  try {
    normalizePrefix(trimmed);
  } catch {
    throw new ConfigurationError(`invalid ${what} prefix "${trimmed}": use segments of letters, digits, "_", ".", ":" and "-" that do not start with "."`);
  }
  return `${trimmed}/`;
}

const S3_PARAMS = [
  'endpoint',
  'region',
  'path-style',
  'storage-class',
  'sse',
  'sse-kms-key-id',
  'profile',
  'part-size',
  'queue-size',
  'conditional-create',
  ...COMMON_PARAMS,
] as const;

function parseS3(url: URL, settings: StorageSettings): S3Location {
  const problems = new Problems();
  if (url.username !== '' || url.password !== '') {
    throw new ConfigurationError('s3:// URLs must not carry credentials', {
      hint: 'credentials come from the AWS chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials (profile=), web identity or instance metadata',
    });
  }
  const bucket = url.hostname;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    problems.add(`bucket name "${bucket}" is not valid (3-63 characters: lowercase letters, digits, "." and "-")`);
  }
  if (url.port !== '') problems.add('an s3:// URL names a bucket, not a host: give the server as endpoint=http://host:port');
  const query = queryReader(url, S3_PARAMS, problems);
  const own = settings.s3 ?? {};
  const sse = query.string('sse') ?? own.sse;
  if (sse !== undefined && !['AES256', 'aws:kms', 'aws:kms:dsse'].includes(sse)) problems.add('"sse" must be AES256, aws:kms or aws:kms:dsse');
  const conditional = query.string('conditional-create') ?? own.conditionalCreate;
  if (conditional !== undefined && !['auto', 'on', 'off'].includes(conditional)) problems.add('"conditional-create" must be auto, on or off');
  const endpoint = query.string('endpoint') ?? own.endpoint;
  if (endpoint !== undefined) checkEndpoint(endpoint, 'endpoint', problems);
  const partSizeBytes = query.size('part-size') ?? own.partSizeBytes;
  if (partSizeBytes !== undefined && (partSizeBytes < 5 * 1024 ** 2 || partSizeBytes > 5 * 1024 ** 3)) problems.add('"part-size" must be from 5MiB to 5GiB');
  const queueSize = query.int('queue-size', 1, 64) ?? own.queueSize;
  const resolved: S3Settings = {
    endpoint,
    region: query.string('region') ?? own.region,
    pathStyle: query.bool('path-style') ?? own.pathStyle,
    storageClass: query.string('storage-class') ?? own.storageClass,
    sse: sse as S3Settings['sse'],
    sseKmsKeyId: query.string('sse-kms-key-id') ?? own.sseKmsKeyId,
    profile: query.string('profile') ?? own.profile,
    partSizeBytes,
    queueSize,
    conditionalCreate: conditional as S3Settings['conditionalCreate'],
  };
  const timing = common(query, settings, own, problems);
  let prefix = '';
  try {
    prefix = pathPrefix(url, 's3');
  } catch (error) {
    problems.add((error as Error).message);
  }
  problems.throwIfAny('s3');
  return { scheme: 's3', bucket, prefix, settings: resolved, ...timing, display: redactStorageLocation(url.href) };
}

const AZURE_PARAMS = [
  'account',
  'endpoint',
  'connection-string-file',
  'connection-string-env',
  'account-key-file',
  'account-key-env',
  'sas-token-file',
  'sas-token-env',
  'block-size',
  'concurrency',
  'access-tier',
  ...COMMON_PARAMS,
] as const;

/** Query parameters of an Azure SAS token (https://learn.microsoft.com/rest/api/storageservices/create-service-sas). */
const SAS_PARAMS = ['sv', 'ss', 'srt', 'sp', 'se', 'st', 'spr', 'sig', 'sr', 'si', 'sip', 'skoid', 'sktid', 'skt', 'ske', 'sks', 'skv', 'sdd', 'ses', 'rscc', 'rscd', 'rsce', 'rscl', 'rsct', 'saoid', 'suoid', 'scid'];

function parseAzure(url: URL, settings: StorageSettings): AzureLocation {
  const problems = new Problems();
  if (url.username !== '' || url.password !== '') {
    throw new ConfigurationError('azblob:// URLs must not carry credentials before the container name', {
      hint: 'use AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or a SAS token from a file or the environment',
    });
  }
  const container = url.hostname;
  if (!/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(container)) {
    problems.add(`container name "${container}" is not valid (3-63 characters: lowercase letters, digits and single "-")`);
  }
  const query = queryReader(url, AZURE_PARAMS, problems, SAS_PARAMS);
  const own = settings.azure ?? {};
  const endpoint = query.string('endpoint') ?? own.endpoint;
  if (endpoint !== undefined) checkEndpoint(endpoint, 'endpoint', problems);
  const accessTier = query.string('access-tier') ?? own.accessTier;
  if (accessTier !== undefined && !['Hot', 'Cool', 'Cold'].includes(accessTier)) problems.add('"access-tier" must be Hot, Cool or Cold');
  const blockSizeBytes = query.size('block-size') ?? own.blockSizeBytes;
  if (blockSizeBytes !== undefined && (blockSizeBytes < 64 * 1024 || blockSizeBytes > 4000 * 1024 ** 2)) problems.add('"block-size" must be from 64KiB to 4000MiB');
  const resolved: AzureSettings = {
    account: query.string('account') ?? own.account,
    endpoint,
    connectionStringFile: query.string('connection-string-file') ?? own.connectionStringFile,
    connectionStringEnv: query.string('connection-string-env') ?? own.connectionStringEnv,
    accountKeyFile: query.string('account-key-file') ?? own.accountKeyFile,
    accountKeyEnv: query.string('account-key-env') ?? own.accountKeyEnv,
    sasTokenFile: query.string('sas-token-file') ?? own.sasTokenFile,
    sasTokenEnv: query.string('sas-token-env') ?? own.sasTokenEnv,
    blockSizeBytes,
    concurrency: query.int('concurrency', 1, 64) ?? own.concurrency,
    accessTier: accessTier as AzureSettings['accessTier'],
  };
  const sas = new URLSearchParams();
  for (const [name, value] of url.searchParams) if (SAS_PARAMS.includes(name)) sas.append(name, value);
  const timing = common(query, settings, own, problems);
  let prefix = '';
  try {
    prefix = pathPrefix(url, 'azblob');
  } catch (error) {
    problems.add((error as Error).message);
  }
  problems.throwIfAny('azblob');
  return {
    scheme: 'azblob',
    container,
    prefix,
    settings: resolved,
    urlSasToken: sas.size > 0 ? sas.toString() : undefined,
    ...timing,
    display: redactStorageLocation(url.href),
  };
}

const SFTP_PARAMS = ['key', 'passphrase-file', 'passphrase-env', 'password-file', 'password-env', 'known-hosts', 'agent', 'connect-timeout', ...COMMON_PARAMS] as const;

function parseSftp(url: URL, settings: StorageSettings): SftpLocation {
  const problems = new Problems();
  if (url.password !== '') {
    throw new ConfigurationError('sftp:// URLs must not carry a password', {
      hint: 'use key authentication (ssh-agent, ~/.ssh/id_*, key=/path), or password-file=/path or password-env=NAME',
    });
  }
  if (url.hostname === '') problems.add('the URL names no host');
  const port = url.port === '' ? 22 : Number(url.port);
  const query = queryReader(url, SFTP_PARAMS, problems);
  const own = settings.sftp ?? {};
  const agentParam = query.string('agent');
  const resolved: SftpSettings = {
    keyFile: query.string('key') ?? own.keyFile,
    passphraseFile: query.string('passphrase-file') ?? own.passphraseFile,
    passphraseEnv: query.string('passphrase-env') ?? own.passphraseEnv,
    passwordFile: query.string('password-file') ?? own.passwordFile,
    passwordEnv: query.string('password-env') ?? own.passwordEnv,
    knownHostsFile: query.string('known-hosts') ?? own.knownHostsFile,
    agent: agentParam === undefined ? own.agent : agentParam === 'none' ? false : agentParam,
    connectTimeoutMs: query.duration('connect-timeout') ?? own.connectTimeoutMs ?? 20_000,
  };
  for (const [name, value] of [
    ['key', resolved.keyFile],
    ['passphrase-file', resolved.passphraseFile],
    ['password-file', resolved.passwordFile],
    ['known-hosts', resolved.knownHostsFile],
  ] as const) {
    if (value !== undefined && !isAbsolute(value) && !value.startsWith('~/')) problems.add(`"${name}" must be an absolute path (or start with ~/)`);
  }
  for (const [name, value] of [
    ['password-env', resolved.passwordEnv],
    ['passphrase-env', resolved.passphraseEnv],
  ] as const) {
    if (value !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) problems.add(`"${name}" must name an environment variable`);
  }
  let path = '';
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    problems.add('the path has bad percent-encoding');
  }
  // curl's convention: sftp://host/~/dir is relative to the login directory, sftp://host/dir is absolute.
  let remote = path.startsWith('/~/') || path === '/~' ? path.slice(3) : path;
  remote = remote.replace(/\/+$/, '');
  if (remote === '' && !path.startsWith('/~')) remote = '/';
  if (remote.split('/').some((segment) => segment === '..' || segment === '.')) problems.add('the path must not contain "." or ".." segments');
  const timing = common(query, settings, own, problems);
  problems.throwIfAny('sftp');
  const user = url.username === '' ? undefined : decodeURIComponent(url.username);
  return {
    scheme: 'sftp',
    user,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port,
    path: remote === '' ? '.' : remote,
    settings: resolved,
    ...timing,
    display: redactStorageLocation(url.href),
  };
}

function checkEndpoint(value: string, name: string, problems: Problems): void {
  try {
    const endpoint = new URL(value);
    if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') problems.add(`"${name}" must be an http:// or https:// URL`);
    if (endpoint.username !== '' || endpoint.password !== '') problems.add(`"${name}" must not carry credentials`);
  } catch {
    problems.add(`"${name}" is not a URL`);
  }
}

/** Query parameters shown in a redacted location (everything else is dropped). */
const DISPLAYED_PARAMS = new Set<string>([...S3_PARAMS, ...AZURE_PARAMS, ...SFTP_PARAMS]);

/**
 * A location safe to print: no password, no SAS token, no query parameter that is not
 * a known, non-secret setting. A plain path is returned as it is; an unreadable URL
 * shows only its scheme.
 */
export function redactStorageLocation(location: string): string {
  const match = SCHEME.exec(location);
  if (!match) return location;
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return `${(match[1] as string).toLowerCase()}://(unreadable URL)`;
  }
  if (url.protocol === 'file:') return location;
  if (url.password !== '') url.password = '';
  let dropped = false;
  for (const name of [...url.searchParams.keys()]) {
    if (!DISPLAYED_PARAMS.has(name)) {
      url.searchParams.delete(name);
      dropped = true;
    }
  }
  // Endpoints never carry credentials here (refused by parse), but be safe for display.
  for (const name of ['endpoint']) {
    const value = url.searchParams.get(name);
    if (value === null) continue;
    try {
      const endpoint = new URL(value);
      if (endpoint.username !== '' || endpoint.password !== '') {
        endpoint.username = '';
        endpoint.password = '';
        url.searchParams.set(name, endpoint.href.replace(/\/$/, ''));
      }
    } catch {
      // left as is: not a URL, so not a credential-bearing one
    }
  }
  let text = url.href;
  // URLSearchParams percent-encodes ':' and '/'; a displayed endpoint reads better plain.
  text = text.replace(/%3A/gi, ':').replace(/%2F/gi, '/');
  return dropped ? `${text}${url.search === '' ? '?' : '&'}(secrets redacted)` : text;
}

/**
 * True when the location itself carries a secret (a password, a SAS token): such a
 * location belongs in BACKUPCTL_STORAGE or a config file, never on a command line.
 */
export function locationHasSecrets(location: string): boolean {
  const match = SCHEME.exec(location);
  if (!match) return false;
  try {
    const url = new URL(location);
    if (url.password !== '') return true;
    return [...url.searchParams.keys()].some((name) => SAS_PARAMS.includes(name) || !DISPLAYED_PARAMS.has(name));
  } catch {
    return false;
  }
}

/**
 * The size of the pieces (S3 parts, Azure blocks) a put sends: the configured or default
 * size, raised (to whole MiB, at most `max`) when `expectedBytes` would need more than
 * `planned` pieces, so that an object as large as expected, and somewhat larger, stays
 * within the store's limit on their number.
 */
export function pieceSizeFor(size: number, expectedBytes: number | undefined, planned: number, max: number): number {
  if (expectedBytes === undefined || expectedBytes / size <= planned) return size;
  const mib = 1024 * 1024;
  return Math.min(max, Math.ceil(expectedBytes / planned / mib) * mib);
}
