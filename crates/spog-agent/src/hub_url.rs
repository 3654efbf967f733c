//! The hub's base URL (`https://spog.example.com`, perhaps under a path prefix), and the two
//! addresses the agent derives from it.

use std::net::IpAddr;

use tokio_tungstenite::tungstenite::http::Uri;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubUrl {
    secure: bool,
    /// `host[:port]`.
    authority: String,
    /// Empty, or a prefix like `/spog` without a trailing slash.
    prefix: String,
    loopback: bool,
}

impl HubUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        let secure = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("`{text}` must start with https:// (or http://)")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{text}` names no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("`{text}` must not carry credentials"));
        }
        if uri.query().is_some() {
            return Err(format!("`{text}` must not carry a query"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        Ok(Self {
            secure,
            authority: authority.as_str().to_owned(),
            prefix: uri.path().trim_end_matches('/').to_owned(),
            loopback,
        })
    }

    /// Plain `http://` to anything but this machine sends the token and the credential in
    /// the clear: refused unless the operator says so.
    pub fn check_transport(&self, insecure_http: bool) -> Result<(), String> {
        if self.secure || self.loopback || insecure_http {
            Ok(())
        } else {
            Err(format!(
                "refusing plain http:// to {}: use https://, or --insecure-http if you accept \
                 that the token and the credential travel unencrypted",
                self.authority
            ))
        }
    }

    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// `{base}/api/v1/agent/enroll`.
    pub fn enroll_url(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!(
            "{scheme}://{}{}{}",
            self.authority,
            self.prefix,
            spog_protocol::ENROLL_PATH
        )
    }

    /// `{base}/api/v1/agent/connect` as a `ws(s)://` URL.
    pub fn connect_url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{}{}",
            self.authority,
            self.prefix,
            spog_protocol::CONNECT_PATH
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_addresses_follow_the_base_url_and_its_prefix() {
        let hub = HubUrl::parse("https://spog.example.com/console/").unwrap();
        assert_eq!(
            hub.enroll_url(),
            "https://spog.example.com/console/api/v1/agent/enroll"
        );
        assert_eq!(
            hub.connect_url(),
            "wss://spog.example.com/console/api/v1/agent/connect"
        );
        let local = HubUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            local.connect_url(),
            "ws://127.0.0.1:8080/api/v1/agent/connect"
        );
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback_or_when_the_operator_insists() {
        for ok in [
            "https://spog.example.com",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            assert_eq!(
                HubUrl::parse(ok).unwrap().check_transport(false),
                Ok(()),
                "{ok}"
            );
        }
        for refused in [
            "http://spog.example.com",
            "http://10.0.0.5:8080",
            "http://[fe80::1]",
        ] {
            let hub = HubUrl::parse(refused).unwrap();
            let error = hub.check_transport(false).unwrap_err();
            assert!(error.contains("--insecure-http"), "{error}");
            assert_eq!(hub.check_transport(true), Ok(()));
        }
    }

    #[test]
    fn urls_that_are_not_a_hub_address_are_refused() {
        for bad in [
            "spog.example.com",
            "ftp://spog",
            "https://",
            "https://u:p@spog",
            "https://spog/?a=1",
        ] {
            assert!(HubUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
