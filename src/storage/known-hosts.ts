/**
 * OpenSSH known_hosts, as `ssh` reads it: plain and hashed (`|1|salt|hash`) host
 * patterns, `[host]:port` for ports other than 22, wildcards (`*`, `?`), negations
 * (`!pattern`), `@revoked` lines; `@cert-authority` lines are not used (host
 * certificates are not supported). No SDK here: the SFTP driver and tests share it.
 */
import { createHash, createHmac } from 'node:crypto';

export interface KnownHostKey {
  /** `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`... */
  type: string;
  /** The key blob (SSH wire format), as the server sends it. */
  key: Buffer;
  revoked: boolean;
  /** 1-based line number, for messages. */
  line: number;
}

/** `host` for port 22, `[host]:port` otherwise: the name known_hosts lines use. */
export function hostEntryName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

function hashedMatches(pattern: string, name: string): boolean {
  const [, magic, salt, hash] = pattern.split('|');
  if (magic !== '1' || !salt || !hash) return false;
  const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
  return digest === hash;
}

/** Whether a comma-separated host pattern list matches `name`: a negated match wins. */
function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|')) return hashedMatches(patterns, name);
  let matched = false;
  for (const raw of patterns.split(',')) {
    const negated = raw.startsWith('!');
    const pattern = negated ? raw.slice(1) : raw;
    if (globToRegExp(pattern).test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** The keys known_hosts text holds for `host:port`. */
export function knownKeysFor(text: string, host: string, port: number): KnownHostKey[] {
  const name = hostEntryName(host, port);
  const found: KnownHostKey[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: string | null = null;
    if (fields[0]?.startsWith('@')) marker = fields.shift() as string;
    const [patterns, type, base64] = fields;
    if (!patterns || !type || !base64) continue;
    if (marker === '@cert-authority') continue;
    if (!patternsMatch(patterns, name)) continue;
    const key = Buffer.from(base64, 'base64');
    if (key.length === 0) continue;
    found.push({ type, key, revoked: marker === '@revoked', line: index + 1 });
  }
  return found;
}

/** The key type named inside an SSH key blob (its first string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return '';
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString('latin1');
}

/** `SHA256:...` as ssh-keygen -l prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Host key algorithms to offer for known keys of these types (RSA keys sign with SHA-2 first). */
export function hostKeyAlgorithms(types: readonly string[]): string[] {
  const algorithms: string[] = [];
  for (const type of types) {
    const names = type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
    for (const name of names) if (!algorithms.includes(name)) algorithms.push(name);
  }
  return algorithms;
}
