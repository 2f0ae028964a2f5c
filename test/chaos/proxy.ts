/**
 * A small TCP proxy on 127.0.0.1 between one service and one NATS node, so the chaos run can cut
 * or slow that link without netem (REFERENCE.md: inject latency and cuts in user space).
 *
 * Theory of operation. The proxy understands just enough of the NATS client protocol to cut the
 * byte stream at message boundaries: a control line ends with CRLF, and PUB, HPUB, MSG and HMSG
 * carry a payload whose size is the last field of that line. Faults act on whole protocol
 * messages, never on arbitrary bytes, so a lost message is a lost message and not a corrupt
 * stream that the server would close at once:
 *
 * - `delay`: every message is held for a delay (with jitter), in order.
 * - `drop`: each data message (PUB/HPUB towards NATS, MSG/HMSG towards the service) is lost with
 *   a probability; control messages (PING, PONG, SUB, INFO…) pass, so the connection stays up.
 * - `one-way`: every data message in one direction is lost, the other direction passes; PINGs
 *   still pass both ways, so neither side notices (a commit applied, its acknowledgement lost).
 * - `stall`: nothing moves in either direction; what arrives is held and delivered late when the
 *   stall ends (if the connection is still open), like a link that hangs and then recovers.
 * - `duplicate`: every message passes, and each data message is, with a probability, delivered a
 *   second time up to `lateMsMax` later, behind whatever passed meanwhile: a duplicate that may
 *   arrive after newer messages (a replay), as a sender re-sending or a network repeating itself
 *   would deliver it. The copy goes on the same connection; if that closes first, it is lost.
 * - `cut`: every connection is closed and new ones are closed as soon as they are accepted.
 *
 * The server's INFO lists the cluster's client URLs (`connect_urls`), and nats.js adds them to its
 * server pool: after a cut it would reconnect straight to a node, around the proxy. So INFO lines
 * are rewritten to list this service's proxies instead.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Rng } from './random.ts';

export type LinkDirection = 'to-nats' | 'from-nats';

export type LinkMode =
  | { readonly kind: 'pass' }
  | { readonly kind: 'delay'; readonly delayMs: number; readonly jitterMs: number }
  | { readonly kind: 'drop'; readonly probability: number }
  | { readonly kind: 'one-way'; readonly lose: LinkDirection }
  | { readonly kind: 'stall' }
  | { readonly kind: 'duplicate'; readonly probability: number; readonly lateMsMax: number }
  | { readonly kind: 'cut' };

export const passMode: LinkMode = { kind: 'pass' };

/** A control line longer than this is not NATS: the connection is closed. */
const controlLineBytesMax = 64 * 1024;
/** Bytes held (delayed or stalled) per direction of one connection before it is closed. */
const heldBytesMax = 16 * 1024 * 1024;
const dataOperations = new Set(['PUB', 'HPUB', 'MSG', 'HMSG']);

export class ProxyProtocolError extends Error {
  override readonly name = 'ProxyProtocolError';
}

export interface Frame {
  readonly bytes: Buffer;
  /** `data` carries an application message; `info` is the server's INFO; the rest is control. */
  readonly kind: 'data' | 'info' | 'control';
}

/** Splits one direction of a NATS connection into whole protocol messages. */
export class FrameReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: Frame[] = [];
    let start = 0;
    for (;;) {
      const end = this.#buffer.indexOf('\r\n', start);
      if (end < 0) {
        if (this.#buffer.length - start > controlLineBytesMax) {
          throw new ProxyProtocolError('control line over 64 KiB');
        }
        break;
      }
      const line = this.#buffer.toString('latin1', start, end);
      const space = line.indexOf(' ');
      const operation = (space < 0 ? line : line.slice(0, space)).toUpperCase();
      let next = end + 2;
      let kind: Frame['kind'] = operation === 'INFO' ? 'info' : 'control';
      if (dataOperations.has(operation)) {
        const size = Number(line.trimEnd().split(' ').at(-1));
        if (!Number.isSafeInteger(size) || size < 0) {
          throw new ProxyProtocolError(`bad payload size in ${JSON.stringify(line)}`);
        }
        next = end + 2 + size + 2;
        if (next > this.#buffer.length) break;
        kind = 'data';
      }
      frames.push({ bytes: this.#buffer.subarray(start, next), kind });
      start = next;
    }
    this.#buffer = this.#buffer.subarray(start);
    return frames;
  }
}

/**
 * Rewrites the `connect_urls` of an INFO line through `mapAddress` ("host:port" to "host:port",
 * or undefined to leave the address out).
 */
export function rewriteInfo(
  frame: Buffer,
  mapAddress: (address: string) => string | undefined,
): Buffer {
  const text = frame.toString('utf8').trimEnd();
  const json = text.slice(text.indexOf(' ') + 1);
  const info = JSON.parse(json) as Record<string, unknown>;
  const urls = info['connect_urls'];
  if (!Array.isArray(urls)) return frame;
  const mapped = urls
    .filter((url): url is string => typeof url === 'string')
    .map(mapAddress)
    .filter((url): url is string => url !== undefined);
  return Buffer.from(`INFO ${JSON.stringify({ ...info, connect_urls: mapped })}\r\n`, 'utf8');
}

interface Held {
  readonly bytes: Buffer;
  /** When it may leave; undefined while a stall holds it. */
  at: number | undefined;
}

/** One direction of one proxied connection: frames in, faults applied, bytes out in order. */
class Pipe {
  readonly #reader = new FrameReader();
  readonly #queue: Held[] = [];
  #heldBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #lastAt = 0;
  /** Copies waiting for their time (duplicate mode); cancelled when the connection closes. */
  readonly #copies = new Set<NodeJS.Timeout>();

  constructor(
    private readonly destination: Socket,
    private readonly direction: LinkDirection,
    private readonly link: LinkProxy,
    private readonly onBroken: (reason: string) => void,
  ) {}

  push(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.#reader.push(chunk);
    } catch (error) {
      this.onBroken(error instanceof Error ? error.message : String(error));
      return;
    }
    for (const frame of frames) this.#accept(frame);
    this.#pump();
  }

  #accept(frame: Frame): void {
    const mode = this.link.mode;
    if (frame.kind === 'data') {
      if (this.link.loses(this.direction, mode)) {
        this.link.counters.lost += 1;
        return;
      }
      const lateMs = this.link.copyLateMs(mode);
      if (lateMs !== undefined) this.#copyLater(frame.bytes, lateMs);
    }
    this.#enqueue(frame.kind === 'info' ? this.link.rewrite(frame.bytes) : frame.bytes);
  }

  /** A copy of a data message, sent `lateMs` from now behind what passed meanwhile. */
  #copyLater(bytes: Buffer, lateMs: number): void {
    this.link.counters.copied += 1;
    const timer = setTimeout(() => {
      this.#copies.delete(timer);
      this.#enqueue(bytes);
      this.#pump();
    }, lateMs);
    this.#copies.add(timer);
  }

  /** Queues whole messages in order, held as the link's mode says (a delay, a stall). */
  #enqueue(bytes: Buffer): void {
    const mode = this.link.mode;
    let at: number | undefined = Date.now();
    if (mode.kind === 'stall') at = undefined;
    else if (mode.kind === 'delay') {
      at += mode.delayMs + Math.floor(this.link.rng.next() * (mode.jitterMs + 1));
      // Jitter must not reorder a stream: TCP delivers in order, and so do we.
      at = Math.max(at, this.#lastAt);
    }
    if (at !== undefined) this.#lastAt = at;
    if (at !== undefined && this.#queue.length === 0) {
      if (at <= Date.now()) {
        this.#write(bytes);
        return;
      }
    }
    this.#queue.push({ bytes, at });
    this.#heldBytes += bytes.length;
    if (this.#heldBytes > heldBytesMax) this.onBroken('over 16 MiB held');
  }

  /** A stall ended or the mode changed: everything held may leave now, in order. */
  release(): void {
    const now = Date.now();
    for (const held of this.#queue) if (held.at === undefined || held.at > now) held.at = now;
    this.#lastAt = now;
    this.#pump();
  }

  #pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = Date.now();
    while (this.#queue.length > 0) {
      const head = this.#queue[0];
      if (head === undefined || head.at === undefined) return;
      if (head.at > now) {
        this.#timer = setTimeout(() => this.#pump(), head.at - now);
        return;
      }
      this.#queue.shift();
      this.#heldBytes -= head.bytes.length;
      this.#write(head.bytes);
    }
  }

  #write(bytes: Buffer): void {
    if (this.destination.destroyed) return;
    this.link.counters.bytes += bytes.length;
    this.destination.write(bytes);
    if (this.destination.writableLength > heldBytesMax) this.onBroken('peer not reading');
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#queue.length = 0;
    for (const copy of this.#copies) clearTimeout(copy);
    this.#copies.clear();
  }
}

interface Connection {
  readonly service: Socket;
  readonly nats: Socket;
  readonly toNats: Pipe;
  readonly fromNats: Pipe;
}

/** One listening proxy: 127.0.0.1:<port> in front of 127.0.0.1:<natsPort>. */
export class LinkProxy {
  /** `copied`: data messages to be delivered twice (duplicate mode), counted when copied. */
  readonly counters = { connections: 0, lost: 0, copied: 0, bytes: 0, refused: 0 };
  #mode: LinkMode = passMode;
  readonly #connections = new Set<Connection>();
  #addressMap: ReadonlyMap<string, string> = new Map();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly natsPort: number,
    readonly rng: Rng,
  ) {}

  static async open(natsPort: number, rng: Rng): Promise<LinkProxy> {
    const server = createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        if (address === null || typeof address === 'string') {
          reject(new Error('proxy: expected a TCP address'));
          return;
        }
        resolve(address.port);
      });
    });
    const proxy = new LinkProxy(server, port, natsPort, rng);
    server.on('connection', (socket) => proxy.#accept(socket));
    return proxy;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get mode(): LinkMode {
    return this.#mode;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Node addresses ("127.0.0.1:<natsPort>") to proxy addresses, for INFO rewriting. */
  setAddressMap(map: ReadonlyMap<string, string>): void {
    this.#addressMap = map;
  }

  setMode(mode: LinkMode): void {
    this.#mode = mode;
    if (mode.kind === 'cut') {
      for (const connection of [...this.#connections]) this.#drop(connection);
      return;
    }
    if (mode.kind !== 'stall') {
      for (const connection of this.#connections) {
        connection.toNats.release();
        connection.fromNats.release();
      }
    }
  }

  loses(direction: LinkDirection, mode: LinkMode): boolean {
    if (mode.kind === 'one-way') return mode.lose === direction;
    if (mode.kind === 'drop') return this.rng.next() < mode.probability;
    return false;
  }

  /** In duplicate mode, when a data message is copied: how much later its copy leaves. */
  copyLateMs(mode: LinkMode): number | undefined {
    if (mode.kind !== 'duplicate' || this.rng.next() >= mode.probability) return undefined;
    return Math.floor(this.rng.next() * (mode.lateMsMax + 1));
  }

  rewrite(info: Buffer): Buffer {
    try {
      return rewriteInfo(info, (address) => this.#addressMap.get(address));
    } catch {
      return info;
    }
  }

  #accept(service: Socket): void {
    if (this.#mode.kind === 'cut') {
      this.counters.refused += 1;
      service.destroy();
      return;
    }
    this.counters.connections += 1;
    service.setNoDelay(true);
    const nats = connect({ host: '127.0.0.1', port: this.natsPort });
    nats.setNoDelay(true);
    const broken = (): void => this.#drop(connection);
    const connection: Connection = {
      service,
      nats,
      toNats: new Pipe(nats, 'to-nats', this, broken),
      fromNats: new Pipe(service, 'from-nats', this, broken),
    };
    this.#connections.add(connection);
    service.on('data', (chunk: Buffer) => connection.toNats.push(chunk));
    nats.on('data', (chunk: Buffer) => connection.fromNats.push(chunk));
    for (const socket of [service, nats]) {
      socket.on('error', broken);
      socket.on('close', broken);
    }
  }

  #drop(connection: Connection): void {
    if (!this.#connections.delete(connection)) return;
    connection.toNats.close();
    connection.fromNats.close();
    connection.service.destroy();
    connection.nats.destroy();
  }

  async close(): Promise<void> {
    for (const connection of [...this.#connections]) this.#drop(connection);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
    });
  }
}

/** Every proxy of one service, one per NATS node: the service's whole link to NATS. */
export class ServiceLink {
  private constructor(
    readonly service: string,
    readonly proxies: readonly LinkProxy[],
  ) {}

  static async open(service: string, natsPorts: readonly number[], rng: Rng): Promise<ServiceLink> {
    const proxies: LinkProxy[] = [];
    for (const port of natsPorts) proxies.push(await LinkProxy.open(port, rng));
    const map = new Map(
      proxies.map((proxy) => [`127.0.0.1:${proxy.natsPort}`, `127.0.0.1:${proxy.port}`] as const),
    );
    for (const proxy of proxies) proxy.setAddressMap(map);
    return new ServiceLink(service, proxies);
  }

  /** The `--nats` value that makes the service connect through its proxies only. */
  get natsFlag(): string {
    return this.proxies.map((proxy) => proxy.url).join(',');
  }

  get mode(): LinkMode {
    return this.proxies[0]?.mode ?? passMode;
  }

  setMode(mode: LinkMode): void {
    for (const proxy of this.proxies) proxy.setMode(mode);
  }

  /** Data messages lost and copied on this link so far, over all its proxies. */
  get damage(): { readonly lost: number; readonly copied: number } {
    let lost = 0;
    let copied = 0;
    for (const { counters } of this.proxies) {
      lost += counters.lost;
      copied += counters.copied;
    }
    return { lost, copied };
  }

  async close(): Promise<void> {
    await Promise.all(this.proxies.map((proxy) => proxy.close()));
  }
}

/** A short text for history lines and the report, e.g. `delay 120±40 ms`. */
export function describeMode(mode: LinkMode): string {
  switch (mode.kind) {
    case 'pass':
      return 'pass';
    case 'delay':
      return `delay ${mode.delayMs}±${mode.jitterMs} ms`;
    case 'drop':
      return `drop ${Math.round(mode.probability * 100)}%`;
    case 'one-way':
      return `one-way, losing ${mode.lose}`;
    case 'stall':
      return 'stall';
    case 'duplicate':
      return `duplicate ${Math.round(mode.probability * 100)}%, up to ${mode.lateMsMax} ms late`;
    case 'cut':
      return 'cut';
  }
}
