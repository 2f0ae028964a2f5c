/** What the NATS servers' monitoring endpoints say about the connections of a stack. */
import type { NatsServerHandle } from '../../ops/nats-server.ts';

/** Messages the NATS servers delivered to each participant's connection, by connection name. */
export async function deliveredToParticipants(
  nodes: readonly NatsServerHandle[],
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const node of nodes) {
    if (!node.isRunning()) continue;
    const response = await fetch(`http://127.0.0.1:${node.httpPort}/connz?limit=1000`);
    const body = (await response.json()) as { connections: { name?: string; out_msgs: number }[] };
    for (const connection of body.connections) {
      const name = connection.name ?? '';
      if (/^continuum-(bank|vendor|customer)$/.test(name)) {
        counts[name] = (counts[name] ?? 0) + connection.out_msgs;
      }
    }
  }
  return counts;
}
