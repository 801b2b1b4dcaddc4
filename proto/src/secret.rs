//! Secrets made here: keys and tokens from the OS's random source.

use std::io::Read;

/// A fresh secret key, `<prefix>-` and 48 hex digits from the OS's
/// random source.
pub fn random_key(prefix: &str) -> std::io::Result<String> {
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(format!(
        "{prefix}-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

/// Equal byte strings, compared in time that depends on their lengths
/// only: a token check leaks nothing about how much of a guess matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fresh_and_compared_whole() {
        let (a, b) = (random_key("k").unwrap(), random_key("k").unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 + 48);
        assert!(constant_time_eq(a.as_bytes(), a.clone().as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), b.as_bytes()));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
