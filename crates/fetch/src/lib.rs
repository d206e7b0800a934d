//! cf-allow's fetcher: gets Cloudflare's IP list from the configured sources (the API JSON or
//! plain-text lists, over HTTPS with rustls, or from `file://` paths), validates it, and keeps
//! the last good list in `state_dir`.
//!
//! Conditional requests (`If-None-Match`, and the API's `result.etag`) make an unchanged list
//! cost one small request. When no source can be reached at all, [`fetch`] falls back to the
//! cached list, else to the list compiled into the binary, and warns which one it used and how
//! old it is. A source that answers badly (an HTTP error, an HTML page, a list that fails
//! validation) is an alarm instead: [`fetch`] fails unless another alternative yields a valid
//! list, and the cache is left untouched.

#![forbid(unsafe_code)]

mod cache;
mod embedded;
mod error;
#[cfg(test)]
mod fuzz;
mod parse;
mod transport;
mod validate;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use cf_allow_diff::{IpNet, RangeSet};
use serde::Serialize;

pub use cache::{cache_path, CACHE_FILE};
pub use embedded::{embedded, EMBEDDED_V4, EMBEDDED_V6, EMBEDDED_VERIFIED};
pub use error::{EntryIssue, FetchError, Problem};
pub use validate::{validate_cidrs, Validation, MIN_PREFIX_V4, MIN_PREFIX_V6};

use cache::{Cache, CachedList, UrlRecord};
use parse::Context;
use transport::{Answer, Transport};

/// The User-Agent sent with every request.
pub const USER_AGENT: &str = concat!("cf-allow/", env!("CARGO_PKG_VERSION"));

/// How to fetch the list.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Sources, tried in order; each inner list is one alternative whose URLs are merged.
    pub alternatives: Vec<Vec<String>>,
    /// Total time allowed for one request, body included.
    pub timeout: Duration,
    /// Time allowed to connect (capped at `timeout`).
    pub connect_timeout: Duration,
    /// The largest body accepted, counted while reading.
    pub max_body_bytes: u64,
    /// Extra attempts after a transport error, a 5xx or a 429.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff: Duration,
    /// Where the last good list is cached.
    pub state_dir: PathBuf,
    /// Skip the network: use the cache, else the embedded list.
    pub offline: bool,
    /// Limits every list must respect.
    pub validation: Validation,
}

impl FetchOptions {
    /// Options with the defaults: 15 s total and 5 s connect timeout, a 1 MiB body limit,
    /// 2 retries after 0.5 s and 1 s, strict validation.
    pub fn new(alternatives: Vec<Vec<String>>, state_dir: PathBuf) -> Self {
        FetchOptions {
            alternatives,
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
            retries: 2,
            retry_backoff: Duration::from_millis(500),
            state_dir,
            offline: false,
            validation: Validation::default(),
        }
    }
}

/// Where a list came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Fetched just now.
    Network,
    /// The source confirmed that the cached list is current (304, or the same API etag).
    NotModified,
    /// No source was reachable (or `--offline`): the last good list from `state_dir`.
    Cache,
    /// No source was reachable and nothing was cached: the list compiled into cf-allow.
    Embedded,
}

impl Origin {
    /// `network`, `not-modified`, `cache` or `embedded`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Network => "network",
            Origin::NotModified => "not-modified",
            Origin::Cache => "cache",
            Origin::Embedded => "embedded",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated list and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedList {
    /// The ranges, aggregated and validated.
    pub ranges: RangeSet,
    /// The URL, the URLs of a merged alternative joined with ", ", or `embedded`.
    pub source: String,
    /// The API's `result.etag`, else the HTTP `ETag` (joined with ", " when merged).
    pub etag: Option<String>,
    /// Network, not modified, cache or embedded.
    pub origin: Origin,
    /// When the source last confirmed this list (embedded: the day it was verified).
    pub fetched_at: SystemTime,
}

impl FetchedList {
    /// How long ago the list was fetched, in whole seconds (zero if the clock went backwards).
    pub fn age(&self) -> Duration {
        age_since(self.fetched_at)
    }
}

/// Whole seconds since `t`; zero if `t` is in the future.
fn age_since(t: SystemTime) -> Duration {
    let age = SystemTime::now().duration_since(t).unwrap_or_default();
    Duration::from_secs(age.as_secs())
}

/// `url` with the user name and password (`user:secret@`) replaced by `***@`, for every
/// message, log line, cache entry and JSON document.
pub fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &rest[at..]),
        None => url.to_string(),
    }
}

/// A duration for people: `40 s`, `12 min`, `3 h`, `4 d`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 if d.as_millis() > 0 => format!("{:.1} s", d.as_secs_f64()),
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// Fetches the list from the first alternative that yields a valid one and caches it.
///
/// Falls back to the cache, else the embedded list (with a warning), when `offline` is set
/// or no alternative could be reached at all. Fails when an alternative was reached but none
/// yielded a valid list; the error names each alternative and what was wrong with it.
pub fn fetch(opts: &FetchOptions) -> Result<FetchedList, FetchError> {
    let alternatives: Vec<&Vec<String>> =
        opts.alternatives.iter().filter(|a| !a.is_empty()).collect();
    let cache = cache::load_or_warn(&opts.state_dir);
    if opts.offline {
        return Ok(fall_back(opts, cache, "offline"));
    }
    if alternatives.is_empty() {
        return Err(FetchError::NoSources);
    }
    let transport = Transport::new(opts);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FetchError::Client(e.to_string()))?;
    let mut failures = Vec::new();
    for (i, urls) in alternatives.iter().enumerate() {
        match runtime.block_on(try_alternative(&transport, urls, cache.as_ref(), opts)) {
            Ok(Won {
                list,
                records,
                digest,
                reused,
            }) => {
                tracing::info!(
                    "using the list from {} ({}: {} IPv4 and {} IPv6 ranges{})",
                    list.source,
                    list.origin,
                    list.ranges.ipv4().len(),
                    list.ranges.ipv6().len(),
                    if i > 0 {
                        format!("; source {} of {} in order", i + 1, alternatives.len())
                    } else {
                        String::new()
                    }
                );
                persist(opts, cache, &list, records, digest, reused);
                return Ok(list);
            }
            Err(e) => {
                if i + 1 < alternatives.len() {
                    tracing::warn!("{e}; trying the next source");
                }
                failures.push(e);
            }
        }
    }
    if failures.iter().all(FetchError::is_unreachable) {
        let why = format!("no source reachable ({})", error::join(&failures));
        return Ok(fall_back(opts, cache, &why));
    }
    Err(FetchError::NoValidList { failures })
}

/// The last good list from `state_dir` (origin `cache`), for `status`. `Ok(None)` when none is
/// cached or the cache is corrupt (with a warning).
pub fn last_good(state_dir: &Path) -> Result<Option<FetchedList>, FetchError> {
    Ok(cache::load(state_dir)?.and_then(|c| from_cache(&c.list, state_dir)))
}

/// The cached list; `None` (with a warning) when its text holds something that is not a
/// prefix of its family (the cache is corrupt).
fn from_cache(list: &CachedList, state_dir: &Path) -> Option<FetchedList> {
    let (Some(ipv4), Some(ipv6)) = (list.ipv4.parsed(), list.ipv6.parsed()) else {
        tracing::warn!(
            "ignoring the corrupt cache {}: its list holds something that is not a prefix",
            cache_path(state_dir).display()
        );
        return None;
    };
    Some(FetchedList {
        fetched_at: list.fetched_at(),
        // Sorted and deduplicated again: a hand-edited cache cannot break the set's order.
        ranges: RangeSet::exact_families(ipv4, ipv6),
        source: list.source.clone(),
        etag: list.etag.clone(),
        origin: Origin::Cache,
    })
}

/// The cache if it still passes validation, else the embedded list; warns which and how old.
fn fall_back(opts: &FetchOptions, cache: Option<Cache>, why: &str) -> FetchedList {
    if let Some(list) = cache.and_then(|c| from_cache(&c.list, &opts.state_dir)) {
        match validate::recheck(&list.ranges, &opts.validation) {
            Ok(()) => {
                tracing::warn!(
                    "{why}; using the cached list from {} fetched {} ago",
                    list.source,
                    format_duration(list.age())
                );
                return list;
            }
            Err(problem) => tracing::warn!(
                "{why}; ignoring the cached list from {}: {problem}",
                list.source
            ),
        }
    }
    let list = embedded();
    tracing::warn!(
        "{why}; using the list compiled into cf-allow (verified {EMBEDDED_VERIFIED}, {} ago)",
        format_duration(list.age())
    );
    list
}

/// A valid list from one alternative, and what to remember about each of its URLs.
struct Won {
    list: FetchedList,
    records: Vec<(String, UrlRecord)>,
    /// The digest of the bodies the list came from, recorded in the cache.
    digest: Option<String>,
    /// The list is the cached one (the bodies matched its digest).
    reused: bool,
}

/// The digest of one alternative's raw bodies, the thing [`CachedList::digest`] records:
/// SHA-256 over this crate's version, the validation limits and, for each URL in order, its
/// redacted URL and body (each length-prefixed). Equal digests mean the same bytes were
/// parsed and checked under the same limits by the same parser, so the result is the same.
fn body_digest(urls: &[String], bodies: &[&[u8]], v: &Validation) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut field = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_le_bytes());
        ctx.update(bytes);
    };
    field(concat!("cf-allow-fetch/", env!("CARGO_PKG_VERSION")).as_bytes());
    field(format!("{}:{}", v.allow_reserved, v.max_entries).as_bytes());
    for (url, body) in urls.iter().zip(bodies) {
        field(url.as_bytes());
        field(body);
    }
    let digest = ctx.finish();
    format!("sha256:{}", cf_allow_exec::hex(digest.as_ref()))
}

/// One URL's answer, with the body a 304 stands for taken from the cache.
struct Got {
    shown: String,
    bytes: Vec<u8>,
    context: Context,
    http_etag: Option<String>,
    not_modified: bool,
}

/// Runs `futures` concurrently on this task; their outputs in order.
async fn join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Fetches one URL of an alternative.
async fn get_one(
    transport: &Transport,
    url: &str,
    cache: Option<&Cache>,
) -> Result<Got, FetchError> {
    // Credentials in the URL never reach a message, a log line or the cache.
    let shown = redact_url(url);
    let cached = cache.and_then(|c| c.urls.get(&shown));
    let if_none_match = cached.and_then(|r| r.etag.as_deref());
    let answer = transport
        .get(url, if_none_match)
        .await
        .map_err(|f| f.into_error(&shown))?;
    Ok(match answer {
        Answer::Body {
            bytes,
            context,
            etag,
        } => Got {
            shown,
            bytes,
            context,
            http_etag: etag,
            not_modified: false,
        },
        Answer::NotModified => {
            let record = cached.ok_or_else(|| FetchError::Invalid {
                url: shown.clone(),
                problem: Problem::UnexpectedNotModified,
            })?;
            Got {
                shown,
                bytes: record.body.clone().into_bytes(),
                context: Context {
                    status: Some(304),
                    content_type: None,
                },
                http_etag: record.etag.clone(),
                not_modified: true,
            }
        }
    })
}

/// Fetches every URL of one alternative, validates each, then the merged list.
///
/// When the raw bodies hash to the digest recorded with the cached list (a 304, an
/// unchanged file, the same body again), the cached list is used as is: not parsed,
/// validated or aggregated again. The checks it passed when it was cached still hold, since
/// the digest covers the bodies, the validation limits and the parser's version.
async fn try_alternative(
    transport: &Transport,
    urls: &[String],
    cache: Option<&Cache>,
    opts: &FetchOptions,
) -> Result<Won, FetchError> {
    // Every URL is fetched first, all at once (Cloudflare's two lists are two requests); an
    // error is reported in URL order.
    let answers = join_all(urls.iter().map(|url| get_one(transport, url, cache))).await;
    let source = urls
        .iter()
        .map(|u| redact_url(u))
        .collect::<Vec<_>>()
        .join(", ");
    let digest = answers
        .iter()
        .map(|a| a.as_ref().ok())
        .collect::<Option<Vec<&Got>>>()
        .map(|got| {
            let shown: Vec<String> = got.iter().map(|g| g.shown.clone()).collect();
            let bodies: Vec<&[u8]> = got.iter().map(|g| g.bytes.as_slice()).collect();
            body_digest(&shown, &bodies, &opts.validation)
        });
    if let (Some(digest), Some(cache)) = (&digest, cache) {
        if cache.list.digest.as_ref() == Some(digest) && cache.list.source == source {
            // A corrupt cached list: the bodies are parsed as if it were not there.
            if let Some(list) = from_cache(&cache.list, &opts.state_dir) {
                return Ok(from_digest(answers, cache, list, source, digest.clone()));
            }
        }
    }
    let mut nets: Vec<IpNet> = Vec::new();
    let mut answered = Answered::default();
    for answer in answers {
        let got = answer?;
        let invalid = |problem| FetchError::Invalid {
            url: got.shown.clone(),
            problem,
        };
        // The entries borrow the body's text; they are done with before `got` moves on.
        let parse::Parsed { entries, api_etag } =
            parse::parse_body(&got.bytes, &got.context).map_err(invalid)?;
        if entries.is_empty() {
            return Err(invalid(Problem::NoEntries));
        }
        nets.extend(validate::check_entries(&entries, &opts.validation).map_err(invalid)?);
        drop(entries);
        let cached = cache.and_then(|c| c.urls.get(&got.shown));
        let same_api_etag =
            api_etag.is_some() && api_etag.as_deref() == cached.and_then(|r| r.api_etag.as_deref());
        let not_modified = got.not_modified || same_api_etag;
        answered.add(got, api_etag, not_modified);
    }
    validate::check_list(&nets, &opts.validation).map_err(|problem| FetchError::Invalid {
        url: source.clone(),
        problem,
    })?;
    Ok(Won {
        list: FetchedList {
            ranges: RangeSet::aggregated(nets),
            source,
            etag: answered.etag(),
            origin: answered.origin(),
            fetched_at: SystemTime::now(),
        },
        records: answered.records,
        digest,
        reused: false,
    })
}

/// What the answers of one alternative say besides its list: the records to cache, the
/// etags, and whether every one was unchanged. One bookkeeping for a parsed list and for a
/// list taken from the cache by its digest.
#[derive(Default)]
struct Answered {
    records: Vec<(String, UrlRecord)>,
    etags: Vec<String>,
    changed: bool,
}

impl Answered {
    /// Adds one URL's answer with its API etag (`None` when the body has none).
    fn add(&mut self, got: Got, api_etag: Option<String>, not_modified: bool) {
        self.changed |= !not_modified;
        self.etags
            .extend(api_etag.clone().or_else(|| got.http_etag.clone()));
        // Only HTTP answers carry a status: files are not revalidated, so not remembered.
        let can_revalidate = got.http_etag.is_some() || api_etag.is_some();
        if can_revalidate && got.context.status.is_some() {
            if let Ok(body) = String::from_utf8(got.bytes) {
                self.records.push((
                    got.shown,
                    UrlRecord {
                        etag: got.http_etag,
                        api_etag,
                        body,
                    },
                ));
            }
        }
    }

    fn origin(&self) -> Origin {
        if self.changed {
            Origin::Network
        } else {
            Origin::NotModified
        }
    }

    fn etag(&self) -> Option<String> {
        (!self.etags.is_empty()).then(|| self.etags.join(", "))
    }
}

/// The cached list for bodies whose digest matches it; the origin, etags and URL records
/// are worked out as a parse would (an API etag from the cached record of the same body).
fn from_digest(
    answers: Vec<Result<Got, FetchError>>,
    cache: &Cache,
    mut list: FetchedList,
    source: String,
    digest: String,
) -> Won {
    tracing::debug!(
        "{source}: the bodies match the cached list's digest; using it without parsing"
    );
    let mut answered = Answered::default();
    for got in answers.into_iter().flatten() {
        let api_etag = cache
            .urls
            .get(&got.shown)
            .filter(|r| r.body.as_bytes() == got.bytes.as_slice())
            .and_then(|r| r.api_etag.clone());
        let not_modified = got.not_modified || api_etag.is_some();
        answered.add(got, api_etag, not_modified);
    }
    list.origin = answered.origin();
    list.source = source;
    list.etag = answered.etag();
    list.fetched_at = SystemTime::now();
    Won {
        list,
        records: answered.records,
        digest: Some(digest),
        reused: true,
    }
}

/// Writes the winning list and its URLs' records to the cache; a failure is a warning, the
/// list is still good.
fn persist(
    opts: &FetchOptions,
    old: Option<Cache>,
    list: &FetchedList,
    records: Vec<(String, UrlRecord)>,
    digest: Option<String>,
    reused: bool,
) {
    // The cache keys URLs with their credentials redacted.
    let configured: BTreeSet<String> = opts
        .alternatives
        .iter()
        .flatten()
        .map(|u| redact_url(u))
        .collect();
    // Unchanged (a 304, the same ETag, the same body): write and fsync nothing, only record
    // the check time. Compared in place: copying a 100k-entry cache to compare it was a
    // tenth of a no-op.
    if let Some(old) = &old {
        if same_content(old, list, &records, digest.as_deref(), &configured, reused) {
            match cache::confirm(&opts.state_dir) {
                Ok(()) => tracing::debug!("the cached list is unchanged; recorded the check time"),
                Err(e) => tracing::debug!("cannot record the check time: {e}"),
            }
            return;
        }
    }
    let mut cache = Cache::new(CachedList {
        source: list.source.clone(),
        etag: list.etag.clone(),
        fetched_at: cache::unix_secs(list.fetched_at),
        ipv4: cache::Nets::List(list.ranges.ipv4().to_vec()),
        ipv6: cache::Nets::List(list.ranges.ipv6().to_vec()),
        digest,
    });
    if let Some(old) = old {
        cache.urls = old
            .urls
            .into_iter()
            .filter(|(url, _)| configured.contains(url))
            .collect();
    }
    cache.urls.extend(records);
    match cache::store(&opts.state_dir, &cache) {
        Ok(()) => tracing::debug!("cached the list in {}", cache_path(&opts.state_dir).display()),
        Err(e) => tracing::warn!(
            "cannot write the cache {}: {e}; without network the next run falls back to an older list",
            cache_path(&opts.state_dir).display()
        ),
    }
}

/// True when the cache [`persist`] would write differs from `old` at most in `fetched_at`:
/// the same list, source, etag and digest, and the same URL records (every old one still
/// configured, every new one equal to the old one of its URL). `reused`: `list` is `old`'s
/// own list (taken by its digest), so the lists are equal without comparing them.
fn same_content(
    old: &Cache,
    list: &FetchedList,
    records: &[(String, UrlRecord)],
    digest: Option<&str>,
    configured: &BTreeSet<String>,
    reused: bool,
) -> bool {
    let same_list = || {
        reused
            || (old.list.ipv4.parsed().as_deref() == Some(list.ranges.ipv4())
                && old.list.ipv6.parsed().as_deref() == Some(list.ranges.ipv6()))
    };
    old.format == cache::FORMAT
        && old.list.source == list.source
        && old.list.etag == list.etag
        && old.list.digest.as_deref() == digest
        && old.urls.keys().all(|url| configured.contains(url))
        && records.iter().all(|(url, r)| old.urls.get(url) == Some(r))
        && same_list()
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn userinfo_is_redacted_and_nothing_else() {
        assert_eq!(
            redact_url("http://user:secret@host:8080/ips?x=1"),
            "http://***@host:8080/ips?x=1"
        );
        assert_eq!(redact_url("https://a@b@host/x@y"), "https://***@host/x@y");
        assert_eq!(redact_url("https://host/p@th"), "https://host/p@th");
        assert_eq!(redact_url("file:///etc/x"), "file:///etc/x");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
