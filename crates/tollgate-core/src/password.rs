//! Passwords: the policy a new password must meet, and argon2id hashing.
//!
//! Parameters follow OWASP: argon2id, m = 19 MiB, t = 2, p = 1, 16-byte
//! salts, stored as PHC strings. Hashing is CPU work (about 20 ms and 19 MiB
//! each); callers in async code run it on a blocking pool with bounded
//! concurrency. [`needs_rehash`] tells a login to upgrade an older hash.
//!
//! Policy (NIST SP 800-63B): at least 8 characters, at most 1024 bytes, no
//! composition rules, no truncation, and not one of the most common passwords.

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm as Argon2Algorithm, Argon2, Block, Params, PasswordHash, Version};
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

fn params() -> Result<Params, Error> {
    Params::new(M_COST, T_COST, P_COST, None)
        .map_err(|_| Error::PasswordHash("invalid argon2 parameters"))
}

/// Hashes a password with a fresh 16-byte salt; returns the PHC string.
pub fn hash(password: &Secret) -> Result<String, Error> {
    Hasher::new().hash(password)
}

/// Whether `password` matches the PHC string `phc`. A malformed PHC string
/// is an error, not a mismatch. Passwords over the size limit never match.
pub fn verify(password: &Secret, phc: &str) -> Result<bool, Error> {
    Hasher::new().verify(password, phc)
}

/// Hashes and verifies with one argon2 memory block (19 MiB) that it keeps
/// and reuses. A thread that hashes all day (the token service's hashing
/// threads) then holds exactly one block, instead of asking the allocator
/// for 19 MiB per login and leaving it fragmented. Hashes under other
/// parameters than today's (older PHC strings) use a block of their own.
///
/// The results are those of [`hash`] and [`verify`]: argon2id, v0x13, PHC
/// strings, and a constant-time comparison of the outputs.
#[derive(Default)]
pub struct Hasher {
    blocks: Vec<Block>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The block holds what the last hash computed: never printed.
        f.debug_struct("Hasher")
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl Hasher {
    /// A hasher; its block is allocated by the first hash.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Runs argon2 into `out`, in the kept block when `params` are today's.
    fn fill(
        &mut self,
        argon2: &Argon2<'_>,
        params: &Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), Error> {
        let count = params.block_count();
        let mut own;
        let blocks = if params.m_cost() == M_COST {
            if self.blocks.len() != count {
                self.blocks = vec![Block::new(); count];
            }
            &mut self.blocks[..]
        } else {
            own = vec![Block::new(); count];
            &mut own[..]
        };
        argon2
            .hash_password_into_with_memory(password, salt, out, blocks)
            .map_err(|_| Error::PasswordHash("hashing failed"))
    }

    /// [`hash`], in the kept block.
    pub fn hash(&mut self, password: &Secret) -> Result<String, Error> {
        if password.len() > MAX_BYTES {
            return Err(Error::WeakPassword(
                "the password must be at most 1024 bytes long",
            ));
        }
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| Error::PasswordHash("no randomness for the salt"))?;
        let params = params()?;
        let argon2 = Argon2::new(Argon2Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.fill(&argon2, &params, password.expose(), &salt, &mut out)?;
        let phc = PasswordHash {
            algorithm: Argon2Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)
                .map_err(|_| Error::PasswordHash("invalid argon2 parameters"))?,
            salt: Some(Salt::new(&salt).map_err(|_| Error::PasswordHash("invalid salt"))?),
            hash: Some(Output::new(&out).map_err(|_| Error::PasswordHash("invalid output"))?),
        };
        Ok(phc.to_string())
    }

    /// [`verify`], in the kept block when the PHC string has today's
    /// parameters.
    pub fn verify(&mut self, password: &Secret, phc: &str) -> Result<bool, Error> {
        const MALFORMED: Error = Error::PasswordHash("not a PHC string");
        let parsed = PasswordHash::new(phc).map_err(|_| MALFORMED)?;
        if password.len() > MAX_BYTES {
            return Ok(false);
        }
        let algorithm =
            Argon2Algorithm::try_from(parsed.algorithm.as_str()).map_err(|_| MALFORMED)?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|_| MALFORMED)?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(|_| MALFORMED)?;
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err(MALFORMED);
        };
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        self.fill(&argon2, &params, password.expose(), salt, &mut out)?;
        let computed = Output::new(&out).map_err(|_| Error::PasswordHash("invalid output"))?;
        // `Output`'s equality is constant-time.
        Ok(&computed == expected)
    }
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

    #[test]
    fn a_kept_block_gives_the_same_answers_as_a_fresh_one() {
        use argon2::PasswordHasher;

        let mut hasher = Hasher::new();
        let password = Secret::from("correct horse battery");
        let mine = hasher.hash(&password).unwrap();
        assert!(
            mine.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{mine}"
        );
        // Verified by the argon2 crate's own verifier, and the reverse.
        let parsed = PasswordHash::new(&mine).unwrap();
        assert!(
            argon2::PasswordVerifier::verify_password(
                &Argon2::default(),
                b"correct horse battery",
                &parsed
            )
            .is_ok()
        );
        let salt = [7u8; 16];
        let theirs = Argon2::new(Argon2Algorithm::Argon2id, Version::V0x13, params().unwrap())
            .hash_password_with_salt(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        for _ in 0..2 {
            // The block is reused: the second round must answer alike.
            assert!(hasher.verify(&password, &theirs).unwrap());
            assert!(hasher.verify(&password, &mine).unwrap());
            assert!(
                !hasher
                    .verify(&Secret::from("correct horse batterx"), &mine)
                    .unwrap()
            );
        }
        assert_eq!(hasher.blocks.len(), params().unwrap().block_count());

        // Older parameters and other variants verify in a block of their own.
        let old = Params::new(4096, 3, 1, None).unwrap();
        for alg in [Argon2Algorithm::Argon2id, Argon2Algorithm::Argon2i] {
            let phc = Argon2::new(alg, Version::V0x10, old.clone())
                .hash_password_with_salt(b"an older password", &salt)
                .unwrap()
                .to_string();
            assert!(
                hasher
                    .verify(&Secret::from("an older password"), &phc)
                    .unwrap()
            );
            assert!(
                !hasher
                    .verify(&Secret::from("an older passwore"), &phc)
                    .unwrap()
            );
            assert!(needs_rehash(&phc));
        }
        assert_eq!(hasher.blocks.len(), params().unwrap().block_count());

        // Malformed PHC strings are errors, never matches.
        for bad in [
            "garbage",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0",
            "$argon2id$v=99$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
            "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        ] {
            assert!(hasher.verify(&password, bad).is_err(), "{bad}");
        }
        assert!(format!("{hasher:?}").starts_with("Hasher { blocks: "));
    }
}
