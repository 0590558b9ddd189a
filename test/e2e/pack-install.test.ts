/**
 * The package as users get it. The working tree is copied as a clean clone would have it
 * (git's tracked and untracked-but-not-ignored files: no dist/), `npm pack` there builds
 * dist/ through prepack, and the tarball is installed with `npm install -g --prefix`,
 * offline. The installed `backupctl` then runs from a directory outside the repository,
 * with no node_modules of the repository on PATH: --version, --help, and create -> list
 * -> verify against the test cluster, in a local storage, with a PATH holding only node
 * (no zstd or age program: what the README's requirements say), and over sftp:// (OpenSSH
 * sshd, when it can run here), which exercises the bundled ssh2.
 */
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, type CliOutcome } from '../helpers/cli.js';
import { removeTempDirs, tempDir } from '../helpers/failure-kit.js';
import { connectProvided, uniqueName } from '../helpers/pg.js';
import { sshdUnavailable, startSshd, type SshdServer } from '../helpers/storage-servers.js';

const cluster = connectProvided();
const db = uniqueName('packed');

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: Array<{ path: string; mode: number }>;
}

let pack: PackResult;
let prefix: string;
let installed: string;
let cwd: string;

/**
 * The environment of the npm and backupctl children: none of the npm_* variables of the
 * `npm test` around us, and a PATH without any node_modules/.bin (the repository's), with
 * the directory of the node running the tests first, so that the installed binary's
 * `#!/usr/bin/env node` finds the same node.
 */
function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const pathDirs = (process.env.PATH ?? '').split(path.delimiter).filter((dir) => dir !== '' && !dir.includes(`${path.sep}node_modules${path.sep}`));
  const env: Record<string, string> = { PATH: [path.dirname(process.execPath), ...pathDirs].join(path.delimiter), NO_COLOR: '1' };
  if (process.env.HOME) env.HOME = process.env.HOME; // npm's cache
  return { ...env, ...extra };
}

async function npm(args: string[], where: string): Promise<string> {
  const result = await execa('npm', args, { cwd: where, extendEnv: false, env: childEnv(), stdin: 'ignore', reject: false });
  if (result.exitCode !== 0) throw new Error(`npm ${args.join(' ')} exited with ${result.exitCode}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** The installed binary, run the way a user's shell runs it (through its shebang). */
async function backupctl(args: string[], extra: Record<string, string> = {}): Promise<CliOutcome> {
  const result = await execa(path.join(prefix, 'bin', 'backupctl'), args, {
    cwd,
    extendEnv: false,
    env: childEnv({ HOME: cwd, ...cluster.env(db), ...extra }),
    stdin: 'ignore',
    reject: false,
  });
  return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** Everything below `dir`, relative, directories with a trailing slash. */
async function tree(dir: string, base = ''): Promise<string[]> {
  const entries = await readdir(path.join(dir, base), { withFileTypes: true }).catch(() => []);
  const found: string[] = [];
  for (const entry of entries) {
    const name = path.posix.join(base, entry.name);
    if (entry.isDirectory()) found.push(`${name}/`, ...(await tree(dir, name)));
    else found.push(name);
  }
  return found;
}

beforeAll(async () => {
  // A clean clone of the working tree (without dist/), its node_modules borrowed for the build.
  const clone = await tempDir('pack-src');
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT })
    .toString('utf8')
    .split('\0')
    .filter((file) => file !== '' && existsSync(path.join(REPO_ROOT, file)));
  for (const file of files) {
    await mkdir(path.dirname(path.join(clone, file)), { recursive: true });
    await copyFile(path.join(REPO_ROOT, file), path.join(clone, file));
  }
  expect(existsSync(path.join(clone, 'dist'))).toBe(false);
  await symlink(path.join(REPO_ROOT, 'node_modules'), path.join(clone, 'node_modules'), 'dir');

  const out = await tempDir('pack-out');
  pack = (JSON.parse(await npm(['pack', '--json', '--pack-destination', out], clone)) as PackResult[])[0] as PackResult;

  prefix = await tempDir('pack-prefix');
  await npm(['install', '--global', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', path.join(out, pack.filename)], out);
  installed = path.join(prefix, 'lib', 'node_modules', 'backupctl');
  cwd = await tempDir('pack-cwd');
  await cluster.createDatabase(db);
  await cluster.query(db, 'CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 500) g');
}, 120_000);

afterAll(async () => {
  await cluster.dropDatabase(db);
  await removeTempDirs();
});

describe('npm pack', () => {
  it('packs the built CLI, its docs and licences, and no sources, tests or source maps', async () => {
    const paths = pack.files.map((file) => file.path);
    for (const required of ['package.json', 'README.md', 'LICENSE', 'bin/backupctl.js', 'dist/cli.js', 'dist/THIRD-PARTY-NOTICES.txt']) {
      expect(paths, required).toContain(required);
    }
    // The README points editors at the JSON Schema: it ships too.
    const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
    if (readme.includes('schema/backupctl.schema.json')) expect(paths).toContain('schema/backupctl.schema.json');
    const strays = paths.filter((file) => /^(src|test|bench|scripts|node_modules|\.ci)\//.test(file) || file.endsWith('.map') || file.endsWith('.ts'));
    expect(strays).toEqual([]);
    // Every chunk that dist/cli.js can import was packed (a missing one would fail only the command that loads it).
    const chunks = (await readdir(path.join(installed, 'dist'))).filter((file) => file.endsWith('.js'));
    expect(chunks.length).toBeGreaterThan(1);
    expect(paths.filter((file) => file.startsWith('dist/') && file.endsWith('.js')).sort()).toEqual(chunks.map((file) => `dist/${file}`).sort());
    console.info(`pack-install: ${pack.filename}: ${pack.size} bytes packed, ${pack.unpackedSize} unpacked, ${pack.entryCount} files`);
  });

  it('declares no runtime dependencies, and Node >= 20.19', async () => {
    const manifest = JSON.parse(await readFile(path.join(installed, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest.dependencies ?? {}).toEqual({});
    expect(manifest.optionalDependencies ?? {}).toEqual({});
    expect(manifest.peerDependencies ?? {}).toEqual({});
    expect(manifest.engines).toEqual({ node: '>=20.19' });
  });
});

describe('npm install -g <tarball>', () => {
  it('installs the package alone: no node_modules beside it, backupctl on the prefix bin', async () => {
    expect(await tree(path.join(installed, 'node_modules'))).toEqual([]);
    expect((await readdir(path.join(prefix, 'lib', 'node_modules'))).filter((name) => name !== '.package-lock.json')).toEqual(['backupctl']);
    expect(existsSync(path.join(prefix, 'bin', 'backupctl'))).toBe(true);
  });

  it('backupctl --version prints the package version, on the node that runs these tests', async () => {
    const { version } = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const out = await backupctl(['--version']);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout.trim()).toBe(version);
    // The shebang's `env node` is this node (the CI runs the suite on two versions).
    const node = await execa('node', ['--version'], { cwd, extendEnv: false, env: childEnv() });
    expect(node.stdout.trim()).toBe(process.version);
  });

  it('backupctl --help lists the commands', async () => {
    const out = await backupctl(['--help']);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^Usage: backupctl/);
    for (const command of ['create', 'list', 'verify', 'restore', 'completion']) expect(out.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
  });

  it('backupctl completion bash prints a script that bash loads', async () => {
    const out = await backupctl(['completion', 'bash']);
    expect(out.code, out.stderr).toBe(0);
    const loaded = await execa('bash', ['-c', `${out.stdout}\ncomplete -p backupctl`], { cwd, extendEnv: false, env: childEnv(), reject: false });
    expect(loaded.exitCode, loaded.stderr).toBe(0);
    expect(loaded.stdout).toMatch(/^complete .*backupctl$/m);
  });

  /** create -> list -> verify in one storage; `level` is verify's. */
  async function roundTrip(storage: string, level: 'checksum' | 'restore'): Promise<void> {
    const created = await backupctl(['create', '--storage', storage, '--json', '--tag', 'packed']);
    expect(created.code, created.stderr).toBe(0);
    const { id } = JSON.parse(created.stdout) as { id: string };
    expect(id).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]+$/);

    const listed = await backupctl(['list', '--storage', storage, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const backups = JSON.parse(listed.stdout) as Array<{ id: string; profile: string; tags: string[] }>;
    expect(backups.map((backup) => backup.id)).toEqual([id]);
    expect(backups[0]?.profile).toBe(db);
    expect(backups[0]?.tags).toEqual(['packed']);

    const verified = await backupctl(['verify', id, '--storage', storage, '--level', level]);
    expect(verified.code, `${verified.stdout}\n${verified.stderr}`).toBe(0);
  }

  it('create, list and verify (restore level) against PostgreSQL, in a local storage', async () => {
    await roundTrip(path.join(cwd, 'backups'), 'restore');
    // The restore level compared row counts with the sidecar's; the sidecar says so.
    const shown = await backupctl(['show', 'latest', '--storage', path.join(cwd, 'backups'), '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('"items"');
    expect(shown.stdout).toMatch(/"level": ?"restore"/);
  });

  it('needs no zstd or age program with --compress gzip and age encryption; the default names the zstd package', async () => {
    // A PATH with node alone: backupctl finds the PostgreSQL clients in their usual places.
    const bin = await tempDir('pack-bin');
    await symlink(process.execPath, path.join(bin, 'node'));
    const minimal = { PATH: bin };
    const storage = path.join(cwd, 'minimal');
    const passphrase = path.join(cwd, 'passphrase');
    await writeFile(passphrase, 'correct horse battery staple\n', { mode: 0o600 });

    const zstd = await backupctl(['create', '--storage', storage], minimal);
    expect(zstd.code).toBe(2);
    expect(zstd.stderr).toMatch(/zstd program is not installed/);
    expect(zstd.stderr).toMatch(/apt-get install zstd/);

    const created = await backupctl(['create', '--storage', storage, '--json', '--compress', 'gzip', '--passphrase-file', passphrase], minimal);
    expect(created.code, created.stderr).toBe(0);
    const { id } = JSON.parse(created.stdout) as { id: string };
    const stored = await readdir(path.join(storage, db));
    expect(stored).toContain(`${id}.dump.gz.age`);
    const verified = await backupctl(['verify', id, '--storage', storage, '--passphrase-file', passphrase], minimal);
    expect(verified.code, `${verified.stdout}\n${verified.stderr}`).toBe(0);
  });

  const noSshd = sshdUnavailable();
  describe.skipIf(noSshd !== null)('over sftp:// (the bundled ssh2)', () => {
    let server: SshdServer;
    beforeAll(async () => {
      server = await startSshd();
    });
    afterAll(() => server?.stop());

    it('create, list and verify (checksum level) in an sftp:// storage', async () => {
      const dir = path.join(server.root, 'packed');
      const url = `sftp://${server.user}@127.0.0.1:${server.port}${dir}?key=${server.keyFile}&known-hosts=${server.knownHostsFile}&agent=none`;
      await roundTrip(url, 'checksum');
      // The files landed on the server's disk.
      const stored = await tree(path.join(dir, db));
      expect(stored.some((file) => file.endsWith('.json'))).toBe(true);
      expect(stored.some((file) => /\.dump(\.|$)/.test(file))).toBe(true);
    });
  });
  if (noSshd) console.info(`pack-install: sftp:// is not tested: ${noSshd}`);
});
