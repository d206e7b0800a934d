//! The configuration file (`/etc/cf-allow/config.yaml`), with the contract's defaults.
//!
//! Unknown keys and bad values are errors that name the key and its line.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::backends::BackendKind;

/// Where the config lives when neither `--config` nor `$CF_ALLOW_CONFIG` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/cf-allow/config.yaml";

/// The whole configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Backend; `None` = detect.
    pub backend: Option<BackendKind>,
    /// TCP destination ports opened to Cloudflare; empty = all ports.
    pub ports: Vec<Port>,
    /// Alternatives, tried in order; each one URL or several URLs merged.
    pub sources: Vec<SourceAlternative>,
    /// Total time for one request.
    pub timeout_secs: Seconds,
    /// Cache of the last good list, ETags and the lock file.
    pub state_dir: PathBuf,
    /// The admin's own ranges, always allowed (validated like the feed).
    pub extra_cidrs: Vec<String>,
    /// Sanity limits.
    pub guard: Guard,
    /// nftables backend settings.
    pub nftables: cf_allow_nftables::Settings,
    /// iptables backend settings.
    pub iptables: cf_allow_iptables::Settings,
    /// CSF backend settings.
    pub csf: cf_allow_csf::Settings,
    /// Web-server real-IP trust and fail2ban's ignoreip, from the same list (after the firewall).
    pub outputs: cf_allow_outputs::Settings,
    /// `doctor:` settings (the optional `dns` check).
    pub doctor: cf_allow_doctor::Settings,
    // --- metrics and hooks (issue 16) ---
    /// Write node_exporter textfile metrics here at the end of every sync.
    pub metrics_file: Option<PathBuf>,
    /// Program and arguments run (no shell) after a sync that changed something.
    pub on_change: Option<Vec<String>>,
    /// Program and arguments run (no shell) after a failed sync.
    pub on_failure: Option<Vec<String>>,
    /// How long a hook may run before it is killed.
    pub hook_timeout_secs: Seconds,
    /// How the reachability verdict is computed (`reachability:`).
    pub reachability: Reachability,
    /// ufw backend settings.
    pub ufw: cf_allow_ufw::Settings,
    /// firewalld backend settings.
    pub firewalld: cf_allow_firewalld::Settings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend: None,
            ports: vec![Port(80), Port(443)],
            sources: vec![
                SourceAlternative::One(SourceUrl(
                    "https://api.cloudflare.com/client/v4/ips".into(),
                )),
                SourceAlternative::Merged(vec![
                    SourceUrl("https://www.cloudflare.com/ips-v4".into()),
                    SourceUrl("https://www.cloudflare.com/ips-v6".into()),
                ]),
            ],
            timeout_secs: Seconds(15),
            state_dir: PathBuf::from("/var/lib/cf-allow"),
            extra_cidrs: Vec::new(),
            guard: Guard::default(),
            nftables: Default::default(),
            iptables: Default::default(),
            csf: Default::default(),
            outputs: Default::default(),
            doctor: Default::default(),
            metrics_file: None,
            on_change: None,
            on_failure: None,
            hook_timeout_secs: Seconds(30),
            reachability: Reachability::default(),
            ufw: Default::default(),
            firewalld: Default::default(),
        }
    }
}

/// The `reachability` section: how `sync` and `status` decide whether Cloudflare's packets
/// get through the host's whole input path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reachability {
    /// The interfaces Cloudflare's packets arrive on; absent = those of the default routes
    /// (every non-loopback interface that is up when there is no default route).
    pub interfaces: Option<Interfaces>,
    /// Compute the verdict after every sync and status (default). Off: no verdict, no exit 3,
    /// `reachability: null` in the JSON, and detection takes the first available backend.
    pub check: bool,
    /// Reuse the last verdict (kept in `state_dir/verdict-cache`) while nothing it depends
    /// on can have changed (default). Off: every run reads and evaluates the host's rules.
    pub cache: bool,
}

impl Default for Reachability {
    fn default() -> Self {
        Reachability {
            interfaces: None,
            check: true,
            cache: true,
        }
    }
}

/// A non-empty list of network interface names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces(pub Vec<String>);

impl<'de> Deserialize<'de> for Interfaces {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        if names.is_empty() {
            return Err(de::Error::custom(
                "interfaces is empty; list the inbound interfaces (e.g. [eth0]) or leave the key out to use those of the default routes",
            ));
        }
        for name in &names {
            check_interface_name(name).map_err(de::Error::custom)?;
        }
        Ok(Interfaces(names))
    }
}

/// An interface name the kernel accepts: 1–15 bytes, no `/`, no whitespace, not `.`/`..`.
fn check_interface_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        Err(format!(
            "interface {name:?} is not an interface name (1-15 characters, no '/', ':' or spaces)"
        ))
    } else {
        Ok(())
    }
}

/// The `guard` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guard {
    /// Refuse a plan that removes more than this share of the applied ranges (unless --force).
    pub max_shrink_percent: Percent,
    /// Refuse a list with more entries than this.
    pub max_entries: usize,
    /// Accept private, documentation and other reserved ranges.
    pub allow_reserved: bool,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            max_shrink_percent: Percent(50),
            max_entries: 10_000,
            allow_reserved: false,
        }
    }
}

/// One entry of `sources`: a URL, or a list of URLs whose lists are merged.
#[derive(Debug, Clone)]
pub enum SourceAlternative {
    /// One URL.
    One(SourceUrl),
    /// Several URLs merged into one list.
    Merged(Vec<SourceUrl>),
}

impl<'de> Deserialize<'de> for SourceAlternative {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = SourceAlternative;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL or a list of URLs")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                SourceUrl::parse(v)
                    .map(SourceAlternative::One)
                    .map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut urls = Vec::new();
                while let Some(url) = seq.next_element::<SourceUrl>()? {
                    urls.push(url);
                }
                Ok(SourceAlternative::Merged(urls))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl SourceAlternative {
    /// The URLs of this alternative.
    pub fn urls(&self) -> Vec<String> {
        match self {
            SourceAlternative::One(u) => vec![u.0.clone()],
            SourceAlternative::Merged(us) => us.iter().map(|u| u.0.clone()).collect(),
        }
    }
}

/// A source URL (`https://`, `http://` or `file://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUrl(pub String);

impl SourceUrl {
    /// Checks the scheme.
    pub fn parse(s: &str) -> Result<SourceUrl, String> {
        let ok = ["https://", "http://", "file://"].iter().any(|scheme| {
            s.len() > scheme.len()
                && s.as_bytes()[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
        });
        if ok && s.len() >= 7 && s.as_bytes()[..7].eq_ignore_ascii_case(b"file://") {
            let rest = &s[7..];
            if !rest.starts_with('/') && !rest.to_ascii_lowercase().starts_with("localhost/") {
                return Err(format!(
                    "source {s:?}: a file URL names a local absolute path, e.g. file:///etc/cf-allow/ips.txt (three slashes)"
                ));
            }
        }
        if ok {
            Ok(SourceUrl(s.to_string()))
        } else {
            Err(format!(
                "source {s:?} is not an https://, http:// or file:// URL"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for SourceUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SourceUrl::parse(&s).map_err(de::Error::custom)
    }
}

/// A TCP port, 1–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = bounded(d, 1, 65_535, |n| {
            format!("port {n} is not a TCP port (1-65535)")
        })?;
        Ok(Port(n as u16))
    }
}

/// A percentage, 0–100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percent(pub u8);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = bounded(d, 0, 100, |n| format!("{n} is not a percentage (0-100)"))?;
        Ok(Percent(n as u8))
    }
}

/// A positive number of seconds, at most an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = bounded(d, 1, 3600, |n| {
            format!("{n} is not a timeout in seconds (1-3600)")
        })?;
        Ok(Seconds(n))
    }
}

/// An integer within `lo..=hi`, else the error `message` gives.
fn bounded<'de, D: Deserializer<'de>>(
    d: D,
    lo: u64,
    hi: u64,
    message: impl Fn(u64) -> String,
) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if (lo..=hi).contains(&n) {
        Ok(n)
    } else {
        Err(de::Error::custom(message(n)))
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which file was used, for messages.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file it came from; `None` when the default file is absent and defaults are used.
    pub path: Option<PathBuf>,
}

/// Loads `explicit` (an error when missing), else the default path (defaults when missing).
pub fn load(explicit: Option<&Path>) -> Result<Loaded> {
    let (path, must_exist) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => {
            check_trusted(&path)?;
            t
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            return Ok(Loaded {
                config: Config::default(),
                path: None,
            })
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read config {}", path.display())),
    };
    let config = parse(&text).with_context(|| format!("config {}", path.display()))?;
    Ok(Loaded {
        config,
        path: Some(path),
    })
}

/// StrictModes: when running as root, the config file and its directory must be owned by
/// root and not writable by group or others (the config names a command run as root).
fn check_trusted(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !cf_allow_exec::files::running_as_root() {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    for p in [path, dir] {
        let meta =
            std::fs::metadata(p).with_context(|| format!("cannot read config {}", p.display()))?;
        let owner = cf_allow_exec::files::Owner {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        };
        // A sticky world-writable directory (/tmp) only lets its owners replace files.
        let sticky = p == dir && owner.mode & 0o1000 != 0 && owner.uid == 0;
        if let Some(reason) = cf_allow_exec::files::untrusted_reason(p, &owner) {
            if !sticky {
                bail!("refusing the config: {reason}");
            }
        }
    }
    Ok(())
}

/// Parses YAML text; an empty document means all defaults.
pub fn parse(text: &str) -> Result<Config> {
    // Editors on Windows save UTF-8 with a byte-order mark; it is not part of the YAML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(Config::default());
    }
    let config: Config = deserialize(text)?;
    if config.sources.is_empty() {
        bail!("sources: at least one source is required");
    }
    if config
        .sources
        .iter()
        .any(|alt| matches!(alt, SourceAlternative::Merged(v) if v.is_empty()))
    {
        bail!("sources: an alternative lists no URL");
    }
    validate(&config)?;
    Ok(config)
}

/// Everything any command would refuse later, checked once for every command (and
/// `check-config`): the backends' own settings checks (all three, whichever is used), an
/// absolute `state_dir`, `file://` URLs without a host, a positive `guard.max_entries`.
pub fn validate(config: &Config) -> Result<()> {
    if !config.state_dir.is_absolute() {
        bail!(
            "state_dir {:?} is not an absolute path (e.g. /var/lib/cf-allow)",
            config.state_dir.display().to_string()
        );
    }
    if config.guard.max_entries == 0 {
        bail!("guard: max_entries must be at least 1");
    }
    for url in config.sources.iter().flat_map(|alt| alt.urls()) {
        SourceUrl::parse(&url).map_err(anyhow::Error::msg)?;
    }
    let ports: Vec<u16> = config.ports.iter().map(|p| p.0).collect();
    cf_allow_nftables::NftablesBackend::new(config.nftables.clone(), ports.clone())?;
    cf_allow_iptables::IptablesBackend::new(config.iptables.clone(), ports)?;
    config.csf.validate().map_err(anyhow::Error::msg)?;
    config.outputs.validate().map_err(anyhow::Error::msg)?;
    for (key, hook) in [
        ("on_change", &config.on_change),
        ("on_failure", &config.on_failure),
    ] {
        if hook
            .as_ref()
            .is_some_and(|argv| argv.first().is_none_or(String::is_empty))
        {
            bail!("{key}: give the program and its arguments as a list, e.g. [/usr/local/bin/notify, --quiet]");
        }
    }
    Ok(())
}

/// Deserializes with the failing key's path in the message, and its line even where the YAML
/// parser gives none (errors about top-level keys).
fn deserialize(text: &str) -> Result<Config> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut message = inner.to_string();
        let top_key = match path.as_str() {
            "." => unknown_field(&message),
            p => p.split(['.', '[']).next().map(str::to_string),
        };
        // serde_yaml_ng names nested keys itself ("guard: …"); name top-level ones too.
        if let Some(key) = &top_key {
            if !message.starts_with(key.as_str()) && !message.starts_with("unknown field") {
                message = format!("{key}: {message}");
            }
        }
        if !message.contains(" at line ") {
            // For errors raised while reading a top-level scalar the parser's position is not
            // reliable; the key's own line is.
            let line = top_key
                .and_then(|k| top_level_line(text, &k))
                .or_else(|| inner.location().map(|l| l.line()));
            if let Some(line) = line {
                message.push_str(&format!(" at line {line}"));
            }
        }
        anyhow::anyhow!(message)
    })
}

/// The field named by an "unknown field `x`" message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_string)
}

/// The 1-based line where the top-level key `key` is defined.
fn top_level_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_gives_contract_defaults() {
        let c = parse("# nothing\n").expect("defaults");
        assert_eq!(c.ports, vec![Port(80), Port(443)]);
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.sources[1].urls().len(), 2);
        assert_eq!(c.timeout_secs, Seconds(15));
        assert_eq!(c.guard.max_shrink_percent, Percent(50));
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/cf-allow"));
        assert_eq!(c.reachability.interfaces, None);
        assert!(c.reachability.check);
        assert!(
            !parse("reachability: {check: false}\n")
                .expect("check off")
                .reachability
                .check
        );
    }

    #[test]
    fn reachability_interfaces_override() {
        let c = parse("reachability:\n  interfaces: [eth0, ens3]\n").expect("interfaces");
        assert_eq!(
            c.reachability.interfaces,
            Some(Interfaces(vec!["eth0".into(), "ens3".into()]))
        );
    }

    #[test]
    fn outputs_take_defaults_and_argument_vectors() {
        let c = parse("outputs:\n  nginx: {}\n  apache:\n    test: [/bin/false]\n    reload: []\n")
            .expect("outputs");
        let outputs = c.outputs.outputs();
        assert_eq!(outputs.len(), 2);
        assert_eq!(
            outputs[0].path,
            PathBuf::from("/etc/nginx/conf.d/cf-allow-realip.conf")
        );
        assert_eq!(outputs[0].test, vec!["nginx", "-t"]);
        assert_eq!(outputs[1].test, vec!["/bin/false"]);
        assert!(outputs[1].reload.is_empty());
        for (yaml, needle) in [
            (
                "outputs:\n  nginx:\n    tset: [x]\n",
                "unknown field `tset`",
            ),
            (
                "outputs:\n  nginx:\n    test: \"nginx -t\"\n",
                "invalid type",
            ),
            (
                "outputs:\n  nginx:\n    path: conf.d/x\n",
                "is not an absolute path",
            ),
            ("outputs:\n  lighttpd: {}\n", "unknown field `lighttpd`"),
        ] {
            let msg = format!("{:#}", parse(yaml).expect_err(yaml));
            assert!(msg.contains(needle), "{yaml}: {msg}");
        }
    }

    #[test]
    fn one_validation_refuses_what_sync_would_refuse() {
        for (yaml, needle) in [
            ("iptables:\n  chain: INPUT\n", "built-in"),
            ("iptables:\n  chain: \"-F\"\n", "must not start"),
            ("iptables:\n  chain: \"X -j DROP\"\n", "contains ` `"),
            (
                "iptables:\n  chain: ABCDEFGHIJKLMNOPQRSTUVWXYZABCDE\n",
                "at most",
            ),
            ("iptables:\n  hooks: []\n", "hooks is empty"),
            (
                "iptables:\n  hooks: [OUTPUT]\n  lockdown: true\n",
                "input path",
            ),
            (
                "nftables:\n  into: {family: ip, table: filter, chain: input}\n",
                "inet",
            ),
            ("ports: []\nnftables:\n  lockdown: true\n", "lockdown"),
            ("nftables:\n  table: \"\"\n", "nft identifier"),
            (
                "nftables:\n  table: \"x { } ; flush ruleset ; table inet y\"\n",
                "nft identifier",
            ),
            ("sources: [\"file://host/x\"]\n", "three slashes"),
            ("guard:\n  max_entries: 0\n", "max_entries"),
            ("state_dir: \"\"\n", "not an absolute path"),
            ("state_dir: state\n", "not an absolute path"),
            ("csf:\n  reload: \"csf -r; rm -rf /\"\n", "without a shell"),
        ] {
            let msg = format!("{:#}", parse(yaml).expect_err(yaml));
            assert!(msg.contains(needle), "{yaml}: {msg}");
        }
        let long = format!("nftables:\n  table: {}\n", "t".repeat(300));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn a_leading_byte_order_mark_is_accepted() {
        let c = parse("\u{feff}---\nports: [443]\n").expect("BOM");
        assert_eq!(c.ports, vec![Port(443)]);
        let c = parse("\u{feff}# comment\n").expect("BOM, comments only");
        assert_eq!(c.ports, vec![Port(80), Port(443)]);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("ports: [443]\nguard:\n  max_shrink: 10\n").expect_err("unknown key");
        let msg = format!("{err:#}");
        assert!(msg.contains("unknown field `max_shrink`"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn bad_values_name_the_problem_and_line() {
        for (yaml, needle) in [
            ("ports: [0]\n", "port 0 is not a TCP port"),
            ("ports: [70000]\n", "port 70000"),
            (
                "guard:\n  max_shrink_percent: 150\n",
                "150 is not a percentage",
            ),
            (
                "sources: [ftp://x]\n",
                "source \"ftp://x\" is not an https://, http:// or file:// URL",
            ),
            (
                "sources:\n  - [http://a/x, ftp://y]\n",
                "source \"ftp://y\"",
            ),
            ("sources:\n  - 5\n", "a URL or a list of URLs"),
            ("timeout_secs: 0\n", "timeout_secs: 0 is not a timeout"),
            ("# c\ntimeout_secs: soon\n", "timeout_secs: invalid type"),
            ("ports: [443]\nbogus: 1\n", "unknown field `bogus`"),
            ("backend: pf\n", "unknown variant `pf`"),
            ("sources: [\"https:/\u{e9}x\"]\n", "is not an https://"),
            ("reachability:\n  interfaces: []\n", "interfaces is empty"),
            (
                "reachability:\n  interfaces: [eth0, \"a/b\"]\n",
                "interface \"a/b\" is not an interface name",
            ),
            (
                "reachability:\n  interfaces: [averyveryverylongname]\n",
                "is not an interface name",
            ),
            ("reachability:\n  iface: [eth0]\n", "unknown field `iface`"),
        ] {
            let msg = format!("{:#}", parse(yaml).expect_err(yaml));
            assert!(msg.contains(needle), "{yaml}: {msg}");
            assert!(msg.contains("line "), "{yaml}: {msg}");
        }
    }

    #[test]
    fn firewalld_section_parses_and_names_unknown_keys() {
        let c = parse("backend: firewalld\nfirewalld:\n  zones: [public, dmz]\n  lockdown: true\n")
            .expect("firewalld section");
        assert_eq!(c.backend, Some(BackendKind::Firewalld));
        assert_eq!(
            c.firewalld.zones,
            vec!["public".to_string(), "dmz".to_string()]
        );
        assert!(c.firewalld.lockdown);
        assert_eq!(c.firewalld.timeout_secs, 30);
        let msg = format!(
            "{:#}",
            parse("firewalld:\n  zone: [public]\n").expect_err("typo")
        );
        assert!(
            msg.contains("unknown field `zone`") && msg.contains("line 2"),
            "{msg}"
        );
    }
}
