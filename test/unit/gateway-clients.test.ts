/**
 * The gateway's API tokens file: every entry is checked at start-up, a bad one is a ConfigError
 * that names its position (never the token), and a token maps to the client id it acts for.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../common/errors.ts';
import { ClientTokens } from '../../gateway/clients.ts';

const tokenA = 'a'.repeat(32);
const tokenB = 'B0-._~+/'.repeat(5) + '==';

test('a token maps to its client id; an unknown or near token to none', (t) => {
  const tokens = ClientTokens.parse(
    JSON.stringify({ [tokenA]: 'shop-a', [tokenB]: 'shop-b', ['c'.repeat(40)]: 'shop-a' }),
    'clients.json',
  );
  t.is(tokens.size, 3);
  t.is(tokens.clientIdOf(tokenA), 'shop-a');
  t.is(tokens.clientIdOf(tokenB), 'shop-b');
  t.is(tokens.clientIdOf('c'.repeat(40)), 'shop-a', 'two tokens may name one client');
  t.is(tokens.clientIdOf(`${tokenA}a`), undefined);
  t.is(tokens.clientIdOf(tokenA.slice(1)), undefined);
  t.is(tokens.clientIdOf(''), undefined);
});

test('a tokens file with bad content is a ConfigError naming the entry, not the token', (t) => {
  const cases: [string, RegExp][] = [
    ['not json', /not JSON/],
    ['[]', /must be a JSON object/],
    ['null', /must be a JSON object/],
    ['"token"', /must be a JSON object/],
    ['{}', /names no token/],
    [JSON.stringify({ short: 'shop-a' }), /token #1 must match/],
    [JSON.stringify({ [tokenA]: 'shop-a', [`${'d'.repeat(31)} `]: 'x' }), /token #2 must match/],
    [JSON.stringify({ [tokenA]: 'shop.eu' }), /client id of token #1/],
    [JSON.stringify({ [tokenA]: 'Shop' }), /client id of token #1/],
    [JSON.stringify({ [tokenA]: 7 }), /client id of token #1/],
    [JSON.stringify({ [tokenA]: '' }), /client id of token #1/],
  ];
  for (const [text, message] of cases) {
    const error = t.throws(() => ClientTokens.parse(text, 'clients.json'), {
      instanceOf: ConfigError,
    });
    t.regex(error.message, message, text);
    t.regex(error.message, /^clients\.json: /);
    t.false(error.message.includes('short'), 'the token is not echoed');
  }
});

test('a tokens file that cannot be read is a ConfigError; a good one loads', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-tokens-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => ClientTokens.load(join(dir, 'missing.json')), {
    instanceOf: ConfigError,
    message: /^--clients: cannot read /,
  });
  const file = join(dir, 'clients.json');
  writeFileSync(file, JSON.stringify({ [tokenA]: 'shop-a' }));
  t.is(ClientTokens.load(file).clientIdOf(tokenA), 'shop-a');
});
