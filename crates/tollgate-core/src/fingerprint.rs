//! Fingerprints: comparing what services trust without revealing secrets
//! (CONTRACT §7).
//!
//! [`secret_fingerprint`] turns a shared secret into a keyed 64-bit value
//! that two services can compare. [`compare`] lists the fields in which a
//! service's [`Fingerprint`] disagrees with the token service's, and
//! [`Level`] ranks the outcome of a consistency check.

use std::fmt;

use aws_lc_rs::hmac;

use crate::Secret;
use crate::wire::Fingerprint;

/// Keyed 64-bit fingerprint of a shared secret: the first 8 bytes of
/// HMAC-SHA256 keyed with a fixed domain-separation label, as 16 hex digits.
/// Equal secrets give equal fingerprints; the secret cannot be read back
/// from it (and secrets short enough to guess are refused by the config).
pub fn secret_fingerprint(secret: &Secret) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"tollgate secret fingerprint v1");
    let tag = hmac::sign(&key, secret.expose());
    tag.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One field in which a service disagrees with the token service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The field name, as in [`Fingerprint`].
    pub field: &'static str,
    /// The token service's value.
    pub expected: String,
    /// The service's value.
    pub found: String,
    /// How bad it is: [`Level::Critical`], or [`Level::Warning`] for a
    /// service still on the previous HS256 secret during its overlap.
    pub level: Level,
}

impl Difference {
    fn critical(field: &'static str, expected: String, found: String) -> Difference {
        Difference {
            field,
            expected,
            found,
            level: Level::Critical,
        }
    }
}

/// The fields of `service` that disagree with `reference` (the token
/// service). A field either side omits is not compared.
///
/// - `issuer` must be equal;
/// - every audience the service expects must be one the token service issues;
/// - the service must accept the algorithm(s) the token service signs with;
/// - a key both know by `kid` must have the same thumbprint, and the service
///   must know at least one of the token service's keys;
/// - when the token service says which key is `active` and which is `next`,
///   the service must hold both: without the next key, the next rotation
///   refuses fresh tokens there ("rotation without overlap");
/// - lifetimes, leeway and the secret fingerprint must be equal when both
///   report them.
pub fn compare(reference: &Fingerprint, service: &Fingerprint) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut differ = |field, expected: String, found: String| {
        out.push(Difference::critical(field, expected, found));
    };
    if reference.issuer != service.issuer {
        differ("issuer", reference.issuer.clone(), service.issuer.clone());
    }
    if !service
        .audiences
        .iter()
        .all(|a| reference.audiences.contains(a))
    {
        differ(
            "audiences",
            reference.audiences.join(","),
            service.audiences.join(","),
        );
    }
    if !reference
        .algorithms
        .iter()
        .all(|a| service.algorithms.contains(a))
    {
        differ(
            "algorithms",
            reference.algorithms.join(","),
            service.algorithms.join(","),
        );
    }
    let mismatched = service.keys.iter().any(|k| {
        reference
            .keys
            .iter()
            .any(|r| r.kid == k.kid && (r.thumbprint != k.thumbprint || r.alg != k.alg))
    });
    let shares_one = reference.keys.is_empty()
        || service.keys.is_empty()
        || service
            .keys
            .iter()
            .any(|k| reference.keys.iter().any(|r| r.kid == k.kid));
    if mismatched || !shares_one {
        let kids = |f: &Fingerprint| {
            f.keys
                .iter()
                .map(|k| k.kid.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        differ("keys", kids(reference), kids(service));
    } else if !service.keys.is_empty() {
        let lacking: Vec<String> = reference
            .keys
            .iter()
            .filter_map(|r| {
                let status = r.status.as_deref()?;
                let needed = status == "active" || status == "next";
                let held = service.keys.iter().any(|k| k.kid == r.kid);
                (needed && !held).then(|| format!("{} ({status})", r.kid))
            })
            .collect();
        if !lacking.is_empty() {
            let kids = service
                .keys
                .iter()
                .map(|k| k.kid.as_str())
                .collect::<Vec<_>>()
                .join(",");
            differ(
                "keys",
                format!(
                    "{} (rotation without overlap: a service must hold the active and the next key)",
                    lacking.join(", ")
                ),
                kids,
            );
        }
    }
    let mut optional = |field, a: Option<String>, b: Option<String>| {
        if let (Some(a), Some(b)) = (a, b)
            && a != b
        {
            out_push(&mut out, field, a, b);
        }
    };
    let num = |v: Option<u64>| v.map(|n| n.to_string());
    optional(
        "access_token_ttl",
        num(reference.access_token_ttl),
        num(service.access_token_ttl),
    );
    optional(
        "refresh_token_ttl",
        num(reference.refresh_token_ttl),
        num(service.refresh_token_ttl),
    );
    optional(
        "service_token_ttl",
        num(reference.service_token_ttl),
        num(service.service_token_ttl),
    );
    optional("leeway", num(reference.leeway), num(service.leeway));
    if let (Some(expected), Some(found)) =
        (&reference.secret_fingerprint, &service.secret_fingerprint)
        && expected != found
    {
        // During an HS256 secret rotation a service still on the previous
        // secret is late, not wrong: its tokens verify until the overlap
        // ends.
        match (&reference.previous_secret_fingerprint, reference.previous_secret_until) {
            (Some(previous), Some(until)) if previous == found => out.push(Difference {
                field: "secret_fingerprint",
                expected: format!(
                    "{expected} (the service holds the previous secret, which verifies until {until}: move it to the current one before then)"
                ),
                found: found.clone(),
                level: Level::Warning,
            }),
            _ => out_push(&mut out, "secret_fingerprint", expected.clone(), found.clone()),
        }
    }
    out
}

fn out_push(out: &mut Vec<Difference>, field: &'static str, expected: String, found: String) {
    out.push(Difference::critical(field, expected, found));
}

/// The level of a service's comparison: `INFO` without differences, else
/// the worst difference's.
pub fn level_of(differences: &[Difference]) -> Level {
    differences
        .iter()
        .map(|d| d.level)
        .max()
        .unwrap_or(Level::Info)
}

/// The outcome of a consistency check, worst last. Exit codes follow the
/// order: 0, 1, 2, 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Consistent.
    Info,
    /// A service could not be reached.
    Warning,
    /// One or two services disagree with the token service.
    Critical,
    /// More than two services disagree.
    Emergency,
}

impl Level {
    /// The process exit code for this level.
    pub fn exit_code(self) -> i32 {
        match self {
            Level::Info => 0,
            Level::Warning => 1,
            Level::Critical => 2,
            Level::Emergency => 3,
        }
    }

    /// `INFO`, `WARNING`, `CRITICAL` or `EMERGENCY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Emergency => "EMERGENCY",
        }
    }

    /// The overall level from per-service levels: the worst one, raised to
    /// `EMERGENCY` when more than two services disagree.
    pub fn overall(levels: &[Level]) -> Level {
        let disagreeing = levels.iter().filter(|l| **l >= Level::Critical).count();
        if disagreeing > 2 {
            return Level::Emergency;
        }
        levels.iter().copied().max().unwrap_or(Level::Info)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FingerprintKey;

    fn print() -> Fingerprint {
        Fingerprint {
            service: "tollgate".into(),
            issuer: "https://auth.example".into(),
            audiences: vec!["api".into(), "chat".into()],
            algorithms: vec!["EdDSA".into()],
            keys: vec![FingerprintKey {
                kid: "k1".into(),
                alg: "EdDSA".into(),
                thumbprint: "t1".into(),
                status: None,
            }],
            access_token_ttl: Some(900),
            refresh_token_ttl: Some(604800),
            service_token_ttl: Some(3600),
            leeway: Some(30),
            secret_fingerprint: None,
            previous_secret_fingerprint: None,
            previous_secret_until: None,
        }
    }

    #[test]
    fn equal_prints_agree_and_each_field_is_named() {
        let reference = print();
        let mut service = print();
        service.service = "chat-backend".into();
        service.audiences = vec!["chat".into()];
        service.refresh_token_ttl = None;
        assert!(compare(&reference, &service).is_empty());

        service.issuer = "https://auth.example/".into();
        service.audiences = vec!["other".into()];
        service.keys[0].thumbprint = "t2".into();
        service.leeway = Some(60);
        let fields: Vec<_> = compare(&reference, &service)
            .iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, ["issuer", "audiences", "keys", "leeway"]);
    }

    #[test]
    fn a_service_without_the_next_key_is_a_rotation_without_overlap() {
        let key = |kid: &str, status: Option<&str>| FingerprintKey {
            kid: kid.into(),
            alg: "EdDSA".into(),
            thumbprint: format!("t-{kid}"),
            status: status.map(str::to_owned),
        };
        let mut reference = print();
        reference.keys = vec![
            key("k0", Some("verify_only")),
            key("k1", Some("active")),
            key("k2", Some("next")),
        ];
        let mut service = print();
        service.keys = vec![key("k1", None), key("k2", None)];
        assert!(compare(&reference, &service).is_empty());
        service.keys = vec![key("k0", None), key("k1", None)];
        let differences = compare(&reference, &service);
        assert_eq!(differences.len(), 1);
        assert_eq!(differences[0].field, "keys");
        assert!(
            differences[0].expected.contains("k2 (next)")
                && differences[0].expected.contains("rotation without overlap"),
            "{differences:?}"
        );
    }

    #[test]
    fn a_service_on_the_previous_secret_during_the_overlap_is_a_warning() {
        let mut reference = print();
        reference.secret_fingerprint = Some("new".into());
        let mut service = print();
        service.secret_fingerprint = Some("old".into());
        // No overlap: it disagrees.
        assert_eq!(level_of(&compare(&reference, &service)), Level::Critical);
        reference.previous_secret_fingerprint = Some("old".into());
        reference.previous_secret_until = Some(2_000_000_000);
        let differences = compare(&reference, &service);
        assert_eq!(differences.len(), 1);
        assert_eq!(differences[0].field, "secret_fingerprint");
        assert_eq!(level_of(&differences), Level::Warning);
        // A third secret is still critical; the current one is consistent.
        service.secret_fingerprint = Some("other".into());
        assert_eq!(level_of(&compare(&reference, &service)), Level::Critical);
        service.secret_fingerprint = Some("new".into());
        assert_eq!(level_of(&compare(&reference, &service)), Level::Info);
    }

    #[test]
    fn levels() {
        use Level::*;
        assert_eq!(Level::overall(&[]), Info);
        assert_eq!(Level::overall(&[Info, Warning]), Warning);
        assert_eq!(Level::overall(&[Critical, Warning, Critical]), Critical);
        assert_eq!(Level::overall(&[Critical, Critical, Critical]), Emergency);
        assert_eq!(Emergency.exit_code(), 3);
    }

    #[test]
    fn secret_fingerprints_are_stable_and_distinct() {
        let a = secret_fingerprint(&Secret::from("a".repeat(32)));
        assert_eq!(a.len(), 16);
        assert_eq!(a, secret_fingerprint(&Secret::from("a".repeat(32))));
        assert_ne!(a, secret_fingerprint(&Secret::from("b".repeat(32))));
    }
}
