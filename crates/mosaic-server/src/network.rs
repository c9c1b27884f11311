//! Who is on the other end of a connection: the socket's facts
//! ([`ConnectionInfo`]: TLS or not, the peer address) and the client they
//! stand for ([`ClientInfo`]), which honours `X-Forwarded-For` and
//! `X-Forwarded-Proto` only when the socket peer is a trusted proxy
//! (`--trusted-proxies`). Both are request extensions every handler can
//! read; responses over HTTPS carry HSTS.

use crate::AppState;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// HSTS sent on every answer over HTTPS: a year, subdomains included.
pub const HSTS_VALUE: &str = "max-age=31536000; includeSubDomains";
/// Most `X-Forwarded-For` entries looked at (a longer chain is cut from
/// the left, the part a client could have made up anyway).
pub const MAX_FORWARDED_HOPS: usize = 32;

/// The socket a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection is TLS (this server terminated it).
    pub tls: bool,
    /// The socket's peer.
    pub peer: SocketAddr,
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for ConnectionInfo {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ConnectionInfo {
            tls: false,
            peer: *stream.remote_addr(),
        }
    }
}

/// The client a request stands for, after trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address: the socket peer, or — behind trusted proxies —
    /// the right-most address of `X-Forwarded-For` that is not a trusted
    /// proxy.
    pub ip: IpAddr,
    /// The client reached Mosaic over HTTPS: this server's TLS, or a
    /// trusted proxy's `X-Forwarded-Proto: https`. Cookies are `Secure` then.
    pub https: bool,
    /// The socket peer is a loopback address and no trusted proxy spoke for
    /// someone else: the caller is on this machine.
    pub local: bool,
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of CIDRs or single addresses
    /// (`10.0.0.0/8, 127.0.0.1`); the error names the entry at fault.
    pub fn parse(text: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = raw
                .parse::<IpNet>()
                .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("trusted proxies: '{raw}' is not an address or a CIDR range")
                })?;
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        let ip = canonical(*ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`: walks `X-Forwarded-For` from the right
    /// while the hop is a trusted proxy; the first untrusted address is the
    /// client (all trusted: the left-most). A peer that is not trusted is
    /// the client itself, whatever the headers say.
    pub fn client(&self, conn: &ConnectionInfo, headers: &HeaderMap) -> ClientInfo {
        let peer = canonical(conn.peer.ip());
        if !self.contains(&peer) {
            return ClientInfo {
                ip: peer,
                https: conn.tls,
                local: peer.is_loopback(),
            };
        }
        let mut hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter_map(parse_hop)
            .collect();
        if hops.len() > MAX_FORWARDED_HOPS {
            hops.drain(..hops.len() - MAX_FORWARDED_HOPS);
        }
        let mut client = peer;
        for hop in hops.iter().rev() {
            client = canonical(*hop);
            if !self.contains(&client) {
                break;
            }
        }
        // The nearest proxy says how it was reached.
        let proto = headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .next_back();
        let https = match proto {
            Some(p) => p.eq_ignore_ascii_case("https"),
            None => conn.tls,
        };
        ClientInfo {
            ip: client,
            https,
            local: hops.is_empty() && peer.is_loopback(),
        }
    }
}

/// An address of `X-Forwarded-For` (`[::1]:443` and `1.2.3.4:80` forms
/// too); anything else is skipped.
fn parse_hop(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// IPv4-mapped IPv6 addresses as IPv4 (a dual-stack socket's peers).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The connection facts of a request (a request served without them, as
/// in unit tests of the router, counts as a plain remote connection).
pub fn connection(req: &Request) -> ConnectionInfo {
    req.extensions()
        .get::<ConnectInfo<ConnectionInfo>>()
        .map(|c| c.0)
        .or_else(|| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| ConnectionInfo {
                    tls: false,
                    peer: c.0,
                })
        })
        .unwrap_or(ConnectionInfo {
            tls: false,
            peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        })
}

/// The middleware that resolves the client of every request, puts
/// [`ConnectionInfo`] and [`ClientInfo`] into its extensions, and adds HSTS
/// to answers given over HTTPS.
pub async fn resolve_client(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let conn = connection(&req);
    let client = s.trusted_proxies.client(&conn, req.headers());
    req.extensions_mut().insert(conn);
    req.extensions_mut().insert(client);
    let mut res = next.run(req).await;
    if client.https {
        res.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS_VALUE),
        );
    }
    res
}

/// Hands the web app the client as [`resolve_client`] resolved it.
pub async fn web_origin(mut req: Request, next: Next) -> Response {
    if let Some(c) = req.extensions().get::<ClientInfo>().copied() {
        req.extensions_mut().insert(mosaic_web::ClientOrigin {
            ip: c.ip,
            https: c.https,
        });
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(peer: &str) -> ConnectionInfo {
        ConnectionInfo {
            tls: false,
            peer: peer.parse().unwrap(),
        }
    }

    fn headers(xff: &str, proto: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        if let Some(p) = proto {
            h.insert("x-forwarded-proto", p.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_peers() {
        let t = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        // Untrusted peer: the headers are ignored.
        let c = t.client(
            &conn("203.0.113.9:4000"),
            &headers("1.2.3.4", Some("https")),
        );
        assert_eq!(c.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert!(!c.https);
        // Trusted peer: the right-most untrusted hop is the client; a
        // forged left part is not believed.
        let c = t.client(
            &conn("10.1.1.1:4000"),
            &headers("6.6.6.6, 198.51.100.7, 10.2.2.2", Some("https")),
        );
        assert_eq!(c.ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert!(c.https);
        assert!(!c.local);
        // Every hop trusted: the left-most.
        let c = t.client(&conn("127.0.0.1:1"), &headers("10.3.3.3", None));
        assert_eq!(c.ip, "10.3.3.3".parse::<IpAddr>().unwrap());
        assert!(!c.local, "a proxied request is not local");
        // Mapped IPv6 peers match IPv4 ranges.
        assert!(t.contains(&"::ffff:10.9.9.9".parse().unwrap()));
    }

    #[test]
    fn bad_entries_are_named() {
        let e = TrustedProxies::parse("10.0.0.0/8,nonsense").unwrap_err();
        assert!(e.contains("'nonsense'"), "{e}");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }
}
