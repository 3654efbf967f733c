//! The outbound guard (SPEC 5.4), for every outbound request of webhooks and channels alike:
//! no loopback, private, link-local, CGNAT, multicast, reserved or cloud-metadata address is
//! ever connected to, unless the configuration allows its CIDR. Names are checked on the
//! addresses they resolve to, inside the HTTP client's resolver, so the address checked is
//! the address connected to and DNS rebinding cannot slip past; literal addresses (which
//! never reach a resolver) are checked before the request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A refused destination.
#[derive(Debug, Clone, thiserror::Error)]
#[error("refused by the outbound guard: {target} is {reason}")]
pub struct Refused {
    pub target: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct Guard {
    allow: Vec<IpNet>,
}

impl Guard {
    /// `allow` names CIDRs exempt from the guard (e.g. an internal relay, or tests' 127.0.0.0/8).
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        let allowed = |ip: IpAddr| self.allow.iter().any(|net| net.contains(&ip));
        if allowed(ip) {
            return Ok(());
        }
        let reason = match ip {
            IpAddr::V4(v4) => forbidden_v4(v4),
            // An IPv6 range's own verdict comes first (a link-local address with an ISATAP
            // interface id is link-local whatever it embeds); then the IPv4 address it
            // reaches, exempt when its own CIDR is allowed.
            IpAddr::V6(v6) => forbidden_v6(v6).or_else(|| {
                embedded_ipv4(ip)
                    .filter(|v4| !allowed(IpAddr::V4(*v4)))
                    .and_then(forbidden_v4)
            }),
        };
        reason.map_or(Ok(()), Err)
    }

    /// Checks a URL's host when it is a literal address; names are checked when resolved.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        self.check(ip).map_err(|reason| Refused {
            target: ip.to_string(),
            reason,
        })
    }

    /// The resolver to give the HTTP client.
    pub fn resolver(self: &Arc<Self>) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            guard: Arc::clone(self),
        })
    }
}

/// Why an address may not be connected to, or `None` when it may (no CIDR allowed).
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    Guard::default().check(ip).err()
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    Some(match (a, b, c, d) {
        (169, 254, 169, 254) | (168, 63, 129, 16) | (100, 100, 100, 200) => {
            "a cloud metadata address"
        }
        (0, ..) => "an unspecified address",
        (127, ..) => "a loopback address",
        (10, ..) | (192, 168, ..) => "a private address",
        (172, 16..=31, ..) => "a private address",
        (100, 64..=127, ..) => "a carrier-grade NAT address",
        (169, 254, ..) => "a link-local address",
        (192, 0, 0, _) => "an IETF protocol address",
        (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) => "a documentation address",
        (198, 18..=19, ..) => "a benchmarking address",
        (192, 88, 99, _) => "a reserved address",
        (255, 255, 255, 255) => "the broadcast address",
        (224..=239, ..) => "a multicast address",
        (240..=255, ..) => "a reserved address",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    Some(match segments {
        [0, 0, 0, 0, 0, 0, 0, 0] => "an unspecified address",
        [0, 0, 0, 0, 0, 0, 0, 1] => "a loopback address",
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] => "a cloud metadata address",
        [s, ..] if s & 0xfe00 == 0xfc00 => "a unique local (private) address",
        [s, ..] if s & 0xffc0 == 0xfe80 => "a link-local address",
        [s, ..] if s & 0xffc0 == 0xfec0 => "a site-local address",
        [s, ..] if s & 0xff00 == 0xff00 => "a multicast address",
        [0x2001, 0x0db8, ..] => "a documentation address",
        [s, ..] if s & 0xfff0 == 0x3ff0 => "a documentation address",
        [0x0100, 0, 0, 0, ..] => "a discard-only address",
        // Teredo tunnels to an IPv4 address obfuscated in the last 32 bits: refused whole.
        [0x2001, 0, ..] => "a Teredo address",
        // The rest of 2001::/23: benchmarking, ORCHID, AS112 and other protocol assignments.
        [0x2001, t, ..] if t < 0x0200 => "an IETF protocol address",
        // Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the operator's
        // prefix length, so the whole /48 is refused rather than guessed at.
        [0x0064, 0xff9b, 0x0001, ..] => "a local-use NAT64 address",
        [0x5f00, ..] => "a segment-routing address",
        _ => return None,
    })
}

/// The IPv4 address inside an IPv6 form that reaches it: mapped (`::ffff:a.b.c.d`),
/// translated (`::ffff:0:a.b.c.d`), compatible (`::a.b.c.d`), NAT64's well-known prefix
/// (`64:ff9b::/96`), 6to4 (`2002::/16`) and ISATAP interface ids (`…:0:5efe:a.b.c.d`,
/// `…:200:5efe:a.b.c.d`). Teredo and local-use NAT64 are refused whole in [`forbidden_v6`].
fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let s = v6.segments();
    let tail = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(tail(hi, lo)),
        // `::` and `::1` are IPv6's own; other `::a.b.c.d` are the deprecated compatible form.
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => {
            Some(tail(hi, lo))
        }
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(tail(hi, lo)),
        [0x2002, hi, lo, ..] => Some(tail(hi, lo)),
        [.., 0x0000 | 0x0200, 0x5efe, hi, lo] => Some(tail(hi, lo)),
        _ => None,
    }
}

/// Resolves names with the system resolver and keeps only the addresses the guard allows;
/// a name with none left is refused.
pub struct GuardedResolver {
    guard: Arc<Guard>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = Arc::clone(&self.guard);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match guard.check(addr.ip()) {
                    Ok(()) => true,
                    Err(reason) => {
                        refusal.get_or_insert(Refused {
                            target: format!("{host} ({})", addr.ip()),
                            reason,
                        });
                        false
                    }
                })
                .collect();
            match refusal {
                Some(refused) if allowed.is_empty() => Err(Box::new(refused) as _),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_and_special_addresses_are_forbidden() {
        for (address, reason) in [
            ("127.0.0.1", "a loopback address"),
            ("10.1.2.3", "a private address"),
            ("172.31.255.1", "a private address"),
            ("192.168.0.10", "a private address"),
            ("100.64.0.1", "a carrier-grade NAT address"),
            ("169.254.10.1", "a link-local address"),
            ("169.254.169.254", "a cloud metadata address"),
            ("0.0.0.0", "an unspecified address"),
            ("224.0.0.1", "a multicast address"),
            ("255.255.255.255", "the broadcast address"),
            ("192.0.2.7", "a documentation address"),
            ("::1", "a loopback address"),
            ("::", "an unspecified address"),
            ("fd00:ec2::254", "a cloud metadata address"),
            ("fd12::1", "a unique local (private) address"),
            ("fe80::1", "a link-local address"),
            ("ff02::1", "a multicast address"),
            ("2001:db8::1", "a documentation address"),
            ("::ffff:127.0.0.1", "a loopback address"),
            ("::ffff:169.254.169.254", "a cloud metadata address"),
            ("::10.0.0.1", "a private address"),
            ("64:ff9b::a00:1", "a private address"),
            ("2002:c0a8:0001::1", "a private address"),
            ("192.88.99.1", "a reserved address"),
            ("fe80::5efe:808:808", "a link-local address"),
            ("2001:2::1", "an IETF protocol address"),
            ("2001:10::1", "an IETF protocol address"),
            ("5f00::1", "a segment-routing address"),
        ] {
            assert_eq!(forbidden(ip(address)), Some(reason), "{address}");
        }
    }

    /// Every IPv6 spelling that reaches an IPv4 address is judged by that address.
    #[test]
    fn ipv4_addresses_embedded_in_ipv6_are_judged_by_the_ipv4_address() {
        for (address, reason) in [
            // IPv4-mapped (::ffff:0:0/96), in dotted and hex spellings.
            ("::ffff:127.0.0.1", "a loopback address"),
            ("::ffff:7f00:1", "a loopback address"),
            ("0:0:0:0:0:ffff:127.0.0.1", "a loopback address"),
            ("::ffff:10.0.0.1", "a private address"),
            ("::ffff:192.168.1.1", "a private address"),
            ("::ffff:169.254.169.254", "a cloud metadata address"),
            ("::ffff:a9fe:a9fe", "a cloud metadata address"),
            ("::ffff:100.64.0.1", "a carrier-grade NAT address"),
            ("::ffff:0.0.0.0", "an unspecified address"),
            // IPv4-translated (::ffff:0:0:0/96, SIIT).
            ("::ffff:0:127.0.0.1", "a loopback address"),
            ("::ffff:0:a9fe:a9fe", "a cloud metadata address"),
            // IPv4-compatible (deprecated ::/96).
            ("::127.0.0.2", "a loopback address"),
            ("::169.254.169.254", "a cloud metadata address"),
            // NAT64 well-known prefix (64:ff9b::/96).
            ("64:ff9b::127.0.0.1", "a loopback address"),
            ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),
            ("64:ff9b::c0a8:101", "a private address"),
            // Local-use NAT64 (64:ff9b:1::/48), refused whatever it embeds.
            ("64:ff9b:1::808:808", "a local-use NAT64 address"),
            ("64:ff9b:1:7f00:1::", "a local-use NAT64 address"),
            // 6to4 (2002::/16).
            ("2002:7f00:1::", "a loopback address"),
            ("2002:a9fe:a9fe::1", "a cloud metadata address"),
            ("2002:ac10:1::1", "a private address"),
            // Teredo (2001::/32), refused whole.
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a Teredo address"),
            ("2001::7f00:1", "a Teredo address"),
            // ISATAP interface ids, under any prefix.
            ("2606:4700::5efe:127.0.0.1", "a loopback address"),
            ("2606:4700::200:5efe:10.1.2.3", "a private address"),
        ] {
            assert_eq!(forbidden(ip(address)), Some(reason), "{address}");
        }
        for public in [
            "::ffff:8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2606:4700::5efe:8.8.8.8",
        ] {
            assert_eq!(forbidden(ip(public)), None, "{public}");
        }
    }

    /// The URL parser turns every IPv4 spelling into the address itself, so the literal
    /// check sees through decimal, octal, hex and shortened forms.
    #[test]
    fn every_spelling_of_a_literal_host_is_checked() {
        let guard = Guard::default();
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://[::ffff:127.0.0.1]:8080/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:7f00:1]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[::127.0.0.1]/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[fd00:ec2::254]/",
            "http://0/",
        ] {
            assert!(
                guard.check_url(&url.parse().unwrap()).is_err(),
                "{url} was allowed"
            );
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for address in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(forbidden(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn allowed_cidrs_exempt_addresses_including_their_mapped_forms() {
        let guard = Guard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(guard.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(guard.check(ip("::ffff:127.0.0.2")), Ok(()));
        assert_eq!(guard.check(ip("::1")), Err("a loopback address"));
        assert_eq!(guard.check(ip("10.0.0.1")), Err("a private address"));
        assert_eq!(guard.check(ip("64:ff9b::7f00:1")), Ok(()));
        // An allowed IPv4 CIDR does not open an IPv6 range refused on its own account.
        assert_eq!(
            guard.check(ip("fe80::5efe:127.0.0.1")),
            Err("a link-local address")
        );
    }

    #[test]
    fn literal_hosts_are_checked_before_any_connection() {
        let guard = Guard::default();
        let refused = guard
            .check_url(&"http://169.254.169.254/latest/meta-data".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "refused by the outbound guard: 169.254.169.254 is a cloud metadata address"
        );
        assert!(
            guard
                .check_url(&"http://[::ffff:7f00:1]:8080/".parse().unwrap())
                .is_err()
        );
        assert!(
            guard
                .check_url(&"https://hooks.example.com/".parse().unwrap())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_unless_allowed() {
        let refused = Arc::new(Guard::default()).resolver();
        let error = match refused.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost was not refused"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("localhost"), "{error}");
        assert!(error.contains("a loopback address"), "{error}");
        let allowed = Arc::new(Guard::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]))
        .resolver();
        let addrs: Vec<SocketAddr> = allowed
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
