import { PipelineError } from '../errors.js';

/** An integer option within [min, max], else STAGE_OPTIONS_INVALID. */
export function integerOption(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new PipelineError('STAGE_OPTIONS_INVALID', `${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}
