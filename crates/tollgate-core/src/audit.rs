//! The audit trail's pure part: the typed [`AuditEvent`]s every part of
//! Tollgate records, their stored form ([`AuditEvent::into_parts`]), and the
//! hash chain ([`chain_hash`], [`ChainVerifier`]).
//!
//! The chain: every stored event carries `prev_hash` (the `hash` of the
//! event before it on the same chain, [`GENESIS`] for a chain's first) and
//! `hash` = SHA-256 of a domain label, `prev_hash` and the event's content
//! ([`AuditContent`], each field length-prefixed, so no two contents encode
//! alike). One chain per writer (a server instance, the CLI): writers never
//! wait for one another's hashes, and a verifier walks each chain on its
//! own. After retention pruning a chain starts at its oldest remaining
//! event, anchored on that event's `prev_hash`.
//!
//! **Invariant:** no event holds a token, secret or password: tokens and
//! e-mail addresses that did not match an account appear only as
//! [`crate::token_fingerprint`]s (8 hex digits of SHA-256).

use aws_lc_rs::digest::{Context, SHA256};
use serde_json::{Value, json};

use crate::UnixTime;

/// The `prev_hash` of a chain's first event: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why a login failed. The API never tells these apart (CONTRACT §4); the
/// audit does, for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// No account has the e-mail (or it is not an e-mail).
    UnknownAccount,
    /// The password does not match.
    WrongPassword,
    /// The account is disabled.
    Disabled,
}

impl LoginFailure {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::UnknownAccount => "unknown_account",
            LoginFailure::WrongPassword => "wrong_password",
            LoginFailure::Disabled => "disabled",
        }
    }
}

/// One security-relevant fact. The variant is the event's type
/// ([`AuditEvent::kind`]); who did it, from where and in which request are
/// the record's other fields ([`crate::audit`] module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// A login started a session.
    LoginSucceeded {
        /// The user.
        user_id: String,
        /// The new session.
        sid: String,
    },
    /// A login was refused with `invalid_credentials`.
    LoginFailed {
        /// The user, when the e-mail names one.
        user_id: Option<String>,
        /// Fingerprint of the e-mail as sent (an unknown "e-mail" may be a
        /// password typed in the wrong field, so it is never stored).
        email_fingerprint: String,
        /// Why.
        reason: LoginFailure,
    },
    /// A login was refused with 429: too many failed attempts.
    LoginLocked {
        /// Fingerprint of the e-mail as sent.
        email_fingerprint: String,
        /// Seconds the caller was told to wait.
        retry_after: u64,
    },
    /// A user registered.
    Registered {
        /// The new user.
        user_id: String,
    },
    /// A token was issued by a grant of `/oauth/token`.
    TokenIssued {
        /// `client_credentials` or `refresh_token`.
        grant: &'static str,
        /// The client it was issued to.
        client_id: String,
        /// The token's `sub`.
        subject: String,
        /// The access token's `jti` (an identifier, not the token).
        jti: String,
        /// Granted scope.
        scope: String,
    },
    /// A refresh token was rotated (or a retry within the grace answered).
    Refreshed {
        /// The user.
        user_id: String,
        /// The session.
        sid: String,
        /// The client.
        client_id: String,
        /// Whether it was a retry within the reuse grace.
        retried: bool,
        /// The new access token's `jti`.
        jti: String,
    },
    /// A used refresh token was presented again: its session is revoked.
    RefreshReuse {
        /// The revoked session.
        sid: String,
        /// Fingerprint of the presented token.
        token_fingerprint: String,
    },
    /// A user ended their session.
    Logout {
        /// The user.
        user_id: String,
        /// The session.
        sid: String,
    },
    /// Something was revoked.
    Revoked {
        /// `token`, `session` or `user`.
        kind: &'static str,
        /// The `jti`, `sid` or `sub`.
        value: String,
    },
    /// An admin (or the CLI) created a user.
    UserCreated {
        /// The user.
        user_id: String,
        /// Plan.
        plan: String,
        /// Roles.
        roles: Vec<String>,
    },
    /// An admin (or the CLI) changed a user.
    UserUpdated {
        /// The user.
        user_id: String,
        /// New plan, when changed.
        plan: Option<String>,
        /// New roles, when changed.
        roles: Option<Vec<String>>,
        /// New disabled flag, when changed.
        disabled: Option<bool>,
    },
    /// An admin (or the CLI) registered a service client.
    ClientCreated {
        /// The client.
        client_id: String,
        /// Its scopes.
        scopes: Vec<String>,
    },
    /// An admin deleted a service client (every token it holds is revoked).
    ClientDeleted {
        /// The client.
        client_id: String,
    },
    /// An admin gave a service client a new secret (the old one stops
    /// working).
    ClientSecretRotated {
        /// The client.
        client_id: String,
    },
    /// The signing keys were rotated.
    KeysRotated {
        /// The new active key.
        kid: String,
    },
    /// A server instance started with this configuration.
    ConfigLoaded {
        /// The environment profile.
        environment: String,
        /// The issuer.
        issuer: String,
        /// SHA-256 (16 hex digits) of the instance's `/v1/fingerprint`
        /// document: equal for instances that agree.
        fingerprint: String,
        /// The key ids in the key set.
        kids: Vec<String>,
    },
    /// Retention pruning removed old events.
    Pruned {
        /// Events older than this went.
        before: UnixTime,
        /// How many.
        rows: u64,
        /// Where every chain that lost events now starts (see [`Anchor`]).
        anchors: Vec<Anchor>,
    },
}

/// Where a pruned chain starts: the position and hash of the last event
/// gone. The oldest remaining event must link to it (`seq + 1`,
/// `prev_hash == hash`); a chain with no event left must have it as its
/// head. Recorded in every `audit.pruned` event for every such chain, so a
/// verifier tells retention from deletion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    /// The chain.
    pub chain: String,
    /// The last position gone.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// The anchors an `audit.pruned` event's stored details name (none when
/// they cannot be read).
pub fn pruned_anchors(details: &str) -> Vec<Anchor> {
    #[derive(serde::Deserialize)]
    struct Details {
        #[serde(default)]
        anchors: Vec<Anchor>,
    }
    serde_json::from_str::<Details>(details)
        .map(|d| d.anchors)
        .unwrap_or_default()
}

/// The stored type of [`AuditEvent::Pruned`].
pub const PRUNED: &str = "audit.pruned";

impl AuditEvent {
    /// The stored type, e.g. `login.failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::LoginSucceeded { .. } => "login.succeeded",
            AuditEvent::LoginFailed { .. } => "login.failed",
            AuditEvent::LoginLocked { .. } => "login.locked",
            AuditEvent::Registered { .. } => "user.registered",
            AuditEvent::TokenIssued { .. } => "token.issued",
            AuditEvent::Refreshed { .. } => "token.refreshed",
            AuditEvent::RefreshReuse { .. } => "token.refresh_reuse",
            AuditEvent::Logout { .. } => "session.logout",
            AuditEvent::Revoked { .. } => "revoked",
            AuditEvent::UserCreated { .. } => "admin.user_created",
            AuditEvent::UserUpdated { .. } => "admin.user_updated",
            AuditEvent::ClientCreated { .. } => "admin.client_created",
            AuditEvent::ClientDeleted { .. } => "admin.client_deleted",
            AuditEvent::ClientSecretRotated { .. } => "admin.client_secret_rotated",
            AuditEvent::KeysRotated { .. } => "keys.rotated",
            AuditEvent::ConfigLoaded { .. } => "config.loaded",
            AuditEvent::Pruned { .. } => PRUNED,
        }
    }

    /// The stored subject (whom or what the event is about) and details
    /// (a JSON object).
    pub fn into_parts(self) -> (Option<String>, String) {
        let (subject, details) = match self {
            AuditEvent::LoginSucceeded { user_id, sid } => (Some(user_id), json!({ "sid": sid })),
            AuditEvent::LoginFailed {
                user_id,
                email_fingerprint,
                reason,
            } => (
                user_id,
                json!({ "email_fingerprint": email_fingerprint, "reason": reason.as_str() }),
            ),
            AuditEvent::LoginLocked {
                email_fingerprint,
                retry_after,
            } => (
                None,
                json!({ "email_fingerprint": email_fingerprint, "retry_after": retry_after }),
            ),
            AuditEvent::Registered { user_id } => (Some(user_id), json!({})),
            AuditEvent::TokenIssued {
                grant,
                client_id,
                subject,
                jti,
                scope,
            } => (
                Some(subject),
                json!({ "grant": grant, "client_id": client_id, "jti": jti, "scope": scope }),
            ),
            AuditEvent::Refreshed {
                user_id,
                sid,
                client_id,
                retried,
                jti,
            } => (
                Some(user_id),
                json!({ "sid": sid, "client_id": client_id, "retried": retried, "jti": jti }),
            ),
            AuditEvent::RefreshReuse {
                sid,
                token_fingerprint,
            } => (Some(sid), json!({ "token_fingerprint": token_fingerprint })),
            AuditEvent::Logout { user_id, sid } => (Some(user_id), json!({ "sid": sid })),
            AuditEvent::Revoked { kind, value } => (Some(value), json!({ "kind": kind })),
            AuditEvent::UserCreated {
                user_id,
                plan,
                roles,
            } => (Some(user_id), json!({ "plan": plan, "roles": roles })),
            AuditEvent::UserUpdated {
                user_id,
                plan,
                roles,
                disabled,
            } => {
                let mut changes = serde_json::Map::new();
                if let Some(plan) = plan {
                    changes.insert("plan".to_owned(), Value::from(plan));
                }
                if let Some(roles) = roles {
                    changes.insert("roles".to_owned(), Value::from(roles));
                }
                if let Some(disabled) = disabled {
                    changes.insert("disabled".to_owned(), Value::from(disabled));
                }
                (Some(user_id), Value::Object(changes))
            }
            AuditEvent::ClientCreated { client_id, scopes } => {
                (Some(client_id), json!({ "scopes": scopes }))
            }
            AuditEvent::ClientDeleted { client_id }
            | AuditEvent::ClientSecretRotated { client_id } => (Some(client_id), json!({})),
            AuditEvent::KeysRotated { kid } => (Some(kid), json!({})),
            AuditEvent::ConfigLoaded {
                environment,
                issuer,
                fingerprint,
                kids,
            } => (
                None,
                json!({ "environment": environment, "issuer": issuer,
                        "fingerprint": fingerprint, "kids": kids }),
            ),
            AuditEvent::Pruned {
                before,
                rows,
                anchors,
            } => (
                None,
                json!({ "before": before, "rows": rows, "anchors": anchors }),
            ),
        };
        (subject, details.to_string())
    }
}

/// What an event's hash covers: everything stored but its cursor (assigned
/// at commit), its `prev_hash` (hashed separately) and its own `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditContent<'a> {
    /// The writer's chain.
    pub chain: &'a str,
    /// Position on the chain, from 1.
    pub seq: u64,
    /// When (Unix seconds).
    pub at: UnixTime,
    /// Type ([`AuditEvent::kind`]).
    pub kind: &'a str,
    /// Who: `user:<sub>`, `client:<id>`, `cli`, `system` or `anonymous`.
    pub actor: &'a str,
    /// Whom or what it is about.
    pub subject: Option<&'a str>,
    /// The client address.
    pub address: Option<&'a str>,
    /// The request's `x-request-id`.
    pub request_id: Option<&'a str>,
    /// Details, a JSON object, exactly as stored.
    pub details: &'a str,
}

/// The hash of an event with `content` after one whose hash is `prev`
/// (lower-case hex SHA-256).
pub fn chain_hash(prev: &str, content: &AuditContent<'_>) -> String {
    let mut hasher = Context::new(&SHA256);
    let mut field = |value: Option<&[u8]>| match value {
        // Length-prefixed: no two contents share an encoding; `~` marks
        // an absent field, which differs from an empty one (`0:`).
        Some(bytes) => {
            hasher.update(bytes.len().to_string().as_bytes());
            hasher.update(b":");
            hasher.update(bytes);
        }
        None => hasher.update(b"~"),
    };
    field(Some(b"tollgate-audit-v1"));
    field(Some(prev.as_bytes()));
    field(Some(content.chain.as_bytes()));
    field(Some(content.seq.to_string().as_bytes()));
    field(Some(content.at.to_string().as_bytes()));
    field(Some(content.kind.as_bytes()));
    field(Some(content.actor.as_bytes()));
    field(content.subject.map(str::as_bytes));
    field(content.address.map(str::as_bytes));
    field(content.request_id.map(str::as_bytes));
    field(Some(content.details.as_bytes()));
    hex(hasher.finish().as_ref())
}

/// The signature of an audit webhook body: `sha256=` and the lower-case
/// hex HMAC-SHA256 of exactly the bytes sent, keyed with
/// `TOLLGATE_AUDIT_WEBHOOK_SECRET` (docs/audit.md shows how to check it).
pub fn webhook_signature(key: &[u8], body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, body);
    format!("sha256={}", hex(tag.as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// How a chain is broken at one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// The stored hash is not the hash of the stored content.
    Hash,
    /// `prev_hash` is not the previous event's hash.
    Link,
    /// A position is missing (or repeated) between this event and the one
    /// before it: events were deleted from the middle.
    Gap,
    /// The chain's first event (position 1) does not start at
    /// [`GENESIS`].
    Genesis,
    /// The chain's recorded head (its last position and hash) is not its
    /// last event: events were deleted from the end.
    Head,
    /// The chain's oldest events are gone but the latest `audit.pruned`
    /// event does not name where it now starts: they were deleted, not
    /// pruned.
    Unanchored,
}

impl Break {
    /// A sentence for the operator.
    pub fn describe(self) -> &'static str {
        match self {
            Break::Hash => "its content does not match its hash (edited)",
            Break::Link => "its prev_hash is not the previous event's hash",
            Break::Gap => "events before it on its chain are missing",
            Break::Genesis => "the chain's first event does not start at the genesis hash",
            Break::Head => {
                "the chain's recorded head is not its last event (events at the end are missing)"
            }
            Break::Unanchored => {
                "events before it are gone and no audit.pruned event names it (deleted, not pruned)"
            }
        }
    }
}

/// Walks one chain in position order; feed it every event of the chain.
/// Position 1 must start at [`GENESIS`]; a chain whose oldest events were
/// pruned must start where its [`Anchor`] says.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    last: Option<(u64, String)>,
    anchor: Option<(u64, String)>,
}

impl ChainVerifier {
    /// A verifier for a chain that was never pruned.
    pub fn new() -> ChainVerifier {
        ChainVerifier::default()
    }

    /// A verifier for a chain the latest `audit.pruned` event anchors
    /// (`None`: it names none).
    pub fn anchored(anchor: Option<&Anchor>) -> ChainVerifier {
        ChainVerifier {
            last: None,
            anchor: anchor.map(|a| (a.seq, a.hash.clone())),
        }
    }

    /// Checks the next event of the chain.
    pub fn check(
        &mut self,
        content: &AuditContent<'_>,
        prev_hash: &str,
        hash: &str,
    ) -> Result<(), Break> {
        match &self.last {
            None if content.seq == 1 && prev_hash != GENESIS => return Err(Break::Genesis),
            None if content.seq > 1 => match &self.anchor {
                Some((seq, hash)) if seq.saturating_add(1) == content.seq && hash == prev_hash => {}
                _ => return Err(Break::Unanchored),
            },
            None => {}
            Some((seq, _)) if content.seq != seq.saturating_add(1) => return Err(Break::Gap),
            Some((_, last)) if last != prev_hash => return Err(Break::Link),
            Some(_) => {}
        }
        if chain_hash(prev_hash, content) != hash {
            return Err(Break::Hash);
        }
        self.last = Some((content.seq, hash.to_owned()));
        Ok(())
    }

    /// Checks the chain's recorded head against the last event seen; a
    /// chain with no event left must have been pruned up to its head.
    pub fn finish(&self, head_seq: u64, head_hash: &str) -> Result<(), Break> {
        match (&self.last, &self.anchor) {
            (Some((seq, hash)), _) if *seq != head_seq || hash != head_hash => Err(Break::Head),
            (Some(_), _) => Ok(()),
            (None, _) if head_seq == 0 => Ok(()),
            (None, Some((seq, hash))) if *seq == head_seq && hash == head_hash => Ok(()),
            (None, _) => Err(Break::Unanchored),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(seq: u64, details: &str) -> AuditContent<'_> {
        AuditContent {
            chain: "instance:a",
            seq,
            at: 1_700_000_000 + seq,
            kind: "login.failed",
            actor: "anonymous",
            subject: None,
            address: Some("127.0.0.1"),
            request_id: Some("r1"),
            details,
        }
    }

    fn chain(n: u64) -> Vec<(AuditContent<'static>, String, String)> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let c = content(seq, "{}");
                let hash = chain_hash(&prev, &c);
                let row = (c, prev.clone(), hash.clone());
                prev = hash;
                row
            })
            .collect()
    }

    fn check(rows: &[(AuditContent<'_>, String, String)]) -> Result<(), (u64, Break)> {
        let mut verifier = ChainVerifier::new();
        for (c, prev, hash) in rows {
            verifier.check(c, prev, hash).map_err(|b| (c.seq, b))?;
        }
        Ok(())
    }

    #[test]
    fn an_intact_chain_verifies_and_a_pruned_one_from_its_anchor() {
        let rows = chain(5);
        assert_eq!(check(&rows), Ok(()));
        // Pruned up to position 2: anchored there it verifies, else not.
        assert_eq!(check(&rows[2..]), Err((3, Break::Unanchored)));
        let anchor = Anchor {
            chain: "instance:a".to_owned(),
            seq: 2,
            hash: rows[1].2.clone(),
        };
        let mut verifier = ChainVerifier::anchored(Some(&anchor));
        for (c, prev, hash) in &rows[2..] {
            verifier.check(c, prev, hash).unwrap();
        }
        assert_eq!(verifier.finish(5, &rows[4].2), Ok(()));
        let mut wrong = ChainVerifier::anchored(Some(&Anchor {
            seq: 1,
            ..anchor.clone()
        }));
        assert_eq!(
            wrong.check(&rows[2].0, &rows[2].1, &rows[2].2),
            Err(Break::Unanchored)
        );
        // Every event gone: the head must be the anchor.
        let at_head = Anchor {
            seq: 5,
            hash: rows[4].2.clone(),
            ..anchor
        };
        assert_eq!(
            ChainVerifier::anchored(Some(&at_head)).finish(5, &rows[4].2),
            Ok(())
        );
        assert_eq!(
            ChainVerifier::new().finish(5, &rows[4].2),
            Err(Break::Unanchored)
        );
        assert_eq!(ChainVerifier::new().finish(0, GENESIS), Ok(()));
        let mut verifier = ChainVerifier::new();
        for (c, prev, hash) in &rows {
            verifier.check(c, prev, hash).unwrap();
        }
        assert_eq!(verifier.finish(5, &rows[4].2), Ok(()));
        assert_eq!(verifier.finish(6, &rows[4].2), Err(Break::Head));
    }

    #[test]
    fn every_kind_of_break_is_named_at_its_event() {
        let rows = chain(5);
        let mut edited = rows.clone();
        edited[2].0.details = "{\"x\":1}";
        assert_eq!(check(&edited), Err((3, Break::Hash)));
        let mut gap = rows.clone();
        gap.remove(2);
        assert_eq!(check(&gap), Err((4, Break::Gap)));
        let mut relinked = rows.clone();
        relinked[3].1 = GENESIS.to_owned();
        assert_eq!(check(&relinked), Err((4, Break::Link)));
        let mut genesis = rows.clone();
        genesis[0].1 = "ab".to_owned();
        assert_eq!(check(&genesis), Err((1, Break::Genesis)));
    }

    #[test]
    fn the_webhook_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            webhook_signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn absent_and_empty_fields_hash_differently() {
        let mut a = content(1, "{}");
        let mut b = a;
        a.subject = None;
        b.subject = Some("");
        assert_ne!(chain_hash(GENESIS, &a), chain_hash(GENESIS, &b));
        assert_eq!(chain_hash(GENESIS, &a).len(), 64);
    }

    #[test]
    fn events_hold_fingerprints_not_secrets() {
        let event = AuditEvent::RefreshReuse {
            sid: "s1".to_owned(),
            token_fingerprint: crate::token_fingerprint("tgr_secret"),
        };
        assert_eq!(event.kind(), "token.refresh_reuse");
        let (subject, details) = event.into_parts();
        assert_eq!(subject.as_deref(), Some("s1"));
        assert!(!details.contains("tgr_secret"));
        let update = AuditEvent::UserUpdated {
            user_id: "u".to_owned(),
            plan: Some("pro".to_owned()),
            roles: None,
            disabled: Some(true),
        };
        let (_, details) = update.into_parts();
        let value: Value = serde_json::from_str(&details).unwrap();
        assert_eq!(value, json!({"plan": "pro", "disabled": true}));
        let anchors = vec![Anchor {
            chain: "c".to_owned(),
            seq: 3,
            hash: "h".to_owned(),
        }];
        let pruned = AuditEvent::Pruned {
            before: 10,
            rows: 3,
            anchors: anchors.clone(),
        };
        assert_eq!(pruned.kind(), PRUNED);
        assert_eq!(pruned_anchors(&pruned.into_parts().1), anchors);
        assert_eq!(pruned_anchors("not json"), Vec::new());
    }
}
