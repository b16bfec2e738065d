//! The wire bodies the SDK reads from the token service: introspection
//! answers (turned into claims by `Introspection::claims`), revocation
//! feed pages, fingerprints (compared by `fingerprint::compare`), server
//! metadata, token and error answers.
//!
//! Every body is tried on the same bytes. Invariants: no panic; each body
//! read survives being written and read again unchanged; claims taken
//! from an introspection answer obey the shape rules (the reference
//! restates them), are what `Introspection::active` would answer for
//! them, can be minted, and read back the same from the minted payload;
//! a fingerprint compared with itself differs at most in `keys` (only
//! when it names one kid with two different keys).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tollgate_core::fingerprint;
use tollgate_core::fuzzing::parse_claims;
use tollgate_core::wire::{
    ErrorBody, Fingerprint, Introspection, RevocationPage, ServerMetadata, TokenResponse,
};
use tollgate_fuzz::{FIXTURE, assert_claims_match_json};

fuzz_target!(|data: &[u8]| {
    if let Some(answer) = round_trip::<Introspection>(data)
        && let Ok(claims) = answer.claims()
    {
        let written = serde_json::to_vec(&claims).expect("claims serialize");
        assert_claims_match_json(&written, &claims);
        assert_eq!(parse_claims(&written).as_ref(), Ok(&claims));
        assert_eq!(
            Introspection::active(&claims).claims().as_ref(),
            Ok(&claims)
        );
        FIXTURE
            .ed_minter
            .sign(&claims)
            .expect("introspected claims can be minted");
    }
    if let Some(page) = round_trip::<RevocationPage>(data) {
        let _ = page.events.len();
    }
    if let Some(fp) = round_trip::<Fingerprint>(data) {
        let differences = fingerprint::compare(&fp, &fp);
        let conflicting_kids = fp.keys.iter().any(|a| {
            fp.keys
                .iter()
                .any(|b| a.kid == b.kid && (a.thumbprint != b.thumbprint || a.alg != b.alg))
        });
        for d in &differences {
            assert!(
                d.field == "keys" && conflicting_kids,
                "a fingerprint differs from itself in {}",
                d.field
            );
        }
    }
    if let Ok((a, b)) = serde_json::from_slice::<(Fingerprint, Fingerprint)>(data) {
        let _ = fingerprint::compare(&a, &b);
    }
    round_trip::<ServerMetadata>(data);
    round_trip::<TokenResponse>(data);
    round_trip::<ErrorBody>(data);
});

fn round_trip<T>(data: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value: T = serde_json::from_slice(data).ok()?;
    let written = serde_json::to_vec(&value).expect("a wire body serializes");
    let again: T = serde_json::from_slice(&written).expect("a written wire body reads back");
    assert_eq!(
        again, value,
        "a wire body changed when written and read again"
    );
    Some(value)
}
