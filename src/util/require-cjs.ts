import { createRequire } from 'node:module';

/**
 * Loads a CommonJS package with require(). An ESM `import` of one makes Node run its export lexer,
 * which costs ~40 ms of every start-up (most of what a 10,000-host render may spend); require does not.
 */
export const requireCjs = createRequire(import.meta.url);
