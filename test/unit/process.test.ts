/**
 * isProcessAlive (platform/process.ts): what locks, run directories and scratch databases
 * of other runs are judged by. A zombie (exited, not yet reaped) is not alive: after a
 * kill -9 in a container whose init reaps late, the next run must take over at once.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../src/platform/process.js';

const parents: Array<ReturnType<typeof spawn>> = [];
afterEach(() => {
  for (const parent of parents.splice(0)) parent.kill('SIGKILL');
});

describe('isProcessAlive', () => {
  it('this process is alive; a pid that does not exist is not', () => {
    expect(isProcessAlive(process.pid)).toBe(true);
    expect(isProcessAlive(2 ** 22 + 12345)).toBe(false);
  });

  it.runIf(process.platform === 'linux')('a zombie is not alive, while its parent that has not reaped it is', async () => {
    // sh starts a child that exits at once, then becomes `sleep`, which never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    parents.push(parent);
    const pid = await new Promise<number>((resolve) => parent.stdout.once('data', (data: Buffer) => resolve(Number(String(data).trim()))));
    const state = () => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    };
    for (let i = 0; i < 200 && state() !== 'Z'; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(state()).toBe('Z');
    expect(isProcessAlive(pid)).toBe(false);
    expect(isProcessAlive(parent.pid as number)).toBe(true);
  });
});
