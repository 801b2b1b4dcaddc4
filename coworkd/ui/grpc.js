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

// gRPC-Web's mapping of an HTTP status with no gRPC status to a code.
function codeOfHttp(status) {
  switch (status) {
    case 400: return 13; // INTERNAL
    case 401: return 16; // UNAUTHENTICATED
    case 403: return 7; // PERMISSION_DENIED
    case 404: return 12; // UNIMPLEMENTED
    case 429: case 502: case 503: case 504: return 14; // UNAVAILABLE
    default: return 2; // UNKNOWN
  }
}

// Bytes arriving in chunks, read as frames without copying the whole
// buffer at every chunk.
export class Frames {
  constructor() { this.chunks = []; this.length = 0; }
  push(bytes) { this.chunks.push(bytes); this.length += bytes.length; }
  // The first `n` bytes, removed.
  take(n) {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - filled);
      out.set(c.subarray(0, k), filled);
      filled += k;
      if (k === c.length) this.chunks.shift(); else this.chunks[0] = c.subarray(k);
    }
    this.length -= n;
    return out;
  }
  // The next frame's flag and length, if its header has arrived.
  peekHeader() {
    if (this.length < 5) return null;
    const head = this.take(5);
    this.chunks.unshift(head);
    this.length += 5;
    return { flag: head[0], len: new DataView(head.buffer).getUint32(1) };
  }
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
  // A client of the services in `registry`, sending the page's `key`.
  constructor(registry, key) { this.reg = registry; this.key = key || ''; }

  // The client of the services described at /descriptors.pb.
  static async load(key) {
    const res = await fetch('/descriptors.pb');
    if (!res.ok) throw new Error(`cannot load the service descriptions: HTTP ${res.status}`);
    return new Client(Registry.fromDescriptorSet(new Uint8Array(await res.arrayBuffer())), key);
  }

  // Every message of a call (`/pkg.Service/Method`), as it arrives.
  // `onHeaders` sees the response headers (`cowork-trace-id`).
  async *stream(path, request = {}, { signal, onHeaders } = {}) {
    const m = this.reg.method(path);
    const res = await fetch(path, {
      method: 'POST',
      headers: {
        'content-type': 'application/grpc-web+proto',
        'x-grpc-web': '1',
        'x-cowork-ui-key': this.key,
      },
      body: frame(this.reg.encode(m.input, request)),
      signal,
      credentials: 'same-origin',
    });
    if (!res.ok) {
      throw new CallError(codeOfHttp(res.status), (await res.text()) || `HTTP ${res.status}`, res.status);
    }
    if (onHeaders) onHeaders(res.headers);
    const early = statusOf((k) => res.headers.get(k));
    if (early && early.code !== 0) throw new CallError(early.code, early.message);
    const reader = res.body.getReader();
    const frames = new Frames();
    let status = early;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (value) frames.push(value);
        for (let h = frames.peekHeader(); h && frames.length >= 5 + h.len; h = frames.peekHeader()) {
          frames.take(5);
          const body = frames.take(h.len);
          if (h.flag & 0x80) {
            const t = parseTrailers(new TextDecoder().decode(body));
            status = statusOf((k) => t[k]);
          } else {
            yield this.reg.decode(m.output, body);
          }
        }
        if (done) break;
      }
    } finally {
      // A caller that stops early (or throws) frees the connection: a
      // browser has six per host.
      reader.cancel().catch(() => {});
    }
    if (frames.length > 0) throw new CallError(13, `the stream ended inside a message (${frames.length} bytes left)`);
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
