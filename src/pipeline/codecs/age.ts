import { recipientRecord } from '../age/keys.js';
import type { Identity, Recipient } from '../age/stanza.js';
import { decryptStream, encryptStream } from '../age/stream.js';
import { PipelineError } from '../errors.js';
import type { EncryptionRecord, Stage } from '../stage.js';

export interface AgeStageOptions {
  /** Needed to encode: X25519 recipients, or one passphrase recipient. */
  recipients?: readonly Recipient[];
  /** Needed to decode: tried in order. */
  identities?: readonly Identity[];
  /** The record read from a sidecar, when the stage is built to decode. */
  record?: EncryptionRecord;
}

/** Encryption to the age format (`.age`), readable by `age -d`. */
export function ageStage(options: AgeStageOptions): Stage {
  const recipients = options.recipients ?? [];
  const identities = options.identities ?? [];
  return {
    type: 'encryption',
    name: 'age',
    suffix: '.age',
    encode: () => {
      if (recipients.length === 0) throw new PipelineError('KEYS_MISSING', 'encryption needs at least one recipient or a passphrase');
      return encryptStream(recipients);
    },
    decode: () => {
      if (identities.length === 0) {
        throw new PipelineError('KEYS_MISSING', 'this backup is encrypted (age): an identity file or a passphrase is needed to read it', {
          hint: 'give the identity file of one of its recipients, or the passphrase (from a file or the environment)',
        });
      }
      // Built from a sidecar's record: the header is held against the recorded recipients.
      return decryptStream(identities, options.record?.recipients);
    },
    record: (): EncryptionRecord => options.record ?? { type: 'encryption', scheme: 'age', recipients: recipients.map(recipientRecord) },
  };
}
