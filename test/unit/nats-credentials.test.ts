/** How a service finds its NATS login in its environment (common/nats.ts). */
import test from 'ava';
import { ConfigError } from '../../common/errors.ts';
import { natsCredentialsFromEnvironment } from '../../common/nats.ts';

test('user and password, or a token, or nothing', (t) => {
  t.deepEqual(
    natsCredentialsFromEnvironment({ CONTINUUM_NATS_USER: 'u', CONTINUUM_NATS_PASSWORD: 'p' }),
    { user: 'u', password: 'p' },
  );
  t.deepEqual(natsCredentialsFromEnvironment({ CONTINUUM_NATS_TOKEN: 'tok' }), { token: 'tok' });
  t.is(natsCredentialsFromEnvironment({}), undefined);
  t.is(
    natsCredentialsFromEnvironment({ CONTINUUM_NATS_USER: '', CONTINUUM_NATS_TOKEN: '' }),
    undefined,
  );
});

test('half a login, or both kinds, is a ConfigError', (t) => {
  for (const env of [
    { CONTINUUM_NATS_USER: 'u' },
    { CONTINUUM_NATS_PASSWORD: 'p' },
    { CONTINUUM_NATS_TOKEN: 'tok', CONTINUUM_NATS_USER: 'u' },
    { CONTINUUM_NATS_TOKEN: 'tok', CONTINUUM_NATS_USER: 'u', CONTINUUM_NATS_PASSWORD: 'p' },
  ]) {
    t.throws(() => natsCredentialsFromEnvironment(env), { instanceOf: ConfigError });
  }
});
