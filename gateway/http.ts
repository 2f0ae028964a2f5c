/**
 * The HTTP front door: `POST /payments` and `GET /payments/{key}`, following the IETF draft "The
 * Idempotency-Key HTTP Header Field". It is a thin translation onto the coordinator's NATS
 * subjects — the same requests a NATS client sends, scoped by the same client id — so a payment
 * started over HTTP can be resumed over NATS and the other way round.
 *
 * Who is calling. With a tokens file (`clients`), `Authorization: Bearer <token>` decides the
 * client id, and a `Continuum-Client-Id` header, if sent, must name the same client. Without one,
 * the header is trusted as sent: for development only, or behind a proxy that authenticates.
 * Either way the gateway publishes on that client's own subjects.
 *
 * | situation                                   | status |
 * |---------------------------------------------|--------|
 * | definitive outcome (committed or aborted)   | 200, `Idempotent-Replayed: true` on a replay |
 * | no Idempotency-Key, bad key, bad body        | 400 |
 * | no bearer token, or one the file lacks       | 401 with WWW-Authenticate |
 * | a client id header naming another client     | 403 |
 * | key reused with a different body             | 422 |
 * | the same key still being decided             | 409 with Retry-After |
 * | body over 64 KiB                             | 413 |
 * | coordinator overloaded or unreachable        | 503 with Retry-After: outcome unknown, retry |
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ValidationError, type ErrorCode } from '../common/errors.ts';
import { isNoResponders, permissionViolationOf, type NatsConnection } from '../common/nats.ts';
import { Requester } from '../common/requester.ts';
import {
  clientIdPattern,
  decodePayReply,
  decodeStatusReply,
  encodeMessage,
  idempotencyKeyPattern,
  messageBytesMax,
  paymentTimeoutMsMax,
  paymentTimeoutMsMin,
  readPayment,
  subjects,
  type PayReply,
} from '../common/protocol.ts';
import type { ClientTokens } from './clients.ts';

export interface GatewayOptions {
  readonly nats: NatsConnection;
  /** How long one HTTP request waits for the payment's outcome before answering 409. */
  readonly waitMs: number;
  /**
   * API tokens and the client each acts for. Without them the client id header is trusted as
   * sent, which is for development only (or behind a proxy that authenticates and sets it).
   */
  readonly clients?: ClientTokens;
}

/** The options, and the request/reply the gateway asks the coordinator with. */
interface Gateway extends GatewayOptions {
  readonly requests: Requester;
}

/** The header that names the calling client; with API tokens it must agree with the token. */
export const clientIdHeader = 'continuum-client-id';

class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(status: number, message: string, headers: Readonly<Record<string, string>> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

export function createGateway(options: GatewayOptions): Server {
  const gateway: Gateway = { ...options, requests: new Requester(options.nats) };
  return createServer((request, response) => {
    handle(gateway, request)
      .then(({ status, body, headers }) => send(response, status, body, headers))
      .catch((error: unknown) => {
        if (error instanceof HttpError) {
          send(response, error.status, problem(error.status, error.message), error.headers);
        } else if (error instanceof ValidationError) {
          const status = error.code === 'payload-too-large' ? 413 : 400;
          send(response, status, problem(status, error.message));
        } else {
          send(response, 500, problem(500, 'internal error'));
        }
      });
  });
}

interface Answer {
  readonly status: number;
  readonly body: object;
  readonly headers?: Readonly<Record<string, string>>;
}

async function handle(options: Gateway, request: IncomingMessage): Promise<Answer> {
  const url = new URL(request.url ?? '/', 'http://gateway');
  if (url.pathname === '/payments') {
    if (request.method !== 'POST') throw new HttpError(405, 'use POST', { allow: 'POST' });
    return pay(options, request);
  }
  const match = /^\/payments\/([^/]+)$/.exec(url.pathname);
  if (match?.[1] !== undefined) {
    if (request.method !== 'GET') throw new HttpError(405, 'use GET', { allow: 'GET' });
    return status(options, clientIdOf(options, request), decodeURIComponent(match[1]));
  }
  throw new HttpError(404, 'no such resource; try POST /payments or GET /payments/{key}');
}

async function pay(options: Gateway, request: IncomingMessage): Promise<Answer> {
  const clientId = clientIdOf(options, request);
  const idempotencyKey = idempotencyKeyOf(request);
  const body = await readJson(request);
  const payment = readPayment(body['payment'] ?? body);
  const timeoutMs = body['timeoutMs'];
  if (
    timeoutMs !== undefined &&
    (typeof timeoutMs !== 'number' ||
      !Number.isSafeInteger(timeoutMs) ||
      timeoutMs < paymentTimeoutMsMin ||
      timeoutMs > paymentTimeoutMsMax)
  ) {
    throw new ValidationError('timeoutMs', `must be an integer from 100 to ${paymentTimeoutMsMax}`);
  }
  const message = {
    v: 1,
    kind: 'pay',
    clientId,
    idempotencyKey,
    payment,
    waitMs: options.waitMs,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  };
  const reply = await ask(options, subjects.clientPay(clientId), message, decodePayReply);
  return answerOf(reply);
}

function answerOf(reply: PayReply): Answer {
  switch (reply.kind) {
    case 'outcome':
      return {
        status: 200,
        body: reply,
        headers: reply.replay ? { 'idempotent-replayed': 'true' } : {},
      };
    case 'in-progress': {
      const retryAfter = String(Math.max(1, Math.ceil(reply.retryAfterMs / 1000)));
      return { status: 409, body: reply, headers: { 'retry-after': retryAfter } };
    }
    case 'error': {
      if (reply.code === 'overloaded') throw unavailable(reply.message);
      throw new HttpError(errorStatus[reply.code], `${reply.code}: ${reply.message}`);
    }
  }
}

const errorStatus: Readonly<Record<ErrorCode, number>> = {
  'invalid-request': 400,
  'key-mismatch': 422,
  'payload-too-large': 413,
  'not-found': 404,
  overloaded: 503,
  'stale-epoch': 503,
  unavailable: 503,
  internal: 500,
};

async function status(options: Gateway, clientId: string, idempotencyKey: string): Promise<Answer> {
  if (!idempotencyKeyPattern.test(idempotencyKey)) {
    throw new HttpError(400, `the key must match ${String(idempotencyKeyPattern)}`);
  }
  const query = { v: 1, kind: 'status', clientId, idempotencyKey };
  const subject = subjects.clientStatus(clientId);
  const reply = await ask(options, subject, query, decodeStatusReply);
  if (reply.kind === 'error') throw new HttpError(400, `${reply.code}: ${reply.message}`);
  if (reply.state === 'unknown') throw new HttpError(404, `no payment with key ${idempotencyKey}`);
  return { status: 200, body: reply };
}

/** One NATS request. Not retried here: the HTTP client retries with the same key. */
async function ask<T>(
  options: Gateway,
  subject: string,
  message: object,
  decode: (bytes: Uint8Array) => T,
): Promise<T> {
  try {
    const reply = await options.requests.request(
      subject,
      encodeMessage(message),
      options.waitMs + 1_000,
    );
    return decode(reply.data);
  } catch (error) {
    if (error instanceof ValidationError) throw new HttpError(502, 'bad reply from coordinator');
    const violation = permissionViolationOf(error);
    if (violation !== undefined) {
      // The gateway's own NATS user lacks a permission: a deployment error, not the caller's.
      const { operation, subject: refused } = violation;
      throw new HttpError(500, `the gateway's NATS user may not ${operation} to ${refused}`);
    }
    const reason = isNoResponders(error) ? 'no coordinator is reachable' : 'no answer in time';
    throw unavailable(`${reason}; the outcome is unknown: retry with the same Idempotency-Key`);
  }
}

function unavailable(message: string): HttpError {
  return new HttpError(503, message, { 'retry-after': '1' });
}

/** Who is calling: decided by the bearer token when the gateway has tokens, else the header. */
function clientIdOf(options: Gateway, request: IncomingMessage): string {
  const named = request.headers[clientIdHeader];
  if (options.clients === undefined) {
    if (typeof named !== 'string' || !clientIdPattern.test(named)) {
      throw new HttpError(400, `the ${clientIdHeader} header must name the client`);
    }
    return named;
  }
  const token = /^Bearer +(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
  if (token === undefined) {
    throw new HttpError(401, 'an Authorization: Bearer <token> header is required', {
      'www-authenticate': 'Bearer realm="continuum"',
    });
  }
  const clientId = options.clients.clientIdOf(token);
  if (clientId === undefined) {
    throw new HttpError(401, 'the bearer token is not valid', {
      'www-authenticate': 'Bearer realm="continuum", error="invalid_token"',
    });
  }
  if (named !== undefined && named !== clientId) {
    throw new HttpError(
      403,
      `the ${clientIdHeader} header names a client this token may not act for`,
    );
  }
  return clientId;
}

/** The key as the draft writes it (a quoted Structured Field string), or bare. */
function idempotencyKeyOf(request: IncomingMessage): string {
  const raw = request.headers['idempotency-key'];
  if (raw === undefined) throw new HttpError(400, 'the Idempotency-Key header is required');
  const value = typeof raw === 'string' ? raw.trim() : '';
  const key = /^"(.*)"$/.exec(value)?.[1] ?? value;
  if (!idempotencyKeyPattern.test(key)) {
    throw new HttpError(400, `the Idempotency-Key must match ${String(idempotencyKeyPattern)}`);
  }
  return key;
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).byteLength;
    if (size > messageBytesMax) throw new HttpError(413, `body over ${messageBytesMax} bytes`);
    chunks.push(chunk as Buffer);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body must be JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'the body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

function problem(status: number, detail: string): object {
  return { type: 'about:blank', status, title: statusTitles[status] ?? 'Error', detail };
}

const statusTitles: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

function send(
  response: ServerResponse,
  status: number,
  body: object,
  headers: Readonly<Record<string, string>> = {},
): void {
  const type = status >= 400 ? 'application/problem+json' : 'application/json';
  response.writeHead(status, { 'content-type': type, ...headers });
  response.end(JSON.stringify(body));
}
