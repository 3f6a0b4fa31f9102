//! `ws://` and `wss://` URLs: what the connector needs from them.

/// A validated `ws://` or `wss://` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WsUrl {
    /// The URL as configured.
    pub(crate) url: String,
    /// Host name or address (without brackets for IPv6).
    pub(crate) host: String,
    /// TCP port (explicit, or 80/443 by scheme).
    pub(crate) port: u16,
    /// `true` for `wss://`.
    pub(crate) tls: bool,
}

/// Splits a `ws://` / `wss://` URL into what the connector needs.
pub(crate) fn parse_ws_url(url: &str) -> Result<WsUrl, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else {
        return Err(format!("\"{url}\" must start with ws:// or wss://"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!(
            "\"{url}\": user information in the URL is not supported"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("\"{url}\": unclosed [ in the host"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    let port = match port {
        None => {
            if tls {
                443
            } else {
                80
            }
        }
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("\"{url}\": \"{p}\" is not a port number"))?,
    };
    Ok(WsUrl {
        url: url.to_string(),
        host: host.to_string(),
        port,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_ws_url("ws://127.0.0.1:9001/x?y").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("127.0.0.1", 9001, false));
        let u = parse_ws_url("wss://[::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("::1", 443, true));
        assert!(parse_ws_url("ws://:80").is_err());
        assert!(parse_ws_url("ws://h:99999").is_err());
    }
}
