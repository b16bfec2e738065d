//! Reading setting values: text → typed [`Value`], and typed value → the
//! masked text shown to humans. Also the `.env` file reader and the small
//! helpers of the rules (weak-secret list, loopback test, "did you mean").
//!
//! Nothing here ever puts a secret's text into a message: reasons are
//! static phrases, and values are shown only through [`shown`] and
//! [`Value::display`], which mask.

use std::net::{IpAddr, SocketAddr};

use super::table::{Kind, SettingSpec, Unit};
use super::{Cidr, Environment, FeedDownPolicy};
use crate::Secret;
use crate::keys::Algorithm;

/// Longest accepted duration: ten years. Keeps every `now + ttl` far from
/// overflowing in any representation a store or a client uses.
pub(super) const MAX_DURATION: u64 = 10 * 365 * 86_400;

/// A parsed setting value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Env(Environment),
    Addr(SocketAddr),
    Text(String),
    List(Vec<String>),
    Seconds(u64),
    Alg(Algorithm),
    Secret(Secret),
    Switch(bool),
    Policy(FeedDownPolicy),
    /// A size in bytes or a count.
    Number(u64),
    Cidrs(Vec<Cidr>),
    /// A moment (RFC 3339), as Unix seconds and as written.
    Moment(u64, String),
}

impl Value {
    /// The value as shown in reports: secrets as `****` with their length,
    /// URLs with their password masked, durations with a readable unit.
    pub(super) fn display(&self, spec: &SettingSpec) -> String {
        match self {
            Value::Env(env) => env.as_str().to_owned(),
            Value::Addr(addr) => addr.to_string(),
            Value::Text(text) => plain(text),
            Value::List(items) => plain(&items.join(",")),
            Value::Seconds(secs) => seconds(*secs),
            Value::Alg(alg) => alg.as_str().to_owned(),
            Value::Secret(secret) => match secret.expose_str() {
                Some(text) if spec.is_url() => mask_url(text),
                _ => masked(secret.len()),
            },
            Value::Switch(on) => match (spec.kind, on) {
                (Kind::Registration, true) => "open".to_owned(),
                (Kind::Registration, false) => "closed".to_owned(),
                (_, true) => "on".to_owned(),
                (_, false) => "off".to_owned(),
            },
            Value::Policy(FeedDownPolicy::Introspect) => "introspect".to_owned(),
            Value::Policy(FeedDownPolicy::Local) => "local".to_owned(),
            Value::Number(n) => match spec.kind {
                Kind::Bytes => bytes(*n),
                _ => n.to_string(),
            },
            Value::Cidrs(networks) => networks
                .iter()
                .map(Cidr::to_string)
                .collect::<Vec<_>>()
                .join(","),
            Value::Moment(at, text) => format!("{} ({at})", plain(text)),
        }
    }
}

/// Parses `raw`, written in `unit`, as a value of `spec`. The error is a
/// phrase that completes "NAME=VALUE …" and never repeats the value.
pub(super) fn parse(spec: &SettingSpec, unit: Unit, raw: &str) -> Result<Value, String> {
    let text = raw.trim();
    match spec.kind {
        Kind::Environment => Environment::from_name(text).map(Value::Env).ok_or_else(|| {
            "is not an environment; use one of development, test, staging, production".to_owned()
        }),
        Kind::Bind => text.parse::<SocketAddr>().map(Value::Addr).map_err(|_| {
            "is not an IP address and port (e.g. 127.0.0.1:8080 or [::]:8080)".to_owned()
        }),
        Kind::Issuer => parse_issuer(raw).map(Value::Text),
        Kind::Audience => parse_list(text).map(Value::List),
        Kind::Duration => parse_duration(text, unit, false).map(Value::Seconds),
        Kind::Leeway => parse_duration(text, unit, true).map(Value::Seconds),
        Kind::Moment => parse_rfc3339(text)
            .map(|at| Value::Moment(at, text.to_owned()))
            .ok_or_else(|| {
                "is not an RFC 3339 moment (e.g. 2026-12-31T23:59:59Z or 2026-12-31T12:00:00+01:00)"
                    .to_owned()
            }),
        Kind::Algorithm => Algorithm::from_name(text).map(Value::Alg).ok_or_else(|| {
            "is not a signing algorithm; use one of EdDSA, ES256, RS256, HS256 (exact case)"
                .to_owned()
        }),
        // Secrets are taken byte for byte: trimming would silently change
        // the key every other service holds.
        Kind::Secret | Kind::Password => Ok(Value::Secret(Secret::from(raw))),
        Kind::DatabaseUrl => {
            if ["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| text.starts_with(scheme))
            {
                Ok(Value::Secret(Secret::from(text)))
            } else {
                Err("is not a database URL; use sqlite://PATH or postgres://…".to_owned())
            }
        }
        Kind::RedisUrl => {
            if text.starts_with("redis://") || text.starts_with("rediss://") {
                Ok(Value::Secret(Secret::from(text)))
            } else {
                Err("is not a Redis URL; use redis://… or rediss://…".to_owned())
            }
        }
        Kind::Text => {
            if text.chars().any(char::is_control) {
                Err("contains a control character".to_owned())
            } else {
                Ok(Value::Text(text.to_owned()))
            }
        }
        Kind::Email => {
            let valid = text.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            }) && !text.chars().any(|c| c.is_whitespace() || c.is_control());
            if valid {
                Ok(Value::Text(text.to_owned()))
            } else {
                Err("is not an e-mail address".to_owned())
            }
        }
        Kind::Registration => match text {
            "open" => Ok(Value::Switch(true)),
            "closed" => Ok(Value::Switch(false)),
            _ => Err("is not a registration mode; use open or closed".to_owned()),
        },
        Kind::FeedDownPolicy => match text {
            "introspect" => Ok(Value::Policy(FeedDownPolicy::Introspect)),
            "local" => Ok(Value::Policy(FeedDownPolicy::Local)),
            _ => Err("is not a feed-down policy; use introspect or local".to_owned()),
        },
        Kind::Switch => match text.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Ok(Value::Switch(true)),
            "off" | "false" | "no" | "0" => Ok(Value::Switch(false)),
            _ => Err("is not a switch; use on or off".to_owned()),
        },
        Kind::Bytes => parse_bytes(text).map(Value::Number),
        Kind::Count => parse_count(text).map(Value::Number),
        Kind::Cidrs => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                Cidr::parse(item).ok_or_else(|| {
                    "has an entry that is not a CIDR network or IP address (e.g. 10.0.0.0/8, ::1)"
                        .to_owned()
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Cidrs),
    }
}

/// Smallest and largest [`Kind::Bytes`] values.
const BYTES_RANGE: (u64, u64) = (1024, 64 * 1024 * 1024);

/// Largest [`Kind::Count`] value.
const MAX_COUNT: u64 = 10_000_000;

/// A size: whole bytes, or a whole number of `KiB` or `MiB`.
fn parse_bytes(text: &str) -> Result<u64, String> {
    const FORMS: &str = "use whole bytes or a number with KiB or MiB (65536, 64KiB, 1MiB)";
    let (digits, factor) = if let Some(n) = text.strip_suffix("KiB") {
        (n, 1024)
    } else if let Some(n) = text.strip_suffix("MiB") {
        (n, 1024 * 1024)
    } else {
        (text, 1)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("is not a size; {FORMS}"));
    }
    let (min, max) = BYTES_RANGE;
    match digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
    {
        Some(n) if n < min => Err(format!("is under {min} bytes")),
        Some(n) if n <= max => Ok(n),
        _ => Err(format!("is over {} (64MiB)", bytes(max))),
    }
}

/// A count: a whole number from 1 to [`MAX_COUNT`].
fn parse_count(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a whole number".to_owned());
    }
    match text.parse::<u64>() {
        Ok(0) => Err("is zero; use 1 or more".to_owned()),
        Ok(n) if n <= MAX_COUNT => Ok(n),
        _ => Err(format!("is over {MAX_COUNT}")),
    }
}

/// Bytes as shown: `65536 (64KiB)`.
fn bytes(n: u64) -> String {
    for (factor, suffix) in [(1024 * 1024, "MiB"), (1024, "KiB")] {
        if n >= factor && n.is_multiple_of(factor) {
            return format!("{n} ({}{suffix})", n / factor);
        }
    }
    n.to_string()
}

/// A duration in `unit`: whole numbers only; the native unit also takes a
/// one-letter suffix (`s`, `m`, `h`, `d`).
fn parse_duration(text: &str, unit: Unit, allow_zero: bool) -> Result<u64, String> {
    const FORMS: &str = "use whole seconds or a number with s, m, h or d (900, 15m, 1h, 7d)";
    let (digits, factor) = match unit {
        Unit::Minutes => (text, 60),
        Unit::Days => (text, 86_400),
        Unit::Native => match text.as_bytes().last() {
            // The suffix is one ASCII byte, so slicing it off stays on a
            // character boundary.
            Some(b's') => (&text[..text.len() - 1], 1),
            Some(b'm') => (&text[..text.len() - 1], 60),
            Some(b'h') => (&text[..text.len() - 1], 3600),
            Some(b'd') => (&text[..text.len() - 1], 86_400),
            _ => (text, 1),
        },
    };
    let whole = match unit {
        Unit::Native => FORMS.to_owned(),
        Unit::Minutes => "use whole minutes".to_owned(),
        Unit::Days => "use whole days".to_owned(),
    };
    if digits.starts_with('-') {
        return Err(format!("is negative; {whole}"));
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("is not a duration; {whole}"));
    }
    let seconds = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|s| *s <= MAX_DURATION)
        .ok_or_else(|| "is too long (more than 10 years)".to_owned())?;
    if seconds == 0 && !allow_zero {
        return Err("is zero; a lifetime must be at least one second".to_owned());
    }
    Ok(seconds)
}

fn parse_list(text: &str) -> Result<Vec<String>, String> {
    let mut items: Vec<String> = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err("has an empty entry; use a comma list such as api,billing".to_owned());
        }
        if item.chars().any(char::is_control) {
            return Err("contains a control character".to_owned());
        }
        if !items.iter().any(|seen| seen == item) {
            items.push(item.to_owned());
        }
    }
    Ok(items)
}

/// An issuer: `http(s)://host[:port][/path]`, no whitespace, no query, no
/// fragment, no user info (RFC 8414 §2). Kept exactly as written: tokens
/// compare it byte for byte.
fn parse_issuer(raw: &str) -> Result<String, String> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace; the issuer is compared exactly".to_owned());
    }
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or_else(|| "is not an http:// or https:// URL".to_owned())?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("has no host".to_owned());
    }
    if authority.contains('@') {
        return Err("must not contain user info".to_owned());
    }
    if raw.contains('?') || raw.contains('#') {
        return Err("must not have a query or fragment (RFC 8414)".to_owned());
    }
    Ok(raw.to_owned())
}

/// Whether an `http://` issuer names this machine (so plain HTTP never
/// leaves it).
pub(super) fn is_loopback_issuer(issuer: &str) -> bool {
    let Some(rest) = issuer.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A raw value as it may appear in a message: masked when secret or a URL,
/// otherwise escaped and cut to a readable length.
pub(super) fn shown(spec: &SettingSpec, raw: &str) -> String {
    if spec.is_secret() {
        masked(raw.len())
    } else if spec.is_url() {
        mask_url(raw)
    } else {
        plain(raw)
    }
}

/// `****` and the length, for secrets.
pub(super) fn masked(len: usize) -> String {
    format!("**** ({len} bytes)")
}

/// Control characters escaped, long values cut.
fn plain(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    let escaped: String = text.escape_debug().collect();
    if escaped.chars().count() > MAX_CHARS {
        let cut: String = escaped.chars().take(MAX_CHARS).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}

/// A URL with its password masked: `postgres://u:****@h/db`. Query
/// parameters that look like credentials (`password=`, `secret=`, …) are
/// masked too.
pub(super) fn mask_url(url: &str) -> String {
    let (head, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:****@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if is_credential_name(name) => format!("{name}=****"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    plain(&format!("{head}{authority}{tail}"))
}

fn is_credential_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "token", "key", "pwd"]
        .iter()
        .any(|word| name.contains(word))
}

/// `900 (15m)`: seconds, and the largest whole unit when there is one.
/// An RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, `T` or
/// `t` or a space) as Unix seconds (fractions dropped); `None` when it is
/// not one or is before 1970.
pub(crate) fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let rb = rest.as_bytes();
            if rest.len() != 6 || rb[3] != b':' {
                return None;
            }
            let digits = |r: std::ops::Range<usize>| -> Option<i64> {
                let part = rest.get(r)?;
                part.bytes()
                    .all(|c| c.is_ascii_digit())
                    .then(|| part.parse().ok())?
            };
            let (oh, om) = (digits(1..3)?, digits(4..6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let at = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    u64::try_from(at).ok()
}

fn seconds(secs: u64) -> String {
    for (factor, suffix) in [(86_400, "d"), (3600, "h"), (60, "m")] {
        if secs >= factor && secs.is_multiple_of(factor) {
            return format!("{secs} ({}{suffix})", secs / factor);
        }
    }
    secs.to_string()
}

/// Placeholder secrets that appear in tutorials, templates and framework
/// defaults. Compared case-insensitively after trimming.
const WEAK_SECRETS: &[&str] = &[
    "secret",
    "secretkey",
    "secret-key",
    "secret_key",
    "secret123",
    "s3cr3t",
    "changeme",
    "change-me",
    "change_me",
    "changeit",
    "change-this",
    "fallback_secret",
    "fallback-secret",
    "fallbacksecret",
    "default",
    "default_secret",
    "password",
    "passw0rd",
    "jwt_secret",
    "jwt-secret",
    "jwtsecret",
    "jwt_secret_key",
    "jwt-secret-key",
    "your-secret-key",
    "your_secret_key",
    "yoursecretkey",
    "your-secret",
    "your_secret",
    "your-jwt-secret",
    "your_jwt_secret",
    "your-256-bit-secret",
    "your-secret-key-here",
    "your_secret_key_here",
    "your-secret-key-change-in-production",
    "change-this-in-production",
    "changeme-in-production",
    "supersecret",
    "super-secret",
    "super_secret",
    "supersecretkey",
    "super-secret-key",
    "mysecret",
    "my-secret",
    "my_secret",
    "mysecretkey",
    "my-secret-key",
    "test",
    "testing",
    "dev",
    "development",
    "example",
    "tollgate",
    "tollgate-secret",
    "super-secret-jwt-token-with-at-least-32-characters-long",
    "your-super-secret-jwt-token-with-at-least-32-characters-long",
    "this-is-a-secret-key-that-is-at-least-32-characters-long",
    "a-string-secret-at-least-256-bits-long",
    "0123456789abcdef0123456789abcdef",
    "12345678901234567890123456789012",
];

/// Whether a secret is a well-known placeholder, or is made of fewer than
/// four distinct bytes (`aaaa…`, `abab…`).
pub(super) fn is_weak_secret(secret: &Secret) -> bool {
    let bytes = secret.expose();
    let mut distinct: Vec<u8> = Vec::with_capacity(4);
    for byte in bytes {
        if !distinct.contains(byte) {
            distinct.push(*byte);
            if distinct.len() >= 4 {
                break;
            }
        }
    }
    if distinct.len() < 4 {
        return true;
    }
    let Some(text) = secret.expose_str() else {
        return false;
    };
    let text = text.trim();
    WEAK_SECRETS
        .iter()
        .any(|weak| weak.eq_ignore_ascii_case(text))
}

/// The closest of `candidates` to `name`, when it is close enough to be a
/// typo.
pub(super) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 4).clamp(1, 4);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters, ASCII case-insensitive.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Reads a `.env` file: `NAME=value` lines, `#` comments, an optional
/// `export ` prefix, and values in double quotes (with `\n`, `\"`, `\\`
/// escapes), single quotes (literal) or bare (trimmed; ` #` starts a
/// comment). Errors name the line number, never the line: it may hold a
/// secret.
pub(super) fn parse_env_file(path: &str, text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut vars = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            errors.push(format!("{path}:{number}: expected NAME=value"));
            continue;
        };
        let name = name.trim();
        if !is_variable_name(name) {
            errors.push(format!(
                "{path}:{number}: the variable name is not of the form NAME (letters, digits, _)"
            ));
            continue;
        }
        match env_file_value(value.trim_start()) {
            Some(value) => vars.push((name.to_owned(), value)),
            None => errors.push(format!(
                "{path}:{number}: the value of {name} has an unterminated quote or text after the closing quote"
            )),
        }
    }
    (vars, errors)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn env_file_value(value: &str) -> Option<String> {
    let after_quote = |rest: &str| {
        let rest = rest.trim_start();
        rest.is_empty() || rest.starts_with('#')
    };
    if let Some(body) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => return after_quote(&body[at + 1..]).then_some(out),
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, other)) => out.push(other),
                    None => return None,
                },
                other => out.push(other),
            }
        }
        return None;
    }
    if let Some(body) = value.strip_prefix('\'') {
        let (inner, rest) = body.split_once('\'')?;
        return after_quote(rest).then(|| inner.to_owned());
    }
    let value = match value.find(" #") {
        Some(at) => &value[..at],
        None => value,
    };
    Some(value.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Setting;

    fn check(setting: Setting, unit: Unit, raw: &str) -> String {
        let spec = setting.spec();
        match parse(spec, unit, raw) {
            Ok(value) => value.display(spec),
            Err(reason) => format!("error: {reason}"),
        }
    }

    #[test]
    fn durations() {
        use Setting::AccessTokenTtl as Ttl;
        let cases = [
            (Unit::Native, "900", "900 (15m)"),
            (Unit::Native, "30s", "30"),
            (Unit::Native, "15m", "900 (15m)"),
            (Unit::Native, "1h", "3600 (1h)"),
            (Unit::Native, "7d", "604800 (7d)"),
            (Unit::Native, " 45 ", "45"),
            (Unit::Minutes, "15", "900 (15m)"),
            (Unit::Days, "7", "604800 (7d)"),
            (
                Unit::Native,
                "0",
                "error: is zero; a lifetime must be at least one second",
            ),
            (
                Unit::Native,
                "-5",
                "error: is negative; use whole seconds or a number with s, m, h or d (900, 15m, 1h, 7d)",
            ),
            (
                Unit::Native,
                "1.5h",
                "error: is not a duration; use whole seconds or a number with s, m, h or d (900, 15m, 1h, 7d)",
            ),
            (
                Unit::Native,
                "15M",
                "error: is not a duration; use whole seconds or a number with s, m, h or d (900, 15m, 1h, 7d)",
            ),
            (
                Unit::Native,
                "m",
                "error: is not a duration; use whole seconds or a number with s, m, h or d (900, 15m, 1h, 7d)",
            ),
            (
                Unit::Native,
                "99999999999999999999999",
                "error: is too long (more than 10 years)",
            ),
            (
                Unit::Days,
                "999999999999999999",
                "error: is too long (more than 10 years)",
            ),
            (
                Unit::Minutes,
                "15m",
                "error: is not a duration; use whole minutes",
            ),
            (Unit::Days, "-1", "error: is negative; use whole days"),
            (
                Unit::Native,
                "é",
                "error: is not a duration; use whole seconds or a number with s, m, h or d (900, 15m, 1h, 7d)",
            ),
        ];
        for (unit, raw, expected) in cases {
            assert_eq!(check(Ttl, unit, raw), expected, "{raw:?} in {unit:?}");
        }
        assert_eq!(check(Setting::Leeway, Unit::Native, "0"), "0");
    }

    #[test]
    fn issuers() {
        let cases = [
            ("https://auth.example.com", "https://auth.example.com"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://example.com/tenant/", "https://example.com/tenant/"),
            (
                "auth.example.com",
                "error: is not an http:// or https:// URL",
            ),
            ("https://", "error: has no host"),
            (
                "https://a.example?x=1",
                "error: must not have a query or fragment (RFC 8414)",
            ),
            (
                "https://a.example ",
                "error: contains whitespace; the issuer is compared exactly",
            ),
            ("https://u:p@a.example", "error: must not contain user info"),
        ];
        for (raw, expected) in cases {
            assert_eq!(check(Setting::Issuer, Unit::Native, raw), expected, "{raw}");
        }
        for loopback in [
            "http://localhost:8080",
            "http://127.0.0.1",
            "http://127.8.0.1:1/x",
            "http://[::1]:8080",
        ] {
            assert!(is_loopback_issuer(loopback), "{loopback}");
        }
        for remote in [
            "http://example.com",
            "http://10.0.0.1",
            "https://127.0.0.1",
            "http://localhost.example.com",
            "http://[::2]:1",
        ] {
            assert!(!is_loopback_issuer(remote), "{remote}");
        }
    }

    #[test]
    fn other_kinds() {
        let cases = [
            (Setting::Audience, "api, billing,api", "api,billing"),
            (
                Setting::Audience,
                "api,,billing",
                "error: has an empty entry; use a comma list such as api,billing",
            ),
            (Setting::SigningAlg, "ES256", "ES256"),
            (
                Setting::SigningAlg,
                "es256",
                "error: is not a signing algorithm; use one of EdDSA, ES256, RS256, HS256 (exact case)",
            ),
            (
                Setting::SigningAlg,
                "none",
                "error: is not a signing algorithm; use one of EdDSA, ES256, RS256, HS256 (exact case)",
            ),
            (Setting::Bind, "0.0.0.0:80", "0.0.0.0:80"),
            (
                Setting::Bind,
                "localhost:80",
                "error: is not an IP address and port (e.g. 127.0.0.1:8080 or [::]:8080)",
            ),
            (
                Setting::Environment,
                "Production",
                "error: is not an environment; use one of development, test, staging, production",
            ),
            (Setting::HmacSecret, "hunter2", "**** (7 bytes)"),
            (
                Setting::DatabaseUrl,
                "postgres://u:pw@h:5432/db?sslmode=require&password=x",
                "postgres://u:****@h:5432/db?sslmode=require&password=****",
            ),
            (
                Setting::DatabaseUrl,
                "mysql://h/db",
                "error: is not a database URL; use sqlite://PATH or postgres://…",
            ),
            (
                Setting::RedisUrl,
                "redis://:pw@cache:6379/0",
                "redis://:****@cache:6379/0",
            ),
            (Setting::Registration, "closed", "closed"),
            (
                Setting::Registration,
                "maybe",
                "error: is not a registration mode; use open or closed",
            ),
            (Setting::AllowQueryToken, "TRUE", "on"),
            (Setting::AllowQueryToken, "0", "off"),
            (Setting::FeedDownPolicy, "local", "local"),
            (
                Setting::BootstrapAdminEmail,
                "admin",
                "error: is not an e-mail address",
            ),
            (
                Setting::ClientId,
                "svc\u{7}",
                "error: contains a control character",
            ),
        ];
        for (setting, raw, expected) in cases {
            assert_eq!(check(setting, Unit::Native, raw), expected, "{raw}");
        }
    }

    #[test]
    fn urls_are_masked_whatever_their_shape() {
        let cases = [
            (
                "postgres://user:pa:ss@host/db",
                "postgres://user:****@host/db",
            ),
            ("postgres://user@host/db", "postgres://user@host/db"),
            ("sqlite://./x.db", "sqlite://./x.db"),
            ("postgres://u:p@w@host/db", "postgres://u:****@host/db"),
            ("not a url", "not a url"),
            ("host?token=abc&x=1", "host?token=****&x=1"),
        ];
        for (url, expected) in cases {
            assert_eq!(mask_url(url), expected, "{url}");
        }
    }

    #[test]
    fn weak_secrets() {
        for weak in [
            "secret",
            "ChangeMe",
            " fallback_secret ",
            "your-super-secret-jwt-token-with-at-least-32-characters-long",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abababababababababababababababababab",
        ] {
            assert!(is_weak_secret(&Secret::from(weak)), "{weak}");
        }
        assert!(!is_weak_secret(&Secret::from(
            "q3J9vX2mL8pR4tY7wZ1nB6cF0hK5sD2gA9eU"
        )));
    }

    #[test]
    fn suggestions() {
        let names = ["TOLLGATE_ISSUER", "TOLLGATE_AUDIENCE", "TOLLGATE_ENV"];
        assert_eq!(
            did_you_mean("TOLLGATE_ISUER", names),
            Some("TOLLGATE_ISSUER")
        );
        assert_eq!(
            did_you_mean("TOLLGATE_AUDIENCES", names),
            Some("TOLLGATE_AUDIENCE")
        );
        assert_eq!(did_you_mean("TOLLGATE_LOG_LEVEL", names), None);
    }

    #[test]
    fn env_files() {
        let text = "# comment\n\nexport A=1\nB = two words # note\nC=\"quoted \\\"x\\\" #1\"\nD='lit $x'\nE=\nbad line\n1X=2\nF=\"open\nG='x' y\n";
        let (vars, errors) = parse_env_file(".env", text);
        let vars: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            vars,
            ["A=1", "B=two words", "C=quoted \"x\" #1", "D=lit $x", "E="]
        );
        assert_eq!(
            errors,
            [
                ".env:8: expected NAME=value",
                ".env:9: the variable name is not of the form NAME (letters, digits, _)",
                ".env:10: the value of F has an unterminated quote or text after the closing quote",
                ".env:11: the value of G has an unterminated quote or text after the closing quote",
            ]
        );
    }
}
