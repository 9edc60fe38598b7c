/**
 * The schema library for the commands that run before tasks: zod's mini build,
 * with zod's English messages. Import it as a namespace
 * (`import * as z from './validation.js'`): the bundler then keeps only the
 * functions used (tens of KB). Re-exporting zod's own namespace object instead
 * would make every process parse all of zod, every locale included (~700 KB).
 */
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());

export * from 'zod/mini';
export type { $ZodIssue as Issue } from 'zod/v4/core';
