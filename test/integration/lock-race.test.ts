/**
 * The takeover of a stale lock is atomic: with a lock.json left by a dead process of this
 * host, ten processes that try to take the profile's lock at the same moment never hold it
 * together (reading the stale lock, comparing and unlinking it is not atomic: two could
 * each remove what the other had just created).
 */
import { execa, type ResultPromise } from 'execa';
import { writeFile, mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeDirs } from '../helpers/backups.js';
import { REPO_ROOT } from '../helpers/cli.js';

const dirs: string[] = [];
const WORKER = path.join(REPO_ROOT, 'test', 'helpers', 'workers', 'lock-contender.ts');
const TSX = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');

afterAll(async () => removeDirs(dirs));

/** A pid that is surely not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = execa('true');
  await child;
  return child.pid as number;
}

async function round(root: string, contenders: number): Promise<Array<{ won: number; released: number }>> {
  const profile = 'race';
  await mkdir(path.join(root, profile), { recursive: true, mode: 0o700 });
  await writeFile(
    path.join(root, profile, 'lock.json'),
    JSON.stringify({ pid: await deadPid(), host: hostname(), command: 'prune', startedAt: new Date(Date.now() - 60_000).toISOString(), token: 'stale' }),
  );
  const children: ResultPromise[] = [];
  const ready: Array<Promise<void>> = [];
  for (let i = 0; i < contenders; i++) {
    const child = execa(TSX, [WORKER, root, profile, '300'], { stdin: 'pipe', cwd: REPO_ROOT });
    children.push(child);
    ready.push(new Promise((resolve) => child.stdout?.once('data', () => resolve())));
  }
  await Promise.all(ready);
  for (const child of children) child.stdin?.write('go\n');
  const outputs = (await Promise.all(children)).map((r) => String(r.stdout).split('\n').filter((l) => l !== 'ready' && l !== '').join(''));
  expect(outputs.filter((o) => o.startsWith('error')), outputs.join('\n')).toEqual([]);
  return outputs.filter((o) => o.startsWith('won')).map((o) => {
    const [, won, released] = o.split(' ');
    return { won: Number(won), released: Number(released) };
  });
}

describe('taking over a stale lock', () => {
  it('ten contenders at once, five rounds: never two holders at the same time', async () => {
    for (let r = 0; r < 5; r++) {
      const root = await makeTempDir(`lock-race-${r}`);
      dirs.push(root);
      const holders = (await round(root, 10)).sort((a, b) => a.won - b.won);
      expect(holders.length).toBeGreaterThanOrEqual(1);
      for (let i = 1; i < holders.length; i++) {
        expect(holders[i]?.won, `round ${r}: two holders overlap`).toBeGreaterThanOrEqual(holders[i - 1]?.released as number);
      }
    }
  }, 120_000);
});
