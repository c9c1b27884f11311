//! The outbound-request guard: which destinations a tenant-entered URL (an
//! outbound message endpoint) may reach.
//!
//! Addresses of the machine itself and of the networks around it —
//! loopback, link-local (cloud metadata services), private ranges
//! (RFC 1918, IPv6 unique-local), shared address space (CGNAT),
//! unspecified, broadcast, multicast, and IPv4-mapped / IPv4-compatible
//! IPv6 forms of those — are refused unless the operator's allow-list
//! (`--outbound-allow`) names them, by network or by host name.
//!
//! This module decides; it does no I/O. The save path checks literal
//! addresses; the delivery path resolves host names itself and checks every
//! address it would connect to (see `mosaic-runtime`'s outbox).

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The operator's allow-list of otherwise refused destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundGuard {
    nets: Vec<IpNet>,
    /// Lower-case host names, compared exactly.
    hosts: Vec<String>,
}

/// The host of a URL as the guard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlHost {
    Ip(IpAddr),
    Name(String),
}

impl OutboundGuard {
    /// Nothing allowed beyond public addresses.
    pub fn none() -> OutboundGuard {
        OutboundGuard::default()
    }

    /// `10.0.0.0/8, 127.0.0.1, hooks.internal` — CIDRs, single addresses
    /// or host names, comma-separated. Empty text is an empty list.
    pub fn parse(text: &str) -> Result<OutboundGuard, String> {
        let mut g = OutboundGuard::default();
        for raw in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Ok(net) = raw.parse::<IpNet>() {
                g.nets.push(net.trunc());
            } else if let Ok(ip) = raw.trim_matches(['[', ']']).parse::<IpAddr>() {
                g.nets.push(IpNet::from(ip));
            } else if is_host_name(raw) {
                g.hosts.push(raw.trim_end_matches('.').to_ascii_lowercase());
            } else {
                return Err(format!(
                    "'{raw}' is neither a CIDR, an IP address nor a host name"
                ));
            }
        }
        Ok(g)
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.hosts.is_empty()
    }

    /// True when the operator allowed this host name as such.
    pub fn allows_host(&self, name: &str) -> bool {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&n)
    }

    /// `Err(reason)` when `ip` is in a refused range and no allow-list
    /// entry covers it.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        let Some(range) = refused_range(ip) else {
            return Ok(());
        };
        let canonical = canonical(ip);
        if self
            .nets
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&canonical))
        {
            return Ok(());
        }
        Err(format!(
            "destination address {ip} is {range}; outbound requests to it are refused unless the operator allows it (--outbound-allow)"
        ))
    }

    /// `Err(reason)` when a resolved address of `host` may not be reached:
    /// allowed if the host name itself is on the list, else by address.
    pub fn check_resolved(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        if self.allows_host(host) {
            return Ok(());
        }
        self.check_ip(ip)
            .map_err(|e| format!("host '{host}' resolves to a refused address: {e}"))
    }

    /// The save-time check of a tenant-entered URL: a literal address in a
    /// refused range is an error (the reason); host names pass (they are
    /// checked on the resolved address at delivery).
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        match url_host(url) {
            Some(UrlHost::Ip(ip)) => self.check_ip(ip),
            Some(UrlHost::Name(_)) => Ok(()),
            None => Err("the URL has no host".into()),
        }
    }
}

impl FromStr for OutboundGuard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutboundGuard::parse(s)
    }
}

fn is_host_name(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The IPv4 address behind an IPv4-mapped (`::ffff:a.b.c.d`) or
/// IPv4-compatible (`::a.b.c.d`) IPv6 address; otherwise `ip` itself.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            // ::a.b.c.d (deprecated IPv4-compatible), but not :: and ::1.
            if s[..6].iter().all(|&x| x == 0) && (s[6] != 0 || s[7] > 1) {
                let o = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            ip
        }
        v4 => v4,
    }
}

/// The name of the refused range `ip` falls in, or `None` for a public
/// (reachable) address.
pub fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified (0.0.0.0/8)")
    } else if ip.is_loopback() {
        Some("loopback (127.0.0.0/8)")
    } else if ip.is_private() {
        Some("private (RFC 1918)")
    } else if ip.is_link_local() {
        Some("link-local (169.254.0.0/16, cloud metadata)")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared address space (CGNAT 100.64.0.0/10)")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_multicast() {
        Some("multicast (224.0.0.0/4)")
    } else if o[0] >= 240 {
        Some("reserved (240.0.0.0/4)")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignments (192.0.0.0/24)")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        Some("unspecified (::)")
    } else if ip.is_loopback() {
        Some("loopback (::1)")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("unique local (fc00::/7)")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local (fe80::/10)")
    } else if (s[0] & 0xffc0) == 0xfec0 {
        Some("site-local (fec0::/10)")
    } else if ip.is_multicast() {
        Some("multicast (ff00::/8)")
    } else if s[0] == 0x64 && s[1] == 0xff9b {
        // NAT64 (64:ff9b::/96) reaches IPv4 addresses, refused ones included.
        let o = ip.octets();
        refused_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            .map(|_| "NAT64 of a refused IPv4 address")
    } else {
        None
    }
}

/// The host of an `http://` / `https://` URL: user info, port, path, query
/// and fragment stripped; IPv6 brackets removed. IPv4 addresses are read
/// the way URL parsers (and so HTTP clients) read them, shorthand and
/// decimal, octal or hexadecimal parts included (`127.1`, `0x7f.0.0.1`,
/// `2130706433`), so a literal cannot slip past as a "name".
pub fn url_host(url: &str) -> Option<UrlHost> {
    let t = url.trim();
    let scheme_end = t.find("://")?;
    let rest = &t[scheme_end + 3..];
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    if let Some(v6) = hostport.strip_prefix('[') {
        let inner = v6.split(']').next()?;
        // A zone id (`%25eth0`) is not part of the address.
        let addr = inner.split('%').next().unwrap_or(inner);
        return addr.parse::<Ipv6Addr>().ok().map(|a| UrlHost::Ip(a.into()));
    }
    let host = hostport.split(':').next().unwrap_or("");
    let host = percent_decode(host)?.to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return None;
    }
    match whatwg_ipv4(host) {
        Some(v4) => Some(UrlHost::Ip(IpAddr::V4(v4))),
        None => Some(UrlHost::Name(host.to_string())),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The IPv4 parser of the WHATWG URL standard: 1 to 4 dot-separated parts,
/// each decimal, `0x` hexadecimal or `0`-prefixed octal; the last part
/// fills the remaining bytes. `None` when the host is not an IPv4 address.
fn whatwg_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or(p.strip_prefix("0X")) {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if p.is_empty() {
            return None;
        }
        let n = if digits.is_empty() {
            0
        } else {
            u64::from_str_radix(digits, radix).ok()?
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let room = 8 * (4 - head.len() as u32);
    if *last >= (1u64 << room) {
        return None;
    }
    let mut v: u64 = 0;
    for (i, n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    v |= last;
    Some(Ipv4Addr::from(u32::try_from(v).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        OutboundGuard::none().check_url(url).is_err()
    }

    #[test]
    fn literal_addresses_in_refused_ranges_are_refused() {
        for url in [
            "http://127.0.0.1/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/",
            "http://10.0.0.1",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "https://192.168.1.10/x",
            "http://172.16.0.1",
            "http://100.64.0.1",
            "http://0.0.0.0",
            "http://255.255.255.255",
            "http://224.0.0.1",
            "http://[fd00::1]",
            "http://[fe80::1%25eth0]/",
            "http://[ff02::1]",
            "http://[::]",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://user:pw@127.0.0.1:80/",
            "http://%31%32%37.0.0.1/",
            "http://[64:ff9b::a9fe:a9fe]/",
        ] {
            assert!(refused(url), "{url} should be refused");
        }
    }

    #[test]
    fn public_addresses_and_names_pass_at_save() {
        for url in [
            "https://93.184.216.34/hook",
            "https://[2606:4700::1111]/",
            "https://hooks.example.com/x",
            "http://localhost:9/",
            "http://no-such-host.invalid/",
            "http://100.128.0.1/",
        ] {
            assert!(!refused(url), "{url} should pass");
        }
    }

    #[test]
    fn the_allow_list_opens_networks_and_names() {
        let g = OutboundGuard::parse("127.0.0.0/8, 10.1.2.3, hooks.internal").unwrap();
        assert!(g.check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(g.check_url("http://[::ffff:127.0.0.1]/").is_ok());
        assert!(g.check_url("http://10.1.2.3/").is_ok());
        assert!(g.check_url("http://10.1.2.4/").is_err());
        assert!(g.check_url("http://169.254.169.254/").is_err());
        assert!(g
            .check_resolved("HOOKS.internal", "10.9.9.9".parse().unwrap())
            .is_ok());
        let e = g
            .check_resolved("other.internal", "10.9.9.9".parse().unwrap())
            .unwrap_err();
        assert!(e.contains("private"), "{e}");
        assert!(OutboundGuard::parse("10.0.0.0/8,not a host").is_err());
        assert!(OutboundGuard::parse("").unwrap().is_empty());
    }

    #[test]
    fn whatwg_ipv4_forms() {
        assert_eq!(whatwg_ipv4("127.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(whatwg_ipv4("1.2.3.4"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(whatwg_ipv4("example.com"), None);
        assert_eq!(whatwg_ipv4("1.2.3.256"), None);
        assert_eq!(whatwg_ipv4("4294967296"), None);
    }
}
