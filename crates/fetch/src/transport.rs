//! Getting one URL's body: HTTP(S) with conditional requests, timeouts, a body-size limit and
//! retries, or a local `file://` path.

use std::io::Read;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::{redirect, StatusCode, Url};

use crate::error::{FetchError, Problem};
use crate::parse::Context;
use crate::{format_duration, FetchOptions};

/// What a URL answered.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A body to parse.
    Body {
        bytes: Vec<u8>,
        context: Context,
        /// The HTTP `ETag` header.
        etag: Option<String>,
    },
    /// `304 Not Modified`: the cached body is still current.
    NotModified,
}

/// Why a URL gave no body.
#[derive(Debug)]
pub(crate) enum Failure {
    /// DNS, connect, TLS, timeout or a broken transfer: worth a retry, then a fallback.
    Unreachable(String),
    /// The source answered badly; `retryable` for 5xx and 429.
    Answered { problem: Problem, retryable: bool },
    /// The HTTP client could not be set up (no request was made).
    Client(String),
}

impl Failure {
    fn problem(problem: Problem) -> Failure {
        Failure::Answered {
            problem,
            retryable: false,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Failure::Unreachable(_) => true,
            Failure::Answered { retryable, .. } => *retryable,
            Failure::Client(_) => false,
        }
    }

    /// The error for `url`.
    pub fn into_error(self, url: &str) -> FetchError {
        match self {
            Failure::Unreachable(reason) => FetchError::Unreachable {
                url: url.to_string(),
                reason,
            },
            Failure::Answered { problem, .. } => FetchError::Invalid {
                url: url.to_string(),
                problem,
            },
            Failure::Client(reason) => FetchError::Client(reason),
        }
    }
}

/// The most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// An HTTP client configured from [`FetchOptions`]. Each client is built on its first request
/// (a TLS configuration with its roots is not free): a `file://` source needs neither, an
/// https source only the first.
pub(crate) struct Transport {
    /// Honours `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` from the environment.
    client: OnceLock<reqwest::Client>,
    /// For loopback hosts, which never go through a proxy.
    direct: OnceLock<reqwest::Client>,
    timeout: Duration,
    connect_timeout: Duration,
    max_body_bytes: u64,
    retries: u32,
    retry_backoff: Duration,
}

impl Transport {
    pub fn new(opts: &FetchOptions) -> Transport {
        Transport {
            client: OnceLock::new(),
            direct: OnceLock::new(),
            timeout: opts.timeout,
            connect_timeout: opts.connect_timeout.min(opts.timeout),
            max_body_bytes: opts.max_body_bytes,
            retries: opts.retries,
            retry_backoff: opts.retry_backoff,
        }
    }

    /// The client for `url`: loopback hosts never go through a proxy.
    fn client_for(&self, url: &Url) -> Result<&reqwest::Client, Failure> {
        let direct = is_loopback(url);
        let cell = if direct { &self.direct } else { &self.client };
        if let Some(client) = cell.get() {
            return Ok(client);
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(crate::USER_AGENT)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(redirect::Policy::custom(redirect_policy))
            .use_rustls_tls();
        if direct {
            builder = builder.no_proxy();
        }
        let client = builder
            .build()
            .map_err(|e| Failure::Client(innermost(&e)))?;
        Ok(cell.get_or_init(|| client))
    }

    /// Gets `url`, retrying transport errors, 5xx and 429 with exponential backoff.
    pub async fn get(&self, url: &str, if_none_match: Option<&str>) -> Result<Answer, Failure> {
        let parsed = Url::parse(url)
            .map_err(|e| Failure::problem(Problem::UnsupportedUrl(e.to_string())))?;
        match parsed.scheme() {
            "file" => return read_file_within(&parsed, self.max_body_bytes, self.timeout).await,
            "http" | "https" => {}
            other => {
                return Err(Failure::problem(Problem::UnsupportedUrl(format!(
                    "scheme {other}: use https://, http:// or file://"
                ))))
            }
        }
        let mut attempt = 0;
        loop {
            match self.get_once(parsed.clone(), if_none_match).await {
                Err(failure) if failure.retryable() && attempt < self.retries => {
                    let wait = self.retry_backoff.saturating_mul(1 << attempt.min(16));
                    let reason = match &failure {
                        Failure::Unreachable(reason) | Failure::Client(reason) => reason.clone(),
                        Failure::Answered { problem, .. } => problem.to_string(),
                    };
                    tracing::info!(
                        "source {}: {reason}; retrying in {}",
                        crate::redact_url(url),
                        format_duration(wait)
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn get_once(&self, url: Url, if_none_match: Option<&str>) -> Result<Answer, Failure> {
        let mut request = self
            .client_for(&url)?
            .get(url.clone())
            .header(ACCEPT, "application/json, text/plain;q=0.9, */*;q=0.1");
        if let Some(tag) = if_none_match {
            request = request.header(IF_NONE_MATCH, tag);
        }
        let shown = crate::redact_url(url.as_str());
        tracing::debug!(
            "GET {shown}{}",
            if_none_match
                .map(|t| format!(" (If-None-Match: {t})"))
                .unwrap_or_default()
        );
        let mut response = request.send().await.map_err(|e| self.classify(&e))?;
        let status = response.status();
        tracing::debug!("{shown}: HTTP {}", status.as_u16());
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Answer::NotModified);
        }
        if !status.is_success() {
            return Err(Failure::Answered {
                problem: Problem::Status {
                    status: format!(
                        "{} {}",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or("")
                    )
                    .trim_end()
                    .to_string(),
                },
                retryable: status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
            });
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(CONTENT_TYPE).map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let etag = header(ETAG).filter(|t| !t.is_empty());
        let too_large = Problem::TooLarge {
            limit: self.max_body_bytes,
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body_bytes)
        {
            return Err(Failure::problem(too_large));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(&e))? {
            if (bytes.len() + chunk.len()) as u64 > self.max_body_bytes {
                return Err(Failure::problem(too_large));
            }
            bytes.extend_from_slice(&chunk);
        }
        tracing::debug!("{}: {} bytes", crate::redact_url(url.as_str()), bytes.len());
        Ok(Answer::Body {
            bytes,
            context: Context {
                status: Some(status.as_u16()),
                content_type,
            },
            etag,
        })
    }

    fn classify(&self, e: &reqwest::Error) -> Failure {
        if e.is_redirect() {
            return Failure::problem(Problem::Redirect(innermost(e)));
        }
        if e.is_builder() {
            return Failure::problem(Problem::UnsupportedUrl(innermost(e)));
        }
        if e.is_timeout() {
            return Failure::Unreachable(if e.is_connect() {
                format!(
                    "connecting timed out after {}",
                    format_duration(self.connect_timeout)
                )
            } else {
                format!(
                    "no complete answer within {}",
                    format_duration(self.timeout)
                )
            });
        }
        let cause = innermost(e);
        Failure::Unreachable(if e.is_connect() {
            format!("cannot connect: {cause}")
        } else {
            cause
        })
    }
}

/// True for `localhost` and loopback addresses.
fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Follows at most [`MAX_REDIRECTS`] redirects and never from https to http.
fn redirect_policy(attempt: redirect::Attempt<'_>) -> redirect::Action {
    let downgrade = attempt.url().scheme() != "https"
        && attempt.previous().iter().any(|u| u.scheme() == "https");
    if downgrade {
        let to = attempt.url().to_string();
        attempt.error(format!("from https to {to}"))
    } else if attempt.previous().len() > MAX_REDIRECTS {
        attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
    } else {
        attempt.follow()
    }
}

/// The most specific message in an error's chain ("Connection refused (os error 111)").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// [`read_file`] bounded by `timeout`: a FIFO nobody writes to, or a hung network file
/// system, ends as a timeout instead of holding the run lock forever. (The reading thread
/// stays blocked until the process exits; nothing else waits for it.)
async fn read_file_within(url: &Url, limit: u64, timeout: Duration) -> Result<Answer, Failure> {
    // Read on a thread of its own, so that a FIFO or a hung file system costs the timeout,
    // not the run, and the other URLs of the alternative are fetched meanwhile.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let owned = url.clone();
    std::thread::spawn(move || {
        let _ = tx.send(read_file(&owned, limit));
    });
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(Failure::problem(Problem::Unreadable(
            "the thread reading it stopped without an answer".into(),
        ))),
        Err(_) => Err(Failure::problem(Problem::Unreadable(format!(
            "nothing could be read within timeout_secs ({}); is it a FIFO or on a hung file system?",
            format_duration(timeout)
        )))),
    }
}

fn read_file(url: &Url, limit: u64) -> Result<Answer, Failure> {
    let path = url.to_file_path().map_err(|()| {
        Failure::problem(Problem::UnsupportedUrl(
            "a file URL needs an absolute local path, e.g. file:///etc/cf-allow/ips.txt".into(),
        ))
    })?;
    let unreadable = |e: std::io::Error| Failure::problem(Problem::Unreadable(e.to_string()));
    let file = std::fs::File::open(&path).map_err(unreadable)?;
    // Sized from the file's length (`take` hides it from `read_to_end`, which would grow the
    // buffer by doubling, copying a 100k-line list a dozen times); one byte more shows the end.
    let size = file.metadata().map_or(0, |m| m.len()).min(limit);
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(Failure::problem(Problem::TooLarge { limit }));
    }
    Ok(Answer::Body {
        bytes,
        context: Context::default(),
        etag: None,
    })
}
