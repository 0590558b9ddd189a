/**
 * The option parsers of prune's retention flags (src/commands/parse.ts), alone and through
 * commander the way cli.ts wires them: `--keep-tag` groups and the keep-within* durations.
 */
import { Command, InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { keepTagValue, keepWithinValue } from '../../src/commands/parse.js';
import { applyRetention, type RetentionCandidate } from '../../src/retention/policy.js';

describe('keepTagValue', () => {
  it.each<[string, string[][]]>([
    ['pin', [['pin']]],
    ['db,monthly', [['db', 'monthly']]],
    [' db , monthly ', [['db', 'monthly']]], // trimmed, as restic
    ['a,b,c', [['a', 'b', 'c']]],
    ['pci:scope,v1.2_x-y', [['pci:scope', 'v1.2_x-y']]],
  ])('reads %j as one group', (value, groups) => {
    expect(keepTagValue(value)).toEqual(groups);
  });

  it('adds a group per use (OR), without changing the earlier ones', () => {
    const first = keepTagValue('pin');
    const second = keepTagValue('db,monthly', first);
    expect(second).toEqual([['pin'], ['db', 'monthly']]);
    expect(first).toEqual([['pin']]);
  });

  it.each<[string, RegExp]>([
    ['', /a tag must not be empty/],
    ['a,', /a tag must not be empty/],
    [',a', /a tag must not be empty/],
    ['a,,b', /a tag must not be empty/],
    ['-a', /invalid tag "-a": tags start with a letter or digit/],
    ['a,b c', /invalid tag "b c"/],
    ['x'.repeat(65), /64 at most/],
  ])('refuses %j', (value, message) => {
    expect(() => keepTagValue(value)).toThrow(InvalidArgumentError);
    expect(() => keepTagValue(value)).toThrow(message);
  });
});

describe('keepWithinValue', () => {
  it.each(['7d', '1y1d1m', '5d7m', '4h3d9m', '90min', '2w', '0d', ' 36h '])('accepts %j and returns it as given', (value) => {
    expect(keepWithinValue(value)).toBe(value);
  });

  it.each<[string, RegExp]>([
    ['7', /^cannot read "7"; use numbers with units y \(years\), m or mo \(months\)/],
    ['1h30m', /^"m" means months \(as in restic\), so "30m" after hours would be 30 months; write minutes as "min"/],
    ['7x', /^unknown unit "x"/],
    ['-1d', /^cannot read "-1d"/],
    ['', /^it is empty/],
  ])('refuses %j with the reason only (commander names the option and the value)', (value, message) => {
    expect(() => keepWithinValue(value)).toThrow(InvalidArgumentError);
    expect(() => keepWithinValue(value)).toThrow(message);
  });
});

describe('through commander', () => {
  function program() {
    const errors: string[] = [];
    const command = new Command()
      .exitOverride()
      .configureOutput({ writeErr: (text) => errors.push(text), writeOut: () => undefined })
      .option('--keep-tag <tags>', 'keep backups that carry all of these comma-separated tags (repeatable: any of the groups)', keepTagValue)
      .option('--keep-within-daily <duration>', 'keep the newest backup of each day within this long before the newest backup', keepWithinValue);
    return { command, errors };
  }

  it('collects repeated --keep-tag into OR-ed groups that applyRetention understands', () => {
    const { command } = program();
    command.parse(['--keep-tag', 'pin', '--keep-tag', 'db,monthly', '--keep-within-daily', '1y1d1m'], { from: 'user' });
    const options = command.opts<{ keepTag: string[][]; keepWithinDaily: string }>();
    expect(options).toEqual({ keepTag: [['pin'], ['db', 'monthly']], keepWithinDaily: '1y1d1m' });

    const backup = (id: string, day: number, tags: string[]): RetentionCandidate => ({
      id,
      createdAt: new Date(Date.UTC(2024, 0, day)),
      tags,
      status: 'completed',
      verified: false,
    });
    const backups = [backup('db', 1, ['db']), backup('db+monthly', 2, ['db', 'monthly']), backup('pin', 3, ['pin']), backup('plain', 4, [])];
    const byTag = applyRetention(backups, { keepTags: options.keepTag }, new Date('2025-01-01T00:00:00Z'))
      .filter((d) => d.reasons.includes('tag'))
      .map((d) => d.id);
    expect(byTag).toEqual(['pin', 'db+monthly']);
  });

  it('fails on a bad duration with the option, the value and the reason', () => {
    const { command, errors } = program();
    expect(() => command.parse(['--keep-within-daily', '1h30m'], { from: 'user' })).toThrow();
    expect(errors.join('')).toMatch(
      /option '--keep-within-daily <duration>' argument '1h30m' is invalid\. "m" means months \(as in restic\)/,
    );
  });
});
