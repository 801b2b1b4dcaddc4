//! Will a model fit? The KV-cache estimate from GGUF metadata and the
//! RED/YELLOW/GREEN verdict of seed 003 "Model Lifecycle" (and Jan's
//! discrete-GPU variant, seed 000 §2). Pure: the caller brings the
//! metadata, the file size and the machine's memory.

use super::gguf::{Metadata, Value};

/// Memory kept back for the OS and Cowork's own processes (seed 003: about
/// 3 GB — 2 GB OS baseline, 1 GB for the suite).
pub const RESERVE_BYTES: u64 = 3 * 1024 * 1024 * 1024;
/// Above this share of usable memory the verdict is YELLOW.
pub const YELLOW_SHARE: f64 = 0.8;
/// Bytes per cached key or value element (f16).
pub const KV_ELEMENT_BYTES: u64 = 2;

/// What the KV estimate needs from a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// `general.architecture`.
    pub architecture: String,
    /// Layers (`{arch}.block_count`).
    pub layers: u64,
    /// KV heads summed over layers (`head_count_kv`, per layer when it is
    /// an array, else × layers; falls back to `head_count`).
    pub kv_heads_total: u64,
    /// Key dimension per head (`attention.key_length`, else embedding
    /// length / head count).
    pub key_length: u64,
    /// Value dimension per head (likewise).
    pub value_length: u64,
    /// The model's maximum context (`{arch}.context_length`).
    pub context_length: u64,
    /// `attention.sliding_window`, if the model has one.
    pub sliding_window: Option<u64>,
}

impl Shape {
    /// Read the shape from metadata; names the first key it cannot find.
    pub fn from_metadata(m: &Metadata) -> Result<Self, String> {
        let arch = m
            .architecture()
            .ok_or("general.architecture is missing")?
            .to_owned();
        let need = |suffix: &str| {
            m.arch_u64(suffix)
                .ok_or_else(|| format!("{arch}.{suffix} is missing"))
        };
        let layers = need("block_count")?;
        let heads = |key: &str| -> Option<(u64, Option<u64>)> {
            // (total over layers, per-layer value when uniform)
            match m.get(&format!("{arch}.{key}"))? {
                Value::Array(per_layer) => {
                    let v: Option<Vec<u64>> = per_layer.iter().map(Value::as_u64).collect();
                    let v = v?;
                    Some((v.iter().sum(), v.iter().copied().max()))
                }
                v => v.as_u64().map(|h| (h.saturating_mul(layers), Some(h))),
            }
        };
        let (head_total, head_max) = heads("attention.head_count")
            .ok_or_else(|| format!("{arch}.attention.head_count is missing"))?;
        let kv_heads_total = heads("attention.head_count_kv")
            .map(|(t, _)| t)
            .unwrap_or(head_total);
        let per_head = || -> Result<u64, String> {
            let e = need("embedding_length")?;
            match head_max {
                Some(h) if h > 0 => Ok(e / h),
                _ => Err(format!("{arch}.attention.head_count is 0")),
            }
        };
        let key_length = match m.arch_u64("attention.key_length") {
            Some(k) => k,
            None => per_head()?,
        };
        let value_length = match m.arch_u64("attention.value_length") {
            Some(v) => v,
            None => key_length,
        };
        Ok(Shape {
            layers,
            kv_heads_total,
            key_length,
            value_length,
            context_length: need("context_length")?,
            sliding_window: m.arch_u64("attention.sliding_window").filter(|w| *w > 0),
            architecture: arch,
        })
    }

    /// KV bytes per token: layers × KV heads × (key + value dims) × 2.
    pub fn kv_per_token(&self) -> u64 {
        self.kv_heads_total
            .saturating_mul(self.key_length.saturating_add(self.value_length))
            .saturating_mul(KV_ELEMENT_BYTES)
    }

    /// KV cache for `ctx` tokens; with a sliding window, half full context
    /// and half window (Jan's rule), the window capped at the context.
    pub fn kv_cache(&self, ctx: u64) -> u64 {
        let per = self.kv_per_token();
        match self.sliding_window {
            Some(w) => (ctx.saturating_mul(per) + w.min(ctx).saturating_mul(per)) / 2,
            None => ctx.saturating_mul(per),
        }
    }
}

/// The machine's memory, as the fit check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Total RAM.
    pub total_ram: u64,
    /// Dedicated VRAM of a discrete GPU, when known (None: unified memory
    /// or no GPU).
    pub vram: Option<u64>,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fits with room: run it locally.
    Green,
    /// Fits, but tightly (or only across RAM and VRAM): may be slow.
    Yellow,
    /// Does not fit: cloud only.
    Red,
}

impl Level {
    /// "GREEN", "YELLOW" or "RED".
    pub fn name(self) -> &'static str {
        match self {
            Level::Green => "GREEN",
            Level::Yellow => "YELLOW",
            Level::Red => "RED",
        }
    }
}

/// A verdict with every number behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The verdict.
    pub level: Level,
    /// Context used for the estimate: min(configured, model max).
    pub context: u64,
    /// Weights (the file size).
    pub model_bytes: u64,
    /// KV cache for `context` tokens.
    pub kv_bytes: u64,
    /// Weights + KV.
    pub required: u64,
    /// Memory the model may use: RAM − reserve (+ VRAM − reserve with a
    /// discrete GPU).
    pub usable: u64,
    /// VRAM − reserve, with a discrete GPU.
    pub usable_vram: Option<u64>,
    /// Why, in words, with the numbers.
    pub explanation: String,
}

/// Classify a model of `model_bytes` with `kv_bytes` of KV cache (already
/// for the context used) on `mem`.
pub fn classify(model_bytes: u64, kv_bytes: u64, context: u64, mem: Memory) -> Fit {
    let required = model_bytes.saturating_add(kv_bytes);
    let usable_ram = mem.total_ram.saturating_sub(RESERVE_BYTES);
    let gb = |b: u64| b as f64 / 1e9;
    let (level, usable, usable_vram, why) = match mem.vram {
        None => {
            let limit = (usable_ram as f64 * YELLOW_SHARE) as u64;
            let (level, why) = if required > usable_ram {
                (
                    Level::Red,
                    format!("needs more than the {:.2} GB usable", gb(usable_ram)),
                )
            } else if required > limit {
                (
                    Level::Yellow,
                    format!(
                        "over 80 % of the {:.2} GB usable: may be slow",
                        gb(usable_ram)
                    ),
                )
            } else {
                (
                    Level::Green,
                    format!("within 80 % of the {:.2} GB usable", gb(usable_ram)),
                )
            };
            (level, usable_ram, None, why)
        }
        Some(vram) => {
            let usable_vram = vram.saturating_sub(RESERVE_BYTES);
            let total = usable_ram.saturating_add(usable_vram);
            let (level, why) = if required > total {
                (
                    Level::Red,
                    format!(
                        "needs more than RAM and VRAM together ({:.2} GB usable)",
                        gb(total)
                    ),
                )
            } else if required <= usable_vram {
                (
                    Level::Green,
                    format!("fits in VRAM alone ({:.2} GB usable)", gb(usable_vram)),
                )
            } else {
                (
                    Level::Yellow,
                    format!(
                        "fits only across RAM and VRAM ({:.2} GB VRAM usable): slower",
                        gb(usable_vram)
                    ),
                )
            };
            (level, total, Some(usable_vram), why)
        }
    };
    Fit {
        level,
        context,
        model_bytes,
        kv_bytes,
        required,
        usable,
        usable_vram,
        explanation: format!(
            "{}: weights {:.2} GB + KV cache {:.2} GB at {context} tokens = {:.2} GB, {why} \
             (RAM {:.2} GB − {:.0} GB reserve)",
            level.name(),
            gb(model_bytes),
            gb(kv_bytes),
            gb(required),
            gb(mem.total_ram),
            gb(RESERVE_BYTES),
        ),
    }
}

/// The context the estimate uses: the configured budget, capped at the
/// model's maximum (seed 000 §2 "Context-length parameter").
pub fn context_budget(configured: u64, model_max: u64) -> u64 {
    if model_max == 0 {
        configured
    } else {
        configured.min(model_max)
    }
}

#[cfg(test)]
mod tests {
    use super::super::gguf::parse;
    use super::super::gguf::tests::Writer;
    use super::*;

    const GB: u64 = 1_000_000_000;

    fn meta(pairs: &[(&str, u32)], arrays: &[(&str, &[u32])]) -> Metadata {
        let mut w = Writer::new(3, false, 0, (1 + pairs.len() + arrays.len()) as u64);
        w.kv_str("general.architecture", "llama");
        for (k, v) in pairs {
            w.kv_u32(&format!("llama.{k}"), *v);
        }
        for (k, vs) in arrays {
            w.str(&format!("llama.{k}"));
            w.u32(9);
            w.u32(4);
            w.u64(vs.len() as u64);
            for v in *vs {
                w.u32(*v);
            }
        }
        parse(&w.out).unwrap()
    }

    #[test]
    fn kv_per_token_from_explicit_dims() {
        // Llama-3-8B-like: 32 layers, 8 KV heads, 128 + 128 dims.
        let s = Shape::from_metadata(&meta(
            &[
                ("block_count", 32),
                ("attention.head_count", 32),
                ("attention.head_count_kv", 8),
                ("attention.key_length", 128),
                ("attention.value_length", 128),
                ("context_length", 8192),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(s.kv_per_token(), 32 * 8 * 256 * 2);
        assert_eq!(s.kv_cache(4096), 4096 * 131_072);
    }

    #[test]
    fn fallbacks_from_embedding_length_and_head_count() {
        // No head_count_kv, no key/value length: heads = head_count, dims =
        // embedding / heads.
        let s = Shape::from_metadata(&meta(
            &[
                ("block_count", 2),
                ("attention.head_count", 4),
                ("embedding_length", 64),
                ("context_length", 128),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(
            (s.kv_heads_total, s.key_length, s.value_length),
            (8, 16, 16)
        );
        assert_eq!(s.kv_per_token(), 8 * 32 * 2);
        // Per-layer KV heads (an array) are summed.
        let s = Shape::from_metadata(&meta(
            &[
                ("block_count", 3),
                ("embedding_length", 96),
                ("context_length", 64),
            ],
            &[
                ("attention.head_count", &[4, 4, 8]),
                ("attention.head_count_kv", &[1, 2, 2]),
            ],
        ))
        .unwrap();
        assert_eq!((s.kv_heads_total, s.key_length), (5, 12));
        let e = Shape::from_metadata(&meta(&[("block_count", 1)], &[])).unwrap_err();
        assert!(e.contains("llama.attention.head_count is missing"), "{e}");
    }

    #[test]
    fn sliding_window_halves_toward_the_window() {
        let s = Shape::from_metadata(&meta(
            &[
                ("block_count", 1),
                ("attention.head_count", 1),
                ("attention.key_length", 1),
                ("attention.value_length", 1),
                ("context_length", 32768),
                ("attention.sliding_window", 512),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(s.kv_per_token(), 4);
        assert_eq!(s.kv_cache(8192), (8192 * 4 + 512 * 4) / 2);
        // A window wider than the context counts as the context.
        assert_eq!(s.kv_cache(256), 256 * 4);
    }

    #[test]
    fn unified_memory_thresholds() {
        let mem = |gb: u64| Memory {
            total_ram: gb * GB,
            vram: None,
        };
        let usable16 = 16 * GB - RESERVE_BYTES;
        // The seed's example: 5 GB + 2 GB on 16 GB → GREEN; on 8 GB → RED.
        assert_eq!(classify(5 * GB, 2 * GB, 4096, mem(16)).level, Level::Green);
        assert_eq!(classify(5 * GB, 2 * GB, 4096, mem(8)).level, Level::Red);
        // Exactly 80 % is GREEN, a byte more YELLOW, a byte over usable RED.
        let at80 = (usable16 as f64 * 0.8) as u64;
        assert_eq!(classify(at80, 0, 1, mem(16)).level, Level::Green);
        assert_eq!(classify(at80 + 1, 0, 1, mem(16)).level, Level::Yellow);
        assert_eq!(classify(usable16, 0, 1, mem(16)).level, Level::Yellow);
        assert_eq!(classify(usable16 + 1, 0, 1, mem(16)).level, Level::Red);
        let f = classify(5 * GB, 2 * GB, 4096, mem(16));
        assert!(
            f.explanation
                .starts_with("GREEN: weights 5.00 GB + KV cache 2.00 GB at 4096 tokens = 7.00 GB"),
            "{}",
            f.explanation
        );
        // Less RAM than the reserve.
        assert_eq!(classify(1, 0, 1, mem(2)).level, Level::Red);
    }

    #[test]
    fn discrete_gpu_thresholds() {
        let mem = Memory {
            total_ram: 32 * GB,
            vram: Some(12 * GB),
        };
        let vram_usable = 12 * GB - RESERVE_BYTES;
        assert_eq!(classify(vram_usable, 0, 1, mem).level, Level::Green);
        assert_eq!(classify(vram_usable + 1, 0, 1, mem).level, Level::Yellow);
        let total = vram_usable + 32 * GB - RESERVE_BYTES;
        assert_eq!(classify(total, 0, 1, mem).level, Level::Yellow);
        assert_eq!(classify(total + 1, 0, 1, mem).level, Level::Red);
    }

    #[test]
    fn context_is_the_smaller_of_budget_and_model_max() {
        assert_eq!(context_budget(4096, 32768), 4096);
        assert_eq!(context_budget(65536, 32768), 32768);
        assert_eq!(context_budget(4096, 0), 4096);
    }
}
