//! `tollgate consistency check URL…` and `tollgate consistency watch`
//! (CONTRACT §7): do the services agree with the token service about what
//! a good token is?
//!
//! Each URL is fetched for its fingerprint (`wire::Fingerprint`): a URL
//! whose path ends in `fingerprint` is used as given, any other gets
//! `/v1/fingerprint` appended (what `tollgate serve` and services using the
//! SDK's fingerprint route answer). The token service is the URL named by
//! `--token-service` (fetched too if it is not in the list), else the first
//! fingerprint whose `service` is `tollgate`. Every other fingerprint —
//! other instances of the token service included — is compared with it by
//! `tollgate_core::fingerprint::compare`.
//!
//! Levels per URL: `INFO` (agrees), `WARNING` (unreachable, or not a
//! fingerprint), `CRITICAL` (disagrees; the differing fields are named).
//! The overall level is the worst, raised to `EMERGENCY` when more than two
//! services disagree; `check` exits 0, 1, 2 or 3 by it (2 is also the
//! status of usage errors and of a list with no token service in it).
//!
//! Text output, one line per URL then the overall line:
//!
//! ```text
//! INFO      http://127.0.0.1:8080/v1/fingerprint  tollgate (token service)
//! CRITICAL  http://127.0.0.1:8090/v1/fingerprint  chat-backend: audiences: expected "api", found "billing"
//! WARNING   http://127.0.0.1:8091/v1/fingerprint  unreachable: connection failed
//! overall CRITICAL: 3 checked, 1 disagree, 1 unreachable
//! ```
//!
//! `--json`: one object per line. Per URL:
//! `{"url", "service" (null when unknown), "role": "token_service"|"service",
//! "level", "differences": [{"field", "expected", "found"}], "error" (null
//! or a sentence)}`; then `{"overall", "checked", "disagree",
//! "unreachable"}`. `watch` adds `"at"` (Unix seconds) to every object.
//!
//! `watch --interval 30s` checks every interval and prints only what
//! changed: the lines of URLs whose level, differences or error changed
//! (all of them the first time) and the overall line when the overall level
//! changed. It runs until interrupted. With `--webhook URL`, each round in
//! which a level changed (the overall one, or a URL's; the first round
//! too) is also posted there ([`alert`]; `--webhook-format slack` posts
//! `{"text": …}`) by `super::webhook::Webhook`: a bounded queue and a task
//! of its own, so a slow or dead receiver never holds up the checks.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tollgate_core::fingerprint::{Difference, Level, compare};
use tollgate_core::wire::Fingerprint;

use super::Outcome;

/// Largest fingerprint answer read.
const MAX_FINGERPRINT_BYTES: usize = 256 * 1024;

/// Compare what services trust with the token service (CONTRACT §7).
#[derive(Debug, Subcommand)]
pub enum ConsistencyCommand {
    /// Fetch every URL's fingerprint once and report what differs from the
    /// token service. Exit 0 INFO (consistent), 1 WARNING (unreachable),
    /// 2 CRITICAL (a service disagrees), 3 EMERGENCY (more than two do).
    Check(CheckArgs),
    /// Check every interval and print one line per change of state; runs
    /// until interrupted.
    Watch(WatchArgs),
}

/// The services to compare.
#[derive(Debug, Args)]
pub struct Targets {
    /// Base URLs of the token service and the services (or full URLs of
    /// their fingerprint endpoints).
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
    /// The token service's URL, when its fingerprint does not say
    /// `"service": "tollgate"` or several do.
    #[arg(long, value_name = "URL")]
    pub token_service: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Time allowed for each fetch (`5s`, `500ms`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `consistency check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub targets: Targets,
}

/// `consistency watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub targets: Targets,
    /// Time between two checks (`30s`, `5m`, `1h`, `500ms`; a bare number
    /// is seconds).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Post every change of level (overall or of a URL) to this URL, as
    /// JSON; retried with back-off, never holding up the checks.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// The webhook's body: `json` (the alert object) or `slack`
    /// (`{"text": …}`, for Slack-compatible incoming webhooks).
    #[arg(long, value_enum, default_value = "json", requires = "webhook")]
    pub webhook_format: WebhookFormat,
}

/// `--webhook-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WebhookFormat {
    /// The alert object.
    Json,
    /// `{"text": "…"}`.
    Slack,
}

impl ConsistencyCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<Outcome> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP client")?;
        match self {
            ConsistencyCommand::Check(args) => runtime.block_on(check(args.targets)),
            ConsistencyCommand::Watch(args) => runtime.block_on(watch(args)),
        }
    }
}

/// What one URL said and how it compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    url: String,
    service: Option<String>,
    is_token_service: bool,
    level: Level,
    differences: Vec<Difference>,
    error: Option<String>,
}

/// The outcome of one round.
#[derive(Debug)]
struct Round {
    rows: Vec<Row>,
    overall: Level,
}

impl Round {
    fn disagree(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.level >= Level::Critical)
            .count()
    }

    fn unreachable(&self) -> usize {
        self.rows.iter().filter(|r| r.error.is_some()).count()
    }
}

async fn check(targets: Targets) -> anyhow::Result<Outcome> {
    let client = http_client(targets.timeout)?;
    let round = run_round(&client, &targets).await?;
    let mut out = io::stdout().lock();
    for row in &round.rows {
        print_row(&mut out, row, targets.json, None)?;
    }
    print_overall(&mut out, &round, targets.json, None)?;
    out.flush()?;
    Ok(Outcome::Status(exit_status(round.overall)))
}

async fn watch(args: WatchArgs) -> anyhow::Result<Outcome> {
    let client = http_client(args.targets.timeout)?;
    let webhook = args
        .webhook
        .as_deref()
        .map(|url| super::webhook::Webhook::start(url, args.targets.timeout))
        .transpose()?;
    let mut last_rows: HashMap<String, Row> = HashMap::new();
    let mut last_overall: Option<Level> = None;
    let mut ticker = tokio::time::interval(args.interval.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let at = unix_now();
        let round = match run_round(&client, &args.targets).await {
            Ok(round) => round,
            // No token service this round (it may come back): say so once
            // per change, like any other state.
            Err(err) => {
                if last_overall.is_some() || last_rows.is_empty() {
                    let _ = writeln!(io::stderr(), "warning: {err:#}");
                }
                last_overall = None;
                continue;
            }
        };
        let mut out = io::stdout().lock();
        let mut level_changes: Vec<(Option<Level>, &Row)> = Vec::new();
        for row in &round.rows {
            let previous = last_rows.get(&row.url);
            if previous != Some(row) {
                if previous.map(|p| p.level) != Some(row.level) {
                    level_changes.push((previous.map(|p| p.level), row));
                }
                print_row(&mut out, row, args.targets.json, Some(at))?;
                last_rows.insert(row.url.clone(), row.clone());
            }
        }
        let overall_changed = last_overall != Some(round.overall);
        if let Some(webhook) = &webhook
            && (overall_changed || !level_changes.is_empty())
        {
            webhook.post(alert(
                &round,
                last_overall,
                &level_changes,
                at,
                args.webhook_format,
            ));
        }
        if overall_changed {
            print_overall(&mut out, &round, args.targets.json, Some(at))?;
            last_overall = Some(round.overall);
        }
        out.flush()?;
    }
}

/// The webhook body for a round in which a level changed: `json`
/// `{"event": "consistency.level_changed", "at", "overall", "previous"
/// (null at the start), "checked", "disagree", "unreachable", "changes":
/// [{"url", "service", "level", "previous", "differences", "error"}]}`;
/// `slack` `{"text"}` with one line per change.
fn alert(
    round: &Round,
    previous: Option<Level>,
    changes: &[(Option<Level>, &Row)],
    at: u64,
    format: WebhookFormat,
) -> Value {
    let level_name = |level: Option<Level>| level.map(Level::as_str);
    match format {
        WebhookFormat::Json => json!({
            "event": "consistency.level_changed",
            "at": at,
            "overall": round.overall.as_str(),
            "previous": level_name(previous),
            "checked": round.rows.len(),
            "disagree": round.disagree(),
            "unreachable": round.unreachable(),
            "changes": changes.iter().map(|(before, row)| json!({
                "url": row.url,
                "service": row.service,
                "level": row.level.as_str(),
                "previous": level_name(*before),
                "differences": row.differences.iter().map(|d| json!({
                    "field": d.field, "expected": d.expected, "found": d.found,
                })).collect::<Vec<Value>>(),
                "error": row.error,
            })).collect::<Vec<Value>>(),
        }),
        WebhookFormat::Slack => {
            let mut text = format!(
                "tollgate consistency: {}{} ({} checked, {} disagree, {} unreachable)",
                round.overall.as_str(),
                previous.map_or_else(String::new, |p| format!(" (was {})", p.as_str())),
                round.rows.len(),
                round.disagree(),
                round.unreachable()
            );
            for (before, row) in changes {
                let detail = match &row.error {
                    Some(error) => error.clone(),
                    None if row.differences.is_empty() => "consistent".to_owned(),
                    None => row
                        .differences
                        .iter()
                        .map(|d| d.field.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                text.push_str(&format!(
                    "\n• {} {}{} — {}: {detail}",
                    row.level.as_str(),
                    row.url,
                    before.map_or_else(String::new, |b| format!(" (was {})", b.as_str())),
                    row.service.as_deref().unwrap_or("?"),
                ));
            }
            json!({ "text": text })
        }
    }
}

fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot start the HTTP client")
}

/// Fetches every fingerprint and compares them.
async fn run_round(client: &reqwest::Client, targets: &Targets) -> anyhow::Result<Round> {
    let mut urls: Vec<String> = targets.urls.iter().map(|u| fingerprint_url(u)).collect();
    let named = targets.token_service.as_deref().map(fingerprint_url);
    if let Some(named) = &named
        && !urls.contains(named)
    {
        urls.insert(0, named.clone());
    }
    urls.dedup();

    let mut tasks = tokio::task::JoinSet::new();
    for (index, url) in urls.iter().enumerate() {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { (index, fetch(&client, &url).await) });
    }
    let mut fetched: Vec<Option<Result<Fingerprint, String>>> = vec![None; urls.len()];
    while let Some(joined) = tasks.join_next().await {
        let (index, result) = joined.context("a fetch task failed")?;
        fetched[index] = Some(result);
    }
    let fetched: Vec<Result<Fingerprint, String>> = fetched
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not fetched".to_owned())))
        .collect();

    let reference_index = match &named {
        Some(named) => urls.iter().position(|u| u == named),
        None => fetched
            .iter()
            .position(|f| f.as_ref().is_ok_and(|f| f.service == "tollgate")),
    };
    let Some(reference_index) = reference_index else {
        let unreachable = fetched.iter().filter(|f| f.is_err()).count();
        if unreachable > 0 {
            bail!(
                "no token service among the fingerprints ({unreachable} URL(s) unreachable); \
                 none says \"service\": \"tollgate\" — name it with --token-service"
            );
        }
        bail!(
            "no token service among the URLs: no fingerprint says \"service\": \"tollgate\"; name it with --token-service"
        );
    };
    let reference = fetched[reference_index].as_ref().ok().cloned();

    let rows: Vec<Row> = urls
        .iter()
        .zip(&fetched)
        .enumerate()
        .map(|(index, (url, result))| {
            row(url, result, index == reference_index, reference.as_ref())
        })
        .collect();
    let levels: Vec<Level> = rows.iter().map(|r| r.level).collect();
    Ok(Round {
        overall: Level::overall(&levels),
        rows,
    })
}

fn row(
    url: &str,
    result: &Result<Fingerprint, String>,
    is_token_service: bool,
    reference: Option<&Fingerprint>,
) -> Row {
    let base = Row {
        url: url.to_owned(),
        service: None,
        is_token_service,
        level: Level::Info,
        differences: Vec::new(),
        error: None,
    };
    let print = match result {
        Ok(print) => print,
        Err(error) => {
            return Row {
                level: Level::Warning,
                error: Some(error.clone()),
                ..base
            };
        }
    };
    let service = Some(print.service.clone());
    if is_token_service {
        return Row { service, ..base };
    }
    let Some(reference) = reference else {
        return Row {
            service,
            level: Level::Warning,
            error: Some("not compared: the token service is unreachable".to_owned()),
            ..base
        };
    };
    let differences = compare(reference, print);
    Row {
        service,
        level: tollgate_core::fingerprint::level_of(&differences),
        differences,
        ..base
    }
}

/// The fingerprint URL of a base URL (see the module docs).
fn fingerprint_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    if trimmed.ends_with("fingerprint") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/fingerprint")
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Fingerprint, String> {
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|err| {
            if err.is_timeout() {
                "unreachable: timed out".to_owned()
            } else if err.is_connect() {
                "unreachable: connection failed".to_owned()
            } else if err.is_builder() {
                "not a valid URL".to_owned()
            } else {
                "unreachable: the request failed".to_owned()
            }
        })?;
    if !response.status().is_success() {
        return Err(format!("answered HTTP {}", response.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| "unreachable: the answer was cut".to_owned())?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_FINGERPRINT_BYTES {
            return Err("the answer is too large for a fingerprint".to_owned());
        }
    }
    serde_json::from_slice(&body).map_err(|_| "the answer is not a fingerprint".to_owned())
}

fn print_row(out: &mut impl Write, row: &Row, as_json: bool, at: Option<u64>) -> io::Result<()> {
    if as_json {
        let mut value = json!({
            "url": row.url,
            "service": row.service,
            "role": if row.is_token_service { "token_service" } else { "service" },
            "level": row.level.as_str(),
            "differences": row.differences.iter().map(|d| json!({
                "field": d.field, "expected": d.expected, "found": d.found,
            })).collect::<Vec<Value>>(),
            "error": row.error,
        });
        if let Some(at) = at {
            value["at"] = at.into();
        }
        return writeln!(out, "{value}");
    }
    let stamp = at.map(|at| format!("{at}  ")).unwrap_or_default();
    let name = row.service.as_deref().unwrap_or("?");
    let detail = if let Some(error) = &row.error {
        error.clone()
    } else if row.is_token_service {
        format!("{name} (token service)")
    } else if row.differences.is_empty() {
        format!("{name}: consistent")
    } else {
        let fields: Vec<String> = row
            .differences
            .iter()
            .map(|d| {
                format!(
                    "{}: expected {:?}, found {:?}",
                    d.field, d.expected, d.found
                )
            })
            .collect();
        format!("{name}: {}", fields.join("; "))
    };
    writeln!(
        out,
        "{stamp}{:<9} {}  {detail}",
        row.level.as_str(),
        row.url
    )
}

fn print_overall(
    out: &mut impl Write,
    round: &Round,
    as_json: bool,
    at: Option<u64>,
) -> io::Result<()> {
    if as_json {
        let mut value = json!({
            "overall": round.overall.as_str(),
            "checked": round.rows.len(),
            "disagree": round.disagree(),
            "unreachable": round.unreachable(),
        });
        if let Some(at) = at {
            value["at"] = at.into();
        }
        return writeln!(out, "{value}");
    }
    let stamp = at.map(|at| format!("{at}  ")).unwrap_or_default();
    writeln!(
        out,
        "{stamp}overall {}: {} checked, {} disagree, {} unreachable",
        round.overall.as_str(),
        round.rows.len(),
        round.disagree(),
        round.unreachable()
    )
}

fn exit_status(level: Level) -> u8 {
    u8::try_from(level.exit_code()).unwrap_or(super::ERROR_STATUS)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (30s, 5m, 1h, 500ms)"))?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(format!("`{text}` has an unknown unit (use ms, s, m or h)")),
    };
    if duration.is_zero() {
        return Err("the duration must not be zero".to_owned());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "s", "0s", "1d", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprint_urls() {
        assert_eq!(fingerprint_url("http://a:1"), "http://a:1/v1/fingerprint");
        assert_eq!(fingerprint_url("http://a:1/"), "http://a:1/v1/fingerprint");
        assert_eq!(
            fingerprint_url("http://a:1/v1/fingerprint"),
            "http://a:1/v1/fingerprint"
        );
        assert_eq!(
            fingerprint_url("http://a:1/x/fingerprint/"),
            "http://a:1/x/fingerprint"
        );
    }
}
