//! Network access to a managed server: Trove's `access {is_public, allowed_cidrs}`, with typed
//! CIDRs, and which source addresses it admits. The API validates it, the taskmanager carries it,
//! the guest turns it into `pg_hba.conf` lines; parsing here means no string from a client ever
//! reaches that file unchecked.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// At most this many entries in `allowed_cidrs`; more is refused rather than truncated.
pub const MAX_ALLOWED_CIDRS: usize = 100;
/// Longer than any IPv6 CIDR (`ffff:…:ffff/128` is 43 characters): refused before parsing.
const MAX_CIDR_LEN: usize = 64;

/// An IPv4 or IPv6 network, `address/prefix`, held with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CidrError(&'static str);

impl Cidr {
    /// Every IPv4 address.
    pub const ANY_V4: Cidr = Cidr {
        network: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        prefix: 0,
    };
    /// Every IPv6 address.
    pub const ANY_V6: Cidr = Cidr {
        network: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        prefix: 0,
    };

    /// The private networks (RFC 1918, loopback, IPv6 unique-local and loopback): what Trove
    /// calls the tenant's private network, where an instance that is not public is reachable.
    pub const PRIVATE: [Cidr; 6] = [
        Cidr::v4([10, 0, 0, 0], 8),
        Cidr::v4([172, 16, 0, 0], 12),
        Cidr::v4([192, 168, 0, 0], 16),
        Cidr::v4([127, 0, 0, 0], 8),
        Cidr {
            network: IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)),
            prefix: 7,
        },
        Cidr {
            network: IpAddr::V6(Ipv6Addr::LOCALHOST),
            prefix: 128,
        },
    ];

    const fn v4(octets: [u8; 4], prefix: u8) -> Cidr {
        Cidr {
            network: IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3])),
            prefix,
        }
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` lies inside this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                mask_v4(u32::from(a), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                mask_v6(u128::from(a), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix)))
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `a.b.c.d/n`, `x::y/n`, or a bare address (one host: /32 or /128). Host bits are cleared,
    /// so `10.1.2.3/8` is `10.0.0.0/8`. Anything else, including whitespace and control
    /// characters, is refused: the result is written into `pg_hba.conf`.
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        if s.len() > MAX_CIDR_LEN {
            return Err(CidrError("is too long to be a CIDR"));
        }
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError("is not an IPv4 or IPv6 address with an optional /prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would also take a leading `+`.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or(CidrError("has a prefix length out of range"))?,
            Some(_) => return Err(CidrError("has a prefix length that is not a number")),
        };
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(a), prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(a), prefix))),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e: CidrError| serde::de::Error::custom(format!("CIDR {e}")))
    }
}

/// Trove's `access`, validated. Who may connect over TCP:
/// - `allowed_cidrs` not empty: exactly those networks, whatever `is_public` says;
/// - no CIDRs and `is_public`: every address;
/// - no CIDRs and not public: the private networks only ([`Cidr::PRIVATE`]). That is Trove's
///   meaning (not exposed to the public network, still reachable on the tenant's private one),
///   and what `openstack database instance create` asks for unless told otherwise: it always
///   sends `{"is_public": false}`.
///
/// An instance created without `access` keeps the behaviour from before access was enforced:
/// every address (see [`admitted`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(default)]
    pub is_public: bool,
    #[serde(default)]
    pub allowed_cidrs: Vec<Cidr>,
}

impl Access {
    /// The networks admitted over TCP.
    pub fn admitted(&self) -> Vec<Cidr> {
        if !self.allowed_cidrs.is_empty() {
            self.allowed_cidrs.clone()
        } else if self.is_public {
            vec![Cidr::ANY_V4, Cidr::ANY_V6]
        } else {
            Cidr::PRIVATE.to_vec()
        }
    }
}

/// The networks admitted for an instance's `access`, which is absent for instances created
/// without one: those stay open to every address, as they were before access was enforced.
pub fn admitted(access: Option<&Access>) -> Vec<Cidr> {
    match access {
        Some(a) => a.admitted(),
        None => vec![Cidr::ANY_V4, Cidr::ANY_V6],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_v4_v6_and_bare_addresses_and_clears_host_bits() {
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("127.0.0.2").to_string(), "127.0.0.2/32");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("2001:db8::1/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(cidr("::/0"), Cidr::ANY_V6);
    }

    #[test]
    fn refuses_what_is_not_a_cidr() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/8 ",
            " 10.0.0.0/8",
            "10.0.0.0/8\nhost all all 0.0.0.0/0 trust",
            "10.0.0.0/8\0",
            "10.0.0/8",
            "example.com/8",
            "10.0.0.0/8/8",
            &"1".repeat(100),
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn contains_checks_the_network_and_the_family() {
        let net = cidr("127.0.0.2/31");
        assert!(net.contains("127.0.0.2".parse().expect("ip")));
        assert!(net.contains("127.0.0.3".parse().expect("ip")));
        assert!(!net.contains("127.0.0.4".parse().expect("ip")));
        assert!(!net.contains("::1".parse().expect("ip")));
        assert!(Cidr::ANY_V4.contains("203.0.113.9".parse().expect("ip")));
    }

    #[test]
    fn admitted_follows_cidrs_then_is_public_and_keeps_legacy_instances_open() {
        let everyone = vec![Cidr::ANY_V4, Cidr::ANY_V6];
        let private = Access {
            is_public: false,
            allowed_cidrs: vec![],
        };
        assert_eq!(private.admitted(), Cidr::PRIVATE.to_vec());
        assert!(
            private
                .admitted()
                .iter()
                .all(|c| !c.contains("203.0.113.9".parse().expect("ip")))
        );
        assert!(
            private
                .admitted()
                .iter()
                .any(|c| c.contains("192.168.1.20".parse().expect("ip")))
        );
        let public = Access {
            is_public: true,
            ..private.clone()
        };
        assert_eq!(public.admitted(), everyone);
        let listed = Access {
            is_public: true,
            allowed_cidrs: vec![cidr("10.0.0.0/8")],
        };
        assert_eq!(listed.admitted(), vec![cidr("10.0.0.0/8")]);
        assert_eq!(admitted(None), everyone);
    }

    #[test]
    fn serializes_as_trove_does_and_refuses_bad_cidrs_on_the_wire() {
        let a: Access =
            serde_json::from_str(r#"{"is_public": true, "allowed_cidrs": ["10.0.0.1/8"]}"#)
                .expect("valid");
        assert_eq!(
            serde_json::to_value(&a).expect("serializes"),
            serde_json::json!({"is_public": true, "allowed_cidrs": ["10.0.0.0/8"]})
        );
        assert!(
            serde_json::from_str::<Access>(r#"{"allowed_cidrs": ["10.0.0.0/8 trust"]}"#).is_err()
        );
        let empty: Access = serde_json::from_str("{}").expect("defaults");
        assert!(!empty.is_public && empty.allowed_cidrs.is_empty());
    }
}
