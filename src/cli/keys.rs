//! `tollgate keys list|rotate|generate`: the signing keys in the server's
//! store. Safe while the server runs: it reloads keys every two seconds, so
//! a rotation takes effect there within seconds, and the old key keeps
//! verifying until every token it signed has expired.
//!
//! Output: `keys list` prints `KID  ALG  STATUS  created=UNIX  [retire_at=UNIX]`
//! per key, newest first, or with `--json` one
//! `{"kid","alg","status","created_at","retire_at"?}` object per line.
//! `keys rotate` and `keys generate` print the new key's id (`generate`
//! prints nothing new when an active key of the configured algorithm
//! exists; it then says so on stderr).
//!
//! Exit status: 0 done, 2 an error (HS256 configured, a master key that
//! does not open the stored keys, the database).

use std::io::{self, Write};

use clap::{Args, Subcommand};
use tollgate_core::audit::AuditEvent;
use tollgate_server::keystore;

use super::Outcome;
use super::local::Local;
use super::settings::ConfigArgs;

/// `tollgate keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys, newest first.
    List(KeyArgs),
    /// Make a new key of the configured algorithm the signing key; the old
    /// one verifies until its tokens expire.
    Rotate(KeyArgs),
    /// Create the first key when no key of the configured algorithm is
    /// active (`serve` does this too on start).
    Generate(KeyArgs),
}

/// Arguments of the `keys` commands.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Print JSON (one object per line).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

impl KeysCommand {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self {
            KeysCommand::List(args) => list(args),
            KeysCommand::Rotate(args) => rotate(args),
            KeysCommand::Generate(args) => generate(args),
        }
    }
}

fn list(args: KeyArgs) -> anyhow::Result<Outcome> {
    let local = Local::open(&args.settings)?;
    local.require_stored_keys()?;
    let master = local.master_key()?;
    let ring = local.block_on(keystore::load_ring(local.store.as_ref(), master.as_ref()))?;
    let keys = keystore::key_list(&ring).keys;
    let mut out = io::stdout().lock();
    for key in keys {
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&key)?)?;
        } else {
            let retire = key
                .retire_at
                .map(|t| format!("  retire_at={t}"))
                .unwrap_or_default();
            writeln!(
                out,
                "{}  {}  {}  created={}{retire}",
                key.kid, key.alg, key.status, key.created_at
            )?;
        }
    }
    out.flush()?;
    Ok(Outcome::Success)
}

fn print_kid(kid: &str, json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::json!({ "kid": kid }))?;
    } else {
        writeln!(out, "{kid}")?;
    }
    out.flush()
}

fn rotate(args: KeyArgs) -> anyhow::Result<Outcome> {
    let local = Local::open(&args.settings)?;
    local.require_stored_keys()?;
    let master = local.master_key()?;
    let kid = local.block_on(keystore::rotate(
        local.store.as_ref(),
        master.as_ref(),
        local.config.signing_alg,
        local.now(),
        local.config.key_overlap(),
    ))?;
    print_kid(&kid, args.json)?;
    local.audit(vec![AuditEvent::KeysRotated { kid }])?;
    Ok(Outcome::Success)
}

fn generate(args: KeyArgs) -> anyhow::Result<Outcome> {
    let local = Local::open(&args.settings)?;
    local.require_stored_keys()?;
    let master = local.master_key()?;
    let (ring, created) = local.block_on(keystore::prepare(
        local.store.as_ref(),
        master.as_ref(),
        local.config.signing_alg,
        local.now(),
        local.config.key_overlap(),
    ))?;
    match created {
        Some(kid) => {
            print_kid(&kid, args.json)?;
            local.audit(vec![AuditEvent::KeysRotated { kid }])?;
        }
        None => {
            let active = ring
                .active()
                .map(|k| k.kid().to_owned())
                .unwrap_or_default();
            super::warn(&[format!(
                "an active {} key exists already ({active}); nothing created",
                local.config.signing_alg
            )]);
        }
    }
    Ok(Outcome::Success)
}
