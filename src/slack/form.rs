//! Strict `application/x-www-form-urlencoded` checks. serde_urlencoded
//! silently keeps a bad `%` escape and replaces invalid UTF-8; klaxon refuses both.

/// Every `%` starts a two-hex-digit escape and every decoded pair is UTF-8.
pub fn check_encoding(body: &[u8]) -> Result<(), &'static str> {
    for pair in body.split(|&b| b == b'&') {
        let decoded = percent_decode(pair)?;
        std::str::from_utf8(&decoded).map_err(|_| "form field is not valid UTF-8")?;
    }
    Ok(())
}

fn percent_decode(input: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter();
    while let Some(&b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hi = bytes.next().and_then(|&c| (c as char).to_digit(16));
        let lo = bytes.next().and_then(|&c| (c as char).to_digit(16));
        match (hi, lo) {
            (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
            _ => return Err("bad percent-encoding in form"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::check_encoding;

    #[test]
    fn good_forms_pass() {
        for body in [
            "",
            "a=b",
            "text=%E2%9C%85+ok&x=",
            "text=caf%C3%A9",
            "text=plain é",
        ] {
            assert_eq!(check_encoding(body.as_bytes()), Ok(()), "{body}");
        }
    }

    #[test]
    fn bad_escapes_and_invalid_utf8_fail() {
        for body in [
            &b"a=%zz"[..],
            b"a=%4",
            b"a=%",
            b"a=%C3%28",
            b"a=\xff",
            b"ok=1&t=%80",
        ] {
            assert!(check_encoding(body).is_err(), "{body:?}");
        }
    }
}
