// The page's protobuf codec and gRPC-Web framing, checked against prost:
// decodes each message file the Rust test wrote with prost (by its type),
// encodes it again, and reads frames cut at every possible place.
//
// usage: node codec_check.mjs DESCRIPTORS DIR TYPE...   (DIR/<TYPE>.bin)
// Prints one JSON object: {decoded: {TYPE: obj}, reencoded: {TYPE: hex},
// frames: {messages, cuts}}.
import fs from 'node:fs';
import { Registry } from '../../coworkd/ui/pb.js';
import { Frames } from '../../coworkd/ui/grpc.js';

const [descriptors, dir, ...types] = process.argv.slice(2);
const reg = Registry.fromDescriptorSet(new Uint8Array(fs.readFileSync(descriptors)));
const out = { decoded: {}, reencoded: {}, frames: {} };
const hex = (b) => Buffer.from(b).toString('hex');
const bodies = [];
for (const t of types) {
  const bytes = new Uint8Array(fs.readFileSync(`${dir}/${t}.bin`));
  const msg = reg.decode(t, bytes);
  out.decoded[t] = msg;
  out.reencoded[t] = hex(reg.encode(t, msg));
  bodies.push(bytes);
}

// Every message as a frame, then a trailer frame; fed in two pieces cut at
// every byte, then a byte at a time: the same frames must come out.
const frame = (flag, b) => {
  const f = new Uint8Array(5 + b.length);
  f[0] = flag;
  new DataView(f.buffer).setUint32(1, b.length);
  f.set(b, 5);
  return f;
};
const parts = [...bodies.map((b) => frame(0, b)), frame(0x80, new TextEncoder().encode('grpc-status:0\r\n'))];
const wire = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
parts.reduce((at, p) => { wire.set(p, at); return at + p.length; }, 0);
const read = (chunks) => {
  const f = new Frames();
  const got = [];
  for (const c of chunks) {
    f.push(c);
    for (let h = f.peekHeader(); h && f.length >= 5 + h.len; h = f.peekHeader()) {
      f.take(5);
      got.push([h.flag, hex(f.take(h.len))]);
    }
  }
  return JSON.stringify(got) + (f.length ? `+${f.length}` : '');
};
const want = read([wire]);
let cuts = 0;
for (let i = 0; i <= wire.length; i++) {
  if (read([wire.subarray(0, i), wire.subarray(i)]) !== want) throw new Error(`cut at ${i} read differently`);
  cuts++;
}
if (read([...wire].map((b) => Uint8Array.of(b))) !== want) throw new Error('byte-at-a-time read differently');
out.frames = { messages: JSON.parse(want).length, cuts, bytes: wire.length };
console.log(JSON.stringify(out));
