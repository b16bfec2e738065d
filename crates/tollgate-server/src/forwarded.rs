//! The client address of a request: the TCP peer, or, when the peer is a
//! trusted proxy (`TOLLGATE_TRUSTED_PROXIES`), the address its `Forwarded`
//! (RFC 7239) or `X-Forwarded-For` header names.
//!
//! Each proxy appends the address it received the request from, so the
//! chain reads client, proxy 1, proxy 2, … and only the entries appended by
//! proxies we trust can be believed. The client address is therefore the
//! rightmost entry that is not itself a trusted proxy: everything left of
//! it was written by the client (or an untrusted hop) and may be forged.
//! `Forwarded` wins when both headers are present (it is the standard one).
//!
//! The headers are untrusted input: they are parsed without panicking,
//! walked from the right, at most [`MAX_HOPS`] entries deep; an entry that
//! is not an address (`unknown`, an obfuscated `_name`, garbage, a missing
//! `for=`) stops the walk and the request is attributed to the last trusted
//! hop (the peer, or the trusted proxy that wrote the entry), never to a
//! forged address.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use tollgate_core::config::Cidr;

/// Entries read from the right before giving up.
pub(crate) const MAX_HOPS: usize = 32;

/// The client address of a request from `peer` (see the module docs).
pub(crate) fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let forwarded = joined(headers, "forwarded");
    let chain: Vec<Option<IpAddr>> = match forwarded {
        Some(value) => forwarded_for(&value),
        None => match joined(headers, "x-forwarded-for") {
            Some(value) => split_outside_quotes(&value, ',')
                .into_iter()
                .map(|item| node(item.trim()))
                .collect(),
            None => return peer,
        },
    };
    let mut client = peer;
    for entry in chain.into_iter().rev().take(MAX_HOPS) {
        match entry {
            Some(address) => {
                client = address;
                if !is_trusted(address, trusted) {
                    return address;
                }
            }
            None => return client,
        }
    }
    client
}

fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|network| network.contains(ip))
}

/// Every value of header `name`, joined with commas (repeated headers are
/// one list, RFC 9110 §5.3); `None` when absent or not visible ASCII.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut out = String::new();
    for value in values {
        let text = value.to_str().ok()?;
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(text);
    }
    Some(out)
}

/// The `for=` of each element of a `Forwarded` value, in order; `None` for
/// an element without a usable one.
fn forwarded_for(value: &str) -> Vec<Option<IpAddr>> {
    split_outside_quotes(value, ',')
        .into_iter()
        .map(|element| {
            split_outside_quotes(element, ';')
                .into_iter()
                .find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| node(unquote(value.trim())))
                })
                .flatten()
        })
        .collect()
}

/// `text` split at `separator`s that are not inside a quoted string.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A quoted string's content (backslash escapes removed are not needed for
/// addresses: a value with one is not an address and fails to parse).
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// An address with an optional port: `192.0.2.1`, `192.0.2.1:80`,
/// `[2001:db8::1]`, `[2001:db8::1]:80`, or a bare IPv6 address.
fn node(text: &str) -> Option<IpAddr> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || is_port(after.strip_prefix(':')?)) {
            return None;
        }
        return inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, port) = text.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|n| Cidr::parse(n).unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_trusted_peers_are_believed_and_the_rightmost_untrusted_entry_wins() {
        let trusted = nets(&["10.0.0.0/8"]);
        let xff = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &xff, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(ip("192.0.2.1"), &xff, &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(client_address(ip("10.0.0.1"), &xff, &[]), ip("10.0.0.1"));
        // Forwarded wins over X-Forwarded-For; ports, quotes, IPv6, case.
        let both = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            (
                "forwarded",
                "for=1.1.1.1, For=\"[2001:db8::17]:4711\";proto=https",
            ),
            ("forwarded", "for=10.0.0.3:80;by=10.0.0.1"),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &both, &trusted),
            ip("2001:db8::17")
        );
        // Every entry trusted: the leftmost.
        let all = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.2")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &all, &trusted),
            ip("10.9.9.9")
        );
        // Garbage, `unknown` or an obfuscated name where the client should
        // be: the last trusted hop, never an address left of it.
        for value in [
            "1.1.1.1, garbage",
            "1.1.1.1,unknown",
            "1.1.1.1, _hidden",
            "1.1.1.1,",
            "1.1.1.1, 10.0.0.2, ::g",
        ] {
            let map = headers(&[("x-forwarded-for", value)]);
            let got = client_address(ip("10.0.0.1"), &map, &trusted);
            assert!(
                got == ip("10.0.0.1") || got == ip("10.0.0.2"),
                "{value}: {got}"
            );
        }
        let map = headers(&[("forwarded", "for=1.1.1.1, proto=https")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &map, &trusted),
            ip("10.0.0.1")
        );
        // No header from a trusted peer: the peer.
        assert_eq!(
            client_address(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    proptest! {
        /// Whatever the headers hold, parsing never panics, and an untrusted
        /// peer is always answered with itself.
        #[test]
        fn any_header_value_gives_the_peer_or_an_address_from_it(
            forwarded in "[ -~]{0,200}",
            xff in "[0-9a-f:., \\[\\]\"]{0,200}",
            trusted_peer in any::<bool>(),
        ) {
            let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
            let peer = if trusted_peer { ip("10.0.0.1") } else { ip("192.0.2.1") };
            let mut map = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&forwarded) {
                map.append("forwarded", value);
            }
            if let Ok(value) = HeaderValue::from_str(&xff) {
                map.append("x-forwarded-for", value);
            }
            let got = client_address(peer, &map, &trusted);
            if !trusted_peer {
                prop_assert_eq!(got, peer);
            }
        }

        /// A chain of real addresses behind trusted proxies gives the
        /// rightmost untrusted one.
        #[test]
        fn a_well_formed_chain_gives_the_rightmost_untrusted_address(
            forged in proptest::collection::vec(any::<[u8; 4]>(), 0..5),
            client in any::<[u8; 4]>().prop_filter("not trusted", |b| b[0] != 10),
            proxies in proptest::collection::vec(any::<[u8; 3]>(), 0..4),
        ) {
            let trusted = nets(&["10.0.0.0/8"]);
            let mut chain: Vec<String> = forged.iter().map(|b| std::net::Ipv4Addr::from(*b).to_string()).collect();
            chain.push(std::net::Ipv4Addr::from(client).to_string());
            chain.extend(proxies.iter().map(|b| format!("10.{}.{}.{}", b[0], b[1], b[2])));
            let map = headers(&[("x-forwarded-for", &chain.join(", "))]);
            prop_assert_eq!(client_address(ip("10.0.0.1"), &map, &trusted), IpAddr::from(client));
        }
    }
}
