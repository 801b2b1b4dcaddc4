// Protobuf's wire format, driven by the descriptor set coworkd serves at
// /descriptors.pb (the one gRPC reflection serves): every message is
// spelled here exactly as in the .proto files, with no generated code.
//
// Decoded messages are plain objects keyed by the proto field names
// (snake_case). Scalars absent on the wire read as their proto3 default;
// enums read as their value names; 64-bit integers as Numbers (exact up to
// 2^53, enough for milliseconds, microseconds and counts).

const T = {
  DOUBLE: 1, FLOAT: 2, INT64: 3, UINT64: 4, INT32: 5, FIXED64: 6, FIXED32: 7,
  BOOL: 8, STRING: 9, GROUP: 10, MESSAGE: 11, BYTES: 12, UINT32: 13, ENUM: 14,
  SFIXED32: 15, SFIXED64: 16, SINT32: 17, SINT64: 18,
};
const REPEATED = 3;

const utf8 = new TextDecoder();
const utf8enc = new TextEncoder();

class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.p = 0;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  done() { return this.p >= this.b.length; }
  // An unsigned varint as [lo, hi] 32-bit halves.
  varint() {
    let lo = 0, hi = 0, shift = 0, byte;
    do {
      if (this.p >= this.b.length) throw new Error('truncated varint');
      byte = this.b[this.p++];
      if (shift < 28) lo |= (byte & 0x7f) << shift;
      else if (shift === 28) { lo |= (byte & 0x0f) << 28; hi |= (byte & 0x7f) >> 4; }
      else hi |= (byte & 0x7f) << (shift - 32);
      shift += 7;
    } while (byte & 0x80);
    return [lo >>> 0, hi >>> 0];
  }
  uint32() { return this.varint()[0]; }
  bytes() {
    const n = this.uint32();
    if (this.p + n > this.b.length) throw new Error('truncated field');
    const out = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return out;
  }
  skip(wire) {
    switch (wire) {
      case 0: this.varint(); break;
      case 1: this.p += 8; break;
      case 2: this.bytes(); break;
      case 5: this.p += 4; break;
      default: throw new Error(`unsupported wire type ${wire}`);
    }
  }
}

const u64 = ([lo, hi]) => hi * 4294967296 + lo;
const i64 = ([lo, hi]) => (hi & 0x80000000 ? -(((~hi >>> 0) * 4294967296) + ((~lo >>> 0) + 1)) : u64([lo, hi]));

function scalar(r, type) {
  switch (type) {
    case T.DOUBLE: { const v = r.dv.getFloat64(r.p, true); r.p += 8; return v; }
    case T.FLOAT: { const v = r.dv.getFloat32(r.p, true); r.p += 4; return v; }
    case T.INT64: return i64(r.varint());
    case T.UINT64: return u64(r.varint());
    case T.INT32: return r.varint()[0] | 0;
    case T.UINT32: return r.varint()[0];
    case T.BOOL: return r.varint()[0] !== 0;
    case T.ENUM: return r.varint()[0] | 0;
    case T.SINT32: { const v = r.varint()[0]; return (v >>> 1) ^ -(v & 1); }
    case T.SINT64: {
      const [lo, hi] = r.varint();
      const n = (BigInt(hi) << 32n) | BigInt(lo);
      return Number((n >> 1n) ^ -(n & 1n));
    }
    case T.FIXED32: { const v = r.dv.getUint32(r.p, true); r.p += 4; return v; }
    case T.SFIXED32: { const v = r.dv.getInt32(r.p, true); r.p += 4; return v; }
    case T.FIXED64: { const v = Number(r.dv.getBigUint64(r.p, true)); r.p += 8; return v; }
    case T.SFIXED64: { const v = Number(r.dv.getBigInt64(r.p, true)); r.p += 8; return v; }
    default: throw new Error(`unsupported type ${type}`);
  }
}

const packable = (t) => t !== T.STRING && t !== T.BYTES && t !== T.MESSAGE && t !== T.GROUP;

class Writer {
  constructor() { this.parts = []; this.len = 0; }
  push(bytes) { this.parts.push(bytes); this.len += bytes.length; }
  varint(v) {
    let x = BigInt.asUintN(64, BigInt(v));
    const out = [];
    while (x > 0x7fn) { out.push(Number(x & 0x7fn) | 0x80); x >>= 7n; }
    out.push(Number(x));
    this.push(Uint8Array.from(out));
  }
  tag(num, wire) { this.varint((num << 3) | wire); }
  fixed(size, set) {
    const b = new Uint8Array(size);
    set(new DataView(b.buffer));
    this.push(b);
  }
  lenDelimited(bytes) { this.varint(bytes.length); this.push(bytes); }
  finish() {
    const out = new Uint8Array(this.len);
    let p = 0;
    for (const b of this.parts) { out.set(b, p); p += b.length; }
    return out;
  }
}

function wireOf(type) {
  switch (type) {
    case T.DOUBLE: case T.FIXED64: case T.SFIXED64: return 1;
    case T.FLOAT: case T.FIXED32: case T.SFIXED32: return 5;
    case T.STRING: case T.BYTES: case T.MESSAGE: return 2;
    default: return 0;
  }
}

// Messages, enums and services of a descriptor set, by full name
// (`cowork.chat.v1.ChatChunk`, no leading dot).
export class Registry {
  constructor() {
    this.messages = new Map();
    this.enums = new Map();
    this.services = new Map();
  }

  // A registry of every file in an encoded FileDescriptorSet.
  static fromDescriptorSet(bytes) {
    const reg = new Registry();
    BOOT.messages.forEach((v, k) => reg.messages.set(k, v));
    const set = BOOT.decode('google.protobuf.FileDescriptorSet', bytes);
    for (const f of set.file) {
      const pkg = f.package ? `${f.package}.` : '';
      for (const e of f.enum_type) reg.addEnum(pkg + e.name, e);
      for (const m of f.message_type) reg.addMessage(pkg + m.name, m);
      for (const s of f.service) {
        const methods = new Map();
        for (const m of s.method) {
          methods.set(m.name, {
            input: m.input_type.replace(/^\./, ''),
            output: m.output_type.replace(/^\./, ''),
            serverStreaming: m.server_streaming,
            clientStreaming: m.client_streaming,
          });
        }
        reg.services.set(pkg + s.name, methods);
      }
    }
    return reg;
  }

  addEnum(name, e) {
    const byNumber = new Map(), byName = new Map();
    for (const v of e.value) { byNumber.set(v.number, v.name); byName.set(v.name, v.number); }
    this.enums.set(name, { byNumber, byName });
  }

  addMessage(name, m) {
    for (const e of m.enum_type) this.addEnum(`${name}.${e.name}`, e);
    for (const n of m.nested_type) this.addMessage(`${name}.${n.name}`, n);
    const fields = new Map();
    for (const f of m.field) {
      fields.set(f.number, {
        name: f.name,
        number: f.number,
        type: f.type,
        repeated: f.label === REPEATED,
        typeName: (f.type_name || '').replace(/^\./, ''),
        // In a oneof (a real one, or proto3 `optional`): no default.
        presence: f.oneof_index !== undefined && f.oneof_index !== null || f.proto3_optional,
      });
    }
    const mapEntry = !!(m.options && m.options.map_entry);
    this.messages.set(name, { name, fields, mapEntry });
  }

  method(path) {
    const [svc, name] = path.replace(/^\//, '').split('/');
    const m = this.services.get(svc) && this.services.get(svc).get(name);
    if (!m) throw new Error(`no method ${path} in the descriptors`);
    return m;
  }

  decode(type, bytes) {
    const msg = this.messages.get(type);
    if (!msg) throw new Error(`unknown message ${type}`);
    const out = {};
    for (const f of msg.fields.values()) {
      // A map is a prototype-less object: a key "__proto__" is just a key.
      if (f.repeated) out[f.name] = this.isMap(f) ? Object.create(null) : [];
      else if (!f.presence && f.type !== T.MESSAGE) out[f.name] = this.defaultOf(f);
    }
    const r = new Reader(bytes);
    while (!r.done()) {
      const key = r.uint32();
      const num = key >>> 3, wire = key & 7;
      const f = msg.fields.get(num);
      if (!f) { r.skip(wire); continue; }
      if (f.repeated && wire === 2 && packable(f.type)) {
        const sub = new Reader(r.bytes());
        while (!sub.done()) out[f.name].push(this.readValue(sub, f));
        continue;
      }
      const v = this.readValue(r, f);
      if (this.isMap(f)) out[f.name][v.key] = v.value;
      else if (f.repeated) out[f.name].push(v);
      else out[f.name] = v;
    }
    return out;
  }

  isMap(f) {
    if (f.type !== T.MESSAGE || !f.repeated) return false;
    const m = this.messages.get(f.typeName);
    return !!(m && m.mapEntry);
  }

  defaultOf(f) {
    switch (f.type) {
      case T.STRING: return '';
      case T.BYTES: return new Uint8Array(0);
      case T.BOOL: return false;
      case T.ENUM: return this.enumName(f.typeName, 0);
      default: return 0;
    }
  }

  enumName(type, n) {
    const e = this.enums.get(type);
    return (e && e.byNumber.get(n)) || n;
  }

  readValue(r, f) {
    switch (f.type) {
      case T.STRING: return utf8.decode(r.bytes());
      case T.BYTES: return r.bytes().slice();
      case T.MESSAGE: return this.decode(f.typeName, r.bytes());
      case T.ENUM: return this.enumName(f.typeName, scalar(r, f.type));
      default: return scalar(r, f.type);
    }
  }

  encode(type, obj) {
    const msg = this.messages.get(type);
    if (!msg) throw new Error(`unknown message ${type}`);
    const w = new Writer();
    // A misspelt field would be dropped without a word: say so instead.
    for (const k of Object.keys(obj || {})) {
      if (![...msg.fields.values()].some((f) => f.name === k)) throw new Error(`${type} has no field ${k}`);
    }
    for (const f of msg.fields.values()) {
      const v = obj ? obj[f.name] : undefined;
      if (v === undefined || v === null) continue;
      if (this.isMap(f)) {
        const keyField = this.messages.get(f.typeName).fields.get(1);
        for (const [k, val] of Object.entries(v)) {
          // Object keys are strings: back to the key's own type.
          const key = keyField.type === T.BOOL ? k === 'true' : keyField.type === T.STRING ? k : BigInt(k);
          w.tag(f.number, 2);
          w.lenDelimited(this.encode(f.typeName, { key, value: val }));
        }
      } else if (f.repeated) {
        for (const x of v) this.writeValue(w, f, x);
      } else if (f.presence || !isDefault(v)) {
        this.writeValue(w, f, v);
      }
    }
    return w.finish();
  }

  writeValue(w, f, v) {
    w.tag(f.number, wireOf(f.type));
    switch (f.type) {
      case T.STRING: w.lenDelimited(utf8enc.encode(String(v))); break;
      case T.BYTES: w.lenDelimited(v); break;
      case T.MESSAGE: w.lenDelimited(this.encode(f.typeName, v)); break;
      case T.BOOL: w.varint(v ? 1 : 0); break;
      case T.ENUM: {
        const e = this.enums.get(f.typeName);
        w.varint(typeof v === 'string' ? (e && e.byName.get(v)) || 0 : v);
        break;
      }
      case T.SINT32: case T.SINT64: {
        const n = BigInt(v);
        w.varint((n << 1n) ^ (n < 0n ? -1n : 0n));
        break;
      }
      case T.DOUBLE: w.fixed(8, (d) => d.setFloat64(0, v, true)); break;
      case T.FLOAT: w.fixed(4, (d) => d.setFloat32(0, v, true)); break;
      case T.FIXED32: w.fixed(4, (d) => d.setUint32(0, v, true)); break;
      case T.SFIXED32: w.fixed(4, (d) => d.setInt32(0, v, true)); break;
      case T.FIXED64: w.fixed(8, (d) => d.setBigUint64(0, BigInt(v), true)); break;
      case T.SFIXED64: w.fixed(8, (d) => d.setBigInt64(0, BigInt(v), true)); break;
      default: w.varint(v);
    }
  }
}

function isDefault(v) {
  return v === '' || v === 0 || v === false || (v instanceof Uint8Array && v.length === 0);
}

// The few messages of google/protobuf/descriptor.proto it takes to read a
// descriptor set (field numbers from that file).
const BOOT = new Registry();
const f = (name, number, type, typeName = '', repeated = false) =>
  ({ name, number, type, typeName, repeated, presence: false });
const boot = (name, fields, extra = {}) => BOOT.messages.set(name, {
  name, fields: new Map(fields.map((x) => [x.number, x])), mapEntry: false, ...extra,
});
const G = 'google.protobuf.';
boot(`${G}FileDescriptorSet`, [f('file', 1, T.MESSAGE, `${G}FileDescriptorProto`, true)]);
boot(`${G}FileDescriptorProto`, [
  f('name', 1, T.STRING), f('package', 2, T.STRING),
  f('message_type', 4, T.MESSAGE, `${G}DescriptorProto`, true),
  f('enum_type', 5, T.MESSAGE, `${G}EnumDescriptorProto`, true),
  f('service', 6, T.MESSAGE, `${G}ServiceDescriptorProto`, true),
]);
boot(`${G}DescriptorProto`, [
  f('name', 1, T.STRING),
  f('field', 2, T.MESSAGE, `${G}FieldDescriptorProto`, true),
  f('nested_type', 3, T.MESSAGE, `${G}DescriptorProto`, true),
  f('enum_type', 4, T.MESSAGE, `${G}EnumDescriptorProto`, true),
  f('options', 7, T.MESSAGE, `${G}MessageOptions`),
]);
boot(`${G}MessageOptions`, [f('map_entry', 7, T.BOOL)]);
boot(`${G}FieldDescriptorProto`, [
  f('name', 1, T.STRING), f('number', 3, T.INT32), f('label', 4, T.INT32),
  f('type', 5, T.INT32), f('type_name', 6, T.STRING),
  { ...f('oneof_index', 9, T.INT32), presence: true },
  f('proto3_optional', 17, T.BOOL),
]);
boot(`${G}EnumDescriptorProto`, [
  f('name', 1, T.STRING), f('value', 2, T.MESSAGE, `${G}EnumValueDescriptorProto`, true),
]);
boot(`${G}EnumValueDescriptorProto`, [f('name', 1, T.STRING), f('number', 2, T.INT32)]);
boot(`${G}ServiceDescriptorProto`, [
  f('name', 1, T.STRING), f('method', 2, T.MESSAGE, `${G}MethodDescriptorProto`, true),
]);
boot(`${G}MethodDescriptorProto`, [
  f('name', 1, T.STRING), f('input_type', 2, T.STRING), f('output_type', 3, T.STRING),
  f('client_streaming', 5, T.BOOL), f('server_streaming', 6, T.BOOL),
]);
