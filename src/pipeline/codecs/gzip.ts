import { createGunzip, createGzip } from 'node:zlib';
import type { Duplex } from 'node:stream';
import { PipelineError } from '../errors.js';
import type { Stage } from '../stage.js';
import { integerOption } from './options.js';

export const GZIP_DEFAULT_LEVEL = 6;

/**
 * zlib reports bad input by destroying its stream with an error whose code is `Z_...`
 * (Z_DATA_ERROR, Z_BUF_ERROR for a truncated stream): those become CODEC_CORRUPT. Errors
 * that reach it from the rest of a pipeline pass unchanged.
 */
export function typedZlibErrors<T extends Duplex>(stream: T, codec: string): T {
  const destroy = stream.destroy.bind(stream) as (error?: Error) => T;
  stream.destroy = (error?: Error): T => {
    const code = (error as { code?: unknown } | undefined)?.code;
    if (error && !(error instanceof PipelineError) && typeof code === 'string' && code.startsWith('Z_')) {
      return destroy(new PipelineError('CODEC_CORRUPT', `the ${codec} stream is corrupt or truncated (${error.message})`, { cause: error }));
    }
    return destroy(error);
  };
  return stream;
}

/** gzip through node:zlib (in libuv's thread pool). */
export function gzipStage(options: { level?: number } = {}): Stage {
  const level = integerOption('the gzip level', options.level ?? GZIP_DEFAULT_LEVEL, 1, 9);
  return {
    type: 'compression',
    name: 'gzip',
    suffix: '.gz',
    encode: () => typedZlibErrors(createGzip({ level }), 'gzip'),
    decode: () => typedZlibErrors(createGunzip(), 'gzip'),
    record: () => ({ type: 'compression', codec: 'gzip', level }),
  };
}
