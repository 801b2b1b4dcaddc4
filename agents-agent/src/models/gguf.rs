//! GGUF metadata (versions 2 and 3, little- or big-endian): the header and
//! every key/value pair, all thirteen value types, arrays (nested too).
//!
//! The parser reads from a byte prefix of the file, so the same code serves
//! a local file and an HTTP Range download that grows 2 MB at a time:
//! [`GgufError::Truncated`] means "give me more bytes", every other error
//! is final. It is built for hostile input: counts and lengths are checked
//! against the bytes actually present before anything is allocated, and
//! nothing recurses deeper than [`MAX_DEPTH`].

use std::collections::BTreeMap;

/// `GGUF` as read little-endian.
const MAGIC: &[u8; 4] = b"GGUF";
/// Deepest array nesting accepted.
pub const MAX_DEPTH: usize = 4;
/// Longest key accepted (llama.cpp's own limit is far lower in practice).
pub const MAX_KEY: u64 = 64 * 1024;
/// The most metadata read: Jan's cap on HTTP Range reads.
pub const MAX_HEADER: u64 = 120 * 1024 * 1024;
/// The most array elements kept over the whole header (a real model's
/// tokenizer has under a million: 262,144 tokens, scores and types for
/// Gemma 3), so a header of tiny elements cannot make us hold 30× its size.
pub const MAX_ELEMENTS: u64 = 4_000_000;

/// Why metadata could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgufError {
    /// The prefix ends before the metadata does: read more (at least to
    /// `need` bytes) and try again.
    #[error("the GGUF header continues past byte {have} (need at least {need})")]
    Truncated {
        /// Bytes given.
        have: u64,
        /// Bytes needed to go on (a lower bound).
        need: u64,
    },
    /// Not a GGUF file.
    #[error("not a GGUF file (the first bytes are not \"GGUF\")")]
    NotGguf,
    /// A version this reader does not know.
    #[error("GGUF version {0} is not supported (versions 2 and 3 are)")]
    Version(u32),
    /// The header contradicts itself or is built to exhaust memory.
    #[error("bad GGUF header at byte {at}: {why}")]
    Malformed {
        /// Where.
        at: u64,
        /// What.
        why: String,
    },
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Type 0.
    U8(u8),
    /// Type 1.
    I8(i8),
    /// Type 2.
    U16(u16),
    /// Type 3.
    I16(i16),
    /// Type 4.
    U32(u32),
    /// Type 5.
    I32(i32),
    /// Type 6.
    F32(f32),
    /// Type 7.
    Bool(bool),
    /// Type 8 (UTF-8; invalid bytes are replaced).
    String(String),
    /// Type 9.
    Array(Vec<Value>),
    /// Type 10.
    U64(u64),
    /// Type 11.
    I64(i64),
    /// Type 12.
    F64(f64),
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as text, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as JSON (for `--json` output and tests).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Value::U8(v) => json!(v),
            Value::I8(v) => json!(v),
            Value::U16(v) => json!(v),
            Value::I16(v) => json!(v),
            Value::U32(v) => json!(v),
            Value::I32(v) => json!(v),
            Value::F32(v) => json!(v),
            Value::Bool(v) => json!(v),
            Value::String(v) => json!(v),
            Value::Array(v) => serde_json::Value::Array(v.iter().map(Value::to_json).collect()),
            Value::U64(v) => json!(v),
            Value::I64(v) => json!(v),
            Value::F64(v) => json!(v),
        }
    }
}

/// A file's header and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// 2 or 3.
    pub version: u32,
    /// Whether the file is big-endian.
    pub big_endian: bool,
    /// How many tensors the file says it holds.
    pub tensor_count: u64,
    /// Every key/value pair, by key.
    pub kv: BTreeMap<String, Value>,
    /// Where the metadata ends (the tensor infos start).
    pub end: u64,
}

impl Metadata {
    /// A value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv.get(key)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    /// `{arch}.<suffix>` as an unsigned integer.
    pub fn arch_u64(&self, suffix: &str) -> Option<u64> {
        let arch = self.architecture()?;
        self.get(&format!("{arch}.{suffix}"))?.as_u64()
    }
}

/// A cursor over the prefix.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big: bool,
    /// Array elements read so far.
    elements: u64,
}

impl<'a> Reader<'a> {
    fn at(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(self.truncated(n));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        let a = self.array::<4>()?;
        Ok(if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        let a = self.array::<8>()?;
        Ok(if self.big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        })
    }

    /// Out of bytes with `more` still to read: truncated, unless the prefix
    /// is already as long as a header may be.
    fn truncated(&self, more: u64) -> GgufError {
        let need = self.at().saturating_add(more);
        if need > MAX_HEADER {
            return GgufError::Malformed {
                at: self.at(),
                why: format!("metadata would run past {MAX_HEADER} bytes (to byte {need})"),
            };
        }
        GgufError::Truncated {
            have: self.buf.len() as u64,
            need,
        }
    }

    fn malformed(&self, why: impl Into<String>) -> GgufError {
        GgufError::Malformed {
            at: self.at(),
            why: why.into(),
        }
    }

    fn string(&mut self, max: u64) -> Result<String, GgufError> {
        let len = self.u64()?;
        if len > max {
            return Err(self.malformed(format!("a string of {len} bytes (limit {max})")));
        }
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    /// One value of type `t`.
    fn value(&mut self, t: u32, depth: usize) -> Result<Value, GgufError> {
        macro_rules! num {
            ($ty:ty, $n:literal, $var:ident) => {{
                let a = self.array::<$n>()?;
                Value::$var(if self.big {
                    <$ty>::from_be_bytes(a)
                } else {
                    <$ty>::from_le_bytes(a)
                })
            }};
        }
        Ok(match t {
            0 => Value::U8(self.array::<1>()?[0]),
            1 => Value::I8(self.array::<1>()?[0] as i8),
            2 => num!(u16, 2, U16),
            3 => num!(i16, 2, I16),
            4 => num!(u32, 4, U32),
            5 => num!(i32, 4, I32),
            6 => num!(f32, 4, F32),
            7 => match self.array::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.malformed(format!("a bool of value {b}"))),
            },
            // A value string can be long (chat templates), never longer
            // than the file.
            8 => Value::String(self.string(u64::MAX)?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(self.malformed(format!("arrays nested deeper than {MAX_DEPTH}")));
                }
                let inner = self.u32()?;
                let count = self.u64()?;
                let min = min_size(inner)
                    .ok_or_else(|| self.malformed(format!("unknown value type {inner}")))?;
                // Every element takes at least `min` bytes: a count the
                // prefix could not hold is truncation (or a lie, caught
                // when the bytes run out), never an allocation.
                let need = count.saturating_mul(min);
                if need > self.remaining() {
                    return Err(self.truncated(need));
                }
                self.elements = self.elements.saturating_add(count);
                if self.elements > MAX_ELEMENTS {
                    return Err(self.malformed(format!(
                        "more than {MAX_ELEMENTS} array elements in the metadata"
                    )));
                }
                let mut items = Vec::with_capacity(count.min(1 << 16) as usize);
                for _ in 0..count {
                    items.push(self.value(inner, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => num!(u64, 8, U64),
            11 => num!(i64, 8, I64),
            12 => num!(f64, 8, F64),
            t => return Err(self.malformed(format!("unknown value type {t}"))),
        })
    }
}

/// The fewest bytes a value of type `t` takes (None: no such type).
fn min_size(t: u32) -> Option<u64> {
    Some(match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => 8,     // the length
        9 => 4 + 8, // the type and the count
        _ => return None,
    })
}

/// Read the header and metadata from a prefix of a GGUF file.
pub fn parse(buf: &[u8]) -> Result<Metadata, GgufError> {
    let buf = &buf[..buf.len().min(MAX_HEADER as usize)];
    let mut r = Reader {
        buf,
        pos: 0,
        big: false,
        elements: 0,
    };
    if r.take(4).map_err(|_| short(buf, 4))? != MAGIC {
        return Err(GgufError::NotGguf);
    }
    let raw = r.array::<4>()?;
    let (version, big) = match (u32::from_le_bytes(raw), u32::from_be_bytes(raw)) {
        (v @ (2 | 3), _) => (v, false),
        (_, v @ (2 | 3)) => (v, true),
        (v, _) if v < 65536 => return Err(GgufError::Version(v)),
        (_, v) => return Err(GgufError::Version(v)),
    };
    r.big = big;
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    // The smallest pair: an empty key (8), a type (4), a one-byte value.
    if kv_count > MAX_HEADER / 13 {
        return Err(r.malformed(format!("{kv_count} metadata pairs")));
    }
    let mut kv = BTreeMap::new();
    for _ in 0..kv_count {
        let key = r.string(MAX_KEY)?;
        let t = r.u32()?;
        let v = r.value(t, 0)?;
        kv.insert(key, v);
    }
    if r.at() >= MAX_HEADER {
        return Err(r.malformed(format!("metadata larger than {MAX_HEADER} bytes")));
    }
    Ok(Metadata {
        version,
        big_endian: big,
        tensor_count,
        kv,
        end: r.at(),
    })
}

fn short(buf: &[u8], need: u64) -> GgufError {
    if buf.len() as u64 >= MAX_HEADER {
        return GgufError::Malformed {
            at: MAX_HEADER,
            why: format!("metadata larger than {MAX_HEADER} bytes"),
        };
    }
    GgufError::Truncated {
        have: buf.len() as u64,
        need,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny GGUF writer for the tests (little-endian unless `big`).
    pub struct Writer {
        pub out: Vec<u8>,
        big: bool,
    }

    impl Writer {
        pub fn new(version: u32, big: bool, tensors: u64, kv: u64) -> Self {
            let mut w = Writer {
                out: b"GGUF".to_vec(),
                big,
            };
            w.u32(version);
            w.u64(tensors);
            w.u64(kv);
            w
        }
        pub fn u32(&mut self, v: u32) {
            let b = if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.out.extend(b);
        }
        pub fn u64(&mut self, v: u64) {
            let b = if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.out.extend(b);
        }
        pub fn str(&mut self, s: &str) {
            self.u64(s.len() as u64);
            self.out.extend(s.as_bytes());
        }
        pub fn kv_str(&mut self, k: &str, v: &str) {
            self.str(k);
            self.u32(8);
            self.str(v);
        }
        pub fn kv_u32(&mut self, k: &str, v: u32) {
            self.str(k);
            self.u32(4);
            self.u32(v);
        }
    }

    fn sample(big: bool) -> Vec<u8> {
        let mut w = Writer::new(3, big, 7, 5);
        w.kv_str("general.architecture", "llama");
        w.kv_u32("llama.block_count", 16);
        // An array of strings.
        w.str("tokenizer.ggml.tokens");
        w.u32(9);
        w.u32(8);
        w.u64(2);
        w.str("a");
        w.str("ß");
        // A bool and an i8 and an f64.
        w.str("x.flag");
        w.u32(7);
        w.out.push(1);
        w.str("x.f");
        w.u32(12);
        let f = 0.5f64;
        w.out.extend(if big {
            f.to_be_bytes()
        } else {
            f.to_le_bytes()
        });
        w.out.extend(b"tensor infos follow");
        w.out
    }

    #[test]
    fn reads_every_kind_both_endians() {
        for big in [false, true] {
            let m = parse(&sample(big)).unwrap();
            assert_eq!((m.version, m.big_endian, m.tensor_count), (3, big, 7));
            assert_eq!(m.architecture(), Some("llama"));
            assert_eq!(m.arch_u64("block_count"), Some(16));
            assert_eq!(
                m.get("tokenizer.ggml.tokens"),
                Some(&Value::Array(vec![
                    Value::String("a".into()),
                    Value::String("ß".into())
                ]))
            );
            assert_eq!(m.get("x.flag"), Some(&Value::Bool(true)));
            assert_eq!(m.get("x.f"), Some(&Value::F64(0.5)));
            assert_eq!(
                m.end as usize,
                sample(big).len() - "tensor infos follow".len()
            );
        }
    }

    #[test]
    fn every_prefix_is_truncated_never_wrong() {
        let full = sample(false);
        let end = parse(&full).unwrap().end as usize;
        for n in 0..end {
            match parse(&full[..n]) {
                Err(GgufError::Truncated { need, .. }) => assert!(need as usize > n, "{n}"),
                other => panic!("prefix {n}: {other:?}"),
            }
        }
    }

    #[test]
    fn hostile_headers_are_refused_without_allocating() {
        // A string claiming 2^63 bytes.
        let mut w = Writer::new(3, false, 0, 1);
        w.str("k");
        w.u32(8);
        w.u64(1 << 63);
        assert!(matches!(parse(&w.out), Err(GgufError::Malformed { .. })));
        // An array claiming 2^60 u64s: truncated, and no Vec of that size.
        let mut w = Writer::new(3, false, 0, 1);
        w.str("k");
        w.u32(9);
        w.u32(10);
        w.u64(1 << 60);
        assert!(matches!(parse(&w.out), Err(GgufError::Malformed { .. })));
        // Many tiny elements that are really there: refused past the
        // element budget instead of held at 30× their size.
        let mut w = Writer::new(3, false, 0, 1);
        w.str("k");
        w.u32(9);
        w.u32(0);
        w.u64(MAX_ELEMENTS + 1);
        w.out.resize(w.out.len() + MAX_ELEMENTS as usize + 1, 0);
        let e = parse(&w.out).unwrap_err();
        assert!(e.to_string().contains("array elements"), "{e}");
        // An absurd pair count.
        let w = Writer::new(3, false, 0, u64::MAX);
        assert!(matches!(parse(&w.out), Err(GgufError::Malformed { .. })));
        // A key longer than any real one.
        let mut w = Writer::new(3, false, 0, 1);
        w.u64(MAX_KEY + 1);
        assert!(matches!(parse(&w.out), Err(GgufError::Malformed { .. })));
        // Arrays nested past the limit.
        let mut w = Writer::new(3, false, 0, 1);
        w.str("k");
        w.u32(9);
        for _ in 0..MAX_DEPTH {
            w.u32(9);
            w.u64(1);
        }
        w.u32(0);
        w.u64(1);
        w.out.extend([0u8; 64]);
        assert!(matches!(parse(&w.out), Err(GgufError::Malformed { .. })));
        // Unknown types, bad bools, versions, magic.
        let mut w = Writer::new(3, false, 0, 1);
        w.str("k");
        w.u32(13);
        w.out.extend([0u8; 8]);
        assert!(matches!(parse(&w.out), Err(GgufError::Malformed { .. })));
        let mut w = Writer::new(3, false, 0, 1);
        w.str("k");
        w.u32(7);
        w.out.push(2);
        assert!(matches!(parse(&w.out), Err(GgufError::Malformed { .. })));
        assert_eq!(
            parse(&Writer::new(1, false, 0, 0).out),
            Err(GgufError::Version(1))
        );
        assert_eq!(parse(b"GGML\x03\0\0\0"), Err(GgufError::NotGguf));
    }

    /// A deterministic xorshift, so the mutation test needs no crate.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn mutated_headers_never_panic() {
        let base = sample(false);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..(rng(&mut seed) % 4 + 1) {
                let i = (rng(&mut seed) as usize) % b.len();
                match rng(&mut seed) % 3 {
                    0 => b[i] = rng(&mut seed) as u8,
                    1 => b[i] ^= 0x80,
                    _ => b[i] = 0xff,
                }
            }
            let cut = (rng(&mut seed) as usize) % (b.len() + 1);
            let _ = parse(&b[..cut]);
            let _ = parse(&b);
        }
    }
}
