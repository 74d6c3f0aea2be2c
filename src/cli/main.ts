#!/usr/bin/env node
// The shipped entry: the CLI with no internal options (see program.ts).
import { runCli } from './program.js';

runCli(process.argv).then((code) => {
  process.exitCode = code;
});
