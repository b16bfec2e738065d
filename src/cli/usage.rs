//! `tollgate usage report`: the billing export, read from the server's own
//! store (like `tollgate user`), so it works whether or not a server runs.
//!
//! The figures are those of `GET /v1/usage` (the same `Store::usage_report`
//! in whole hours: `--from` rounded down, `--to`, exclusive, rounded up).
//! Bounds are Unix seconds, a UTC date (`2026-12-01`, its midnight) or an
//! RFC 3339 time.
//!
//! Output: one line per user and group (`USER  KEY  CALLS`) and a
//! `total CALLS` line; `--json` the `UsageReport` object of the API;
//! `--csv` a `user,key,calls` header and one row per user and group
//! (RFC 4180 quoting).
//!
//! Exit status: 0 done (an empty period too), 2 an error (a bad bound,
//! `--from` not before `--to`, an unknown user, the database).

use std::io::{self, Write};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use tollgate_core::usage::{self, Period, UsageGroup};
use tollgate_core::wire::{UsageReport, UsageRow};
use tollgate_store::UsageQuery;

use super::Outcome;
use super::local::Local;
use super::settings::ConfigArgs;

/// `tollgate usage …`.
#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Calls per user and tool (or day, or plan) in a period: the billing
    /// export.
    Report(ReportArgs),
}

/// How calls are grouped.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Group {
    Tool,
    Day,
    Plan,
}

/// Arguments of `usage report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Start (inclusive, rounded down to the hour): Unix seconds,
    /// YYYY-MM-DD (UTC midnight) or an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    from: String,
    /// End (exclusive, rounded up to the hour), same forms.
    #[arg(long, value_name = "TIME")]
    to: String,
    /// Only this user (an e-mail address or a user id); default every user.
    #[arg(long)]
    user: Option<String>,
    /// How calls are grouped.
    #[arg(long, value_enum, default_value = "tool")]
    group_by: Group,
    /// Print the report as one JSON object (`GET /v1/usage`'s answer).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV: `user,key,calls`.
    #[arg(long)]
    csv: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

impl UsageCommand {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self {
            UsageCommand::Report(args) => report(args),
        }
    }
}

/// A bound given on the command line.
fn moment(flag: &str, text: &str) -> anyhow::Result<u64> {
    usage::parse_moment(text.trim()).with_context(|| {
        format!(
            "--{flag} {text:?} is not Unix seconds, a date (YYYY-MM-DD) or an RFC 3339 time (2026-12-01T10:00:00Z)"
        )
    })
}

fn report(args: ReportArgs) -> anyhow::Result<Outcome> {
    let from = moment("from", &args.from)?;
    let to = moment("to", &args.to)?;
    let Some(period) = Period::covering(from, to) else {
        bail!("--from must be before --to");
    };
    let group_by = match args.group_by {
        Group::Tool => UsageGroup::Tool,
        Group::Day => UsageGroup::Day,
        Group::Plan => UsageGroup::Plan,
    };
    let local = Local::open(&args.settings)?;
    let report = local.block_on(async {
        let store = local.store.as_ref();
        let user = match &args.user {
            None => None,
            Some(name) => {
                let found = if name.contains('@') {
                    store
                        .find_user_by_email(&tollgate_core::email::normalize(name)?)
                        .await?
                } else {
                    store.find_user(name).await?
                };
                let Some(found) = found else {
                    bail!("no user {name}");
                };
                Some(found.id)
            }
        };
        let rows = store
            .usage_report(UsageQuery {
                user: user.as_deref(),
                period,
                group_by,
            })
            .await
            .context("cannot read usage from the database")?;
        let total = rows.iter().map(|row| row.calls).sum();
        Ok(UsageReport {
            user,
            from: period.from,
            to: period.to,
            group_by: group_by.as_str().to_owned(),
            rows,
            total,
        })
    })?;
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else if args.csv {
        writeln!(out, "user,key,calls")?;
        for row in &report.rows {
            writeln!(
                out,
                "{},{},{}",
                csv_field(row_user(&report, row)),
                csv_field(&row.key),
                row.calls
            )?;
        }
    } else {
        for row in &report.rows {
            writeln!(
                out,
                "{}  {}  {}",
                row_user(&report, row),
                row.key,
                row.calls
            )?;
        }
        writeln!(out, "total {}", report.total)?;
    }
    out.flush()?;
    Ok(Outcome::Success)
}

/// The user a row counts: its own, or the report's one user.
fn row_user<'a>(report: &'a UsageReport, row: &'a UsageRow) -> &'a str {
    row.user.as_deref().or(report.user.as_deref()).unwrap_or("")
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a
/// line break, quotes doubled.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("search"), "search");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn bounds_name_the_flag_when_bad() {
        assert_eq!(moment("from", "2026-12-01").unwrap(), 1_796_083_200);
        assert_eq!(moment("to", "2026-12-01T01:00:00Z").unwrap(), 1_796_086_800);
        let err = moment("from", "yesterday").unwrap_err().to_string();
        assert!(err.contains("--from \"yesterday\""), "{err}");
    }
}
