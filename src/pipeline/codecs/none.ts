import { PassThrough } from 'node:stream';
import type { Stage } from '../stage.js';

/** No compression: the bytes as they are, recorded so that the sidecar says so. */
export function noneStage(): Stage {
  return {
    type: 'compression',
    name: 'none',
    suffix: '',
    encode: () => new PassThrough(),
    decode: () => new PassThrough(),
    record: () => ({ type: 'compression', codec: 'none', level: null }),
  };
}
