#!/usr/bin/env node
// The published entry point: everything lives in the compiled CLI.
import { setFlagsFromString } from 'node:v8';

// Memory (README, "Memory"): V8 grows its young generation while much of what is allocated
// survives, up to 32 MiB on Node 20 and 128 MiB on Node 24, and keeps it: reading a catalog
// of 10,000 backups or streaming an upload would hold that much more for the whole run.
// Kept at its initial size it costs more minor collections, a few hundredths of a second
// for list/status/prune over 10,000 backups. Set before the CLI is loaded.
setFlagsFromString('--semi-space-growth-factor=1');
const { main } = await import('../dist/cli.js');

process.exitCode = await main(process.argv.slice(2));
