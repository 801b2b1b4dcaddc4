//! Hybrid ranking: reciprocal-rank fusion of a keyword list (BM25) and a
//! vector list (cosine). Pure.

/// RRF's constant: a hit at rank r adds 1 / (K + r).
pub const RRF_K: f64 = 60.0;

/// One fused hit: the item, its fused score, and its place in each list.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    /// The item's id.
    pub id: i64,
    /// Sum of 1 / (K + rank) over the lists it is in.
    pub score: f64,
    /// 1-based rank and score among keyword hits.
    pub keyword: Option<(u32, f64)>,
    /// 1-based rank and score among vector hits.
    pub vector: Option<(u32, f64)>,
}

/// Fuse `keyword` and `vector` (each best first, `(id, score)`), keep the
/// best `k`. An item in only one list keeps its place by that list alone,
/// and the best keyword hit is always kept (it takes the last place when
/// ten items both lists found middling outrank it), so a strong
/// keyword-only hit — an error code, a file name the embedder has no
/// sense of — is never dropped for lack of a semantic score. Ties go to
/// the better keyword rank, then the lower id.
pub fn rrf(keyword: &[(i64, f64)], vector: &[(i64, f64)], k: usize) -> Vec<Fused> {
    let mut out: Vec<Fused> = Vec::with_capacity(keyword.len() + vector.len());
    let mut at: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut add = |id: i64, rank: usize, score: f64, is_keyword: bool| {
        let r = rank as u32 + 1;
        let i = *at.entry(id).or_insert_with(|| {
            out.push(Fused {
                id,
                score: 0.0,
                keyword: None,
                vector: None,
            });
            out.len() - 1
        });
        let entry = &mut out[i];
        entry.score += 1.0 / (RRF_K + f64::from(r));
        if is_keyword {
            entry.keyword.get_or_insert((r, score));
        } else {
            entry.vector.get_or_insert((r, score));
        }
    };
    for (rank, (id, s)) in keyword.iter().enumerate() {
        add(*id, rank, *s, true);
    }
    for (rank, (id, s)) in vector.iter().enumerate() {
        add(*id, rank, *s, false);
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| {
                let kr = |f: &Fused| f.keyword.map_or(u32::MAX, |x| x.0);
                kr(a).cmp(&kr(b))
            })
            .then_with(|| a.id.cmp(&b.id))
    });
    if let Some(best) = out.iter().position(|f| f.keyword.is_some_and(|x| x.0 == 1)) {
        if best >= k && k > 0 {
            out.swap(k - 1, best);
        }
    }
    out.truncate(k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_lists_agree_first_and_a_keyword_only_hit_survives() {
        let keyword = [(7, 12.0), (3, 9.0), (9, 2.0)];
        let vector = [(3, 0.81), (5, 0.80), (7, 0.40)];
        let f = rrf(&keyword, &vector, 10);
        let ids: Vec<i64> = f.iter().map(|x| x.id).collect();
        // 3 and 7 are in both lists; 3 is higher on average (1+2 vs 1+3).
        assert_eq!(ids[..2], [3, 7]);
        assert_eq!(f[0].keyword, Some((2, 9.0)));
        assert_eq!(f[0].vector, Some((1, 0.81)));
        // The keyword-only hit 9 is kept, beside the vector-only 5.
        assert!(ids.contains(&9) && ids.contains(&5));
        assert_eq!(f.iter().find(|x| x.id == 9).unwrap().vector, None);
        // An empty vector list (no embedder) is the keyword order.
        let only = rrf(&keyword, &[], 2);
        assert_eq!(only.iter().map(|x| x.id).collect::<Vec<_>>(), vec![7, 3]);
        assert!(rrf(&[], &[], 5).is_empty());
        // Ten items both lists found outrank the best keyword hit alone;
        // it still keeps the last place.
        let both: Vec<(i64, f64)> = (10..20).map(|i| (i, 1.0)).collect();
        let mut kw = vec![(99, 50.0)];
        kw.extend(&both);
        let vec: Vec<(i64, f64)> = both.clone();
        let f = rrf(&kw, &vec, 5);
        assert_eq!(f.len(), 5);
        assert_eq!(f[4].id, 99, "{f:?}");
        assert_eq!(f[4].keyword, Some((1, 50.0)));
    }
}
