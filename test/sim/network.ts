/**
 * The simulated network between the clients, the coordinator and the participants. It treats
 * every message the way core NATS may (REFERENCE.md): it loses it, duplicates it (the copy may
 * arrive much later: a replay), delays it past later messages, or drops it at a partition.
 *
 * Partitions and one-way cuts are links that come and go. A partition isolates a set of nodes from
 * the rest; a one-way cut drops messages in one direction only, so a request is delivered and its
 * reply lost (a commit applied, its acknowledgement never seen). Links are checked when a message
 * arrives, not when it leaves: a message in flight when a partition starts is lost.
 *
 * A server crash disconnects the nodes that were connected to that server: every message in flight
 * to or from them is lost, even one that would arrive after they reconnected, and until they do
 * they reach nobody, not even one another, nor the lease. What such a node publishes meanwhile
 * waits in the NATS client's reconnect buffer and goes out when it reconnects, or is lost with the
 * buffer (`common/nats.ts`). When JetStream is down, requests to the lease fail and messages flow.
 */
import type { Random } from './random.ts';
import type { NetworkParameters } from './swarm.ts';
import type { FaultKind, NodeName, Packet, SimEvent } from './world.ts';

/** The part of the world the network needs. */
export interface NetworkWorld {
  readonly now: number;
  schedule(at: number, event: SimEvent): void;
  count(kind: FaultKind): void;
  trace(node: string, what: string, detail?: unknown): void;
}

type Link =
  | { readonly kind: 'partition'; readonly isolated: ReadonlySet<NodeName> }
  | { readonly kind: 'cut'; readonly from: NodeName; readonly to: NodeName }
  | { readonly kind: 'server-down'; readonly nodes: ReadonlySet<NodeName>; readonly until: number }
  | { readonly kind: 'lease-store-down' };

/** The nodes of a server that crashed at `at`: what was in flight to or from them is lost. */
interface ServerCrash {
  readonly at: number;
  readonly nodes: ReadonlySet<NodeName>;
}

export class SimNetwork {
  readonly #world: NetworkWorld;
  readonly #rng: Random;
  #params: NetworkParameters;
  readonly #links = new Map<number, Link>();
  #nextLink = 1;
  /** Recent server crashes, oldest first, kept as long as a message may be in flight. */
  #crashes: ServerCrash[] = [];

  constructor(world: NetworkWorld, rng: Random, params: NetworkParameters) {
    this.#world = world;
    this.#rng = rng;
    this.#params = params;
  }

  send(packet: Packet): void {
    const params = this.#params;
    if (this.#rng.chance(params.lossRate)) {
      this.#world.count('message-lost');
      this.#world.trace(packet.from, 'lost', packet);
      return;
    }
    // Published while disconnected: out of the reconnect buffer once reconnected, or lost.
    const reconnectAt = this.#reconnectAt(packet.from);
    if (reconnectAt !== undefined && this.#rng.chance(0.5)) {
      this.#world.count('lost-in-server-crash');
      this.#world.trace(packet.from, 'lost with the reconnect buffer', packet);
      return;
    }
    const sentAt = reconnectAt ?? this.#world.now;
    this.#world.trace(packet.from, reconnectAt === undefined ? 'send' : 'buffer', packet);
    this.#deliverAt(packet, sentAt, sentAt + this.#delayMs());
    if (this.#rng.chance(params.duplicateRate)) {
      this.#world.count('message-duplicated');
      this.#deliverAt(
        packet,
        sentAt,
        sentAt + this.#rng.int(params.delayMsMin, params.replayMsMax),
      );
    }
  }

  /** Whether a server crashed under `from` or `to` while a message sent at `sentAt` was in flight. */
  lostInCrash(from: NodeName, to: NodeName, sentAt: number): boolean {
    return this.#crashes.some(
      (crash) => crash.at >= sentAt && (crash.nodes.has(from) || crash.nodes.has(to)),
    );
  }

  /** Whether a message from `from` reaches `to` right now. */
  connected(from: NodeName, to: NodeName): boolean {
    if (this.#links.size === 0) return true;
    for (const link of this.#links.values()) {
      if (link.kind === 'cut') {
        if (link.from === from && link.to === to) return false;
      } else if (link.kind === 'partition') {
        if (link.isolated.has(from) !== link.isolated.has(to)) return false;
      } else if (link.kind === 'server-down') {
        if (link.nodes.has(from) || link.nodes.has(to)) return false;
      }
    }
    return true;
  }

  /**
   * Whether a node's requests to the lease in JetStream KV are answered: the servers stand outside
   * every partition, with the clients, and a one-way cut is between two nodes, never a node and
   * the servers; a node of a crashed server reaches them once it reconnects.
   */
  reachesLease(node: NodeName): boolean {
    for (const link of this.#links.values()) {
      if (link.kind === 'lease-store-down') return false;
      if (link.kind === 'partition' && link.isolated.has(node)) return false;
      if (link.kind === 'server-down' && link.nodes.has(node)) return false;
    }
    return true;
  }

  partition(isolated: readonly NodeName[]): number {
    return this.#add({ kind: 'partition', isolated: new Set(isolated) });
  }

  cut(from: NodeName, to: NodeName): number {
    return this.#add({ kind: 'cut', from, to });
  }

  /** The server these nodes were connected to crashed; they reconnect to another at `until`. */
  serverDown(nodes: readonly NodeName[], until: number): number {
    const crashed = new Set(nodes);
    const { now } = this.#world;
    const params = this.#params;
    const inFlightMsMax = params.delayMsMax + params.delayedMsMax + params.replayMsMax;
    this.#crashes = this.#crashes.filter((crash) => crash.at >= now - inFlightMsMax);
    this.#crashes.push({ at: now, nodes: crashed });
    return this.#add({ kind: 'server-down', nodes: crashed, until });
  }

  leaseStoreDown(): number {
    return this.#add({ kind: 'lease-store-down' });
  }

  heal(link: number): void {
    if (this.#links.delete(link)) this.#world.trace('network', 'heal', `link ${link}`);
  }

  /** Ends the chaos: every link heals and no message is lost, duplicated or held back again. */
  calm(): void {
    this.#links.clear();
    this.#params = { ...this.#params, lossRate: 0, duplicateRate: 0, delayedRate: 0 };
  }

  #add(link: Link): number {
    const id = this.#nextLink;
    this.#nextLink += 1;
    this.#links.set(id, link);
    return id;
  }

  #delayMs(): number {
    const params = this.#params;
    let delayMs = this.#rng.int(params.delayMsMin, params.delayMsMax);
    if (this.#rng.chance(params.delayedRate)) {
      this.#world.count('message-delayed');
      delayMs += this.#rng.int(1, params.delayedMsMax);
    }
    return delayMs;
  }

  /** When a node disconnected by a server crash reconnects; undefined when it is connected. */
  #reconnectAt(node: NodeName): number | undefined {
    let at: number | undefined;
    for (const link of this.#links.values()) {
      if (link.kind === 'server-down' && link.nodes.has(node)) at = Math.max(at ?? 0, link.until);
    }
    return at;
  }

  #deliverAt(packet: Packet, sentAt: number, at: number): void {
    this.#world.schedule(at, { kind: 'deliver', packet, sentAt });
  }
}
