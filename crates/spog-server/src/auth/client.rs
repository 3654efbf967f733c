//! Who the client is, decided once per request: the socket peer, or, when the peer is one of
//! `trusted_proxies`, the address the proxies recorded in `Forwarded` / `X-Forwarded-For`
//! (the rightmost hop that is not itself a trusted proxy: everything left of it was written
//! by the client and proves nothing). The login throttle, the audit trail's `ip` and the
//! cookies' `Secure` flag all read [`ClientOrigin`], never the headers themselves.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::STRICT_TRANSPORT_SECURITY;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::config::Config;
use crate::state::AppState;

/// Where a request came from, as far as this server can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOrigin {
    pub ip: IpAddr,
    /// A trusted proxy says the client connected over HTTPS.
    pub https: bool,
}

impl ClientOrigin {
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Self {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !is_trusted(&peer) {
            return Self {
                ip: peer,
                https: false,
            };
        }
        let forwarded = forwarded_elements(headers);
        let (hops, proto) = if forwarded.is_empty() {
            (
                x_forwarded_for(headers),
                last_value(headers, "x-forwarded-proto"),
            )
        } else {
            let proto = forwarded.last().and_then(|e| e.proto.clone());
            (forwarded.into_iter().map(|e| e.for_).collect(), proto)
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            // An unreadable or hidden hop ends what can be known: the proxy that wrote it
            // is the client as far as we can tell.
            let Some(ip) = hop else { break };
            client = *ip;
            if !is_trusted(ip) {
                break;
            }
        }
        Self {
            ip: client,
            https: proto.is_some_and(|p| p.eq_ignore_ascii_case("https")),
        }
    }
}

/// Whether cookies set in answer to this request are `Secure` (and HSTS is sent): as
/// configured, else whenever the server is reachable beyond loopback or the request came
/// over HTTPS through a trusted proxy.
pub fn secure_cookies(config: &Config, origin: Option<&ClientOrigin>) -> bool {
    config
        .cookie_secure
        .unwrap_or_else(|| !config.listen.ip().is_loopback() || origin.is_some_and(|o| o.https))
}

/// Middleware: puts the request's [`ClientOrigin`] in its extensions, and sends
/// `Strict-Transport-Security` where cookies are secure.
pub async fn identify(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let origin =
        peer.map(|peer| ClientOrigin::of(peer, request.headers(), &state.config.trusted_proxies));
    if let Some(origin) = origin {
        request.extensions_mut().insert(origin);
    }
    let mut response = next.run(request).await;
    if secure_cookies(&state.config, origin.as_ref()) {
        response.headers_mut().insert(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

struct ForwardedElement {
    for_: Option<IpAddr>,
    proto: Option<String>,
}

/// The elements of every `Forwarded` header (RFC 7239), in order.
fn forwarded_elements(headers: &HeaderMap) -> Vec<ForwardedElement> {
    let mut elements = Vec::new();
    for value in headers.get_all("forwarded") {
        let Ok(value) = value.to_str() else {
            elements.push(ForwardedElement {
                for_: None,
                proto: None,
            });
            continue;
        };
        for element in value.split(',') {
            let mut parsed = ForwardedElement {
                for_: None,
                proto: None,
            };
            for pair in element.split(';') {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "for" => parsed.for_ = parse_hop(value),
                    "proto" => parsed.proto = Some(value.to_owned()),
                    _ => {}
                }
            }
            elements.push(parsed);
        }
    }
    elements
}

/// The hops of every `X-Forwarded-For` header, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => text.split(',').map(|hop| parse_hop(hop.trim())).collect(),
            Err(_) => vec![None],
        })
        .collect()
}

/// The value written by the nearest proxy: the last of a comma-separated header.
fn last_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    value.rsplit(',').next().map(|v| v.trim().to_owned())
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_headers_are_ignored_from_untrusted_peers() {
        let sent = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let origin = ClientOrigin::of(ip("198.51.100.7"), &sent, &nets(&["10.0.0.0/8"]));
        assert_eq!(
            origin,
            ClientOrigin {
                ip: ip("198.51.100.7"),
                https: false
            }
        );
        let origin = ClientOrigin::of(ip("198.51.100.7"), &sent, &[]);
        assert_eq!(origin.ip, ip("198.51.100.7"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client wrote the first hop itself; only what the proxies appended counts.
        let sent = headers(&[
            ("x-forwarded-for", "1.2.3.4, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
        ]);
        let origin = ClientOrigin::of(ip("10.0.0.1"), &sent, &trusted);
        assert_eq!(
            origin,
            ClientOrigin {
                ip: ip("203.0.113.9"),
                https: true
            }
        );
    }

    #[test]
    fn forwarded_is_read_before_x_forwarded_for() {
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        let sent = headers(&[
            (
                "forwarded",
                r#"for=1.2.3.4, for="[2001:db8::17]:4711";proto=https"#,
            ),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        let origin = ClientOrigin::of(ip("fd00::1"), &sent, &trusted);
        assert_eq!(
            origin,
            ClientOrigin {
                ip: ip("2001:db8::17"),
                https: true
            }
        );
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_proxy_that_wrote_it() {
        let trusted = nets(&["10.0.0.0/8"]);
        let sent = headers(&[("x-forwarded-for", "203.0.113.9, unknown, 10.0.0.3")]);
        assert_eq!(
            ClientOrigin::of(ip("10.0.0.1"), &sent, &trusted).ip,
            ip("10.0.0.3")
        );
        let none = headers(&[]);
        assert_eq!(
            ClientOrigin::of(ip("10.0.0.1"), &none, &trusted).ip,
            ip("10.0.0.1")
        );
    }

    #[test]
    fn cookies_are_secure_off_loopback_or_behind_https_unless_configured() {
        let mut config = Config::default();
        let plain = ClientOrigin {
            ip: ip("127.0.0.1"),
            https: false,
        };
        let tls = ClientOrigin {
            ip: ip("127.0.0.1"),
            https: true,
        };
        assert!(!secure_cookies(&config, Some(&plain)));
        assert!(secure_cookies(&config, Some(&tls)));
        config.listen = "0.0.0.0:8080".parse().unwrap();
        assert!(secure_cookies(&config, Some(&plain)));
        config.cookie_secure = Some(false);
        assert!(!secure_cookies(&config, Some(&tls)));
        config.cookie_secure = Some(true);
        config.listen = "127.0.0.1:8080".parse().unwrap();
        assert!(secure_cookies(&config, Some(&plain)));
    }
}
