/**
 * The schema library for the commands that run before tasks: zod's mini build,
 * whose functions a bundler keeps only when used (about 40 KB of the ~750 KB
 * the full build makes every process parse), with zod's English messages.
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';

z.config(en());

export { z };
export type { $ZodIssue as Issue } from 'zod/v4/core';
