//! `plans.toml` (`Plans::from_toml`).
//!
//! Invariants: no panic; accepted plans include `free`, have multipliers
//! and rates of at least 1 and no duplicate tool; and every accepted plan
//! can be lived with: a user token minted with the plan's name and
//! permissions (as the token service does at login) is accepted by the
//! validator with the same plan and permissions. A plan the minter or the
//! validator refuses would lock its users out at every login, so the
//! plans file must be refused instead.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::Expect;
use tollgate_core::claims::UserGrant;
use tollgate_core::plans::Plans;
use tollgate_core::validate::dangerous::NoRevocations;
use tollgate_fuzz::{FIXTURE, NOW};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(plans) = Plans::from_toml(text) else {
        return;
    };
    assert!(plans.contains("free"), "accepted plans without `free`");
    let fx = &*FIXTURE;
    for plan in plans.iter() {
        assert!(plan.rate_multiplier >= 1 && plan.rate_per_minute >= 1);
        let mut tools = plan.tools.clone();
        tools.sort();
        tools.dedup();
        assert_eq!(tools.len(), plan.tools.len(), "a plan lists a tool twice");
        let grant = UserGrant {
            sub: "u1".to_owned(),
            sid: "sid-1".to_owned(),
            email: "a@example.com".to_owned(),
            roles: vec!["user".to_owned()],
            plan: plan.name.clone(),
            permissions: plan.permissions(),
            client_id: "web".to_owned(),
            scope: "openid".to_owned(),
        };
        let (token, _) = fx.ed_minter.user(grant, NOW, 900).unwrap_or_else(|err| {
            panic!(
                "plan {:?} is accepted but its tokens cannot be minted: {err}",
                plan.name
            )
        });
        let claims = fx
            .validator
            .validate(&token, Expect::Access, NOW, &NoRevocations)
            .unwrap_or_else(|err| {
                panic!(
                    "plan {:?} is accepted but its tokens are refused: {err}",
                    plan.name
                )
            });
        assert_eq!(claims.plan.as_deref(), Some(plan.name.as_str()));
        assert_eq!(claims.permissions, plan.permissions());
    }
});
