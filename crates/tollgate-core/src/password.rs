//! Passwords: the policy a new password must meet, and argon2id hashing.
//!
//! Parameters follow OWASP: argon2id, m = 19 MiB, t = 2, p = 1, 16-byte
//! salts, stored as PHC strings. Hashing is CPU work (about 20 ms and 19 MiB
//! each); callers in async code run it on a blocking pool with bounded
//! concurrency. [`needs_rehash`] tells a login to upgrade an older hash.
//!
//! Policy (NIST SP 800-63B): at least 8 characters, at most 1024 bytes, no
//! composition rules, no truncation, and not one of the most common passwords.

use argon2::{
    Algorithm as Argon2Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier,
    Version,
};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::{Error, Secret};

/// Memory cost in KiB.
pub const M_COST: u32 = 19 * 1024;
/// Iterations.
pub const T_COST: u32 = 2;
/// Parallelism.
pub const P_COST: u32 = 1;
/// Shortest password, in characters.
pub const MIN_CHARS: usize = 8;
/// Longest password, in bytes (a bound on hashing work, far above any real one).
pub const MAX_BYTES: usize = 1024;

/// Passwords refused whatever their length: the most common ones of 8
/// characters or more in public breach corpora.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password!",
    "passw0rd",
    "p@ssw0rd",
    "12345678",
    "123456789",
    "1234567890",
    "0123456789",
    "87654321",
    "11111111",
    "00000000",
    "88888888",
    "12341234",
    "11223344",
    "123123123",
    "qwertyui",
    "qwertyuiop",
    "qwerty123",
    "qwerty12",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "zaq12wsx",
    "asdfghjkl",
    "asdfasdf",
    "iloveyou",
    "iloveyou1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "basketball",
    "superman",
    "starwars",
    "trustno1",
    "welcome1",
    "welcome123",
    "letmein1",
    "letmein123",
    "admin123",
    "administrator",
    "changeme",
    "changeme1",
    "abc12345",
    "abcd1234",
    "abcdefgh",
    "aa123456",
    "monkey123",
    "dragon123",
    "master123",
    "michael1",
    "jennifer",
    "computer",
    "whatever",
    "internet",
    "corvette",
    "mercedes",
    "samsung1",
    "shadow12",
    "blink182",
    "charlie1",
    "jordan23",
    "liverpool",
    "chelsea1",
    "arsenal1",
    "soccer12",
    "hello123",
    "secret123",
    "freedom1",
    "default1",
    "test1234",
    "testtest",
    "tollgate",
    "tollgate1",
];

/// Checks a new password against the policy.
pub fn check_policy(password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_CHARS {
        return Err(Error::WeakPassword(
            "the password must be at least 8 characters long",
        ));
    }
    if password.len() > MAX_BYTES {
        return Err(Error::WeakPassword(
            "the password must be at most 1024 bytes long",
        ));
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return Err(Error::WeakPassword(
            "the password is one of the most common passwords",
        ));
    }
    Ok(())
}

fn hasher() -> Result<Argon2<'static>, Error> {
    let params = Params::new(M_COST, T_COST, P_COST, None)
        .map_err(|_| Error::PasswordHash("invalid argon2 parameters"))?;
    Ok(Argon2::new(
        Argon2Algorithm::Argon2id,
        Version::V0x13,
        params,
    ))
}

/// Hashes a password with a fresh 16-byte salt; returns the PHC string.
pub fn hash(password: &Secret) -> Result<String, Error> {
    if password.len() > MAX_BYTES {
        return Err(Error::WeakPassword(
            "the password must be at most 1024 bytes long",
        ));
    }
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| Error::PasswordHash("no randomness for the salt"))?;
    let hash = hasher()?
        .hash_password_with_salt(password.expose(), &salt)
        .map_err(|_| Error::PasswordHash("hashing failed"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc`. A malformed PHC string
/// is an error, not a mismatch. Passwords over the size limit never match.
pub fn verify(password: &Secret, phc: &str) -> Result<bool, Error> {
    let parsed = PasswordHash::new(phc).map_err(|_| Error::PasswordHash("not a PHC string"))?;
    if password.len() > MAX_BYTES {
        return Ok(false);
    }
    Ok(hasher()?
        .verify_password(password.expose(), &parsed)
        .is_ok())
}

/// Whether `phc` was made with other parameters than today's (and should be
/// replaced on the next successful login).
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(p) => p.m_cost() != M_COST || p.t_cost() != T_COST || p.p_cost() != P_COST,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(check_policy("correct horse").is_ok());
        assert!(check_policy("ünïcødé!").is_ok());
        for bad in [
            "short",
            "1234567",
            "password",
            "PASSWORD1",
            "12345678",
            "changeme",
        ] {
            assert_eq!(
                check_policy(bad).unwrap_err().code(),
                "weak_password",
                "{bad}"
            );
        }
        assert!(check_policy(&"x".repeat(MAX_BYTES + 1)).is_err());
        assert!(check_policy(&"x".repeat(200)).is_ok());
    }

    #[test]
    fn hash_verify_and_parameters() {
        let phc = hash(&Secret::from("correct horse battery")).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(&Secret::from("correct horse battery"), &phc).unwrap());
        assert!(!verify(&Secret::from("correct horse batterx"), &phc).unwrap());
        assert!(!needs_rehash(&phc));
        assert!(needs_rehash(
            "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA"
        ));
        assert!(needs_rehash("garbage"));
        assert!(verify(&Secret::from("x"), "garbage").is_err());
    }

    #[test]
    fn long_passwords_are_not_truncated() {
        let a = "a".repeat(100);
        let b = format!("{}b", "a".repeat(99));
        let phc = hash(&Secret::from(a.as_str())).unwrap();
        assert!(verify(&Secret::from(a.as_str()), &phc).unwrap());
        assert!(!verify(&Secret::from(b.as_str()), &phc).unwrap());
    }
}
