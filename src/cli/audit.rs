//! `tollgate audit verify|tail`: the audit trail, read from the server's own
//! store (like `tollgate user`), so it works whether or not a server runs
//! (docs/audit.md).
//!
//! `verify` walks every hash chain from its oldest remaining event and
//! names the first break: exit 0 intact, 1 broken (the event's cursor,
//! chain, position and how), 2 an error (the database). `tail` prints the
//! last events (`-n`, default 20) and with `--follow` keeps printing new
//! ones as they are committed (polling every second), as text or, with
//! `--json`, one `AuditRecord` object per line (`GET /v1/admin/audit`'s).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tollgate_core::usage::day_key;
use tollgate_store::{AuditFilter, AuditRow, Store, verify_audit};

use super::Outcome;
use super::local::Local;
use super::settings::ConfigArgs;

/// `tollgate audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk every hash chain of the audit trail and name the first break
    /// (exit 1 when one is broken).
    Verify(VerifyArgs),
    /// Print the latest audit events, and with --follow the new ones as
    /// they come.
    Tail(TailArgs),
}

/// Arguments of `audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

/// Arguments of `audit tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// How many of the latest events to print first.
    #[arg(short = 'n', long, default_value_t = 20)]
    lines: usize,
    /// Only events of this type (e.g. `login.failed`).
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Only events about this subject.
    #[arg(long)]
    subject: Option<String>,
    /// Keep printing new events as they are committed (Ctrl-C stops).
    #[arg(short, long)]
    follow: bool,
    /// One JSON object per line (`GET /v1/admin/audit`'s events).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

impl AuditCommand {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self {
            AuditCommand::Verify(args) => verify(args),
            AuditCommand::Tail(args) => tail(args),
        }
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let local = Local::open(&args.settings)?;
    let verification = local
        .block_on(verify_audit(local.store.as_ref()))
        .context("cannot read the audit trail from the database")?;
    let mut out = io::stdout().lock();
    if args.json {
        let broken = verification.broken.as_ref().map(|b| {
            serde_json::json!({
                "cursor": b.cursor, "chain": b.chain, "seq": b.seq,
                "reason": format!("{:?}", b.reason).to_lowercase(),
                "description": b.reason.describe(),
            })
        });
        let value = serde_json::json!({
            "ok": broken.is_none(),
            "chains": verification.chains,
            "events": verification.events,
            "broken": broken,
        });
        writeln!(out, "{value}")?;
    } else {
        match &verification.broken {
            None => writeln!(
                out,
                "ok: {} events on {} chains verify",
                verification.events, verification.chains
            )?,
            Some(broken) => writeln!(
                out,
                "broken at event {} (chain {}, seq {}): {}",
                broken.cursor,
                broken.chain,
                broken.seq,
                broken.reason.describe()
            )?,
        }
    }
    out.flush()?;
    Ok(if verification.broken.is_none() {
        Outcome::Success
    } else {
        Outcome::Negative
    })
}

/// Events read per store call.
const PAGE: u32 = 1000;

fn tail(args: TailArgs) -> anyhow::Result<Outcome> {
    let local = Local::open(&args.settings)?;
    let filter = AuditFilter {
        kind: args.kind.as_deref(),
        subject: args.subject.as_deref(),
    };
    let store = local.store.as_ref();
    local.block_on(async {
        // The latest `lines` events: the trail is read forward (cursors are
        // commit order), keeping the last ones.
        let mut last: VecDeque<AuditRow> = VecDeque::with_capacity(args.lines.min(10_000));
        let mut after = 0;
        loop {
            let page = read(store, after, filter).await?;
            let full = page.len() == PAGE as usize;
            for row in page {
                after = row.cursor;
                if args.lines > 0 {
                    if last.len() == args.lines {
                        last.pop_front();
                    }
                    last.push_back(row);
                }
            }
            if !full {
                break;
            }
        }
        for row in last {
            print(row, args.json)?;
        }
        if !args.follow {
            return Ok(Outcome::Success);
        }
        loop {
            let page = read(store, after, filter).await?;
            let idle = page.is_empty();
            for row in page {
                after = row.cursor;
                print(row, args.json)?;
            }
            if idle {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    })
}

async fn read(
    store: &dyn Store,
    after: u64,
    filter: AuditFilter<'_>,
) -> anyhow::Result<Vec<AuditRow>> {
    store
        .audit_after(after, filter, PAGE)
        .await
        .context("cannot read the audit trail from the database")
}

fn print(row: AuditRow, json: bool) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        let record = row.into_record();
        writeln!(out, "{}", serde_json::to_string(&record)?)?;
    } else {
        let event = &row.event;
        let mut line = format!(
            "{}  {}  {}  actor={}",
            row.cursor,
            moment(event.at),
            event.kind,
            event.actor
        );
        for (name, value) in [
            ("subject", &event.subject),
            ("address", &event.address),
            ("request_id", &event.request_id),
        ] {
            if let Some(value) = value {
                line.push_str(&format!("  {name}={value}"));
            }
        }
        if event.details != "{}" {
            line.push_str("  ");
            line.push_str(&event.details);
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Unix seconds as an RFC 3339 UTC time.
fn moment(at: u64) -> String {
    let seconds = at % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        day_key(at / 86_400),
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_rfc3339_utc() {
        assert_eq!(moment(0), "1970-01-01T00:00:00Z");
        assert_eq!(moment(1_796_083_200 + 3_723), "2026-12-01T01:02:03Z");
    }
}
