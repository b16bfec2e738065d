//! `tollgate token mint`: a real token for development and tests, signed
//! with the active key of the configured store (or the HS256 secret), with
//! the configured issuer and audiences — so the server and every SDK
//! accept it. Refused in staging and production: there, tokens come from
//! the token service only.
//!
//! Exit status: 0 minted, 2 an error (strict environment, no signing key,
//! a lifetime longer than the validator accepts).

use std::io::{self, Write};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::json;
use tollgate_core::claims::{Minter, ServiceGrant, UserGrant, new_id};
use tollgate_core::keys::SigningKey;
use tollgate_core::plans::DEFAULT_PLAN;
use tollgate_server::{FIRST_PARTY_CLIENT, USER_SCOPES, keystore};

use super::Outcome;
use super::local::Local;
use super::settings::ConfigArgs;

/// Arguments of `token mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// The subject: a user id, or for `--type service` the client id.
    #[arg(long)]
    sub: String,
    /// The kind of token.
    #[arg(long = "type", value_enum, default_value_t = MintType::Access)]
    token_type: MintType,
    /// The user's e-mail (user tokens).
    #[arg(long)]
    email: Option<String>,
    /// A role (repeatable; user tokens).
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// The plan, which gives the permissions (user tokens) [default: free].
    #[arg(long)]
    plan: Option<String>,
    /// Space-separated scopes [default: `profile offline_access` for users,
    /// none for services].
    #[arg(long)]
    scope: Option<String>,
    /// Lifetime in seconds [default: the configured access or service
    /// token lifetime].
    #[arg(long)]
    ttl: Option<u64>,
    /// Print one JSON object with the token and its claims.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

/// `--type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MintType {
    /// A user's access token.
    Access,
    /// A service (client credentials) token.
    Service,
}

/// Mints and prints a token.
pub fn run(args: MintArgs) -> anyhow::Result<Outcome> {
    let local = Local::open(&args.settings)?;
    let config = &local.config;
    if config.environment.is_strict() {
        bail!(
            "token mint is refused in {}: it is for development and test only",
            config.environment
        );
    }
    let default_ttl = match args.token_type {
        MintType::Access => config.access_token_ttl,
        MintType::Service => config.service_token_ttl,
    };
    let longest = config.access_token_ttl.max(config.service_token_ttl);
    let ttl = args.ttl.unwrap_or(default_ttl);
    if ttl == 0 || ttl > longest {
        bail!(
            "--ttl must be between 1 and {longest} seconds (the longest lifetime the validator accepts)"
        );
    }
    let key = signing_key(&local)?;
    let minter = Minter::new(config.issuer.clone(), config.audiences.clone(), key)?;
    let now = local.now();
    let (token, _) = match args.token_type {
        MintType::Access => {
            let plans = super::user::plans(&local)?;
            let plan = args.plan.unwrap_or_else(|| DEFAULT_PLAN.to_owned());
            let permissions = plans
                .find(&plan)
                .with_context(|| format!("there is no plan `{plan}`"))?
                .permissions();
            let grant = UserGrant {
                sub: args.sub,
                sid: new_id()?,
                email: args.email.unwrap_or_default(),
                roles: args.roles,
                plan,
                permissions,
                client_id: FIRST_PARTY_CLIENT.to_owned(),
                scope: args.scope.unwrap_or_else(|| USER_SCOPES.to_owned()),
            };
            minter.user(grant, now, ttl)?
        }
        MintType::Service => {
            let grant = ServiceGrant {
                client_id: args.sub,
                scope: args.scope.unwrap_or_default(),
            };
            minter.service(grant, now, ttl)?
        }
    };
    let mut out = io::stdout().lock();
    if args.json {
        let (_, claims_json) = tollgate_core::jws::dangerous::insecure_decode(&token)
            .context("the minted token does not decode")?;
        writeln!(
            out,
            "{}",
            json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": ttl,
                "claims": claims_json,
            })
        )?;
    } else {
        writeln!(out, "{token}")?;
    }
    out.flush()?;
    Ok(Outcome::Success)
}

fn signing_key(local: &Local) -> anyhow::Result<SigningKey> {
    let config = &local.config;
    if config.signing_alg.is_symmetric() {
        let ring = keystore::hmac_ring(config.hmac_secret.as_ref(), None, local.now())?;
        return Ok(ring.signing_key()?);
    }
    let master = local.master_key()?;
    let ring = local.block_on(keystore::load_ring(local.store.as_ref(), master.as_ref()))?;
    ring.signing_key().context(
        "the store holds no active signing key: run `tollgate keys generate` or start `tollgate serve` once",
    )
}
