/**
 * URL scheme -> driver. A plain path (or file://) is local; s3://, azblob://, sftp://
 * and mem:// (tests) have factories here. Parsing and redaction are synchronous and
 * load no SDK; a driver's module (and its SDK) is imported on the first call that needs
 * the store, so `backupctl list` on a local storage never loads the AWS SDK.
 */
import { homedir } from 'node:os';
import type { Readable } from 'node:stream';
import { LocalStorage } from './local.js';
import { MemoryStorage } from './mem.js';
import {
  parseStorageLocation,
  redactStorageLocation,
  type AzureLocation,
  type LocalLocation,
  type MemLocation,
  type S3Location,
  type SftpLocation,
  type StorageLocation,
  type StorageSettings,
} from './settings.js';
import type { GetOptions, ListOptions, ObjectInfo, PutOptions, StaleTemporariesOptions, Storage, StorageCapabilities } from './storage.js';

export {
  locationHasSecrets,
  parseSize,
  parseStorageLocation,
  redactStorageLocation,
  schemeOf,
  type AzureSettings,
  type CommonSettings,
  type S3Settings,
  type SftpSettings,
  type StorageLocation,
  type StorageSettings,
} from './settings.js';

/** What a driver may use from its surroundings (tests replace it). */
export interface StorageRuntime {
  /** Environment for credentials (AWS chain, AZURE_STORAGE_*, SSH_AUTH_SOCK). Default process.env. */
  env: NodeJS.ProcessEnv;
  /** Home directory for ~/.ssh and ~/.aws. Default os.homedir(). */
  homeDir: string;
  /** Warnings a driver cannot turn into errors (e.g. an abort it could not verify). Default: none. */
  warn: (message: string) => void;
  /**
   * Notes that ask nothing of the operator (a capability the driver probed and works
   * around safely): shown with --verbose, never on every cron run. Default: none.
   */
  debug: (message: string) => void;
}

/** A driver factory: everything the registry needs to know about one URL scheme. */
export interface StorageFactory<L extends StorageLocation = StorageLocation> {
  scheme: L['scheme'];
  /** Parses a location with its settings; throws ConfigurationError. Synchronous, no SDK. */
  parse(location: string, cwd: string, settings: StorageSettings): L;
  /** The location without secrets. */
  redact(location: string): string;
  /** Capabilities known before connecting (conservative; open() may raise them). */
  capabilities(location: L): StorageCapabilities;
  /** Loads the driver (and its SDK) and returns the storage; connects lazily. */
  open(location: L, runtime: StorageRuntime): Promise<Storage>;
}

const REMOTE_DECLARED: StorageCapabilities = {
  atomicPut: true,
  conditionalCreate: false,
  localFiles: false,
  rangeReads: true,
  consistentList: true,
  pagedList: true,
};

const parseAs = <L extends StorageLocation>(scheme: L['scheme']) =>
  (location: string, cwd: string, settings: StorageSettings): L => {
    const parsed = parseStorageLocation(location, cwd, settings);
    if (parsed.scheme !== scheme) throw new Error(`internal error: ${location} is not a ${scheme} location`);
    return parsed as L;
  };

export const localFactory: StorageFactory<LocalLocation> = {
  scheme: 'file',
  parse: parseAs<LocalLocation>('file'),
  redact: (location) => location,
  capabilities: () => LocalStorage.CAPABILITIES,
  open: async (location) => new LocalStorage(location.root),
};

export const memFactory: StorageFactory<MemLocation> = {
  scheme: 'mem',
  parse: parseAs<MemLocation>('mem'),
  redact: (location) => location,
  capabilities: () => MemoryStorage.CAPABILITIES,
  open: async (location) => MemoryStorage.named(location.name, location.prefix),
};

export const s3Factory: StorageFactory<S3Location> = {
  scheme: 's3',
  parse: parseAs<S3Location>('s3'),
  redact: redactStorageLocation,
  // `conditional-create=on` is the operator's word that the server enforces it.
  capabilities: (location) => ({ ...REMOTE_DECLARED, conditionalCreate: location.settings.conditionalCreate === 'on' }),
  open: async (location, runtime) => new (await import('./s3.js')).S3Storage(location, runtime),
};

export const azureFactory: StorageFactory<AzureLocation> = {
  scheme: 'azblob',
  parse: parseAs<AzureLocation>('azblob'),
  redact: redactStorageLocation,
  capabilities: () => ({ ...REMOTE_DECLARED, conditionalCreate: true }),
  open: async (location, runtime) => new (await import('./azblob.js')).AzureBlobStorage(location, runtime),
};

export const sftpFactory: StorageFactory<SftpLocation> = {
  scheme: 'sftp',
  parse: parseAs<SftpLocation>('sftp'),
  redact: redactStorageLocation,
  // hardlink@openssh.com is known only once connected.
  capabilities: () => ({ ...REMOTE_DECLARED }),
  open: async (location, runtime) => new (await import('./sftp.js')).SftpStorage(location, runtime),
};

const FACTORIES: Record<StorageLocation['scheme'], StorageFactory> = {
  file: localFactory as unknown as StorageFactory,
  mem: memFactory as unknown as StorageFactory,
  s3: s3Factory as unknown as StorageFactory,
  azblob: azureFactory as unknown as StorageFactory,
  sftp: sftpFactory as unknown as StorageFactory,
};

/** The factory of a parsed location's scheme. */
export function factoryFor(location: StorageLocation): StorageFactory {
  return FACTORIES[location.scheme];
}

/**
 * Maps a `--storage` value to a storage, synchronously: the location is parsed and
 * validated now (ConfigurationError, exit 2, on a bad URL or setting); a remote driver
 * is loaded and connected on first use. Local and mem storages are returned as they are
 * (they load nothing), so `localPath` is there when the store has local files.
 *
 * `settings` are the driver settings of the config file (URL query parameters override
 * them); `runtime` replaces the environment, home directory and warning sink.
 */
export function openStorage(location: string, cwd: string, settings: StorageSettings = {}, runtime: Partial<StorageRuntime> = {}): Storage {
  const parsed = parseStorageLocation(location, cwd, settings);
  if (parsed.scheme === 'file') return new LocalStorage(parsed.root);
  if (parsed.scheme === 'mem') return MemoryStorage.named(parsed.name, parsed.prefix);
  const factory = factoryFor(parsed);
  const full: StorageRuntime = {
    env: runtime.env ?? process.env,
    homeDir: runtime.homeDir ?? homedir(),
    warn: runtime.warn ?? (() => undefined),
    debug: runtime.debug ?? (() => undefined),
  };
  return new LazyStorage(parsed.display, factory.capabilities(parsed), () => factory.open(parsed, full));
}

/**
 * A storage whose driver is imported on first use. Capabilities read before then are
 * the factory's declared (conservative) ones.
 */
class LazyStorage implements Storage {
  private driver: Promise<Storage> | null = null;
  private loaded: Storage | null = null;

  constructor(
    readonly location: string,
    private readonly declared: StorageCapabilities,
    private readonly load: () => Promise<Storage>,
  ) {}

  get capabilities(): StorageCapabilities {
    return this.loaded?.capabilities ?? this.declared;
  }

  /** The driver, loaded once (a failed load is retried by the next call). */
  private use(): Promise<Storage> {
    this.driver ??= this.load().then(
      (driver) => {
        this.loaded = driver;
        return driver;
      },
      (error: unknown) => {
        this.driver = null;
        throw error;
      },
    );
    return this.driver;
  }

  async open(): Promise<StorageCapabilities> {
    return (await this.use()).open();
  }
  async close(): Promise<void> {
    if (this.driver === null) return;
    await (await this.use()).close();
  }
  async put(key: string, source: Readable, options?: PutOptions): Promise<{ bytes: number }> {
    return (await this.use()).put(key, source, options);
  }
  async putBytes(key: string, data: Buffer): Promise<void> {
    return (await this.use()).putBytes(key, data);
  }
  async putIfAbsent(key: string, data: Buffer): Promise<boolean> {
    return (await this.use()).putIfAbsent(key, data);
  }
  async get(key: string, options?: GetOptions): Promise<Readable> {
    return (await this.use()).get(key, options);
  }
  async getBytes(key: string, maxBytes: number): Promise<Buffer> {
    return (await this.use()).getBytes(key, maxBytes);
  }
  async stat(key: string): Promise<ObjectInfo> {
    return (await this.use()).stat(key);
  }
  async list(prefix: string, options?: ListOptions): Promise<ObjectInfo[]> {
    return (await this.use()).list(prefix, options);
  }
  async children(prefix: string): Promise<string[]> {
    return (await this.use()).children(prefix);
  }
  async remove(key: string): Promise<void> {
    return (await this.use()).remove(key);
  }
  async checkWritable(prefix: string): Promise<void> {
    return (await this.use()).checkWritable(prefix);
  }
  async removeStaleTemporaries(prefix: string, olderThan: Date, options?: StaleTemporariesOptions): Promise<{ files: number; bytes: number }> {
    return (await this.use()).removeStaleTemporaries(prefix, olderThan, options);
  }
}
