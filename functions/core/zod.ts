import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

/**
 * zod for the lanes is the tree-shakable `zod/mini` API: the classic API alone was a third of a lane's bundle, and
 * module init is cold-start time. Modules import it as `import * as z from 'zod/mini'` (a namespace used only for
 * property access, so esbuild keeps only what is used) and import this file once for the English messages.
 */
config(en());
