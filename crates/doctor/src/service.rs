//! The `service:PORT` checks: a TCP connect to the listener on the address Cloudflare would
//! use, and on HTTPS ports a TLS handshake whose certificate must not expire within 14 days
//! (Errors 521, 525, 526). Nothing is sent beyond the handshake.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::Check;

/// A certificate expiring sooner than this is a warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

/// What a probe of one address found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The TCP connect completed (plain HTTP port).
    Connected,
    /// The TLS handshake completed; the leaf certificate's subject and end of validity
    /// (seconds since the epoch).
    Tls {
        /// The certificate's subject, as printed by x509-parser.
        subject: String,
        /// `notAfter`, seconds since the epoch.
        not_after: i64,
    },
    /// The TCP connect failed.
    ConnectFailed(String),
    /// The connect completed but the TLS handshake did not.
    HandshakeFailed(String),
}

/// Connects to `addr`; on an HTTPS port also completes a TLS handshake (with `sni` when a
/// hostname is known) and reads the certificate. Any certificate is accepted: the point is
/// what Cloudflare gets, and its validation depends on the zone's SSL mode.
pub fn probe(addr: SocketAddr, https: bool, sni: Option<&str>, timeout: Duration) -> Probe {
    let mut sock = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return Probe::ConnectFailed(e.to_string()),
    };
    if !https {
        return Probe::Connected;
    }
    let _ = sock.set_read_timeout(Some(timeout));
    let _ = sock.set_write_timeout(Some(timeout));
    match handshake(&mut sock, addr.ip(), sni) {
        Ok(probe) => probe,
        Err(e) => Probe::HandshakeFailed(e),
    }
}

fn handshake<S: Read + Write>(
    sock: &mut S,
    ip: IpAddr,
    sni: Option<&str>,
) -> Result<Probe, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let name = match sni.map(|s| ServerName::try_from(s.to_string())) {
        Some(Ok(name)) => name,
        _ => ServerName::IpAddress(ip.into()),
    };
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(sock).map_err(|e| e.to_string())?;
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("the server sent no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("cannot parse the server's certificate: {e}"))?;
    Ok(Probe::Tls {
        subject: cert.subject().to_string(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The `service:PORT` check from the probes of its addresses (`now`: seconds since the
/// epoch). `None` when nothing was probed (no address to use).
pub fn evaluate(port: u16, probes: &[(SocketAddr, Probe)], now: i64) -> Check {
    let id = format!("service:{port}");
    if probes.is_empty() {
        return Check::warn(
            id,
            format!("no non-loopback address to connect to TCP {port} on: the address Cloudflare would use is unknown"),
            "give the host its public address, or list it in `doctor.public_addresses`",
        );
    }
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let mut oks = Vec::new();
    for (addr, probe) in probes {
        match probe {
            Probe::Connected => oks.push(format!("{addr} accepts connections")),
            Probe::ConnectFailed(e) => {
                fails.push(format!("TCP connect to {addr} fails ({e}): Error 521/522"))
            }
            Probe::HandshakeFailed(e) => fails.push(format!(
                "TCP {addr} connects but the TLS handshake fails ({e}): Error 525"
            )),
            Probe::Tls { subject, not_after } => {
                let days = (not_after - now) / 86_400;
                if *not_after <= now {
                    fails.push(format!("the certificate on {addr} ({subject}) has expired: Error 526 in Full (strict) mode"));
                } else if not_after - now < EXPIRY_WARNING.as_secs() as i64 {
                    warns.push(format!(
                        "the certificate on {addr} ({subject}) expires in {days} days"
                    ));
                } else {
                    oks.push(format!("{addr} completes a TLS handshake (certificate {subject}, {days} days left)"));
                }
            }
        }
    }
    let cert_fix = "renew the origin certificate (certbot renew, or a new Cloudflare Origin CA certificate) and reload the web server";
    if !fails.is_empty() {
        let fix = if fails.iter().any(|f| f.contains("certificate")) {
            cert_fix.to_string()
        } else {
            match crate::ports::is_https(port) {
                true => format!("make the web server listen on port {port} for that address with TLS configured, then try `curl -vk https://ADDRESS:{port}/` from this host"),
                false => format!("make the web server listen on port {port} for that address, then try `curl -v http://ADDRESS:{port}/` from this host"),
            }
        };
        fails.extend(warns);
        return Check::fail(id, fails.join("; "), fix);
    }
    if !warns.is_empty() {
        return Check::warn(id, warns.join("; "), cert_fix);
    }
    Check::ok(id, oks.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn at(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn verdicts_for_each_probe() {
        let now = 1_800_000_000;
        let tls = |days: i64| Probe::Tls {
            subject: "CN=origin".into(),
            not_after: now + days * 86_400,
        };
        assert_eq!(
            evaluate(443, &[(at("192.0.2.5:443"), tls(90))], now).status,
            Status::Ok
        );
        let soon = evaluate(443, &[(at("192.0.2.5:443"), tls(3))], now);
        assert_eq!(soon.status, Status::Warn);
        assert!(soon.summary.contains("expires in 3 days"), "{soon:?}");
        assert_eq!(
            evaluate(443, &[(at("192.0.2.5:443"), tls(-1))], now).status,
            Status::Fail
        );
        let refused = evaluate(
            80,
            &[
                (at("192.0.2.5:80"), Probe::Connected),
                (
                    at("[2001:db8::5]:80"),
                    Probe::ConnectFailed("refused".into()),
                ),
            ],
            now,
        );
        assert_eq!(refused.status, Status::Fail);
        assert!(refused.summary.contains("[2001:db8::5]:80"), "{refused:?}");
        assert_eq!(evaluate(80, &[], now).status, Status::Warn);
    }

    #[test]
    fn a_plain_listener_is_a_handshake_failure_and_a_closed_port_a_connect_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let mut s = s;
                let _ = s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
            }
        });
        assert_eq!(
            probe(addr, false, None, Duration::from_secs(5)),
            Probe::Connected
        );
        assert!(matches!(
            probe(addr, true, None, Duration::from_secs(5)),
            Probe::HandshakeFailed(_)
        ));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let gone = closed.local_addr().expect("addr");
        drop(closed);
        assert!(matches!(
            probe(gone, false, None, Duration::from_secs(5)),
            Probe::ConnectFailed(_)
        ));
    }
}
