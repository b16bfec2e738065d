//! The rules of CONTRACT §2 over resolved values: what staging and
//! production refuse (and development only warns about), and what is
//! inconsistent in any environment. Each problem is one line naming the
//! variable it came from.

use super::builder::Resolver;
use super::parse::Value;
use super::parse::{is_loopback_issuer, is_weak_secret};
use super::{Component, Entry, MAX_SHORT_TOKEN_TTL, Setting, Source, settings};
use crate::Error;
use crate::keys::seal::MIN_MASTER_KEY_BYTES;
use crate::keys::{Algorithm, MIN_HMAC_SECRET_BYTES};

impl Resolver {
    /// The rules of CONTRACT §2 over the resolved values. Each problem is
    /// one line; a setting whose value failed to parse is not judged again.
    pub(super) fn check_rules(&mut self) {
        self.check_issuer();
        self.check_signing();
        self.check_master_key();
        self.check_service_identity();
        self.check_development_switches();
        self.check_bootstrap_admin();
        self.check_lifetimes();
        self.check_keep_alive();
        self.check_audit_webhook();
    }

    /// The audit webhook needs an http(s) URL and a signing key (an
    /// unsigned alert could be forged by anyone who learns the URL).
    fn check_audit_webhook(&mut self) {
        let url = self.secret(Setting::AuditWebhookUrl).cloned();
        let key = self.secret(Setting::AuditWebhookSecret).cloned();
        match (&url, &key) {
            (Some(_), None) => self.error(format!(
                "{} is set without TOLLGATE_AUDIT_WEBHOOK_SECRET (the posts are signed with it)",
                self.origin(Setting::AuditWebhookUrl)
            )),
            (None, Some(_)) => self.warning(format!(
                "{} is set without TOLLGATE_AUDIT_WEBHOOK_URL; it is not used",
                self.origin(Setting::AuditWebhookSecret)
            )),
            _ => {}
        }
        if let Some(url) = url {
            let text = url.expose_str().unwrap_or("");
            let scheme_ok = text.starts_with("https://") || text.starts_with("http://");
            if !scheme_ok || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
                self.error(format!(
                    "{} is not an http:// or https:// URL",
                    self.origin(Setting::AuditWebhookUrl)
                ));
            }
        }
        if let Some(key) = key
            && key.expose().len() < 32
        {
            self.error(format!(
                "{} is shorter than 32 bytes",
                self.origin(Setting::AuditWebhookSecret)
            ));
        }
    }

    /// Load balancers and client pools (AWS ALB, nginx, the SDK) keep idle
    /// connections up to 60 s: a server that closes sooner races them, and
    /// a request sent on a connection the server just closed fails.
    fn check_keep_alive(&mut self) {
        if let Some(timeout) = self.seconds(Setting::KeepAliveTimeout)
            && timeout < 60
        {
            self.warning(format!(
                "{} is {timeout} s; load balancers and client pools that keep idle connections 60 s will reuse connections the server has closed (keep it above theirs)",
                self.origin(Setting::KeepAliveTimeout)
            ));
        }
    }

    fn check_issuer(&mut self) {
        let env = self.environment;
        if self.is_missing(Setting::Issuer) {
            if env.is_strict() {
                self.error(format!(
                    "TOLLGATE_ISSUER is required in {env}: set it to the public https:// URL of the token service"
                ));
            }
            return;
        }
        let Some(issuer) = self.text(Setting::Issuer).map(str::to_owned) else {
            return;
        };
        if env.is_strict() && issuer.starts_with("http://") && !is_loopback_issuer(&issuer) {
            self.error(format!(
                "{}={issuer} uses plain http:// in {env}; use https:// (http:// is allowed only for loopback addresses)",
                self.origin(Setting::Issuer)
            ));
        }
        let from_default = matches!(
            self.entries
                .iter()
                .find(|e| e.spec.setting() == Setting::Issuer),
            Some(Entry {
                source: Source::Default(_),
                ..
            })
        );
        let unspecified = matches!(
            self.values.get(&Setting::Bind),
            Some(Value::Addr(bind)) if bind.ip().is_unspecified()
        );
        if from_default && unspecified {
            self.warning(format!(
                "the default issuer {issuer} names no host clients can reach; set TOLLGATE_ISSUER to the URL clients use"
            ));
        }
    }

    fn check_signing(&mut self) {
        let alg = self.algorithm();
        let secret_name = self.origin(Setting::HmacSecret);
        let secret = self.secret(Setting::HmacSecret).cloned();
        match (alg, secret) {
            (Some(Algorithm::HS256), None) if self.is_missing(Setting::HmacSecret) => {
                self.error(format!(
                    "{} is HS256 but no shared secret is set; set TOLLGATE_HMAC_SECRET to at least 32 random bytes",
                    self.origin(Setting::SigningAlg)
                ));
            }
            (Some(Algorithm::HS256), Some(secret)) => {
                if secret.len() < MIN_HMAC_SECRET_BYTES {
                    self.error(format!(
                        "{secret_name} is {} bytes; HS256 needs a secret of at least {MIN_HMAC_SECRET_BYTES} random bytes",
                        secret.len()
                    ));
                } else if is_weak_secret(&secret) {
                    self.refusal(format!(
                        "{secret_name} is a well-known placeholder or repetitive secret; generate one with `openssl rand -base64 48`"
                    ));
                }
            }
            (Some(other), Some(_)) => self.warning(format!(
                "{secret_name} is set but the signing algorithm is {other}; the secret is not used"
            )),
            _ => {}
        }
        self.check_previous_secret(alg);
    }

    /// HS256 secret rotation: the previous secret follows the current one's
    /// rules, and always comes with the end of its overlap.
    fn check_previous_secret(&mut self, alg: Option<Algorithm>) {
        let name = self.origin(Setting::HmacPreviousSecret);
        let until_name = self.origin(Setting::HmacPreviousUntil);
        let previous = self.secret(Setting::HmacPreviousSecret).cloned();
        let until = self.moment(Setting::HmacPreviousUntil);
        match (alg, previous, until) {
            (_, None, Some(_)) => self.warning(format!(
                "{until_name} is set but TOLLGATE_HMAC_PREVIOUS_SECRET is not; it is not used"
            )),
            (Some(Algorithm::HS256), Some(previous), until) => {
                if previous.len() < MIN_HMAC_SECRET_BYTES {
                    self.error(format!(
                        "{name} is {} bytes; HS256 needs a secret of at least {MIN_HMAC_SECRET_BYTES} random bytes",
                        previous.len()
                    ));
                } else if is_weak_secret(&previous) {
                    self.refusal(format!(
                        "{name} is a well-known placeholder or repetitive secret; it must not verify tokens"
                    ));
                }
                if self.secret(Setting::HmacSecret) == Some(&previous) {
                    self.warning(format!(
                        "{name} is the same as TOLLGATE_HMAC_SECRET; there is nothing to rotate"
                    ));
                }
                if until.is_none() {
                    self.error(format!(
                        "{name} is set without TOLLGATE_HMAC_PREVIOUS_UNTIL; say when the overlap ends (RFC 3339, e.g. 2026-12-31T23:59:59Z)"
                    ));
                }
            }
            (Some(other), Some(_), _) => self.warning(format!(
                "{name} is set but the signing algorithm is {other}; the secret is not used"
            )),
            _ => {}
        }
    }

    fn check_master_key(&mut self) {
        let env = self.environment;
        let name = self.origin(Setting::MasterKey);
        match self.secret(Setting::MasterKey).cloned() {
            None => {
                if self.component == Component::Server
                    && env.is_strict()
                    && self.is_missing(Setting::MasterKey)
                {
                    self.error(format!(
                        "TOLLGATE_MASTER_KEY is required in {env}: it encrypts the private signing keys at rest (at least {MIN_MASTER_KEY_BYTES} random bytes)"
                    ));
                }
            }
            Some(key) if key.len() < MIN_MASTER_KEY_BYTES => self.error(format!(
                "{name} is {} bytes; the master key needs at least {MIN_MASTER_KEY_BYTES} random bytes",
                key.len()
            )),
            Some(key) if is_weak_secret(&key) => self.refusal(format!(
                "{name} is a well-known placeholder or repetitive secret; generate one with `openssl rand -base64 48`"
            )),
            Some(_) => {}
        }
    }

    fn check_service_identity(&mut self) {
        let env = self.environment;
        let sdk_in_strict = self.component == Component::Sdk && env.is_strict();
        if sdk_in_strict && self.is_missing(Setting::ClientId) {
            self.error(format!(
                "TOLLGATE_CLIENT_ID is required for a service in {env}: it names the service to the token service"
            ));
        }
        if sdk_in_strict && self.is_missing(Setting::ClientSecret) {
            self.error(format!(
                "TOLLGATE_CLIENT_SECRET is required for a service in {env}: without it the service cannot introspect or follow revocations"
            ));
        }
        if !sdk_in_strict
            && self.secret(Setting::ClientSecret).is_some()
            && self.is_missing(Setting::ClientId)
        {
            self.error(format!(
                "{} is set without TOLLGATE_CLIENT_ID",
                self.origin(Setting::ClientSecret)
            ));
        }
    }

    fn check_development_switches(&mut self) {
        let env = self.environment;
        if !env.is_strict() {
            return;
        }
        for spec in settings().iter().filter(|s| s.is_development_only()) {
            if self.switch(spec.setting()) == Some(true) {
                self.error(format!(
                    "{} is a development-only switch and must be off in {env}",
                    self.origin(spec.setting())
                ));
            }
        }
    }

    fn check_bootstrap_admin(&mut self) {
        let email = self.text(Setting::BootstrapAdminEmail).is_some();
        let password = self.secret(Setting::BootstrapAdminPassword).cloned();
        if email && self.is_missing(Setting::BootstrapAdminPassword) {
            self.error(format!(
                "{} is set without TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD",
                self.origin(Setting::BootstrapAdminEmail)
            ));
        }
        let Some(password) = password else {
            return;
        };
        if self.is_missing(Setting::BootstrapAdminEmail) {
            self.error(format!(
                "{} is set without TOLLGATE_BOOTSTRAP_ADMIN_EMAIL",
                self.origin(Setting::BootstrapAdminPassword)
            ));
        }
        let policy = match password.expose_str() {
            Some(text) => crate::password::check_policy(text),
            None => Err(Error::WeakPassword("the password is not valid UTF-8")),
        };
        if let Err(err) = policy {
            self.error(format!(
                "{} is refused: {err}",
                self.origin(Setting::BootstrapAdminPassword)
            ));
        }
    }

    fn check_lifetimes(&mut self) {
        for setting in [Setting::AccessTokenTtl, Setting::ServiceTokenTtl] {
            if let Some(ttl) = self.seconds(setting)
                && ttl > MAX_SHORT_TOKEN_TTL
            {
                self.error(format!(
                    "{} is {ttl} s; access and service tokens live at most 24h ({MAX_SHORT_TOKEN_TTL} s), longer tokens are refused by validators",
                    self.origin(setting)
                ));
            }
        }
        if let (Some(access), Some(refresh)) = (
            self.seconds(Setting::AccessTokenTtl),
            self.seconds(Setting::RefreshTokenTtl),
        ) && refresh < access
        {
            self.warning(format!(
                "{} ({refresh} s) is shorter than {} ({access} s): sessions end before their access tokens",
                self.origin(Setting::RefreshTokenTtl),
                self.origin(Setting::AccessTokenTtl)
            ));
        }
        if let Some(leeway) = self.seconds(Setting::Leeway)
            && leeway > 300
        {
            self.warning(format!(
                "{} is {leeway} s; expired tokens stay accepted that long (the default is 30 s)",
                self.origin(Setting::Leeway)
            ));
        }
    }
}
