//! CORS origins as browsers send them.

/// `origin` as a browser sends it in `Origin`, which actix-cors compares
/// byte for byte: `http(s)://host[:port]`, lower case, no default port, no
/// trailing slash. `None` for what no browser sends (a wildcard, a path,
/// user info, another scheme, a port with leading zeros).
pub(super) fn browser_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://")?;
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    // An IPv6 host is bracketed; anything after the host is `:port`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (ip, port) = v6.split_once(']')?;
            (
                format!("[{}]", ip.parse::<std::net::Ipv6Addr>().ok()?),
                port,
            )
        }
        None => {
            let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            let name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
            if host.is_empty() || !host.chars().all(name) {
                return None;
            }
            (host.to_owned(), port)
        }
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => "",
        None => return None,
        Some(p) if p == default_port => "",
        Some(p)
            if p.bytes().all(|b| b.is_ascii_digit())
                && !p.starts_with('0')
                && p.parse::<u16>().is_ok() =>
        {
            p
        }
        Some(_) => return None,
    };
    let colon = if port.is_empty() { "" } else { ":" };
    Some(format!("{scheme}://{host}{colon}{port}"))
}
