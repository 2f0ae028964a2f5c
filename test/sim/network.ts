/**
 * The simulated network between the clients, the coordinator and the participants. It treats
 * every message the way core NATS may (REFERENCE.md): it loses it, duplicates it (the copy may
 * arrive much later: a replay), delays it past later messages, or drops it at a partition.
 *
 * Partitions and one-way cuts are links that come and go. A partition isolates a set of nodes from
 * the rest; a one-way cut drops messages in one direction only, so a request is delivered and its
 * reply lost (a commit applied, its acknowledgement never seen). Links are checked when a message
 * arrives, not when it leaves: a message in flight when a partition starts is lost.
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
  | { readonly kind: 'cut'; readonly from: NodeName; readonly to: NodeName };

export class SimNetwork {
  readonly #world: NetworkWorld;
  readonly #rng: Random;
  #params: NetworkParameters;
  readonly #links = new Map<number, Link>();
  #nextLink = 1;

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
    this.#world.trace(packet.from, 'send', packet);
    this.#deliverAfter(packet, this.#delayMs());
    if (this.#rng.chance(params.duplicateRate)) {
      this.#world.count('message-duplicated');
      this.#deliverAfter(packet, this.#rng.int(params.delayMsMin, params.replayMsMax));
    }
  }

  /** Whether a message from `from` reaches `to` right now. */
  connected(from: NodeName, to: NodeName): boolean {
    if (this.#links.size === 0) return true;
    for (const link of this.#links.values()) {
      if (link.kind === 'cut') {
        if (link.from === from && link.to === to) return false;
      } else if (link.isolated.has(from) !== link.isolated.has(to)) {
        return false;
      }
    }
    return true;
  }

  /**
   * Whether a node reaches the NATS servers themselves, where the lease lives (JetStream KV): the
   * servers stand outside every partition, with the clients, and a one-way cut is between two
   * nodes, never a node and the servers.
   */
  reachesServers(node: NodeName): boolean {
    for (const link of this.#links.values()) {
      if (link.kind === 'partition' && link.isolated.has(node)) return false;
    }
    return true;
  }

  partition(isolated: readonly NodeName[]): number {
    return this.#add({ kind: 'partition', isolated: new Set(isolated) });
  }

  cut(from: NodeName, to: NodeName): number {
    return this.#add({ kind: 'cut', from, to });
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

  #deliverAfter(packet: Packet, delayMs: number): void {
    this.#world.schedule(this.#world.now + delayMs, { kind: 'deliver', packet });
  }
}
