//! The optional `dns` check: asks Cloudflare's API (read-only: `GET /zones?name=…`, then
//! `GET /zones/{id}/dns_records?name=…`) what each of `doctor.hostnames` points at, and
//! compares that with this host. The API token is sent as a Bearer header and never
//! printed or logged.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::{Check, Settings, Status};

const ID: &str = "dns";

/// The longest a CNAME chain is followed.
const MAX_CHAIN: usize = 8;

/// Why the API gave no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// An HTTP status with the API's own messages (`errors[].message`).
    Status(u16, String),
    /// No answer in time.
    Timeout,
    /// No connection, or a broken answer.
    Transport(String),
}

impl ApiError {
    /// The reason, in words, for a warning.
    pub fn reason(&self) -> String {
        let with = |what: &str, msg: &str| match msg.is_empty() {
            true => what.to_string(),
            false => format!("{what}: {msg}"),
        };
        match self {
            ApiError::Status(401, m) => with("the API token is not valid (HTTP 401)", m),
            ApiError::Status(403, m) => with(
                "the API token lacks the Zone:Read and DNS:Read permissions for this zone (HTTP 403)",
                m,
            ),
            ApiError::Status(429, m) => with("the API rate-limits this token (HTTP 429)", m),
            ApiError::Status(s, m) if *s >= 500 => {
                with(&format!("Cloudflare's API failed (HTTP {s})"), m)
            }
            ApiError::Status(s, m) => with(&format!("the API answered HTTP {s}"), m),
            ApiError::Timeout => "the API did not answer in time".to_string(),
            ApiError::Transport(e) => format!("cannot reach the API: {e}"),
        }
    }

    fn fix(&self) -> &'static str {
        match self {
            ApiError::Status(401 | 403, _) => {
                "create an API token with Zone:Read and DNS:Read for the zone and put it in `doctor.cloudflare_api_token_file`"
            }
            ApiError::Status(429, _) => "run doctor again in a few minutes",
            _ => "check outbound HTTPS to `doctor.cloudflare_api` (and any proxy), then run doctor again",
        }
    }
}

/// One DNS record as the API returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `A`, `AAAA`, `CNAME`, …
    pub kind: String,
    /// The record's name.
    pub name: String,
    /// Its content (an address, a target name).
    pub content: String,
    /// Orange cloud.
    pub proxied: bool,
}

impl Record {
    fn describe(&self) -> String {
        format!("{} {} {}", self.name, self.kind, self.content)
    }
}

/// What the API said about one hostname.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The zone's name.
    pub zone: String,
    /// The records of the hostname and of each CNAME target within the zone, in order.
    pub records: Vec<Record>,
    /// A CNAME target outside the zone (not followed).
    pub outside: Option<String>,
}

/// What the checks compare the records with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The host's own addresses (every interface).
    pub addresses: Vec<IpAddr>,
    /// `doctor.public_addresses`.
    pub public: Vec<IpAddr>,
    /// The host has a global IPv6 address.
    pub has_global_v6: bool,
    /// Every configured port has a non-loopback IPv6 listener (or is forwarded).
    pub listens_v6: bool,
}

/// Reads the token file: it must be owned by root and readable by nobody else, else it is
/// refused. The error never contains the token.
pub fn read_token(path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    token_file_allowed(meta.uid(), meta.mode())
        .map_err(|why| format!("{} is refused: {why}", path.display()))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(token)
}

/// Root-owned, no permission for group or others.
pub fn token_file_allowed(uid: u32, mode: u32) -> Result<(), String> {
    if uid != 0 {
        return Err(format!("it is owned by uid {uid}, not root"));
    }
    if mode & 0o077 != 0 {
        return Err(format!(
            "its mode is {:04o}; it must be 0600",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// A read-only client of Cloudflare's API.
pub struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Api {
    /// A client of `base` (`https://api.cloudflare.com/client/v4`) with `token`.
    pub fn new(base: &str, token: String, timeout: Duration) -> Result<Api, String> {
        let loopback = url::Url::parse(base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .is_some_and(|h| {
                h == "localhost"
                    || h.trim_matches(['[', ']'])
                        .parse::<IpAddr>()
                        .is_ok_and(|a| a.is_loopback())
            });
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .use_rustls_tls();
        if loopback {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            client,
            runtime,
        })
    }

    /// `GET base + path` with `name=…`; the `result` array of a successful answer.
    fn list(&self, path: &str, name: &str) -> Result<Vec<Value>, ApiError> {
        let url = format!("{}{path}", self.base);
        tracing::debug!(%url, name, "Cloudflare API request");
        let request = self
            .client
            .get(&url)
            .query(&[("name", name)])
            .bearer_auth(&self.token)
            .header("Accept", "application/json");
        self.runtime.block_on(async {
            let response = request.send().await.map_err(classify)?;
            let status = response.status().as_u16();
            let body = response.text().await.map_err(classify)?;
            let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let messages: Vec<String> = doc["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["message"].as_str().map(str::to_string))
                .collect();
            if !(200..300).contains(&status) || doc["success"] != true {
                return Err(ApiError::Status(status, messages.join("; ")));
            }
            doc["result"]
                .as_array()
                .cloned()
                .ok_or_else(|| ApiError::Transport("the answer has no `result` list".to_string()))
        })
    }

    /// Finds the zone of `hostname` (asking for each parent name) and its records, following
    /// CNAMEs within the zone.
    pub fn resolve(&self, hostname: &str) -> Result<Option<Resolution>, ApiError> {
        let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
        let labels: Vec<&str> = hostname.split('.').collect();
        let mut zone = None;
        for i in 0..labels.len().saturating_sub(1) {
            let candidate = labels[i..].join(".");
            if let Some(z) = self.list("/zones", &candidate)?.first() {
                zone = Some((
                    z["id"].as_str().unwrap_or_default().to_string(),
                    z["name"].as_str().unwrap_or(&candidate).to_string(),
                ));
                break;
            }
        }
        let Some((id, zone)) = zone else {
            return Ok(None);
        };
        let mut out = Resolution {
            zone: zone.clone(),
            records: Vec::new(),
            outside: None,
        };
        let mut name = hostname.clone();
        for _ in 0..MAX_CHAIN {
            let records: Vec<Record> = self
                .list(&format!("/zones/{id}/dns_records"), &name)?
                .iter()
                .map(|r| Record {
                    kind: r["type"].as_str().unwrap_or_default().to_string(),
                    name: r["name"].as_str().unwrap_or(&name).to_string(),
                    content: r["content"].as_str().unwrap_or_default().to_string(),
                    proxied: r["proxied"] == true,
                })
                .collect();
            let target = records
                .iter()
                .find(|r| r.kind == "CNAME")
                .map(|r| r.content.trim_end_matches('.').to_ascii_lowercase());
            out.records.extend(records);
            match target {
                Some(t) if t == zone || t.ends_with(&format!(".{zone}")) => name = t,
                Some(t) => {
                    out.outside = Some(t);
                    break;
                }
                None => break,
            }
        }
        Ok(Some(out))
    }
}

fn classify(e: reqwest::Error) -> ApiError {
    if e.is_timeout() {
        return ApiError::Timeout;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    ApiError::Transport(text)
}

/// The `dns` check of one hostname.
pub fn evaluate(
    hostname: &str,
    answer: &Result<Option<Resolution>, ApiError>,
    origin: &Origin,
) -> Check {
    let res = match answer {
        Err(e) => {
            return Check::warn(
                ID,
                format!("{hostname}: cannot check its DNS records: {}", e.reason()),
                e.fix(),
            )
        }
        Ok(None) => {
            return Check::warn(
                ID,
                format!("{hostname}: no zone of this token holds it (asked for each parent name)"),
                "check `doctor.hostnames` and that the token can read the zone",
            )
        }
        Ok(Some(res)) => res,
    };
    let Some(first) = res.records.first() else {
        return Check::warn(
            ID,
            format!("{hostname}: zone {} has no record for it", res.zone),
            "add a proxied A (and AAAA only if the origin serves IPv6) record pointing at this origin",
        );
    };
    // Cloudflare proxies (or not) by the hostname's own record.
    let proxied = first.proxied;
    let list = |addrs: &[IpAddr]| match addrs.is_empty() {
        true => "none".to_string(),
        false => addrs
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let mut oks = Vec::new();
    for record in res
        .records
        .iter()
        .filter(|r| r.kind == "A" || r.kind == "AAAA")
    {
        let Ok(addr) = record.content.parse::<IpAddr>() else {
            warns.push(format!("{} is not an address", record.describe()));
            continue;
        };
        if !proxied {
            warns.push(format!("{} is not proxied (DNS only): Cloudflare is not in the path, the allowlist does not decide who connects", record.describe()));
            continue;
        }
        let on_host = origin.addresses.contains(&addr) || origin.public.contains(&addr);
        if !on_host {
            fails.push(format!(
                "proxied {} points at an address that is neither on this host ({}) nor in doctor.public_addresses ({}): Cloudflare connects elsewhere (Error 521/522/523)",
                record.describe(),
                list(&origin.addresses),
                list(&origin.public)
            ));
        } else if addr.is_ipv6() && !origin.has_global_v6 {
            fails.push(format!("proxied {} but this host has no global IPv6 address: Cloudflare may connect over IPv6 and fail (Error 521/523)", record.describe()));
        } else if addr.is_ipv6() && !origin.listens_v6 {
            fails.push(format!("proxied {} but the configured ports do not all listen on IPv6: Cloudflare may connect over IPv6 and fail (Error 521/523)", record.describe()));
        } else {
            oks.push(record.describe());
        }
    }
    if let Some(outside) = &res.outside {
        warns.push(format!(
            "{hostname} is a CNAME to {outside}, outside zone {}: not followed",
            res.zone
        ));
    }
    if fails.is_empty() && warns.is_empty() && oks.is_empty() {
        warns.push(format!(
            "{hostname}: zone {} has no A or AAAA record for it",
            res.zone
        ));
    }
    let status = if !fails.is_empty() {
        Status::Fail
    } else if !warns.is_empty() {
        Status::Warn
    } else {
        Status::Ok
    };
    let summary = fails.iter().chain(&warns).cloned().collect::<Vec<_>>();
    match status {
        Status::Fail => Check::fail(
            ID,
            format!("{hostname}: {}", summary.join("; ")),
            "point the record at this origin's public address (or add it to `doctor.public_addresses` when NAT hides it); delete AAAA records unless the origin really serves IPv6 on every port",
        ),
        Status::Warn => Check::warn(
            ID,
            format!("{hostname}: {}", summary.join("; ")),
            "turn on the proxy (orange cloud) for the record, or drop the name from `doctor.hostnames` if it is meant to be DNS only",
        ),
        _ => Check::ok(ID, format!("{hostname}: proxied {} (zone {}) points at this origin", oks.join(", "), res.zone)),
    }
}

/// The `dns` checks: skipped without hostnames; refused without a usable token file.
pub fn checks(settings: &Settings, origin: &Origin, timeout: Duration) -> Vec<Check> {
    if settings.hostnames.is_empty() {
        return vec![Check::skip(
            ID,
            "doctor.hostnames is empty: DNS records are not checked",
        )];
    }
    let Some(path) = &settings.cloudflare_api_token_file else {
        return vec![Check::warn(
            ID,
            "doctor.hostnames is set but doctor.cloudflare_api_token_file is not: DNS records are not checked",
            "put an API token with Zone:Read and DNS:Read in a root-owned 0600 file and name it in `doctor.cloudflare_api_token_file`",
        )];
    };
    let scheme_ok = url::Url::parse(&settings.cloudflare_api)
        .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.has_host());
    if !scheme_ok {
        return vec![Check::warn(
            ID,
            format!(
                "doctor.cloudflare_api {:?} is not an https:// URL: DNS records are not checked",
                settings.cloudflare_api
            ),
            format!(
                "set `doctor.cloudflare_api: {}` (or remove it)",
                crate::DEFAULT_API
            ),
        )];
    }
    let token = match read_token(path) {
        Ok(t) => t,
        Err(why) => {
            return vec![Check::warn(
                ID,
                format!("the API token file {why}: DNS records are not checked"),
                format!("chown root:root {0} && chmod 600 {0}", path.display()),
            )]
        }
    };
    let api = match Api::new(&settings.cloudflare_api, token, timeout) {
        Ok(api) => api,
        Err(e) => {
            return vec![Check::warn(
                ID,
                format!("cannot build an HTTP client: {e}"),
                "report this as a bug",
            )]
        }
    };
    let mut out = Vec::new();
    for hostname in &settings.hostnames {
        let answer = api.resolve(hostname);
        let failed_hard = matches!(
            &answer,
            Err(ApiError::Timeout | ApiError::Status(401 | 403, _))
        );
        out.push(evaluate(hostname, &answer, origin));
        if failed_hard {
            // The same token and API answer the same for every other name.
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: &str, name: &str, content: &str, proxied: bool) -> Record {
        Record {
            kind: kind.into(),
            name: name.into(),
            content: content.into(),
            proxied,
        }
    }

    fn origin() -> Origin {
        Origin {
            addresses: vec!["192.0.2.5".parse().expect("a")],
            public: vec!["203.0.113.7".parse().expect("a")],
            has_global_v6: false,
            listens_v6: false,
        }
    }

    fn res(records: Vec<Record>) -> Result<Option<Resolution>, ApiError> {
        Ok(Some(Resolution {
            zone: "example.com".into(),
            records,
            outside: None,
        }))
    }

    #[test]
    fn verdicts_for_records() {
        let ok = evaluate(
            "www.example.com",
            &res(vec![
                rec("CNAME", "www.example.com", "example.com", true),
                rec("A", "example.com", "203.0.113.7", true),
            ]),
            &origin(),
        );
        assert_eq!(ok.status, Status::Ok, "{ok:?}");
        let wrong = evaluate(
            "example.com",
            &res(vec![rec("A", "example.com", "198.51.100.9", true)]),
            &origin(),
        );
        assert_eq!(wrong.status, Status::Fail);
        assert!(wrong.summary.contains("198.51.100.9 points at an address that is neither on this host (192.0.2.5) nor in doctor.public_addresses (203.0.113.7)"), "{wrong:?}");
        let mut v6 = origin();
        v6.public.push("2001:db8::7".parse().expect("a"));
        let trap = evaluate(
            "example.com",
            &res(vec![rec("AAAA", "example.com", "2001:db8::7", true)]),
            &v6,
        );
        assert_eq!(trap.status, Status::Fail);
        assert!(trap.summary.contains("no global IPv6"), "{trap:?}");
        let grey = evaluate(
            "example.com",
            &res(vec![rec("A", "example.com", "192.0.2.5", false)]),
            &origin(),
        );
        assert_eq!(grey.status, Status::Warn);
        assert!(grey.summary.contains("not proxied"));
        assert_eq!(
            evaluate("x.example.com", &res(Vec::new()), &origin()).status,
            Status::Warn
        );
        assert_eq!(
            evaluate("x.example.com", &Ok(None), &origin()).status,
            Status::Warn
        );
    }

    #[test]
    fn api_failures_are_warnings_naming_the_reason() {
        for (err, text) in [
            (
                ApiError::Status(401, "Invalid API Token".into()),
                "HTTP 401",
            ),
            (ApiError::Status(403, String::new()), "Zone:Read"),
            (ApiError::Status(429, String::new()), "rate-limits"),
            (ApiError::Status(502, String::new()), "HTTP 502"),
            (ApiError::Timeout, "did not answer in time"),
        ] {
            let c = evaluate("example.com", &Err(err), &origin());
            assert_eq!(c.status, Status::Warn);
            assert!(c.summary.contains(text), "{c:?}");
        }
    }

    #[test]
    fn no_request_without_hostnames_a_token_file_or_a_usable_api_url() {
        let mut settings = Settings::default();
        assert_eq!(
            checks(&settings, &origin(), Duration::from_secs(1))[0].status,
            Status::Skip
        );
        settings.hostnames = vec!["www.example.com".into()];
        assert_eq!(
            checks(&settings, &origin(), Duration::from_secs(1))[0].status,
            Status::Warn
        );
        settings.cloudflare_api_token_file = Some("/nonexistent/token".into());
        settings.cloudflare_api = "ftp://api.example".into();
        let c = &checks(&settings, &origin(), Duration::from_secs(1))[0];
        assert!(c.summary.contains("is not an https:// URL"), "{c:?}");
        settings.cloudflare_api = crate::DEFAULT_API.into();
        let c = &checks(&settings, &origin(), Duration::from_secs(1))[0];
        assert!(
            c.summary.contains("cannot read /nonexistent/token"),
            "{c:?}"
        );
    }

    #[test]
    fn token_files_must_be_roots_and_private() {
        assert!(token_file_allowed(0, 0o100600).is_ok());
        assert!(token_file_allowed(0, 0o100400).is_ok());
        assert_eq!(
            token_file_allowed(0, 0o100644),
            Err("its mode is 0644; it must be 0600".to_string())
        );
        assert!(token_file_allowed(1000, 0o100600).is_err());
    }
}
