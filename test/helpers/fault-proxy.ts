/**
 * Fault injection between a storage driver and a real server, on loopback:
 * - an HTTP proxy (S3, Azure) that can answer the next requests with a status of our
 *   choosing (503 then success, 403 AccessDenied), reset connections, stall an upload
 *   after N bytes of request body (stop reading, never answer), or drop a connection
 *   after N bytes of an answer's body (a download broken in the middle);
 * - a TCP proxy (SFTP) that can stall every connection after N bytes from the client, or
 *   freeze altogether (a hung server: connections accepted, nothing answered).
 * Everything else is forwarded unchanged (Host header included: SigV4 signs it).
 */
import http from 'node:http';
import net from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';

export interface CannedResponse {
  status: number;
  body?: string;
  headers?: Record<string, string>;
}

type Rule =
  | { kind: 'respond'; match: (req: http.IncomingMessage) => boolean; response: CannedResponse; remaining: number }
  | { kind: 'reset'; match: (req: http.IncomingMessage) => boolean; remaining: number }
  | { kind: 'stall'; match: (req: http.IncomingMessage) => boolean; afterBytes: number; remaining: number }
  | { kind: 'cut'; match: (req: http.IncomingMessage) => boolean; afterBytes: number; remaining: number };

export interface HttpFaultProxy {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  port: number;
  /** Requests seen, as "METHOD path?query". */
  readonly requests: string[];
  /** The headers of each request in `requests`, at the same index. */
  readonly headers: http.IncomingHttpHeaders[];
  /** The next `count` matching requests get `response` instead of reaching the server. */
  respond(count: number, response: CannedResponse, match?: (req: http.IncomingMessage) => boolean): void;
  /** The next `count` matching requests have their connection destroyed (ECONNRESET at the client). */
  reset(count: number, match?: (req: http.IncomingMessage) => boolean): void;
  /** The next `count` matching requests: forward `afterBytes` of the body, then stop reading and never answer. */
  stall(count: number, afterBytes: number, match?: (req: http.IncomingMessage) => boolean): void;
  /** The next `count` matching requests: forward the answer's head and `afterBytes` of its body, then destroy the connection. */
  cut(count: number, afterBytes: number, match?: (req: http.IncomingMessage) => boolean): void;
  /** Drops every pending rule. */
  clear(): void;
  close(): Promise<void>;
}

const any = () => true;

export async function startHttpFaultProxy(target: { host: string; port: number }): Promise<HttpFaultProxy> {
  let rules: Rule[] = [];
  const requests: string[] = [];
  const headers: http.IncomingHttpHeaders[] = [];
  const sockets = new Set<net.Socket>();
  const stalled: Array<() => void> = [];

  const take = (req: http.IncomingMessage): Rule | null => {
    const rule = rules.find((candidate) => candidate.remaining > 0 && candidate.match(req));
    if (!rule) return null;
    rule.remaining -= 1;
    return rule;
  };

  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    headers.push(req.headers);
    const rule = take(req);
    if (rule?.kind === 'respond') {
      req.resume();
      req.once('end', () => {
        res.writeHead(rule.response.status, { 'content-type': 'application/xml', ...rule.response.headers });
        res.end(rule.response.body ?? '');
      });
      return;
    }
    if (rule?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    const upstream = http.request(
      { host: target.host, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        if (rule?.kind !== 'cut') {
          answer.pipe(res);
          return;
        }
        let sent = 0;
        answer.on('data', (chunk: Buffer) => {
          const room = rule.afterBytes - sent;
          if (room <= 0) return;
          sent += Math.min(room, chunk.length);
          res.write(chunk.subarray(0, room), () => {
            if (sent >= rule.afterBytes) {
              res.socket?.destroy();
              answer.destroy();
            }
          });
        });
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    if (rule?.kind === 'stall') {
      let passed = 0;
      const gate = new Transform({
        transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
          const room = rule.afterBytes - passed;
          if (room > 0) {
            passed += Math.min(room, chunk.length);
            this.push(chunk.subarray(0, room));
          }
          if (passed >= rule.afterBytes) {
            // Never call back: the request stops being read, the client's socket fills up.
            stalled.push(() => callback());
            return;
          }
          callback();
        },
      });
      req.pipe(gate).pipe(upstream);
      return;
    }
    req.pipe(upstream);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    requests,
    headers,
    respond: (count, response, match = any) => rules.push({ kind: 'respond', match, response, remaining: count }),
    reset: (count, match = any) => rules.push({ kind: 'reset', match, remaining: count }),
    stall: (count, afterBytes, match = any) => rules.push({ kind: 'stall', match, afterBytes, remaining: count }),
    cut: (count, afterBytes, match = any) => rules.push({ kind: 'cut', match, afterBytes, remaining: count }),
    clear: () => {
      rules = [];
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      stalled.length = 0;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface TcpFaultProxy {
  port: number;
  /** New connections stall (nothing forwarded either way) after `afterBytes` from the client. null: never. */
  stallAfter(afterBytes: number | null): void;
  /** Destroys every open connection (the client sees ECONNRESET or a close). */
  resetAll(): void;
  /**
   * A hung server: from now on nothing is forwarded either way on any connection, and new
   * connections are accepted but never answered (as a SIGSTOPped server's kernel does).
   */
  freeze(): void;
  /** Ends a freeze: the frozen connections are destroyed, new ones are forwarded again. */
  thaw(): void;
  close(): Promise<void>;
}

export async function startTcpFaultProxy(target: { host: string; port: number }): Promise<TcpFaultProxy> {
  let stallAfter: number | null = null;
  let frozenAll = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (frozenAll) {
      // Accepted, never answered: the client's handshake waits.
      sockets.add(client);
      client.pause();
      client.on('error', () => client.destroy());
      client.on('close', () => sockets.delete(client));
      return;
    }
    const upstream = net.connect({ host: target.host, port: target.port });
    sockets.add(client);
    sockets.add(upstream);
    const limit = stallAfter;
    let passed = 0;
    let frozen = false;
    client.on('data', (chunk: Buffer) => {
      if (frozen || frozenAll) return;
      if (limit !== null && passed + chunk.length > limit) {
        upstream.write(chunk.subarray(0, Math.max(0, limit - passed)));
        frozen = true;
        client.pause(); // stop reading: the client's writes back up
        upstream.pause();
        return;
      }
      passed += chunk.length;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!frozen && !frozenAll) client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', () => {
      sockets.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    stallAfter: (bytes) => {
      stallAfter = bytes;
    },
    resetAll: () => {
      for (const socket of sockets) socket.destroy();
    },
    freeze: () => {
      frozenAll = true;
      for (const socket of sockets) socket.pause(); // stop reading: the client's writes back up
    },
    thaw: () => {
      frozenAll = false;
      for (const socket of sockets) socket.destroy();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
