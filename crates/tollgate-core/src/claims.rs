//! Token claims: RFC 9068 access tokens with Tollgate's additions
//! (CONTRACT §3), and minting.
//!
//! One [`Claims`] type serves both kinds, told apart by [`TokenType`]:
//! user tokens (`"access"`) carry `sid`, `email`, `roles`, `plan` and
//! `permissions`; service tokens (`"service"`, client credentials) carry
//! none of them and have the client id as `sub`. The same shape rules are
//! applied when a token is minted and when one is parsed, so Tollgate can
//! never issue a token its own validator would refuse.
//!
//! Parsing is strict: a claim named twice, a time that is not a
//! non-negative integer (`"1"`, `1.5`, `-1`, `1e400`, `null`, `true`), an
//! `aud` that is neither a string nor an array of strings, or a control
//! character in any string claim makes the token malformed. (Services copy
//! `email`, `roles` and `permissions` into logs and UIs; a NUL, newline or
//! terminal escape there would be an injection Tollgate vouched for.)

use std::fmt;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::encoding::b64_encode;
use crate::jws::{self, CowStr};
use crate::keys::SigningKey;
use crate::{Error, UnixTime};

/// The `typ` header of every Tollgate access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// A user's access token (`"access"`).
    Access,
    /// A service's client-credentials token (`"service"`).
    Service,
}

impl TokenType {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Service => "service",
        }
    }

    fn from_claim(value: &str) -> Option<TokenType> {
        match value {
            "access" => Some(TokenType::Access),
            "service" => Some(TokenType::Service),
            _ => None,
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of a validated (or about to be minted) token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Issuer; exactly the token service's configured issuer.
    pub iss: String,
    /// Subject: the user id, or the client id for service tokens.
    pub sub: String,
    /// Audiences (at least one).
    pub aud: Vec<String>,
    /// Expiry.
    pub exp: UnixTime,
    /// Issue time.
    pub iat: UnixTime,
    /// Not-before; Tollgate always sets it to `iat`.
    pub nbf: Option<UnixTime>,
    /// Unique token id; the key of per-token revocation.
    pub jti: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// User or service token.
    pub token_type: TokenType,
    /// Session id (user tokens only); the key of logout and session revocation.
    pub sid: Option<String>,
    /// The user's e-mail (user tokens only).
    pub email: Option<String>,
    /// Roles (user tokens only), e.g. `admin`.
    pub roles: Vec<String>,
    /// Plan name (user tokens only).
    pub plan: Option<String>,
    /// Permissions (user tokens only), e.g. `tool:search`.
    pub permissions: Vec<String>,
}

impl Claims {
    /// Whether this is a user's token (as opposed to a service's).
    pub fn is_user(&self) -> bool {
        self.token_type == TokenType::Access
    }

    /// The scopes, split on spaces.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the token has `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Whether the token has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the token has `permission` (e.g. `tool:search`).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// The token's shape rules (see the module docs), shared by minting and
    /// parsing.
    pub(crate) fn check_shape(&self) -> Result<(), Error> {
        self.check_shape_of(Text::Unchecked)
    }

    /// The shape rules, skipping the control-character scans when the
    /// reader has already seen that every string is printable ASCII.
    fn check_shape_of(&self, text: Text) -> Result<(), Error> {
        let has_control = |s: &str| text == Text::Unchecked && has_control(s);
        for (value, name) in [
            (&self.iss, "iss"),
            (&self.sub, "sub"),
            (&self.jti, "jti"),
            (&self.client_id, "client_id"),
        ] {
            if value.is_empty() {
                return Err(Error::MissingClaim(name));
            }
            if has_control(value) {
                return Err(Error::Malformed(
                    "an identifier claim holds a control character",
                ));
            }
        }
        if self.aud.is_empty() {
            return Err(Error::WrongAudience);
        }
        let texts = (self.email.iter().chain(&self.plan))
            .chain([&self.scope])
            .chain(&self.aud)
            .chain(&self.roles)
            .chain(&self.permissions);
        for text in texts {
            if has_control(text) {
                return Err(Error::Malformed("a claim holds a control character"));
            }
        }
        if self.exp <= self.iat {
            return Err(Error::Malformed("exp is not after iat"));
        }
        match self.token_type {
            TokenType::Access => {
                let sid = self.sid.as_deref().ok_or(Error::MissingClaim("sid"))?;
                if sid.is_empty() || has_control(sid) {
                    return Err(Error::Malformed("the sid claim is not an identifier"));
                }
                if self.plan.is_none() {
                    return Err(Error::MissingClaim("plan"));
                }
            }
            TokenType::Service => {
                if self.sid.is_some()
                    || self.email.is_some()
                    || self.plan.is_some()
                    || !self.roles.is_empty()
                    || !self.permissions.is_empty()
                {
                    return Err(Error::Malformed("a service token carries user claims"));
                }
            }
        }
        Ok(())
    }
}

/// What is known of a claims' strings before the shape rules run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    /// Nothing: every string is scanned for control characters.
    Unchecked,
    /// Every byte of every string is printable ASCII (0x20..0x7f), seen by
    /// the fast reader, which also refuses escapes: no string can hold a
    /// control character, so there is nothing to scan for.
    PrintableAscii,
}

pub(crate) fn has_control(s: &str) -> bool {
    // Printable ASCII is the common case: checked eight bytes at a time,
    // with no UTF-8 decoding; anything else takes the exact path.
    if is_printable_ascii(s.as_bytes()) {
        return false;
    }
    s.chars().any(char::is_control)
}

/// Whether every byte is in 0x20..0x7f.
fn is_printable_ascii(bytes: &[u8]) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        // A byte below 0x20, or (after adding 1) at or above 0x80: DEL
        // and every non-ASCII byte.
        let below_space = word.wrapping_sub(LOW * 0x20) & !word & HIGH;
        let del_or_high = (word | word.wrapping_add(LOW)) & HIGH;
        if below_space | del_or_high != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|b| (0x20..0x7f).contains(b))
}

impl Serialize for Claims {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let user = self.is_user();
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("iss", &self.iss)?;
        map.serialize_entry("sub", &self.sub)?;
        match self.aud.as_slice() {
            [one] => map.serialize_entry("aud", one)?,
            many => map.serialize_entry("aud", many)?,
        }
        map.serialize_entry("exp", &self.exp)?;
        map.serialize_entry("iat", &self.iat)?;
        if let Some(nbf) = self.nbf {
            map.serialize_entry("nbf", &nbf)?;
        }
        map.serialize_entry("jti", &self.jti)?;
        map.serialize_entry("client_id", &self.client_id)?;
        map.serialize_entry("scope", &self.scope)?;
        map.serialize_entry("token_type", self.token_type.as_str())?;
        if user {
            map.serialize_entry("sid", &self.sid)?;
            if let Some(email) = &self.email {
                map.serialize_entry("email", email)?;
            }
            map.serialize_entry("roles", &self.roles)?;
            map.serialize_entry("plan", &self.plan)?;
            map.serialize_entry("permissions", &self.permissions)?;
        }
        map.end()
    }
}

/// What a user token is minted from.
#[derive(Debug, Clone)]
pub struct UserGrant {
    /// The user id.
    pub sub: String,
    /// The session the token belongs to.
    pub sid: String,
    /// The user's e-mail.
    pub email: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// The user's plan.
    pub plan: String,
    /// The permissions the plan (and roles) give.
    pub permissions: Vec<String>,
    /// The client the session belongs to.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
}

/// What a service token is minted from.
#[derive(Debug, Clone)]
pub struct ServiceGrant {
    /// The client id (also the token's `sub`).
    pub client_id: String,
    /// Space-separated scopes granted.
    pub scope: String,
}

/// Mints tokens for one issuer and audience set with one signing key.
#[derive(Debug, Clone)]
pub struct Minter {
    issuer: String,
    audiences: Vec<String>,
    key: SigningKey,
}

impl Minter {
    /// A minter. Refuses an empty issuer or audience list.
    pub fn new(
        issuer: impl Into<String>,
        audiences: Vec<String>,
        key: SigningKey,
    ) -> Result<Minter, Error> {
        let issuer = issuer.into();
        if issuer.is_empty() {
            return Err(Error::MissingClaim("iss"));
        }
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(Error::WrongAudience);
        }
        Ok(Minter {
            issuer,
            audiences,
            key,
        })
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Mints a user token valid from `now` for `ttl` seconds.
    pub fn user(
        &self,
        grant: UserGrant,
        now: UnixTime,
        ttl: u64,
    ) -> Result<(String, Claims), Error> {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: grant.sub,
            aud: self.audiences.clone(),
            exp: now.saturating_add(ttl),
            iat: now,
            nbf: Some(now),
            jti: new_id()?,
            client_id: grant.client_id,
            scope: grant.scope,
            token_type: TokenType::Access,
            sid: Some(grant.sid),
            email: Some(grant.email),
            roles: grant.roles,
            plan: Some(grant.plan),
            permissions: grant.permissions,
        };
        let token = self.sign(&claims)?;
        Ok((token, claims))
    }

    /// Mints a service token valid from `now` for `ttl` seconds.
    pub fn service(
        &self,
        grant: ServiceGrant,
        now: UnixTime,
        ttl: u64,
    ) -> Result<(String, Claims), Error> {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: grant.client_id.clone(),
            aud: self.audiences.clone(),
            exp: now.saturating_add(ttl),
            iat: now,
            nbf: Some(now),
            jti: new_id()?,
            client_id: grant.client_id,
            scope: grant.scope,
            token_type: TokenType::Service,
            sid: None,
            email: None,
            roles: Vec::new(),
            plan: None,
            permissions: Vec::new(),
        };
        let token = self.sign(&claims)?;
        Ok((token, claims))
    }

    /// Signs arbitrary claims after checking their shape. For test issuers
    /// that need expired or odd-but-valid tokens; production code uses
    /// [`Minter::user`] and [`Minter::service`].
    ///
    /// A token over [`MAX_TOKEN_BYTES`](crate::MAX_TOKEN_BYTES) is refused
    /// here (`token_too_large`): every validator would refuse it, so a login
    /// that minted it would hand out a token that works nowhere.
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        claims.check_shape()?;
        let payload = serde_json::to_vec(claims).map_err(|_| Error::Signing)?;
        let token = jws::sign(&self.key, ACCESS_TOKEN_TYP, &payload)?;
        if token.len() > crate::MAX_TOKEN_BYTES {
            return Err(Error::TooLarge);
        }
        Ok(token)
    }
}

/// A fresh random identifier (128 bits, base64url): token and session ids.
pub fn new_id() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Signing)?;
    Ok(b64_encode(&bytes))
}

/// Parses and shape-checks a verified payload.
pub(crate) fn parse(payload: &[u8]) -> Result<Claims, Error> {
    // One UTF-8 check of the whole payload (ASCII runs word at a time)
    // instead of one per string inside the JSON parser.
    let text = std::str::from_utf8(payload)
        .map_err(|_| Error::Malformed("the claims are not valid UTF-8"))?;
    let (raw, text) = match compact::parse_with_text(text) {
        Some(read) => read,
        None => {
            let malformed = |_| Error::Malformed("the claims are not a valid JSON object");
            // serde_json skips the members RawClaims does not name without
            // checking their strings, and RawClaims' derive would take an
            // array or let an unknown member be named twice: read the whole
            // text once first as an object naming each member once.
            serde_json::from_str::<crate::json::UniqueMembers>(text).map_err(malformed)?;
            let raw = serde_json::from_str(text).map_err(malformed)?;
            (raw, Text::Unchecked)
        }
    };
    raw.into_claims(text)
}

/// The fast reader and serde_json on the same text (for the fuzz target):
/// `None` when the fast reader declines, else whether serde_json read
/// exactly the same members. Anything but `Some(false)` is correct.
#[cfg(feature = "fuzzing")]
pub(crate) fn compact_reader_agrees(text: &str) -> Option<bool> {
    let fast = compact::parse(text)?;
    let slow = serde_json::from_str::<RawClaims<'_>>(text).ok();
    Some(slow.as_ref() == Some(&fast))
}

impl RawClaims<'_> {
    /// The claims, after the shape rules of [`Claims::check_shape`].
    fn into_claims(self, text: Text) -> Result<Claims, Error> {
        let raw = self;
        let owned = |v: Option<CowStr<'_>>| v.map(|s| s.0.into_owned());
        let required = |v: Option<CowStr<'_>>, name| {
            v.map(|s| s.0.into_owned()).ok_or(Error::MissingClaim(name))
        };
        let token_type = raw.token_type.ok_or(Error::MissingClaim("token_type"))?;
        let token_type = TokenType::from_claim(&token_type.0).ok_or(Error::WrongTokenType)?;
        let claims = Claims {
            iss: required(raw.iss, "iss")?,
            sub: required(raw.sub, "sub")?,
            aud: raw.aud.ok_or(Error::MissingClaim("aud"))?.0,
            exp: raw.exp.ok_or(Error::MissingClaim("exp"))?,
            iat: raw.iat.ok_or(Error::MissingClaim("iat"))?,
            nbf: raw.nbf,
            jti: required(raw.jti, "jti")?,
            client_id: required(raw.client_id, "client_id")?,
            scope: owned(raw.scope).unwrap_or_default(),
            token_type,
            sid: owned(raw.sid),
            email: owned(raw.email),
            roles: raw.roles.map(|v| v.0).unwrap_or_default(),
            plan: owned(raw.plan),
            permissions: raw.permissions.map(|v| v.0).unwrap_or_default(),
        };
        claims.check_shape_of(text)?;
        Ok(claims)
    }
}

/// A fast reader for claims in exactly the form Tollgate writes them:
/// compact JSON (no whitespace), only known members, each at most once,
/// strings without escapes or control characters, times as plain decimal
/// integers, `aud` a string or an array of strings, `roles` and
/// `permissions` arrays of strings.
///
/// It only ever *accepts*: on anything else (whitespace, an escape, an
/// unknown or repeated member, `null`, a number with a sign, fraction,
/// exponent or leading zero, one over `u64`) it answers `None` and the
/// caller falls back to serde_json, which decides. On what it accepts it
/// yields exactly what serde_json would, so the two paths cannot disagree
/// (a unit test and the fuzz target compare them).
mod compact {
    use std::borrow::Cow;

    use super::{Audience, CowStr, RawClaims, Strings, Text};

    #[cfg(any(test, feature = "fuzzing"))]
    pub(super) fn parse(text: &str) -> Option<RawClaims<'_>> {
        parse_with_text(text).map(|(raw, _)| raw)
    }

    /// The claims, and whether every string in them was printable ASCII.
    pub(super) fn parse_with_text(text: &str) -> Option<(RawClaims<'_>, Text)> {
        let mut reader = Reader::new(text);
        let mut raw = RawClaims::default();
        reader.expect(b'{')?;
        let mut next = 0;
        loop {
            let name = reader.member_name(&mut next)?;
            match name {
                "iss" => set(&mut raw.iss, reader.cow()?)?,
                "sub" => set(&mut raw.sub, reader.cow()?)?,
                "jti" => set(&mut raw.jti, reader.cow()?)?,
                "client_id" => set(&mut raw.client_id, reader.cow()?)?,
                "scope" => set(&mut raw.scope, reader.cow()?)?,
                "token_type" => set(&mut raw.token_type, reader.cow()?)?,
                "sid" => set(&mut raw.sid, reader.cow()?)?,
                "email" => set(&mut raw.email, reader.cow()?)?,
                "plan" => set(&mut raw.plan, reader.cow()?)?,
                "exp" => set(&mut raw.exp, reader.number()?)?,
                "iat" => set(&mut raw.iat, reader.number()?)?,
                "nbf" => set(&mut raw.nbf, reader.number()?)?,
                "aud" => {
                    let aud = match reader.peek()? {
                        b'[' => reader.strings()?,
                        _ => vec![reader.string()?.to_owned()],
                    };
                    set(&mut raw.aud, Audience(aud))?
                }
                "roles" => set(&mut raw.roles, Strings(reader.strings()?))?,
                "permissions" => set(&mut raw.permissions, Strings(reader.strings()?))?,
                _ => return None,
            }
            match reader.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        let strings = match reader.printable {
            true => Text::PrintableAscii,
            false => Text::Unchecked,
        };
        (reader.at == text.len()).then_some((raw, strings))
    }

    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;

    /// The bytes of `word` (little-endian) that are `"`, `\\`, below
    /// 0x20 or above 0x7e (DEL and every non-ASCII byte), flagged in their
    /// high bit. Borrows and carries only run towards later bytes, so the
    /// lowest flag is always exact (the only one used).
    fn specials(word: u64) -> u64 {
        let zero = |x: u64| x.wrapping_sub(LOW) & !x & HIGH;
        let below_space = word.wrapping_sub(LOW * 0x20) & !word & HIGH;
        let del_or_high = (word | word.wrapping_add(LOW)) & HIGH;
        zero(word ^ (LOW * u64::from(b'"')))
            | zero(word ^ (LOW * u64::from(b'\\')))
            | below_space
            | del_or_high
    }

    /// The members in the order Tollgate writes them (the `Serialize` of
    /// `Claims`), each with its `"name":` bytes.
    const ORDER: [(&str, &[u8]); 15] = [
        ("iss", b"\"iss\":"),
        ("sub", b"\"sub\":"),
        ("aud", b"\"aud\":"),
        ("exp", b"\"exp\":"),
        ("iat", b"\"iat\":"),
        ("nbf", b"\"nbf\":"),
        ("jti", b"\"jti\":"),
        ("client_id", b"\"client_id\":"),
        ("scope", b"\"scope\":"),
        ("token_type", b"\"token_type\":"),
        ("sid", b"\"sid\":"),
        ("email", b"\"email\":"),
        ("roles", b"\"roles\":"),
        ("plan", b"\"plan\":"),
        ("permissions", b"\"permissions\":"),
    ];

    /// Fills an empty slot; `None` for a member named twice.
    fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
        match slot {
            Some(_) => None,
            None => {
                *slot = Some(value);
                Some(())
            }
        }
    }

    pub(super) struct Reader<'a> {
        text: &'a str,
        at: usize,
        /// No string read so far had a byte outside 0x20..0x7f.
        printable: bool,
    }

    impl<'a> Reader<'a> {
        pub(super) fn new(text: &'a str) -> Self {
            Reader {
                text,
                at: 0,
                printable: true,
            }
        }

        /// The string at the start of the text, if the reader takes it.
        #[cfg(test)]
        pub(super) fn string_for_test(&mut self) -> Option<String> {
            self.string().map(str::to_owned)
        }

        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.at).copied()
        }

        fn next(&mut self) -> Option<u8> {
            let byte = self.peek()?;
            self.at += 1;
            Some(byte)
        }

        fn expect(&mut self, byte: u8) -> Option<()> {
            (self.next()? == byte).then_some(())
        }

        /// A member name and its `:`. The name Tollgate writes next (by
        /// `ORDER`, position `next`) is recognised by one comparison; any
        /// other is read as a string. Either way the result is the same.
        fn member_name(&mut self, next: &mut usize) -> Option<&'a str> {
            if let Some((name, written)) = ORDER.get(*next)
                && self.text.as_bytes().get(self.at..)?.starts_with(written)
            {
                self.at += written.len();
                *next += 1;
                return Some(name);
            }
            let name = self.string()?;
            self.expect(b':')?;
            *next = ORDER
                .iter()
                .position(|(n, _)| *n == name)
                .map_or(ORDER.len(), |at| at + 1);
            Some(name)
        }

        /// A string with no escapes and no control characters (which JSON
        /// forbids raw), borrowed from the input.
        fn string(&mut self) -> Option<&'a str> {
            self.expect(b'"')?;
            let bytes = self.text.as_bytes();
            let start = self.at;
            // Claim strings are short: one plain pass finds the closing
            // quote and refuses control characters and escapes (after a
            // backslash the quote found might not end the string: let
            // serde_json do it).
            let mut end = start;
            // Eight bytes at a time up to the first quote, backslash,
            // control or non-ASCII byte, then byte by byte to judge it.
            while let Some(chunk) = bytes.get(end..end + 8) {
                let word = u64::from_le_bytes(chunk.try_into().ok()?);
                let found = specials(word);
                if found != 0 {
                    end += (found.trailing_zeros() / 8) as usize;
                    break;
                }
                end += 8;
            }
            loop {
                match *bytes.get(end)? {
                    b'"' => break,
                    b if b < 0x20 || b == b'\\' => return None,
                    b => {
                        // DEL or a byte of a multi-byte character: the
                        // shape rules must look for control characters.
                        if b > 0x7e {
                            self.printable = false;
                        }
                        end += 1;
                    }
                }
            }
            self.at = end + 1;
            self.text.get(start..end)
        }

        fn cow(&mut self) -> Option<CowStr<'a>> {
            self.string().map(|s| CowStr(Cow::Borrowed(s)))
        }

        /// `[]` or `["a","b",…]`.
        fn strings(&mut self) -> Option<Vec<String>> {
            self.expect(b'[')?;
            if self.peek()? == b']' {
                self.at += 1;
                return Some(Vec::new());
            }
            // Room for a typical list (roles, permissions, audiences) at
            // once, rather than growing 4 → 8.
            let mut list = Vec::with_capacity(8);
            loop {
                list.push(self.string()?.to_owned());
                match self.next()? {
                    b',' => continue,
                    b']' => return Some(list),
                    _ => return None,
                }
            }
        }

        /// A non-negative decimal integer without leading zeros that fits a
        /// `u64`, followed by `,` or `}`.
        fn number(&mut self) -> Option<u64> {
            let digits = self.text.as_bytes().get(self.at..)?;
            let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            if len == 0 || (len > 1 && digits[0] == b'0') {
                return None;
            }
            if !matches!(digits.get(len), Some(b',' | b'}')) {
                return None;
            }
            let mut value: u64 = 0;
            for digit in &digits[..len] {
                value = value
                    .checked_mul(10)?
                    .checked_add(u64::from(digit - b'0'))?;
            }
            self.at += len;
            Some(value)
        }
    }
}

/// The claims as they arrive. Every field rejects `null` and wrong types;
/// serde's derive rejects a member named twice.
#[derive(Deserialize, Default)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(Debug, PartialEq))]
struct RawClaims<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    iss: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    sub: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "present")]
    aud: Option<Audience>,
    #[serde(default, deserialize_with = "present")]
    exp: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<u64>,
    #[serde(borrow, default, deserialize_with = "present")]
    jti: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    client_id: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    scope: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    token_type: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    sid: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    email: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "present")]
    roles: Option<Strings>,
    #[serde(borrow, default, deserialize_with = "present")]
    plan: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "present")]
    permissions: Option<Strings>,
}

/// A present member: `null` is a type error, not an absent claim.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: de::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `aud`: a string or a non-empty array of strings.
#[cfg_attr(any(test, feature = "fuzzing"), derive(Debug, PartialEq))]
struct Audience(Vec<String>);

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Audience, A::Error> {
                let Strings(list) = Strings::from_seq(seq)?;
                Ok(Audience(list))
            }
        }
        d.deserialize_any(V)
    }
}

/// An array of strings, nothing else.
#[cfg_attr(any(test, feature = "fuzzing"), derive(Debug, PartialEq))]
struct Strings(Vec<String>);

impl Strings {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Strings, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
        while let Some(item) = seq.next_element::<CowStr<'de>>()? {
            list.push(item.0.into_owned());
        }
        Ok(Strings(list))
    }
}

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Strings, A::Error> {
                Strings::from_seq(seq)
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_json() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://auth.example", "sub": "u1", "aud": "api", "exp": 2000, "iat": 1000,
            "nbf": 1000, "jti": "j1", "client_id": "tollgate", "scope": "openid",
            "token_type": "access", "sid": "s1", "email": "a@example.com", "roles": ["admin"],
            "plan": "pro", "permissions": ["tool:search"],
        })
    }

    fn parse_json(value: &serde_json::Value) -> Result<Claims, Error> {
        parse(value.to_string().as_bytes())
    }

    fn with(key: &str, value: serde_json::Value) -> Result<Claims, Error> {
        let mut json = user_json();
        json[key] = value;
        parse_json(&json)
    }

    fn without(key: &str) -> Result<Claims, Error> {
        let mut json = user_json();
        json.as_object_mut().unwrap().remove(key);
        parse_json(&json)
    }

    #[test]
    fn a_token_no_validator_would_take_is_never_minted() {
        let key = crate::ManagedKey::generate(crate::Algorithm::EdDSA, 1000).unwrap();
        let minter = Minter::new(
            "https://auth.example",
            vec!["api".into()],
            key.signing_key().unwrap(),
        )
        .unwrap();
        let grant = |roles: usize| UserGrant {
            sub: "u1".into(),
            sid: "s1".into(),
            email: "a@example.com".into(),
            roles: (0..roles).map(|i| format!("role-{i:04}")).collect(),
            plan: "pro".into(),
            permissions: vec!["tool:search".into()],
            client_id: "web".into(),
            scope: String::new(),
        };
        let (token, _) = minter.user(grant(10), 1000, 900).unwrap();
        assert!(token.len() < crate::MAX_TOKEN_BYTES);
        // About 14 bytes of JSON per role, a third more in base64url.
        assert_eq!(
            minter.user(grant(600), 1000, 900).unwrap_err(),
            Error::TooLarge
        );
    }

    #[test]
    fn a_complete_user_token_parses_and_round_trips() {
        let claims = parse_json(&user_json()).unwrap();
        assert!(claims.is_user());
        assert!(claims.has_role("admin") && claims.has_permission("tool:search"));
        let again = parse(&serde_json::to_vec(&claims).unwrap()).unwrap();
        assert_eq!(again, claims);
    }

    #[test]
    fn times_must_be_non_negative_integers() {
        for bad in [
            serde_json::json!("9999999999"),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(true),
            serde_json::json!(null),
            serde_json::json!([]),
            serde_json::json!({}),
        ] {
            for key in ["exp", "iat", "nbf"] {
                assert_eq!(
                    with(key, bad.clone()).unwrap_err().code(),
                    "malformed",
                    "{key}={bad}"
                );
            }
        }
        for raw in ["1e400", "18446744073709551616", "2e3"] {
            let text = user_json()
                .to_string()
                .replace("\"exp\":2000", &format!("\"exp\":{raw}"));
            assert_eq!(
                parse(text.as_bytes()).unwrap_err().code(),
                "malformed",
                "{raw}"
            );
        }
    }

    #[test]
    fn required_claims_are_required() {
        for key in [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "client_id",
            "token_type",
            "sid",
            "plan",
        ] {
            assert_eq!(without(key).unwrap_err().code(), "missing_claim", "{key}");
        }
        assert!(without("nbf").is_ok());
        assert!(without("email").is_ok());
    }

    #[test]
    fn duplicate_members_are_malformed() {
        let text = user_json().to_string();
        for (from, to) in [
            ("\"sub\":\"u1\"", "\"sub\":\"u1\",\"sub\":\"admin\""),
            ("\"exp\":2000", "\"exp\":2000,\"exp\":9000"),
            ("\"aud\":\"api\"", "\"aud\":\"api\",\"aud\":\"other\""),
        ] {
            let dup = text.replacen(from, to, 1);
            assert_ne!(dup, text);
            assert_eq!(
                parse(dup.as_bytes()).unwrap_err().code(),
                "malformed",
                "{dup}"
            );
        }
    }

    #[test]
    fn members_nobody_reads_are_unique_too() {
        // Fuzzing found (fuzz/README.md, `validator`): a member the
        // parser ignores could be named twice, against the rule that a
        // claims object names each member once (RFC 7519 §4, docs/errors.md).
        let text = user_json().to_string();
        for extra in [r#""x":0,"x":0"#, r#""":0,"":1"#, r#""x":{"a":1},"x":[]"#] {
            let dup = text.replacen('{', &format!("{{{extra},"), 1);
            assert_eq!(
                parse(dup.as_bytes()).unwrap_err(),
                Error::Malformed("the claims are not a valid JSON object"),
                "{dup}"
            );
        }
        // Once each is fine, and so is a name repeated inside a nested value.
        let once = text.replacen('{', r#"{"x":{"a":1,"a":2},"y":0,"#, 1);
        assert!(parse(once.as_bytes()).is_ok(), "{once}");
    }

    #[test]
    fn claims_are_an_object_not_an_array() {
        // Every claim, in order, as an array instead of an object.
        let values: Vec<serde_json::Value> = KNOWN.iter().map(|k| user_json()[k].clone()).collect();
        let array = serde_json::Value::Array(values).to_string();
        assert_eq!(parse(array.as_bytes()).unwrap_err().code(), "malformed");
        assert_eq!(parse(b"[]").unwrap_err().code(), "malformed");
    }

    #[test]
    fn audience_shapes() {
        assert_eq!(
            with("aud", serde_json::json!(["api", "x"])).unwrap().aud,
            ["api", "x"]
        );
        assert_eq!(
            with("aud", serde_json::json!([])).unwrap_err().code(),
            "wrong_audience"
        );
        for bad in [
            serde_json::json!({}),
            serde_json::json!(1),
            serde_json::json!([1]),
            serde_json::json!(null),
        ] {
            assert_eq!(with("aud", bad).unwrap_err().code(), "malformed");
        }
    }

    #[test]
    fn identifiers_and_types() {
        assert_eq!(
            with("sub", serde_json::json!("a\u{0}b"))
                .unwrap_err()
                .code(),
            "malformed"
        );
        assert_eq!(
            with("sub", serde_json::json!("")).unwrap_err().code(),
            "missing_claim"
        );
        assert_eq!(
            with("token_type", serde_json::json!("refresh"))
                .unwrap_err()
                .code(),
            "wrong_token_type"
        );
        assert_eq!(
            with("exp", serde_json::json!(1000)).unwrap_err().code(),
            "malformed"
        );
        // A service token must not carry user claims.
        let mut json = user_json();
        json["token_type"] = "service".into();
        assert_eq!(parse_json(&json).unwrap_err().code(), "malformed");
        for key in ["sid", "email", "plan", "roles", "permissions"] {
            json.as_object_mut().unwrap().remove(key);
        }
        assert!(!parse_json(&json).unwrap().is_user());
    }

    #[test]
    fn word_at_a_time_checks_agree_with_byte_checks() {
        for value in 0..=255u8 {
            for at in 0..17 {
                let mut bytes = [b'a'; 17];
                bytes[at] = value;
                assert_eq!(
                    is_printable_ascii(&bytes),
                    (0x20..0x7f).contains(&value),
                    "{value:#x} at {at}"
                );
                // Every byte value before it, too (carries and borrows).
                if at > 0 {
                    for before in [0x00, 0x1f, 0x7e, 0x7f, 0x80, 0xff] {
                        bytes[at - 1] = before;
                        let expected = [before, value].iter().all(|b| (0x20..0x7f).contains(b));
                        assert_eq!(
                            is_printable_ascii(&bytes),
                            expected,
                            "{before:#x},{value:#x} at {at}"
                        );
                    }
                }
            }
            let text = format!("\"abcd{}efghijk\"", char::from(value));
            // The compact reader refuses exactly quotes-with-backslash and
            // control bytes inside strings (ASCII values only here).
            if value.is_ascii() {
                let mut reader = compact::Reader::new(&text);
                let got = reader.string_for_test();
                let expected = match value {
                    // A quote ends the string there.
                    b'"' => Some("abcd".to_owned()),
                    b'\\' => None,
                    v if v < 0x20 => None,
                    _ => Some(text[1..text.len() - 1].to_owned()),
                };
                assert_eq!(got, expected, "{value:#x}");
            }
        }
        assert!(has_control("a\u{85}b"));
        assert!(has_control("\u{9f}"));
        assert!(!has_control("été ☃"));
    }

    #[test]
    fn control_characters_the_fast_reader_lets_through_are_still_refused() {
        // Raw DEL and C1 controls are legal inside JSON strings and pass the
        // fast reader; the shape rules must still see them, whichever
        // string holds them and wherever in it (word or byte part).
        let text = serde_json::to_string(&parse_json(&user_json()).unwrap()).unwrap();
        for bad in ["\u{7f}", "\u{85}", "\u{9f}", "long-enough-prefix\u{7f}"] {
            for field in ["\"u1\"", "\"a@example.com\"", "\"tool:search\"", "\"s1\""] {
                let value = format!("\"{}{bad}\"", &field[1..field.len() - 1]);
                let dirty = text.replacen(field, &value, 1);
                assert!(compact::parse(&dirty).is_some(), "{dirty}");
                assert_eq!(
                    parse(dirty.as_bytes()).unwrap_err().code(),
                    "malformed",
                    "{dirty}"
                );
            }
        }
        // Printable non-ASCII text is fine.
        let accented = text.replacen("\"a@example.com\"", "\"été@exämple.com\"", 1);
        assert_eq!(
            parse(accented.as_bytes()).unwrap().email.as_deref(),
            Some("été@exämple.com")
        );
    }

    #[test]
    fn the_compact_reader_takes_what_tollgate_writes() {
        let text = serde_json::to_string(&parse_json(&user_json()).unwrap()).unwrap();
        let fast = compact::parse(&text).expect("Tollgate's own output is compact");
        assert_eq!(
            Ok(&fast),
            serde_json::from_str::<RawClaims<'_>>(&text)
                .as_ref()
                .map_err(|_| ())
        );
        for other in [
            text.replacen('{', "{ ", 1),
            text.replacen("\"u1\"", "\"u\\u0031\"", 1),
            text.replacen("\"sub\"", "\"x\":1,\"sub\"", 1),
            text.replacen("\"exp\":2000", "\"exp\":2000,\"exp\":2001", 1),
            text.replacen("2000", "02000", 1),
            text.replacen("2000", "2000.0", 1),
            text.replacen("2000", "18446744073709551616", 1),
            text.replacen("\"pro\"", "null", 1),
            format!("{text} "),
        ] {
            assert!(compact::parse(&other).is_none(), "{other}");
        }
    }

    proptest::proptest! {
        /// Differential: whenever the compact reader accepts a text,
        /// serde_json reads exactly the same claims from it.
        #[test]
        fn the_compact_reader_agrees_with_serde_json(
            members in proptest::collection::vec((member_name(), member_value()), 0..20),
            separators in proptest::collection::vec(proptest::sample::select(vec![",", ",", ",", ", ", "", ",,"]), 20),
        ) {
            let mut text = String::from("{");
            for (i, (name, value)) in members.iter().enumerate() {
                if i > 0 {
                    text.push_str(separators[i]);
                }
                text.push_str(&format!("\"{name}\":{value}"));
            }
            text.push('}');
            if let Some(fast) = compact::parse(&text) {
                let slow = serde_json::from_str::<RawClaims<'_>>(&text);
                proptest::prop_assert!(slow.is_ok(), "{text}");
                proptest::prop_assert_eq!(fast, slow.unwrap());
            }
        }
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

        /// The same, over texts the compact reader mostly accepts: each
        /// known member at most once, in any order.
        #[test]
        fn the_compact_reader_agrees_on_tollgate_shaped_claims(
            members in proptest::sample::subsequence(KNOWN.to_vec(), 0..=KNOWN.len())
                .prop_shuffle()
                .prop_flat_map(|names| {
                    names
                        .into_iter()
                        .map(|name| (proptest::strategy::Just(name), value_for(name)))
                        .collect::<Vec<_>>()
                }),
        ) {
            let members: Vec<String> = members
                .iter()
                .map(|(name, value)| format!("\"{name}\":{value}"))
                .collect();
            let text = format!("{{{}}}", members.join(","));
            let slow = serde_json::from_str::<RawClaims<'_>>(&text);
            if let Some(fast) = compact::parse(&text) {
                proptest::prop_assert_eq!(Ok(fast), slow.map_err(|_| ()));
            }
        }
    }

    /// Mostly a value of the member's type, sometimes anything.
    fn value_for(name: &str) -> proptest::strategy::BoxedStrategy<String> {
        let string = || {
            proptest::prop_oneof![
                "[a-z0-9@.:+ -]{0,8}".prop_map(|s| format!("\"{s}\"")),
                proptest::prelude::any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            ]
        };
        let strings = proptest::collection::vec(string(), 0..4)
            .prop_map(|items| format!("[{}]", items.join(",")));
        let proper = match name {
            "exp" | "iat" | "nbf" => proptest::prelude::any::<u64>()
                .prop_map(|n| n.to_string())
                .boxed(),
            "roles" | "permissions" => strings.boxed(),
            "aud" => proptest::prop_oneof![string(), strings].boxed(),
            _ => string().boxed(),
        };
        proptest::prop_oneof![9 => proper, 1 => member_value()].boxed()
    }

    const KNOWN: [&str; 15] = [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "client_id",
        "scope",
        "token_type",
        "sid",
        "email",
        "roles",
        "plan",
        "permissions",
    ];

    fn member_name() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy;
        proptest::prop_oneof![
            proptest::sample::select(vec![
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "jti",
                "client_id",
                "scope",
                "token_type",
                "sid",
                "email",
                "roles",
                "plan",
                "permissions",
                "x",
                "su\\u0062",
            ])
            .prop_map(str::to_owned),
            "[a-z_]{0,10}",
        ]
    }

    fn member_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy;
        let string = proptest::prop_oneof![
            "[a-z0-9@.:+ -]{0,8}".prop_map(|s| format!("\"{s}\"")),
            proptest::prelude::any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            proptest::prelude::any::<String>().prop_map(|s| format!("\"{s}\"")),
        ];
        proptest::prop_oneof![
            string.clone(),
            proptest::prelude::any::<u64>().prop_map(|n| n.to_string()),
            proptest::sample::select(vec![
                "0",
                "00",
                "01",
                "-1",
                "1.5",
                "1e3",
                "18446744073709551616",
                "null",
                "true",
                "[]",
                "[1]",
                "{}",
                " 5",
                "5 ",
                "\"\\\"\"",
            ])
            .prop_map(str::to_owned),
            proptest::collection::vec(string, 0..4)
                .prop_map(|items| format!("[{}]", items.join(","))),
        ]
    }

    #[test]
    fn lone_surrogates_are_malformed_in_members_nobody_reads() {
        for extra in [
            r#""x":"\ud800""#,
            r#""x":["\udfff"]"#,
            r#""\ud800":1"#,
            r#""x":{"y":"\udc00"}"#,
        ] {
            let text = user_json()
                .to_string()
                .replacen('{', &format!("{{{extra},"), 1);
            assert_eq!(
                parse(text.as_bytes()).unwrap_err().code(),
                "malformed",
                "{text}"
            );
        }
        // A well-formed pair is fine there.
        let text = user_json()
            .to_string()
            .replacen('{', r#"{"x":"\ud83d\ude00","#, 1);
        assert!(parse(text.as_bytes()).is_ok());
    }

    #[test]
    fn lone_surrogates_and_bad_utf8_are_malformed() {
        let text = user_json().to_string().replace("\"u1\"", "\"\\ud800\"");
        assert!(parse(text.as_bytes()).is_err());
        let mut bytes = user_json().to_string().into_bytes();
        let at = bytes.iter().position(|b| *b == b'u').unwrap();
        bytes[at] = 0xff;
        assert!(parse(&bytes).is_err());
        assert!(parse(b"\xef\xbb\xbf{}").is_err());
    }
}
