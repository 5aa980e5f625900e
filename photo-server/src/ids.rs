//! Identifiers of photos and users: random, fixed alphabet, safe in paths and URLs.

use rand::RngExt;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// 20 characters of 36 symbols: about 103 bits, so ids never collide and cannot be guessed.
pub const ID_LEN: usize = 20;

pub fn new_id() -> String {
    let mut rng = rand::rng();
    (0..ID_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Whether `text` can be an id. Anything else (`../x`, `%2e`, odd characters)
/// is refused before it reaches a path or a query.
pub fn is_valid(text: &str) -> bool {
    // The ALPHABET as ranges: this runs on every image request.
    text.len() == ID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert!(is_valid(&a) && is_valid(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn accepts_exactly_the_alphabet() {
        for b in 0..=u8::MAX {
            let text = String::from_utf8(vec![b; ID_LEN]);
            let valid = text.as_deref().is_ok_and(is_valid);
            assert_eq!(valid, ALPHABET.contains(&b), "byte {b}");
        }
    }

    #[test]
    fn refuses_path_tricks() {
        for bad in [
            "",
            "..",
            "../../etc/passwd",
            "abc",
            "ABCDEFGHIJKLMNOPQRST",
            "aaaaaaaaaaaaaaaaaa/.",
            "aaaaaaaaaaaaaaaaaaa\0",
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}
