/**
 * The wire between simulated processes: every packet is encoded as the real shells encode it
 * (`encodeMessage`, JSON; PREPAREs, decisions and status answers stamped with the epoch) and
 * decoded with the decoder the real receiver uses (`common/protocol.ts`), so the simulated
 * machines only ever see what would have survived the trip. A packet the real receiver's decoder
 * refuses is a bug of ours, not a fault of the network: `WireError`, which the simulator reports.
 */
import {
  decodeParticipantMessage,
  decodeParticipantReply,
  decodePayReply,
  decodePayRequest,
  decodeStatusReply,
  decodeStatusRequest,
  encodeMessage,
} from '../../common/protocol.ts';
import { errorText } from '../../common/log.ts';
import type { StatusQuery } from '../../coordinator/core/types.ts';
import type { Packet, ReplyBody, RequestBody } from './world.ts';

export class WireError extends Error {
  override readonly name = 'WireError';
}

/** The packet as its receiver decodes it. */
export function throughWire(packet: Packet): Packet {
  try {
    return packet.type === 'request'
      ? { ...packet, body: requestThroughWire(packet.body) }
      : { ...packet, body: replyThroughWire(packet.body) };
  } catch (error) {
    throw new WireError(
      `${packet.from} -> ${packet.to}: ${packet.body.kind} ${packet.type} refused by its decoder: ` +
        errorText(error),
    );
  }
}

function requestThroughWire(body: RequestBody): RequestBody {
  switch (body.kind) {
    case 'pay':
      return { kind: 'pay', request: decodePayRequest(encodeMessage(body.request)) };
    case 'status':
      return { kind: 'status', query: statusQueryThroughWire(body.query) };
    case 'participant': {
      const { epoch, ...message } = decodeParticipantMessage(
        encodeMessage({ ...body.message, epoch: body.epoch }),
      );
      return { kind: 'participant', message, epoch };
    }
  }
}

/**
 * A status question travels as `{v, kind: 'status', …}`. A client asks on its own subject, from
 * which the real coordinator takes the client id of a question by transaction id; a key's
 * question carries it in the message.
 */
function statusQueryThroughWire(query: StatusQuery): StatusQuery {
  const decoded = decodeStatusRequest(encodeMessage({ v: 1, kind: 'status', ...query }));
  if ('txId' in decoded) {
    const clientId = 'clientId' in query ? query.clientId : undefined;
    return clientId === undefined ? { txId: decoded.txId } : { txId: decoded.txId, clientId };
  }
  return { clientId: decoded.clientId, idempotencyKey: decoded.idempotencyKey };
}

function replyThroughWire(body: ReplyBody): ReplyBody {
  switch (body.kind) {
    case 'pay':
      return { kind: 'pay', reply: decodePayReply(encodeMessage(body.reply)) };
    case 'status': {
      const decoded = decodeStatusReply(encodeMessage({ ...body.reply, epoch: body.epoch }));
      if (decoded.kind === 'error') throw new Error(`a status answer became ${decoded.code}`);
      const { epoch, ...reply } = decoded;
      return { kind: 'status', reply, epoch };
    }
    case 'participant':
      return { kind: 'participant', reply: decodeParticipantReply(encodeMessage(body.reply)) };
    case 'no-responders':
      return body;
  }
}
