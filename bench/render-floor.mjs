// The floor under `fwgen render` on this machine, as a whole process: node's start-up, reading the inventory,
// parsing it with js-yaml and merging the fleet's addresses with cidr-tools (the libraries fwgen renders with),
// and nothing else: no validation, no resolving, no rules, nothing written. `npm run bench` times it.
//
//   node bench/render-floor.mjs INVENTORY
import { mergeCidr } from 'cidr-tools';
import jsYaml from 'js-yaml';
import { readFileSync } from 'node:fs';

const data = jsYaml.load(readFileSync(process.argv[2], 'utf8'), { schema: jsYaml.CORE_SCHEMA });
const cidrs = [];
for (const role of Object.values(data.roles))
  for (const address of Object.values(role.hosts ?? {})) cidrs.push(`${address}/32`);
process.stdout.write(`${mergeCidr(cidrs).length}\n`);
