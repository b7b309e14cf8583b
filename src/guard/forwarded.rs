//! The client address a trusted reverse proxy's header gives: the last entry
//! of `X-Forwarded-For` (or `X-Real-IP`), or RFC 7239 `Forwarded`'s last `for=`.

use std::net::{IpAddr, SocketAddr};

/// The address at the end of a forwarding header's value: the last entry of
/// a list such as `X-Forwarded-For`'s, or with `rfc7239` (the `Forwarded`
/// header) the `for=` of the last element.
pub(super) fn forwarded_ip(value: &[u8], rfc7239: bool) -> Option<IpAddr> {
    let value = std::str::from_utf8(value).ok()?;
    if rfc7239 {
        address(&forwarded_for(value)?)
    } else {
        address(value.rsplit(',').next()?.trim())
    }
}

/// An address as proxies write them: `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port`.
fn address(text: &str) -> Option<IpAddr> {
    text.parse()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| text.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The `for` of the last element of an RFC 7239 `Forwarded` value. Parsed
/// whole, quoted strings included (a client's `Host`, copied into `host="…"`,
/// can hold `,`, `;` and `for=`): `None` on any syntax error anywhere, or a
/// name twice in an element, so that text a client sent cannot stand in for
/// the element the proxy added.
fn forwarded_for(value: &str) -> Option<String> {
    let is_token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let mut elements: Vec<Vec<(String, String)>> = vec![Vec::new()];
    let mut chars = value.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| is_token(*c)) {
            name.push(c.to_ascii_lowercase());
        }
        if name.is_empty() || chars.next() != Some('=') {
            return None;
        }
        let mut text = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => text.push(chars.next()?),
                    c => text.push(c),
                }
            }
        } else {
            // Unquoted, as some proxies write an IPv6 address or a port.
            while let Some(c) = chars.next_if(|c| is_token(*c) || "[]:".contains(*c)) {
                text.push(c);
            }
        }
        let element = elements.last_mut()?;
        if element.iter().any(|(seen, _)| *seen == name) {
            return None;
        }
        element.push((name, text));
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        match chars.next() {
            None => break,
            Some(',') => elements.push(Vec::new()),
            Some(';') => {}
            Some(_) => return None,
        }
    }
    let last = elements.pop()?;
    last.into_iter()
        .find(|(name, _)| name == "for")
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarded_address_is_the_last_entry_in_any_spelling_proxies_use() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let listed = |value: &[u8]| forwarded_ip(value, false);
        assert_eq!(listed(b"198.51.100.7, 203.0.113.9"), ip("203.0.113.9"));
        assert_eq!(listed(b"203.0.113.9:4444"), ip("203.0.113.9"));
        assert_eq!(listed(b" 2001:db8::1 "), ip("2001:db8::1"));
        assert_eq!(listed(b"[2001:db8::1]:4444"), ip("2001:db8::1"));
        assert_eq!(listed(b"[2001:db8::1]"), ip("2001:db8::1"));
        for unreadable in [
            &b"unknown"[..],
            b"203.0.113.9,",
            b"",
            b"\xff",
            b"[203.0.113.9",
        ] {
            assert_eq!(listed(unreadable), None, "{unreadable:?}");
        }
    }

    #[test]
    fn the_forwarded_header_is_read_whole_so_a_clients_text_cannot_pose_as_the_proxys() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let rfc7239 = |value: &str| forwarded_ip(value.as_bytes(), true);
        assert_eq!(
            rfc7239(r#"for=198.51.100.7;proto=https, For="[2001:db8:cafe::17]:4711";by=10.0.0.1"#),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(rfc7239("proto=http;for=192.0.2.60"), ip("192.0.2.60"));
        assert_eq!(rfc7239("for=192.0.2.60:4711"), ip("192.0.2.60"));
        // A client's Host copied into host="…": its `,`, `;` and `for=` are text.
        assert_eq!(
            rfc7239(r#"for=198.51.100.23;host="x,for=10.0.0.7;y=""#),
            ip("198.51.100.23")
        );
        assert_eq!(
            rfc7239(r#"host="a;for=10.0.0.7;b=";for=198.51.100.23"#),
            ip("198.51.100.23")
        );
        assert_eq!(
            rfc7239(r#"for=10.0.0.7, for=198.51.100.23;host="a\"b""#),
            ip("198.51.100.23")
        );
        for unreadable in [
            "for=unknown",
            "for=_hidden;proto=https",
            "proto=https;by=203.0.113.43",
            r#"for="203.0.113.9"#,
            // The proxy's element after a client's unclosed quote is swallowed: refused.
            r#"for="10.0.0.7, for=198.51.100.23"#,
            "for=10.0.0.7;for=198.51.100.23",
            "for=198.51.100.23,",
            "for 198.51.100.23",
            "198.51.100.23",
            "",
        ] {
            assert_eq!(rfc7239(unreadable), None, "{unreadable:?}");
        }
    }
}
