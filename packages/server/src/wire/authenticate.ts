import type { ClientChannel } from "./handshake.js";
import {
  authenticationCleartextPassword,
  authenticationOk,
  authenticationSasl,
  authenticationSaslContinue,
  authenticationSaslFinal,
  ClientError,
  type MessageReader,
  ProtocolError,
} from "./messages.js";
import { passwordMatches, ScramError, ScramExchange, type ScramVerifier } from "./scram.js";

const SCRAM = "SCRAM-SHA-256";
const SCRAM_PLUS = "SCRAM-SHA-256-PLUS";

/**
 * The authentication stage. Returns what the client is told once its backend is
 * ready (AuthenticationSASLFinal and AuthenticationOk, sent in one write with
 * the backend's parameters), or throws a ClientError.
 *
 * - TCP and TLS: SCRAM-SHA-256, and over TLS also SCRAM-SHA-256-PLUS with
 *   `tls-server-end-point` channel binding (offered first, as Postgres does).
 * - WebSocket: a cleartext password, as Neon's proxy asks for on its WebSocket:
 *   Neon's driver pipelines the start-up message and the password without
 *   waiting (`pipelineConnect: "password"`), and the WebSocket is the encrypted
 *   channel (wss:// to ccpd behind TLS; ws:// only on localhost). The password
 *   is checked against the same SCRAM verifier.
 */
export async function authenticate(channel: ClientChannel, reader: MessageReader, verifier: ScramVerifier, user: string): Promise<Buffer[]> {
  const failed = new ClientError({ severity: "FATAL", code: "28P01", message: `password authentication failed for user "${user}"` });
  if (channel.transport === "websocket") {
    channel.stream.write(authenticationCleartextPassword());
    const m = await reader.readMessage();
    if (m.type !== "p") throw new ProtocolError(`expected password response, got message type "${m.type}"`);
    const nul = m.body.indexOf(0);
    if (!(await passwordMatches(verifier, m.body.subarray(0, nul < 0 ? m.body.length : nul).toString("utf8")))) throw failed;
    return [authenticationOk()];
  }

  const binding = channel.channelBinding;
  channel.stream.write(authenticationSasl(binding ? [SCRAM_PLUS, SCRAM] : [SCRAM]));
  const initial = await reader.readMessage();
  if (initial.type !== "p") throw new ProtocolError(`expected SASL response, got message type "${initial.type}"`);
  // Without a NUL the whole body is taken as the mechanism's name: an unknown mechanism (28000).
  const nul = initial.body.indexOf(0) < 0 ? initial.body.length : initial.body.indexOf(0);
  const mechanism = initial.body.subarray(0, nul).toString("utf8");
  if (mechanism !== SCRAM && !(mechanism === SCRAM_PLUS && binding)) {
    throw new ClientError({
      severity: "FATAL",
      code: "28000",
      message: `SASL mechanism ${mechanism} is not supported on this connection`,
      hint: binding ? `Use ${SCRAM_PLUS} or ${SCRAM}.` : `Use ${SCRAM} (${SCRAM_PLUS} needs TLS).`,
    });
  }
  if (nul + 5 > initial.body.length) throw new ProtocolError("malformed SASLInitialResponse");
  const length = initial.body.readInt32BE(nul + 1);
  const exchange = new ScramExchange(verifier, { plus: mechanism === SCRAM_PLUS, binding });
  try {
    channel.stream.write(authenticationSaslContinue(exchange.first(initial.body.subarray(nul + 5, nul + 5 + Math.max(0, length)).toString("utf8"))));
    const response = await reader.readMessage();
    if (response.type !== "p") throw new ProtocolError(`expected SASL response, got message type "${response.type}"`);
    return [authenticationSaslFinal(exchange.final(response.body.toString("utf8"))), authenticationOk()];
  } catch (err) {
    if (err instanceof ScramError) {
      throw err.protocol ? new ClientError({ severity: "FATAL", code: "08P01", message: err.message }) : failed;
    }
    throw err;
  }
}
