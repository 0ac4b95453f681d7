//! Password policy and hashing (argon2id).

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 128;

/// Why a password is refused, phrased for the person choosing it.
pub fn policy_violation(username: &str, password: &str) -> Option<String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Some(format!("must be at least {MIN_LENGTH} characters"));
    }
    if length > MAX_LENGTH {
        return Some(format!("must be at most {MAX_LENGTH} characters"));
    }
    if password.eq_ignore_ascii_case(username) {
        return Some("must not equal the user name".into());
    }
    None
}

pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// False for a wrong password and for a stored hash that does not parse.
pub fn verify(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that a wrong user name takes
/// as long as a wrong password and does not reveal which accounts exist.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password never matches").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_and_rejects_wrong_password() {
        let stored = hash("correct horse battery").expect("hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterz", &stored));
        assert!(!verify("anything", "not a hash"));
    }

    #[test]
    fn policy() {
        assert!(policy_violation("alice", "short").is_some());
        assert!(policy_violation("alice-admin1", "ALICE-ADMIN1").is_some());
        assert!(policy_violation("alice", &"x".repeat(129)).is_some());
        assert_eq!(policy_violation("alice", "a long enough phrase"), None);
    }
}
