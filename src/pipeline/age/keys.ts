/**
 * Keys as users hold them: `age1...` recipients, `AGE-SECRET-KEY-1...` identities, the files
 * that list them (one per line, `#` comments, blank lines ignored; age's own formats), and
 * passphrases read from a file or an environment variable (never from argv).
 */
import { readFile } from 'node:fs/promises';
import { AgeError } from '../errors.js';
import { PassphraseIdentity, PassphraseRecipient } from './scrypt.js';
import type { Identity, Recipient } from './stanza.js';
import { X25519Identity, X25519Recipient } from './x25519.js';

export function parseRecipient(text: string): X25519Recipient {
  return X25519Recipient.parse(text.trim());
}

export function parseIdentity(text: string): X25519Identity {
  return X25519Identity.parse(text.trim());
}

/** A new identity and its recipient, as `age-keygen` makes them. */
export function generateIdentity(): { identity: X25519Identity; recipient: X25519Recipient } {
  const identity = X25519Identity.generate();
  return { identity, recipient: identity.recipient };
}

/** The text of an identity file for `identity`, in age-keygen's layout. */
export function formatIdentityFile(identity: X25519Identity, created = new Date()): string {
  return `# created: ${created.toISOString().replace(/\.\d{3}Z$/, 'Z')}\n# public key: ${identity.recipient.toString()}\n${identity.encode()}\n`;
}

function contentLines(text: string): Array<{ line: string; number: number }> {
  return text
    .split('\n')
    .map((line, i) => ({ line: line.trim(), number: i + 1 }))
    .filter(({ line }) => line !== '' && !line.startsWith('#'));
}

/** Parses an identity file's text; `source` names it in errors. The key text is never quoted. */
export function parseIdentityFile(text: string, source = 'identity file'): X25519Identity[] {
  if (text.startsWith('age-encryption.org/')) {
    throw new AgeError('AGE_KEY_INVALID', `${source} is itself age-encrypted; decrypt it first (age -d) and give the result`);
  }
  const identities = contentLines(text).map(({ line, number }) => {
    try {
      return X25519Identity.parse(line);
    } catch (error) {
      throw new AgeError('AGE_KEY_INVALID', `line ${number} of ${source} is not an age X25519 identity (AGE-SECRET-KEY-1...)`, {
        hint: 'only X25519 identities are supported (not SSH keys or plugins)',
        cause: error,
      });
    }
  });
  if (identities.length === 0) throw new AgeError('AGE_KEY_INVALID', `${source} has no identities`);
  return identities;
}

/** Parses a recipients file's text (one `age1...` per line). */
export function parseRecipientsFile(text: string, source = 'recipients file'): X25519Recipient[] {
  const recipients = contentLines(text).map(({ line, number }) => {
    try {
      return X25519Recipient.parse(line);
    } catch (error) {
      throw new AgeError('AGE_KEY_INVALID', `line ${number} of ${source} is not an age X25519 recipient (age1...)`, {
        hint: 'only X25519 recipients are supported (not SSH keys or plugins)',
        cause: error,
      });
    }
  });
  if (recipients.length === 0) throw new AgeError('AGE_KEY_INVALID', `${source} has no recipients`);
  return recipients;
}

async function readKeyFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new AgeError('AGE_KEY_INVALID', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
}

export async function readIdentityFile(path: string): Promise<X25519Identity[]> {
  return parseIdentityFile(await readKeyFile(path), path);
}

export async function readRecipientsFile(path: string): Promise<X25519Recipient[]> {
  return parseRecipientsFile(await readKeyFile(path), path);
}

/** A passphrase file's content without its final line break. */
export async function passphraseFromFile(path: string): Promise<Buffer> {
  const bytes = await readFile(path).catch((error: unknown) => {
    throw new AgeError('AGE_KEY_INVALID', `cannot read the passphrase file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  });
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0a) end -= 1;
  if (end > 0 && bytes[end - 1] === 0x0d) end -= 1;
  if (end === 0) throw new AgeError('AGE_KEY_INVALID', `the passphrase file ${path} is empty`);
  return bytes.subarray(0, end);
}

/** The passphrase in environment variable `name`. */
export function passphraseFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): Buffer {
  const value = env[name];
  if (value === undefined || value === '') throw new AgeError('AGE_KEY_INVALID', `the environment variable ${name} (passphrase) is not set or empty`);
  return Buffer.from(value, 'utf8');
}

export function passphraseRecipient(passphrase: string | Uint8Array, options: { workFactor?: number } = {}): PassphraseRecipient {
  return new PassphraseRecipient(passphrase, options);
}

export function passphraseIdentity(passphrase: string | Uint8Array, options: { maxWorkFactor?: number } = {}): PassphraseIdentity {
  return new PassphraseIdentity(passphrase, options);
}

/** What a sidecar records of a recipient: never a key. */
export type RecipientRecord = { scheme: 'x25519'; fingerprint: string } | { scheme: 'scrypt'; workFactor: number };

export function recipientRecord(recipient: Recipient): RecipientRecord {
  if (recipient instanceof X25519Recipient) return { scheme: 'x25519', fingerprint: recipient.fingerprint() };
  if (recipient instanceof PassphraseRecipient) return { scheme: 'scrypt', workFactor: recipient.workFactor };
  throw new AgeError('AGE_KEY_INVALID', `unsupported recipient kind ${recipient.kind}`);
}

/**
 * A recipient's fingerprint for sidecars: `x25519:sha256:<16 hex>` (the first 8 bytes of
 * SHA-256 over the raw 32-byte public key). Stable, short, not secret, and the same for an
 * identity and its recipient. Null for a passphrase, which has none.
 */
export function recipientFingerprint(recipient: Recipient | string): string | null {
  const r = typeof recipient === 'string' ? parseRecipient(recipient) : recipient;
  return r instanceof X25519Recipient ? r.fingerprint() : null;
}

/** The fingerprint of an identity's recipient (null for a passphrase). */
export function identityFingerprint(identity: Identity): string | null {
  return identity instanceof X25519Identity ? identity.recipient.fingerprint() : null;
}
