/**
 * `npm run seed -- --data <dir>`: creates (and migrates) the bank, vendor and customer databases
 * in a data directory laid out as the stack lays it out (`<dir>/<name>/<name>.sqlite`) and fills
 * them with the demo world: customers, accounts, stock and open orders (participants/seed.ts).
 * Rows that exist already are left as they are, so running it twice changes nothing.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseFlags, requiredFlag, runMain } from '../common/cli.ts';
import { participantNames } from '../common/protocol.ts';
import { openDatabase } from '../common/sqlite.ts';
import { demoWorld, seedDemoData } from '../participants/seed.ts';

function main(): void {
  const values = parseFlags(process.argv.slice(2), { data: { type: 'string' } });
  const root = resolve(requiredFlag(values, 'data'));
  const open = (name: (typeof participantNames)[number]) => {
    mkdirSync(join(root, name), { recursive: true });
    return openDatabase(join(root, name, `${name}.sqlite`), name);
  };
  const databases = { bank: open('bank'), vendor: open('vendor'), customer: open('customer') };
  try {
    seedDemoData(databases);
  } finally {
    for (const db of Object.values(databases)) db.close();
  }
  const { customers, accounts, stock, orders } = demoWorld;
  console.log(
    `seeded ${root}: ${customers.length} customers, ${accounts.length} accounts, ` +
      `${stock.length} stock items, ${orders.length} orders`,
  );
}

runMain(main, 'command');
