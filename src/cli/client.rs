//! `tollgate client add|list`: register service clients in the server's
//! store. The secret is printed once by `client add` and only its digest
//! is stored.
//!
//! Output: `client add` prints `CLIENT_ID  scopes=…` then `secret tgs_…`;
//! with `--json` one object `{"client_id","client_secret","scopes"}`.
//! `client list` prints `CLIENT_ID  scopes=…  created=UNIX` per client, or
//! with `--json` one `{"client_id","scopes","created_at"}` object per line.
//!
//! Exit status: 0 done, 2 an error (invalid id or scope, a taken id, the
//! database).

use std::io::{self, Write};

use anyhow::Context;
use clap::{Args, Subcommand};
use tollgate_core::audit::AuditEvent;
use tollgate_core::wire::{Client, ClientCreated};
use tollgate_server::accounts;

use super::Outcome;
use super::local::Local;
use super::settings::ConfigArgs;

/// `tollgate client …`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a service client and print its secret (once).
    Add(AddArgs),
    /// List clients, oldest first (never their secrets).
    List(ListArgs),
}

/// Arguments of `client add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The client id: 3–64 of `A-Z a-z 0-9 . _ -`, not a user id.
    client_id: String,
    /// A scope the client may ask for (repeatable): `introspect` to
    /// introspect and follow the revocation feed, `revoke` to revoke any
    /// token, `admin` for the admin API, or your own.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

/// Arguments of `client list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

impl ClientCommand {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self {
            ClientCommand::Add(args) => add(args),
            ClientCommand::List(args) => list(args),
        }
    }
}

fn add(args: AddArgs) -> anyhow::Result<Outcome> {
    let local = Local::open(&args.settings)?;
    let (record, secret) = local.block_on(accounts::create_client(
        local.store.as_ref(),
        &args.client_id,
        args.scopes,
        local.now(),
    ))?;
    let secret = secret
        .expose_str()
        .context("a generated secret")?
        .to_owned();
    let event = AuditEvent::ClientCreated {
        client_id: record.client_id.clone(),
        scopes: record.scopes.clone(),
    };
    let mut out = io::stdout().lock();
    if args.json {
        let created = ClientCreated {
            client_id: record.client_id,
            client_secret: secret,
            scopes: record.scopes,
        };
        writeln!(out, "{}", serde_json::to_string(&created)?)?;
    } else {
        writeln!(
            out,
            "{}  scopes={}",
            record.client_id,
            scopes(&record.scopes)
        )?;
        writeln!(out, "secret {secret}")?;
        writeln!(out, "(shown once: store it now)")?;
    }
    out.flush()?;
    // After the output: the secret is shown even if the recording fails.
    local.audit(vec![event])?;
    Ok(Outcome::Success)
}

fn scopes(list: &[String]) -> String {
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(",")
    }
}

fn list(args: ListArgs) -> anyhow::Result<Outcome> {
    let local = Local::open(&args.settings)?;
    let clients = local.block_on(local.store.list_clients())?;
    let mut out = io::stdout().lock();
    for record in clients {
        if args.json {
            let client = Client {
                client_id: record.client_id,
                scopes: record.scopes,
                created_at: record.created_at,
            };
            writeln!(out, "{}", serde_json::to_string(&client)?)?;
        } else {
            writeln!(
                out,
                "{}  scopes={}  created={}",
                record.client_id,
                scopes(&record.scopes),
                record.created_at
            )?;
        }
    }
    out.flush()?;
    Ok(Outcome::Success)
}
