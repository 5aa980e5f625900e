//! What a username and a password must be: the same rules for every account,
//! the admin of `PHOTO_ADMIN_USER` included. Plain functions of their input,
//! imported by `domain::accounts` (accounts made through the site) and
//! `bootstrap` (the admin made at start).

/// Longest username, in bytes.
pub const MAX_USERNAME_BYTES: usize = 40;

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Usernames appear in URLs, pages and logs: letters, digits, `.`, `_`, `-`.
pub fn is_valid_username(name: &str) -> bool {
    (1..=MAX_USERNAME_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Whether a password is one of `COMMON_PASSWORDS`, ignoring case.
pub fn is_common_password(password: &str) -> bool {
    COMMON_PASSWORDS
        .iter()
        .any(|common| common.eq_ignore_ascii_case(password))
}

/// Passwords of at least [`MIN_PASSWORD_CHARS`] characters at the top of
/// every list of leaked passwords, so the first ones any guessing tries.
/// Compared ignoring case. Short on purpose: it catches the admin password
/// left at a placeholder, not every weak one.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "12345678",
    "123456789",
    "1234567890",
    "0123456789",
    "12341234",
    "123123123",
    "87654321",
    "11111111",
    "00000000",
    "88888888",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "q1w2e3r4",
    "1234qwer",
    "qwertyui",
    "qwertyuiop",
    "qwerty123",
    "qwerty12",
    "asdfghjkl",
    "abcd1234",
    "abc12345",
    "aa123456",
    "iloveyou",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "superman",
    "starwars",
    "trustno1",
    "whatever",
    "computer",
    "internet",
    "welcome1",
    "welcome123",
    "letmein1",
    "changeme",
    "changeit",
    "admin123",
    "admin1234",
    "adminadmin",
    "administrator",
    "secret123",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_plain_and_short() {
        assert!(is_valid_username("alice.b-c_9"));
        for bad in ["", "a b", "ädmin", "x\ny", &"a".repeat(41), "a/b"] {
            assert!(!is_valid_username(bad), "{bad:?}");
        }
    }

    #[test]
    fn common_passwords_are_known_in_any_case() {
        for common in ["password", "12345678", "PassWord1", "QWERTYUIOP"] {
            assert!(is_common_password(common), "{common}");
        }
        assert!(!is_common_password("correct horse battery"));
    }
}
