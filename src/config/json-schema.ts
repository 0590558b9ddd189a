import * as z from 'zod';
import { ConfigSchema, ProfileSchema } from './schema.js';

/**
 * Cross-field rules of a profile that the zod checks enforce (superRefine) and that JSON
 * Schema can express, so editors flag them too.
 */
const PROFILE_RULES = [
  { not: { required: ['passwordFile', 'passwordEnv'] } },
  {
    not: {
      required: ['schemaOnly', 'dataOnly'],
      properties: { schemaOnly: { const: true }, dataOnly: { const: true } },
    },
  },
  {
    if: { required: ['format'], properties: { format: { const: 'custom' } } },
    then: { properties: { jobs: { maximum: 1 } } },
  },
];

/**
 * The JSON Schema of the configuration file (draft-07: the draft editors support best),
 * as written to schema/backupctl.schema.json: 2-space indentation and a trailing newline.
 */
export function renderJsonSchema(): string {
  const jsonSchema = z.toJSONSchema(ConfigSchema, {
    target: 'draft-07',
    io: 'input',
    override: (ctx) => {
      if (ctx.zodSchema === ProfileSchema) ctx.jsonSchema.allOf = PROFILE_RULES;
    },
  });
  return `${JSON.stringify(jsonSchema, null, 2)}\n`;
}
