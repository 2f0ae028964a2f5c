/**
 * The gateway's API tokens: a JSON file mapping each bearer token to the client id it acts for,
 * `{ "<token>": "<client id>", … }`. With it, `Authorization: Bearer <token>` decides the client
 * id of an HTTP request, and so the subject the gateway publishes on; several tokens may name one
 * client (to rotate them). The file is checked as a whole at start-up: any bad entry stops the
 * gateway with a ConfigError naming it, before it listens.
 *
 * Tokens are kept only as SHA-256 digests and looked up by digest, so the lookup's timing depends
 * on the digest of what was sent, not on how much of a real token it matches.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../common/errors.ts';
import { clientIdPattern } from '../common/protocol.ts';

/**
 * RFC 6750's `b64token`, at least 32 characters: long enough for 128 random bits or more in hex or
 * base64 (e.g. `openssl rand -hex 32`).
 */
export const tokenPattern = /^[A-Za-z0-9._~+/-]{32,256}=*$/;
/** Entries in one file at most: the file is read whole at start-up. */
export const clientTokenCountMax = 100_000;

export class ClientTokens {
  readonly #clientIdByDigest: ReadonlyMap<string, string>;

  private constructor(clientIdByDigest: ReadonlyMap<string, string>) {
    this.#clientIdByDigest = clientIdByDigest;
  }

  /** Checks every entry; ConfigError naming the file and the entry on the first bad one. */
  static parse(text: string, source: string): ClientTokens {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`${source}: not JSON (${(error as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new ConfigError(`${source}: must be a JSON object of token -> client id`);
    }
    const entries = Object.entries(value);
    if (entries.length === 0) throw new ConfigError(`${source}: names no token`);
    if (entries.length > clientTokenCountMax) {
      throw new ConfigError(`${source}: more than ${clientTokenCountMax} tokens`);
    }
    const byDigest = new Map<string, string>();
    entries.forEach(([token, clientId], index) => {
      // Never echo a token into a log: name the entry by its position.
      if (!tokenPattern.test(token)) {
        throw new ConfigError(`${source}: token #${index + 1} must match ${String(tokenPattern)}`);
      }
      if (typeof clientId !== 'string' || !clientIdPattern.test(clientId)) {
        throw new ConfigError(
          `${source}: the client id of token #${index + 1} must match ${String(clientIdPattern)}`,
        );
      }
      byDigest.set(digestOf(token), clientId);
    });
    return new ClientTokens(byDigest);
  }

  /** Reads and checks a tokens file; ConfigError if it cannot be read or holds a bad entry. */
  static load(file: string): ClientTokens {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`--clients: cannot read ${file}: ${(error as Error).message}`);
    }
    return ClientTokens.parse(text, file);
  }

  get size(): number {
    return this.#clientIdByDigest.size;
  }

  /** The client id a token acts for, or undefined for a token the file does not hold. */
  clientIdOf(token: string): string | undefined {
    return this.#clientIdByDigest.get(digestOf(token));
  }
}

function digestOf(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
