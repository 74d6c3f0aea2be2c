// Test-only entry: the built CLI with internal options (runCli's InternalOptions) taken from the JSON
// in FWGEN_INTERNAL, e.g. {"skipLockoutCheck": true} or {"dns": {"names": {...}, "ptr": {...}}}.
// Not part of the package: the shipped dist/cli/main.js passes no internal options and reads no such variable.
import { runCli } from '../../dist/cli/program.js';
import { staticResolver } from '../../dist/doctor/name-checks.js';

const given = JSON.parse(process.env.FWGEN_INTERNAL ?? '{}');
const internal = {
  skipLockoutCheck: given.skipLockoutCheck === true,
  resolver: given.dns === undefined ? undefined : staticResolver(given.dns),
};
process.exitCode = await runCli(process.argv, internal);
