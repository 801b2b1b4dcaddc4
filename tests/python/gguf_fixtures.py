"""Independent GGUF ground truth for tests/tests/gguf.rs, from the `gguf`
PyPI package (llama.cpp's own Python GGUF code).

  gguf_fixtures.py write DIR     write GGUF files with GGUFWriter: several
                                 architectures, with and without a sliding
                                 window, every value type and nested arrays,
                                 v3 little- and big-endian, and a v2 copy
  gguf_fixtures.py read FILE...  read each with GGUFReader

Both print JSON: per file, the version, tensor count, every key/value
(arrays as lists) and the KV-cache estimate computed here from the
metadata, independently of the Rust code (bytes per token and for 4096
tokens)."""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFWriter, GGUFValueType, GGUFEndian


def kv_estimate(kv, ctx=4096):
    arch = kv["general.architecture"]
    g = lambda k: kv.get(f"{arch}.{k}")
    layers = g("block_count")
    heads = g("attention.head_count")
    kv_heads = g("attention.head_count_kv")
    if kv_heads is None:
        kv_heads = heads
    if isinstance(kv_heads, list):
        total = sum(kv_heads)
    else:
        total = kv_heads * layers
    head_max = max(heads) if isinstance(heads, list) else heads
    k = g("attention.key_length") or g("embedding_length") // head_max
    v = g("attention.value_length") or k
    per_token = total * (k + v) * 2
    sw = g("attention.sliding_window")
    ctx = min(ctx, g("context_length"))
    if sw:
        cache = (ctx * per_token + min(sw, ctx) * per_token) // 2
    else:
        cache = ctx * per_token
    return {"per_token": per_token, "ctx": ctx, "cache": cache}


def read(path):
    r = GGUFReader(path)
    kv = {}
    version = None
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            if name == "GGUF.version":
                version = int(f.parts[f.data[0]][0])
            continue
        val = f.contents()
        if isinstance(val, bytes):
            val = val.decode()
        if hasattr(val, "tolist"):
            val = val.tolist()
        kv[name] = val
    return {
        "version": version,
        "big_endian": r.byte_order == "S",
        "tensor_count": len(r.tensors),
        "kv": kv,
        "kv_estimate": kv_estimate(kv),
    }


ARCHS = [
    # (file, arch, block_count, heads, kv_heads, key, value, emb, ctx, sliding)
    ("llama.gguf", "llama", 32, 32, 8, 128, 128, 4096, 8192, None),
    ("gemma3.gguf", "gemma3", 18, 4, 1, 256, 256, 640, 32768, 512),
    ("qwen2.gguf", "qwen2", 28, 16, 2, None, None, 1536, 32768, None),
]


def write(d):
    os.makedirs(d, exist_ok=True)
    out = []
    for name, arch, blocks, heads, kvh, k, v, emb, ctx, sw in ARCHS:
        for endian in (GGUFEndian.LITTLE, GGUFEndian.BIG):
            fname = name if endian == GGUFEndian.LITTLE else name.replace(".gguf", "-be.gguf")
            path = os.path.join(d, fname)
            w = GGUFWriter(path, arch, endianess=endian)
            w.add_block_count(blocks)
            w.add_head_count(heads)
            w.add_head_count_kv(kvh)
            if k:
                w.add_key_length(k)
                w.add_value_length(v)
            w.add_embedding_length(emb)
            w.add_context_length(ctx)
            if sw:
                w.add_sliding_window(sw)
            # Every value type, and arrays (of strings, of numbers, nested).
            w.add_uint8("test.u8", 200)
            w.add_int8("test.i8", -100)
            w.add_uint16("test.u16", 60000)
            w.add_int16("test.i16", -30000)
            w.add_uint32("test.u32", 4_000_000_000)
            w.add_int32("test.i32", -2_000_000_000)
            w.add_float32("test.f32", 0.5)
            w.add_bool("test.bool", True)
            w.add_string("test.str", "héllo · 世界")
            w.add_uint64("test.u64", 2**63 + 5)
            w.add_int64("test.i64", -(2**62))
            w.add_float64("test.f64", 2.25)
            w.add_array("test.strs", ["a", "ß", ""])
            w.add_array("test.ints", [1, 2, 3])
            w.add_array("test.nested", [[1, 2], [3]])
            w.add_tensor("t0", np.zeros((4, 4), dtype=np.float32))
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            out.append(path)
    # GGUF v2 has v3's layout (v3 added big-endian files): the same bytes
    # with version 2.
    src = os.path.join(d, "llama.gguf")
    v2 = os.path.join(d, "llama-v2.gguf")
    data = bytearray(open(src, "rb").read())
    data[4:8] = (2).to_bytes(4, "little")
    open(v2, "wb").write(data)
    out.append(v2)
    return out


if __name__ == "__main__":
    if sys.argv[1] == "write":
        files = write(sys.argv[2])
    else:
        files = sys.argv[2:]
    print(json.dumps({f: read(f) for f in files}))
