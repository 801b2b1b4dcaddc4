// gRPC-Web (binary, `application/grpc-web+proto`) over fetch: the page
// calls the same services as coworkctl, through coworkd's UI port. The
// cookie travels by itself (same origin); a stream's messages arrive as
// they are sent (a ReadableStream), its status in the trailer frame.

import { Registry } from './pb.js';

// A call that ended with a gRPC status other than OK, or an HTTP refusal
// (401 when not signed in, 403 for another origin).
export class CallError extends Error {
  constructor(code, message, httpStatus = 200) {
    super(message || `gRPC status ${code}`);
    this.code = code;
    this.httpStatus = httpStatus;
  }
}

// gRPC status names, for messages a person reads.
const CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED',
  'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL',
  'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
export const codeName = (c) => CODES[c] || String(c);

function frame(bytes) {
  const out = new Uint8Array(5 + bytes.length);
  new DataView(out.buffer).setUint32(1, bytes.length);
  out.set(bytes, 5);
  return out;
}

function parseTrailers(text) {
  const t = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) t[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return t;
}

function statusOf(get) {
  const s = get('grpc-status');
  if (s === null || s === undefined) return null;
  let msg = get('grpc-message') || '';
  try { msg = decodeURIComponent(msg); } catch (_) { /* as sent */ }
  return { code: Number(s), message: msg };
}

export class Client {
  constructor(registry) { this.reg = registry; }

  // The client of the services described at /descriptors.pb.
  static async load() {
    const res = await fetch('/descriptors.pb');
    if (!res.ok) throw new Error(`cannot load the service descriptions: HTTP ${res.status}`);
    return new Client(Registry.fromDescriptorSet(new Uint8Array(await res.arrayBuffer())));
  }

  // Every message of a call (`/pkg.Service/Method`), as it arrives.
  // `onHeaders` sees the response headers (`cowork-trace-id`).
  async *stream(path, request = {}, { signal, onHeaders } = {}) {
    const m = this.reg.method(path);
    const res = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
      body: frame(this.reg.encode(m.input, request)),
      signal,
      credentials: 'same-origin',
    });
    if (!res.ok) {
      throw new CallError(16, (await res.text()) || `HTTP ${res.status}`, res.status);
    }
    if (onHeaders) onHeaders(res.headers);
    const early = statusOf((k) => res.headers.get(k));
    if (early && early.code !== 0) throw new CallError(early.code, early.message);
    const reader = res.body.getReader();
    let buf = new Uint8Array(0);
    let status = early;
    for (;;) {
      const { value, done } = await reader.read();
      if (value) {
        const joined = new Uint8Array(buf.length + value.length);
        joined.set(buf);
        joined.set(value, buf.length);
        buf = joined;
      }
      while (buf.length >= 5) {
        const len = new DataView(buf.buffer, buf.byteOffset).getUint32(1);
        if (buf.length < 5 + len) break;
        const flag = buf[0];
        const body = buf.subarray(5, 5 + len);
        buf = buf.slice(5 + len);
        if (flag & 0x80) {
          const t = parseTrailers(new TextDecoder().decode(body));
          status = statusOf((k) => t[k]);
        } else {
          yield this.reg.decode(m.output, body);
        }
      }
      if (done) break;
    }
    if (!status) throw new CallError(13, 'the call ended without a status');
    if (status.code !== 0) throw new CallError(status.code, status.message);
  }

  // A unary call's one response.
  async call(path, request = {}, opts = {}) {
    let last;
    for await (const m of this.stream(path, request, opts)) last = m;
    if (last === undefined) throw new CallError(13, 'no response message');
    return last;
  }
}
