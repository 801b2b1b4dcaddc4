//! Token estimates, where an engine has not said how many it counted: four
//! characters a token (the rule of thumb for English text under the
//! common BPE vocabularies). One place, so the router's thresholds, the
//! budget check and the usage ledger agree.

/// Characters per estimated token.
pub const CHARS_PER_TOKEN: u64 = 4;

/// Estimated tokens in `chars` characters (bytes of UTF-8 text).
pub fn estimate(chars: usize) -> u64 {
    chars as u64 / CHARS_PER_TOKEN
}

/// Estimated tokens of several texts together.
pub fn estimate_all<'a>(texts: impl IntoIterator<Item = &'a str>) -> u64 {
    estimate(texts.into_iter().map(str::len).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_characters_a_token_summed_before_dividing() {
        assert_eq!(estimate(0), 0);
        assert_eq!(estimate(7), 1);
        assert_eq!(estimate(8), 2);
        // 3 + 3 characters are one token together, none apart.
        assert_eq!(estimate_all(["abc", "def"]), 1);
    }
}
