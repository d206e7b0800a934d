//! The state file in `state_dir`: the last good list, plus each URL's ETag and body so a
//! `304 Not Modified` can be answered from it. Written atomically, only after validation.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cf_allow_diff::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use cf_allow_exec::files::Dir;

use crate::error::FetchError;

/// The cache file's name inside `state_dir`.
pub const CACHE_FILE: &str = "last-good.json";

/// Format 2 adds [`CachedList::digest`]; a format-1 cache is read as one without a digest
/// (its list is used as before, and the next fetch parses the body once and records it).
/// Format 3 writes each family's prefixes as one string, separated by spaces, instead of an
/// array of strings (reading a 100k-range array back was mostly JSON's per-element work);
/// arrays of formats 1 and 2 are still read.
pub(crate) const FORMAT: u32 = 3;
const FORMATS: [u32; 3] = [1, 2, FORMAT];

/// The cache file of a state directory.
pub fn cache_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CACHE_FILE)
}

/// The whole cache file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cache {
    pub format: u32,
    pub list: CachedList,
    #[serde(default)]
    pub urls: BTreeMap<String, UrlRecord>,
}

/// The last good list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CachedList {
    pub source: String,
    pub etag: Option<String>,
    /// Seconds since the Unix epoch when the list was last confirmed by its source.
    pub fetched_at: u64,
    pub ipv4: Nets<Ipv4Net>,
    pub ipv6: Nets<Ipv6Net>,
    /// The digest of the raw bodies this list was parsed from (see `body_digest` in the
    /// crate root): when the next fetch yields the same bytes, this list is used as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One family's prefixes as the cache holds them: as a list, or (a format-3 cache read back)
/// as its text, read only when the list is used: a fetch whose bodies changed never needs
/// the old list, and at 100k ranges reading it was a tenth of such a run. Written as one
/// JSON string of prefixes separated by spaces, each the text `Display` gives, formatted
/// without `core::fmt` ([`cf_allow_diff::text`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Nets<T> {
    List(Vec<T>),
    Text(String),
}

impl<T: OfFamily> Nets<T> {
    /// The prefixes; `None` when the text holds something that is not a prefix of `T`'s
    /// family (a corrupt cache).
    pub fn parsed(&self) -> Option<Vec<T>> {
        match self {
            Nets::List(nets) => Some(nets.clone()),
            Nets::Text(text) => text
                .split(' ')
                .filter(|t| !t.is_empty())
                .map(|t| cf_allow_diff::text::parse_net(t).ok().and_then(T::of))
                .collect(),
        }
    }

    /// About how many bytes the text takes (for sizing the writer's buffer).
    fn text_len(&self) -> usize {
        match self {
            Nets::List(nets) => nets.len() * T::TEXT_MAX,
            Nets::Text(text) => text.len(),
        }
    }
}

impl<T: OfFamily> Serialize for Nets<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Nets::Text(text) => serializer.serialize_str(text),
            Nets::List(nets) => {
                let mut text = String::with_capacity(nets.len() * T::TEXT_MAX);
                for (i, &net) in nets.iter().enumerate() {
                    if i > 0 {
                        text.push(' ');
                    }
                    cf_allow_diff::text::push_net(&mut text, &net.into());
                }
                serializer.serialize_str(&text)
            }
        }
    }
}

/// Format 3's string is kept as text; the arrays of formats 1 and 2 are read at once, each
/// prefix with [`cf_allow_diff::text::parse_net`] (ipnet's answer, in a fraction of its time).
impl<'de, T: OfFamily> Deserialize<'de> for Nets<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: OfFamily> serde::de::Visitor<'de> for Visit<T> {
            type Value = Nets<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("CIDR prefixes separated by spaces, or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Nets<T>, E> {
                Ok(Nets::Text(text.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Nets<T>, E> {
                Ok(Nets::Text(text))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Nets<T>, A::Error> {
                let mut nets = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(text) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    let net = cf_allow_diff::text::parse_net(&text)
                        .ok()
                        .and_then(T::of)
                        .ok_or_else(|| {
                            serde::de::Error::invalid_value(
                                serde::de::Unexpected::Str(&text),
                                &"a CIDR prefix of the list's family",
                            )
                        })?;
                    nets.push(net);
                }
                Ok(Nets::List(nets))
            }
        }
        deserializer.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// A prefix of one family, out of a prefix of either.
pub(crate) trait OfFamily: Sized + Copy + Into<cf_allow_diff::IpNet> {
    /// The longest text of a prefix, with its separator.
    const TEXT_MAX: usize;
    fn of(net: cf_allow_diff::IpNet) -> Option<Self>;
}

impl OfFamily for Ipv4Net {
    const TEXT_MAX: usize = 19;
    fn of(net: cf_allow_diff::IpNet) -> Option<Self> {
        match net {
            cf_allow_diff::IpNet::V4(n) => Some(n),
            cf_allow_diff::IpNet::V6(_) => None,
        }
    }
}

impl OfFamily for Ipv6Net {
    const TEXT_MAX: usize = 44;
    fn of(net: cf_allow_diff::IpNet) -> Option<Self> {
        match net {
            cf_allow_diff::IpNet::V6(n) => Some(n),
            cf_allow_diff::IpNet::V4(_) => None,
        }
    }
}

/// What one URL answered last time it was part of a good list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UrlRecord {
    /// The HTTP `ETag` header, sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// The API JSON's `result.etag`.
    pub api_etag: Option<String>,
    /// The body (validated UTF-8).
    pub body: String,
}

impl Cache {
    pub fn new(list: CachedList) -> Cache {
        Cache {
            format: FORMAT,
            list,
            urls: BTreeMap::new(),
        }
    }
}

impl CachedList {
    pub fn fetched_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.fetched_at)
    }
}

/// Seconds since the epoch (0 for times before it).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads the cache: `Ok(None)` when there is none or it is corrupt (with a warning),
/// `Err` only when the file exists and cannot be read.
pub(crate) fn load(state_dir: &Path) -> Result<Option<Cache>, FetchError> {
    let path = cache_path(state_dir);
    let read = match Dir::open(state_dir) {
        Ok(dir) => dir.read(CACHE_FILE),
        Err(_) if !state_dir.exists() => Ok(None),
        Err(e) => Err(e),
    };
    let bytes = match read {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(FetchError::CacheRead {
                path,
                reason: e.to_string(),
            })
        }
    };
    match serde_json::from_slice::<Cache>(&bytes) {
        Ok(mut cache) if FORMATS.contains(&cache.format) => {
            cache.format = FORMAT;
            if let Some(checked) = confirmed_at(state_dir) {
                cache.list.fetched_at = cache.list.fetched_at.max(checked);
            }
            Ok(Some(cache))
        }
        Ok(cache) => {
            tracing::warn!(
                "ignoring the cache {}: unknown format {}",
                path.display(),
                cache.format
            );
            Ok(None)
        }
        Err(e) => {
            tracing::warn!("ignoring the corrupt cache {}: {e}", path.display());
            Ok(None)
        }
    }
}

/// Like [`load`], but an unreadable cache is only a warning.
pub(crate) fn load_or_warn(state_dir: &Path) -> Option<Cache> {
    load(state_dir).unwrap_or_else(|e| {
        tracing::warn!("{e}; going on without it");
        None
    })
}

/// The file whose modification time records when an unchanged list was last confirmed.
pub const CHECK_FILE: &str = "last-check";

/// Records that the cached list was confirmed now, without rewriting or fsyncing the cache:
/// touches [`CHECK_FILE`] ([`load`] reads its time back as `fetched_at`).
pub(crate) fn confirm(state_dir: &Path) -> io::Result<()> {
    Dir::open(state_dir)?.touch(CHECK_FILE)
}

/// When the cached list was last confirmed by [`confirm`]: only a touch after the cache's
/// last write counts (a rewritten cache carries its own `fetched_at`).
fn confirmed_at(state_dir: &Path) -> Option<u64> {
    let dir = Dir::open(state_dir).ok()?;
    let written = dir.modified(CACHE_FILE).ok()??;
    let checked = dir.modified(CHECK_FILE).ok()??;
    (checked > written).then(|| unix_secs(checked))
}

/// The cache's permissions: it may hold what a source answered, so only root reads it.
pub const CACHE_MODE: u32 = 0o600;

/// Writes the cache atomically with [`Dir::write_atomic`] (exclusive temp file with an
/// unpredictable name, no link followed, fsync, rename, fsync of the directory), mode 0600.
pub(crate) fn store(state_dir: &Path, cache: &Cache) -> io::Result<()> {
    // Room for every prefix and its space (at most 18 characters for IPv4, 43 for IPv6) and
    // the rest, so a 100k-range list is written without regrowing (room that is never
    // written costs no memory).
    let size = 4096 + cache.list.ipv4.text_len() + cache.list.ipv6.text_len();
    let mut json = Vec::with_capacity(size);
    serde_json::to_writer_pretty(&mut json, cache).map_err(io::Error::other)?;
    json.push(b'\n');
    Dir::create_all(state_dir, 0o755)?.write_atomic(CACHE_FILE, &json, CACHE_MODE, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn store_then_load_round_trips_and_creates_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("a/b");
        let mut cache = Cache::new(CachedList {
            source: "https://example.com/ips".into(),
            etag: Some("x".into()),
            fetched_at: 1_700_000_000,
            ipv4: Nets::List(vec!["104.16.0.0/13".parse().expect("v4")]),
            ipv6: Nets::List(vec!["2400:cb00::/32".parse().expect("v6")]),
            digest: Some("d".into()),
        });
        cache.urls.insert(
            "https://example.com/ips".into(),
            UrlRecord {
                etag: Some("\"e\"".into()),
                api_etag: None,
                body: "104.16.0.0/13\n".into(),
            },
        );
        store(&state, &cache).expect("store");
        let back = load(&state).expect("readable").expect("present");
        // Read back as text, which parses to the list written.
        assert_eq!(back.list.ipv4, Nets::Text("104.16.0.0/13".into()));
        assert_eq!(back.list.ipv4.parsed(), cache.list.ipv4.parsed());
        assert_eq!(back.list.ipv6.parsed(), cache.list.ipv6.parsed());
        assert_eq!(back.urls, cache.urls);
        assert_eq!(back.list.digest, cache.list.digest);
        let names: Vec<_> = fs::read_dir(&state)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [CACHE_FILE], "no temp files left behind");
    }

    #[test]
    fn planted_links_are_never_written_through() {
        use std::os::unix::fs::{symlink, MetadataExt};
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious\n").expect("seed");
        let state = dir.path().join("state");
        fs::create_dir(&state).expect("mkdir");
        symlink(&victim, cache_path(&state)).expect("link the cache");
        symlink(
            &victim,
            state.join(format!(".{CACHE_FILE}.{}.tmp", std::process::id())),
        )
        .expect("link the old temp name");
        assert!(load(&state).is_err(), "a linked cache is not read");
        let cache = Cache::new(CachedList {
            source: "file:///x".into(),
            etag: None,
            fetched_at: 1,
            ipv4: Nets::List(vec![]),
            ipv6: Nets::List(vec![]),
            digest: None,
        });
        store(&state, &cache).expect("store");
        assert_eq!(fs::read(&victim).expect("victim"), b"precious\n");
        let meta = fs::symlink_metadata(cache_path(&state)).expect("meta");
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o777, 0o600, "the cache is 0600");
        assert!(load(&state).expect("readable").is_some());
    }

    #[test]
    fn corrupt_cache_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(cache_path(dir.path()), b"{\"format\":1,\"list\":").expect("write");
        assert!(load(dir.path()).expect("not fatal").is_none());
        // A prefix of the other family, or one that is not a prefix, is corrupt too.
        let list = |v4: &str, v6: &str| {
            format!(
                r#"{{"format":2,"list":{{"source":"file:///x","etag":null,"fetched_at":1,"ipv4":[{v4}],"ipv6":[{v6}]}}}}"#
            )
        };
        for (v4, v6) in [
            (r#""2001:db8::/32""#, ""),
            ("", r#""192.0.2.0/24""#),
            (r#""192.0.2.0""#, ""),
            (r#""192.0.2.0/24", 5"#, ""),
        ] {
            fs::write(cache_path(dir.path()), list(v4, v6)).expect("write");
            assert!(load(dir.path()).expect("not fatal").is_none(), "{v4} {v6}");
        }
        fs::write(
            cache_path(dir.path()),
            list(r#""192.0.2.0/24", "198.51.100.0/24""#, r#""2001:db8::/32""#),
        )
        .expect("write");
        let good = load(dir.path()).expect("readable").expect("present");
        assert_eq!(good.list.ipv4.parsed().map(|v| v.len()), Some(2));
        assert_eq!(
            good.list.ipv6,
            Nets::List(vec!["2001:db8::/32".parse::<Ipv6Net>().expect("v6")])
        );
        // Format 3: one string per family; a bad prefix in it, or another family, is corrupt.
        let three = |v4: &str, v6: &str| {
            format!(
                r#"{{"format":3,"list":{{"source":"file:///x","etag":null,"fetched_at":1,"ipv4":"{v4}","ipv6":"{v6}"}}}}"#
            )
        };
        fs::write(
            cache_path(dir.path()),
            three("192.0.2.0/24 198.51.100.0/24", ""),
        )
        .expect("write");
        let good = load(dir.path()).expect("readable").expect("present");
        assert_eq!(good.list.ipv4.parsed().map(|v| v.len()), Some(2));
        assert_eq!(good.list.ipv6.parsed(), Some(vec![]));
        // Read as text, the list is checked where it is used: `last_good` (and the
        // fallback, and a fetch whose bodies match its digest) refuse it then.
        for (v4, v6) in [
            ("192.0.2.0/24 x", ""),
            ("2001:db8::/32", ""),
            ("", "192.0.2.0/24"),
        ] {
            fs::write(cache_path(dir.path()), three(v4, v6)).expect("write");
            let cache = load(dir.path()).expect("not fatal").expect("present");
            assert!(
                cache.list.ipv4.parsed().is_none() || cache.list.ipv6.parsed().is_none(),
                "{v4} {v6}"
            );
            assert!(
                crate::last_good(dir.path()).expect("not fatal").is_none(),
                "{v4} {v6}"
            );
        }
    }
}
