//! `tollgate token inspect`: what a token says, and exactly why it is or is
//! not valid; `tollgate token mint` (development and test only): a token
//! signed with the local store's active key.
//!
//! The header and claims are decoded without trust
//! (`tollgate_core::jws::dangerous::insecure_decode`) only to show them; the
//! verdict comes from `tollgate_core::Validator`, the same code the server
//! and the SDK run. Revocation is not checked: this command works offline.
//! The token itself is never printed, only its fingerprint.
//!
//! Keys for `inspect`: `--jwks URL|FILE`; else the configured HS256 secret;
//! else the keys in the configured store (the server's own database), when
//! it exists.
//!
//! Exit status: 0 valid, 1 invalid, 2 usage or I/O error (no key set, an
//! unreadable file, an unreachable URL, an invalid configuration).
//!
//! # `token inspect --json`
//!
//! One JSON object on one line:
//!
//! ```json
//! {
//!   "fingerprint": "1a2b3c4d",          // first 8 hex digits of SHA-256
//!   "header": {"alg": "EdDSA", "kid": "…", "typ": "at+jwt"},   // null if undecodable
//!   "claims": {"iss": "…", "sub": "…", …},                     // null if undecodable
//!   "expected": {"issuer": "…", "audiences": ["api"], "token_type": "any"},
//!   "valid": false,
//!   "error": {"code": "expired", "description": "the token has expired"}  // null when valid
//! }
//! ```

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tollgate_core::config::Component;
use tollgate_core::jws::dangerous::insecure_decode;
use tollgate_core::keys::{Jwks, ManagedKey};
use tollgate_core::validate::dangerous::NoRevocations;
use tollgate_core::{
    Algorithm, Expect, MAX_TOKEN_BYTES, ValidationPolicy, Validator, VerifyingKey, VerifyingKeys,
    token_fingerprint,
};

use super::Outcome;
use super::settings::ConfigArgs;

/// Largest key set accepted from a file or URL.
const MAX_JWKS_BYTES: u64 = 1024 * 1024;

/// How long fetching a key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `tollgate token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Show a token's header and claims, then validate it and say why it
    /// is or is not valid.
    ///
    /// Prints `valid`, or `invalid: <code>: <sentence>` (codes:
    /// docs/errors.md). The issuer and audience expected are the
    /// configured ones; --issuer and --audience override them. Revocation
    /// is not checked. Exit status: 0 valid, 1 invalid, 2 usage or I/O
    /// error.
    Inspect(InspectArgs),
    /// Mint a token signed with the local store's active key (development
    /// and test only: refused in staging and production).
    ///
    /// Prints the token alone on stdout (or, with --json, one object
    /// `{"access_token","token_type","expires_in","claims"}`). The token
    /// passes the server's validation: same issuer, audiences and key.
    Mint(super::mint::MintArgs),
}

impl TokenCommand {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self {
            TokenCommand::Inspect(args) => inspect(args),
            TokenCommand::Mint(args) => super::mint::run(args),
        }
    }
}

/// Arguments of `token inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The token, or `-` to read it from stdin (keeps it out of the shell
    /// history). A leading `Bearer ` is ignored. Bytes that are not UTF-8
    /// are inspected too (and found malformed), not refused as arguments.
    #[arg(value_name = "TOKEN|-")]
    token: OsString,
    /// The key set to verify with: an http(s):// URL (such as
    /// https://auth.example.com/.well-known/jwks.json) or a file.
    #[arg(long, value_name = "URL|FILE")]
    jwks: Option<String>,
    /// The kind of token expected.
    #[arg(long, value_enum, default_value_t = ExpectArg::Any)]
    expect: ExpectArg,
    /// Print one JSON object (schema: docs/cli.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

/// The `--expect` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExpectArg {
    /// A user's access token.
    Access,
    /// A service's token.
    Service,
    /// Either.
    Any,
}

impl ExpectArg {
    fn as_str(self) -> &'static str {
        match self {
            ExpectArg::Access => "access",
            ExpectArg::Service => "service",
            ExpectArg::Any => "any",
        }
    }
}

impl From<ExpectArg> for Expect {
    fn from(arg: ExpectArg) -> Expect {
        match arg {
            ExpectArg::Access => Expect::Access,
            ExpectArg::Service => Expect::Service,
            ExpectArg::Any => Expect::Any,
        }
    }
}

/// What the token is checked against.
struct Expectations {
    issuer: String,
    audiences: Vec<String>,
    leeway: u64,
    /// The configured HS256 secret's key, used when no key set is given.
    hmac_key: Option<VerifyingKey>,
}

fn inspect(args: InspectArgs) -> anyhow::Result<Outcome> {
    let token = read_token(&args.token)?;
    let decoded = insecure_decode(&token);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();

    let mut out = io::stdout().lock();
    if !args.json {
        write_decoded(&mut out, &token, decoded.as_ref(), now)?;
        out.flush()?;
    }

    let expected = expectations(&args.settings)?;
    let (keys, algorithms) = match (&args.jwks, &expected.hmac_key) {
        (Some(source), _) => (load_jwks(source)?, Vec::from(&Algorithm::ALL[..3])),
        (None, Some(key)) => (VerifyingKeys::new([key.clone()]), vec![Algorithm::HS256]),
        (None, None) => match local_keys(&args.settings)? {
            Some(found) => found,
            None => bail!(
                "token inspect needs the key set to verify with: pass --jwks URL (the token service's /.well-known/jwks.json) or --jwks FILE, or run it where the server's database (TOLLGATE_DATABASE_URL) is"
            ),
        },
    };
    let policy = ValidationPolicy::new(expected.issuer.clone(), expected.audiences.clone())
        .context("the expected issuer and audience must not be empty")?
        .with_leeway(expected.leeway)
        .with_algorithms(&algorithms);
    let verdict =
        Validator::new(policy, keys).validate(&token, args.expect.into(), now, &NoRevocations);

    if args.json {
        let (header, claims) = match decoded {
            Some((header, claims)) => (header, claims),
            None => (Value::Null, Value::Null),
        };
        let error = verdict
            .as_ref()
            .err()
            .map(|err| json!({"code": err.code(), "description": err.to_string()}));
        writeln!(
            out,
            "{}",
            json!({
                "fingerprint": token_fingerprint(&token),
                "header": header,
                "claims": claims,
                "expected": {
                    "issuer": expected.issuer,
                    "audiences": expected.audiences,
                    "token_type": args.expect.as_str(),
                },
                "valid": verdict.is_ok(),
                "error": error,
            })
        )?;
    } else {
        writeln!(
            out,
            "checked  issuer {}, audience {}, token type {}, leeway {} s; revocation not checked (offline)",
            expected.issuer,
            expected.audiences.join(","),
            args.expect.as_str(),
            expected.leeway
        )?;
        match &verdict {
            Ok(_) => writeln!(out, "valid")?,
            Err(err) => writeln!(out, "invalid: {}", err.explain())?,
        }
    }
    out.flush()?;
    Ok(match verdict {
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Negative,
    })
}

/// The token from the argument or stdin, without surrounding whitespace or
/// a `Bearer ` prefix. Oversized input is cut at a size the validator will
/// still refuse as too large, never read whole.
fn read_token(arg: &OsString) -> anyhow::Result<String> {
    // Invalid UTF-8 becomes U+FFFD, which no base64url segment holds: the
    // validator refuses such a token with its code like any other.
    let text = if arg == "-" {
        let mut bytes = Vec::new();
        io::stdin()
            .lock()
            .take(4 * MAX_TOKEN_BYTES as u64)
            .read_to_end(&mut bytes)
            .context("cannot read the token from stdin")?;
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        arg.to_string_lossy().into_owned()
    };
    let text = text.trim();
    let text = match text.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => text[7..].trim_start(),
        _ => text,
    };
    if text.is_empty() {
        bail!("no token given");
    }
    Ok(text.to_owned())
}

fn write_decoded(
    out: &mut impl Write,
    token: &str,
    decoded: Option<&(Value, Value)>,
    now: u64,
) -> anyhow::Result<()> {
    writeln!(out, "token    fingerprint {}", token_fingerprint(token))?;
    let Some((header, claims)) = decoded else {
        writeln!(
            out,
            "header   (not decodable: not three base64url parts of JSON)"
        )?;
        return Ok(());
    };
    writeln!(out, "header   {header}")?;
    let pretty = serde_json::to_string_pretty(claims)?;
    writeln!(out, "claims   {}", pretty.replace('\n', "\n         "))?;
    let times: Vec<String> = ["iat", "nbf", "exp"]
        .iter()
        .filter_map(|name| {
            let at = claims.get(*name)?.as_u64()?;
            Some(format!("{name} {at} ({})", relative(at, now)))
        })
        .collect();
    if !times.is_empty() {
        writeln!(out, "times    {}", times.join(", "))?;
    }
    Ok(())
}

/// `in 14m`, `3h ago`, `now`.
fn relative(at: u64, now: u64) -> String {
    let (delta, future) = if at >= now {
        (at - now, true)
    } else {
        (now - at, false)
    };
    let amount = match delta {
        0 => return "now".to_owned(),
        d if d < 120 => format!("{d}s"),
        d if d < 2 * 3600 => format!("{}m", d / 60),
        d if d < 2 * 86_400 => format!("{}h", d / 3600),
        d => format!("{}d", d / 86_400),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// The issuer, audiences and leeway to check against: the resolved
/// configuration (where --issuer and --audience are flags like any other).
/// When the configuration has errors but both flags were given, those are
/// enough.
fn expectations(settings: &ConfigArgs) -> anyhow::Result<Expectations> {
    let report = settings.report(Component::Server)?;
    if let Some(config) = report.config() {
        super::warn(report.warnings());
        let hmac_key = match &config.hmac_secret {
            Some(secret) => {
                let kid = ManagedKey::from_hmac_secret(secret, 0)?.kid().to_owned();
                Some(VerifyingKey::from_hmac_secret(&kid, secret)?)
            }
            None => None,
        };
        return Ok(Expectations {
            issuer: config.issuer.clone(),
            audiences: config.audiences.clone(),
            leeway: config.leeway,
            hmac_key,
        });
    }
    match (
        settings.flag("TOLLGATE_ISSUER"),
        settings.flag("TOLLGATE_AUDIENCE"),
    ) {
        (Some(issuer), Some(audience)) => Ok(Expectations {
            issuer: issuer.to_owned(),
            audiences: audience
                .split(',')
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect(),
            leeway: tollgate_core::validate::DEFAULT_LEEWAY,
            hmac_key: None,
        }),
        _ => bail!(
            "cannot tell which issuer and audience to expect: the configuration is invalid (see `tollgate config check`), so pass --issuer and --audience:\n{}",
            report.errors().join("\n")
        ),
    }
}

/// The keys that verify now in the configured store, when the
/// configuration is valid and names a store that exists (a SQLite file is
/// never created just to be inspected).
fn local_keys(settings: &ConfigArgs) -> anyhow::Result<Option<(VerifyingKeys, Vec<Algorithm>)>> {
    let Some(config) = settings.report(Component::Server)?.config().cloned() else {
        return Ok(None);
    };
    let url = config.database_url.expose_str().unwrap_or("");
    let sqlite_path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"));
    if sqlite_path.is_some_and(|path| !std::path::Path::new(path).is_file()) {
        return Ok(None);
    }
    let master = tollgate_server::keystore::master_key(config.master_key.as_ref())?;
    let runtime = super::local::runtime()?;
    let ring = runtime.block_on(async {
        let store = super::local::open_store(&config).await?;
        anyhow::Ok(tollgate_server::keystore::load_ring(store.as_ref(), master.as_ref()).await?)
    })?;
    let now = tollgate_server::Clock::system_now();
    let keys = ring.verifying_keys(now)?;
    if keys.is_empty() {
        return Ok(None);
    }
    let mut algorithms: Vec<Algorithm> = keys.iter().map(|k| k.alg()).collect();
    algorithms.sort();
    algorithms.dedup();
    Ok(Some((keys, algorithms)))
}

/// Reads a key set from an http(s) URL or a file.
fn load_jwks(source: &str) -> anyhow::Result<VerifyingKeys> {
    let bytes = if source.starts_with("https://") || source.starts_with("http://") {
        fetch(source)?
    } else {
        let file =
            fs::File::open(source).with_context(|| format!("cannot read the key set {source}"))?;
        let mut bytes = Vec::new();
        file.take(MAX_JWKS_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read the key set {source}"))?;
        bytes
    };
    if bytes.len() as u64 > MAX_JWKS_BYTES {
        bail!("the key set {source} is larger than 1 MiB");
    }
    let jwks: Jwks = serde_json::from_slice(&bytes)
        .with_context(|| format!("{source} is not a JWKS (a JSON object with `keys`)"))?;
    let keys = VerifyingKeys::from_jwks(&jwks)
        .with_context(|| format!("the key set {source} is refused"))?;
    if keys.is_empty() {
        bail!("the key set {source} holds no key Tollgate can verify with");
    }
    Ok(keys)
}

fn fetch(url: &str) -> anyhow::Result<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the HTTP client")?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .context("cannot start the HTTP client")?;
        let mut response = client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .with_context(|| format!("cannot fetch {url}"))?;
        if !response.status().is_success() {
            bail!("{url} answered {}", response.status());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("cannot read {url}"))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > MAX_JWKS_BYTES {
                bail!("the key set at {url} is larger than 1 MiB");
            }
        }
        Ok(body)
    })
}
