//! The coarse vector pass: binary codes of unit vectors (one sign bit a
//! dimension, as sqlite-vec's `bit[N]` columns hold them), searched by
//! Hamming distance, then the candidates rescored exactly. Pure.
//!
//! sqlite-vec 0.1.9 scans every float vector for a KNN query (about
//! 100 ms for 100k × 1024 here); the binary pass reads 1/32 of the bytes.
//! Oversampling (at least [`MIN_CANDIDATES`]) and rescoring with the float
//! vectors keeps recall@10 against the exact scan at or above 0.95
//! (measured in `benches/knn.rs`).

/// Below this many vectors an index is searched exactly (a scan of a
/// small table is already fast, and exact; at 13,000 × 384 the coarse
/// pass still halves a ten-hit search: `tests/benches/retrieval.rs`).
pub const EXACT_UNDER: u64 = 10_000;

/// Above this many candidates the coarse pass is slower than the exact
/// scan it replaces (sqlite-vec's top-k costs n × k): a search for many
/// hits scans exactly.
pub const MAX_COARSE_CANDIDATES: usize = 128;

/// Whether a KNN for `k` hits over `vectors` vectors of `dims` dimensions
/// takes the coarse pass.
pub fn use_coarse(vectors: u64, dims: usize, k: usize) -> bool {
    has_code(dims) && vectors >= EXACT_UNDER && candidates(k) <= MAX_COARSE_CANDIDATES
}

/// Candidates the coarse pass keeps at least: 8 × the ten hits a search
/// shows (recall@10 0.96 against the exact scan in `benches/knn.rs`).
pub const MIN_CANDIDATES: usize = 80;

/// Candidates per hit wanted beyond that. sqlite-vec selects a KNN's `k`
/// best one pass at a time (its cost grows with n × k), so a deep list
/// (the 50 candidates a hybrid search fuses) is oversampled less: its
/// tail only adds small reciprocal ranks.
pub const OVERSAMPLE: usize = 2;

/// sqlite-vec's largest `k`.
pub const MAX_K: usize = 4096;

/// Whether vectors of `dims` dimensions get a binary code (sqlite-vec's
/// `bit[N]` needs whole bytes).
pub fn has_code(dims: usize) -> bool {
    dims > 0 && dims.is_multiple_of(8)
}

/// The binary code of `v`: bit i (little-endian within each byte) is set
/// when component i is positive.
pub fn code(v: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; v.len().div_ceil(8)];
    for (i, x) in v.iter().enumerate() {
        if *x > 0.0 {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// How many candidates the coarse pass keeps for `k` hits.
pub fn candidates(k: usize) -> usize {
    k.saturating_mul(OVERSAMPLE).clamp(MIN_CANDIDATES, MAX_K)
}

/// Cosine similarity of two unit vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x * *y)).sum()
}

/// `(id, vector)` candidates rescored against `query`: the best `k` as
/// `(id, cosine)`, best first (ties to the lower id).
pub fn rescore(query: &[f32], candidates: &[(i64, Vec<f32>)], k: usize) -> Vec<(i64, f64)> {
    let mut scored: Vec<(i64, f64)> = candidates
        .iter()
        .filter(|(_, v)| v.len() == query.len())
        .map(|(id, v)| (*id, cosine(query, v)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

/// Little-endian f32 bytes back to a vector (None when the length is not
/// a whole number of floats).
pub fn floats(bytes: &[u8]) -> Option<Vec<f32>> {
    bytes.len().is_multiple_of(4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sign_bits_and_rescoring_is_exact() {
        assert_eq!(
            code(&[0.5, -0.1, 0.0, 2.0, -3.0, 1.0, 1.0, -1.0, 0.3]),
            vec![0b0110_1001, 1]
        );
        assert!(has_code(384) && has_code(1024) && !has_code(10) && !has_code(0));
        assert!(use_coarse(100_000, 1024, 10) && use_coarse(1_000_000, 384, 50));
        assert!(!use_coarse(9_999, 384, 10), "a small index is scanned");
        assert!(!use_coarse(100_000, 384, 100), "many hits are scanned");
        assert!(!use_coarse(100_000, 10, 10), "no codes for 10 dimensions");
        assert_eq!(candidates(10), 80);
        assert_eq!(candidates(50), 100);
        assert_eq!(candidates(500), 1000);
        assert_eq!(candidates(10_000), MAX_K);
        let q = [1.0, 0.0];
        let c = vec![
            (1, vec![0.0, 1.0]),
            (2, vec![0.8, 0.6]),
            (3, vec![1.0, 0.0]),
            (4, vec![1.0]),
        ];
        let r = rescore(&q, &c, 2);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 2]);
        assert!((r[1].1 - 0.8).abs() < 1e-6);
        let bytes: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(floats(&bytes), Some(vec![1.5, -2.0]));
        assert_eq!(floats(&[0, 1, 2]), None);
    }
}
