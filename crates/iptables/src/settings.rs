//! The `iptables:` config section and its validation.

use serde::{Deserialize, Serialize};

use crate::Error;

/// The hook chain Docker leaves to the admin; it sees packets after Docker's DNAT.
pub const DOCKER_USER: &str = "DOCKER-USER";

/// The longest chain name iptables accepts.
pub const MAX_CHAIN_LEN: usize = 28;

/// Suffix of the second chain cf-allow creates when `DOCKER-USER` is a hook.
pub const DOCKER_SUFFIX: &str = "-DOCKER";

/// Which iptables implementation to drive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Whatever `iptables-restore` / `iptables-save` on PATH are (nf_tables or legacy).
    #[default]
    Auto,
    /// `iptables-nft-*` / `ip6tables-nft-*` (the nf_tables kernel API).
    Nft,
    /// `iptables-legacy-*` / `ip6tables-legacy-*` (the x_tables kernel API).
    Legacy,
}

impl Variant {
    /// The program of this variant for `tool` (`iptables`/`ip6tables`) with `suffix`
    /// (`""`, `"-save"`, `"-restore"`): `ip6tables-nft-save`, `iptables-legacy`, `iptables-restore`.
    pub fn program(self, tool: &str, suffix: &str) -> String {
        let infix = match self {
            Variant::Auto => "",
            Variant::Nft => "-nft",
            Variant::Legacy => "-legacy",
        };
        format!("{tool}{infix}{suffix}")
    }
}

/// The `iptables:` section of the config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "RawSettings")]
pub struct Settings {
    /// The chain cf-allow owns in the filter table (`CF-ALLOW`).
    pub chain: String,
    /// Chains that get a jump to `chain` at position 1 (`[INPUT]`; add `DOCKER-USER` for
    /// published container ports).
    pub hooks: Vec<String>,
    /// Keep the ranges in ipset `hash:net` sets `cf-allow-v4` / `cf-allow-v6`.
    pub ipset: bool,
    /// End the chain with a DROP for the configured ports from every other source.
    pub lockdown: bool,
    /// Extension: which iptables implementation to use (`auto`, `nft`, `legacy`).
    pub variant: Variant,
    /// Extension: how long to wait for the xtables lock (`-w`), in seconds.
    pub lock_wait_secs: u32,
    /// True when the config file set `hooks` (even to the default `[INPUT]`). When it did
    /// not, the binary sets [`Settings::docker_user_auto`].
    #[serde(skip_serializing)]
    pub hooks_explicit: bool,
    /// Also hook `DOCKER-USER`, in each family whose filter table has that chain (Docker's
    /// published ports), without a warning where it is missing (Docker without IPv6 has none
    /// in ip6tables). Never read from the config: the binary sets it when `hooks` is not set.
    #[serde(skip_serializing)]
    pub docker_user_auto: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            chain: "CF-ALLOW".to_string(),
            hooks: vec!["INPUT".to_string()],
            ipset: false,
            lockdown: false,
            variant: Variant::Auto,
            lock_wait_secs: 10,
            hooks_explicit: false,
            docker_user_auto: false,
        }
    }
}

/// The section as written: `hooks` absent is told apart from `hooks: [INPUT]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSettings {
    chain: String,
    hooks: Option<Vec<String>>,
    ipset: bool,
    lockdown: bool,
    variant: Variant,
    lock_wait_secs: u32,
}

impl Default for RawSettings {
    fn default() -> Self {
        let d = Settings::default();
        RawSettings {
            chain: d.chain,
            hooks: None,
            ipset: d.ipset,
            lockdown: d.lockdown,
            variant: d.variant,
            lock_wait_secs: d.lock_wait_secs,
        }
    }
}

impl From<RawSettings> for Settings {
    fn from(raw: RawSettings) -> Settings {
        Settings {
            hooks_explicit: raw.hooks.is_some(),
            hooks: raw.hooks.unwrap_or_else(|| Settings::default().hooks),
            chain: raw.chain,
            ipset: raw.ipset,
            lockdown: raw.lockdown,
            variant: raw.variant,
            lock_wait_secs: raw.lock_wait_secs,
            docker_user_auto: false,
        }
    }
}

/// Chain names iptables reserves (built-in chains and standard targets).
const RESERVED: [&str; 16] = [
    "INPUT",
    "OUTPUT",
    "FORWARD",
    "PREROUTING",
    "POSTROUTING",
    "ACCEPT",
    "DROP",
    "RETURN",
    "QUEUE",
    "REJECT",
    "LOG",
    "MARK",
    "DNAT",
    "SNAT",
    "MASQUERADE",
    "NFQUEUE",
];

/// Checks that `name` is a chain name iptables accepts and `iptables-save` prints unquoted.
pub(crate) fn check_chain_name(what: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::Settings(format!("{what} is empty")));
    }
    if name.len() > MAX_CHAIN_LEN {
        return Err(Error::Settings(format!(
            "{what} `{name}` is {} characters long; iptables allows at most {MAX_CHAIN_LEN}",
            name.len()
        )));
    }
    if name.starts_with('-') || name.starts_with('!') {
        return Err(Error::Settings(format!(
            "{what} `{name}` must not start with `-` or `!`"
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(Error::Settings(format!(
            "{what} `{name}` contains `{bad}`; use letters, digits, `-`, `_` and `.`"
        )));
    }
    Ok(())
}

/// The validated layout cf-allow maintains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The chain normal hooks jump to.
    pub main: String,
    /// The chain `DOCKER-USER` jumps to (`<main>-DOCKER`).
    pub docker: String,
    /// Hook chains, deduplicated, in config order.
    pub hooks: Vec<String>,
    /// TCP destination ports, sorted and unique; empty = all ports.
    pub ports: Vec<u16>,
    pub ipset: bool,
    pub lockdown: bool,
    /// Hook `DOCKER-USER` too wherever the chain exists ([`Settings::docker_user_auto`]).
    pub docker_user_auto: bool,
}

impl Layout {
    /// Validates the settings and ports.
    pub fn new(settings: &Settings, ports: &[u16]) -> Result<Layout, Error> {
        check_chain_name("iptables.chain", &settings.chain)?;
        if RESERVED.contains(&settings.chain.as_str()) || settings.chain == DOCKER_USER {
            return Err(Error::Settings(format!(
                "iptables.chain `{}` is a built-in chain or target name; choose another, e.g. CF-ALLOW",
                settings.chain
            )));
        }
        let docker = format!("{}{DOCKER_SUFFIX}", settings.chain);
        if settings.hooks.is_empty() {
            return Err(Error::Settings(
                "iptables.hooks is empty; list at least one chain, e.g. [INPUT]".to_string(),
            ));
        }
        let mut hooks: Vec<String> = Vec::new();
        for hook in &settings.hooks {
            check_chain_name("iptables.hooks entry", hook)?;
            if *hook == settings.chain || *hook == docker {
                return Err(Error::Settings(format!(
                    "iptables.hooks contains `{hook}`, which is cf-allow's own chain"
                )));
            }
            if hook == "OUTPUT" {
                return Err(Error::Settings(
                    "iptables.hooks contains `OUTPUT`: cf-allow's chain matches packets coming from Cloudflare, so it belongs on the input path (INPUT, FORWARD, DOCKER-USER or a chain they jump to); with lockdown it would drop the host's own outgoing traffic".to_string(),
                ));
            }
            if matches!(hook.as_str(), "PREROUTING" | "POSTROUTING") {
                return Err(Error::Settings(format!(
                    "iptables.hooks contains `{hook}`, which the filter table does not have"
                )));
            }
            if !hooks.contains(hook) {
                hooks.push(hook.clone());
            }
        }
        if hooks.iter().any(|h| h == DOCKER_USER) && docker.len() > MAX_CHAIN_LEN {
            return Err(Error::Settings(format!(
                "with DOCKER-USER in iptables.hooks, iptables.chain may have at most {} characters, because cf-allow also creates the chain `{docker}`",
                MAX_CHAIN_LEN - DOCKER_SUFFIX.len()
            )));
        }
        if ports.contains(&0) {
            return Err(Error::Settings(
                "port 0 is not a valid TCP port".to_string(),
            ));
        }
        let mut ports = ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        Ok(Layout {
            main: settings.chain.clone(),
            docker,
            hooks,
            ports,
            ipset: settings.ipset,
            lockdown: settings.lockdown,
            docker_user_auto: settings.docker_user_auto,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(chain: &str, hooks: &[&str]) -> Settings {
        Settings {
            chain: chain.to_string(),
            hooks: hooks.iter().map(|s| s.to_string()).collect(),
            ..Settings::default()
        }
    }

    #[test]
    fn variants_name_their_programs() {
        assert_eq!(Variant::Auto.program("iptables", "-save"), "iptables-save");
        assert_eq!(
            Variant::Nft.program("ip6tables", "-restore"),
            "ip6tables-nft-restore"
        );
        assert_eq!(Variant::Legacy.program("iptables", ""), "iptables-legacy");
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::default();
        assert_eq!(s.chain, "CF-ALLOW");
        assert_eq!(s.hooks, vec!["INPUT".to_string()]);
        assert!(!s.ipset && !s.lockdown);
        let layout = Layout::new(&s, &[443, 80, 443]).expect("valid");
        assert_eq!(layout.ports, vec![80, 443]);
        assert_eq!(layout.docker, "CF-ALLOW-DOCKER");
    }

    #[test]
    fn bad_chain_names_are_refused_with_a_reason() {
        for (chain, needle) in [
            ("", "empty"),
            ("INPUT", "built-in"),
            ("ACCEPT", "built-in"),
            ("A-VERY-LONG-CHAIN-NAME-THAT-IS-TOO-LONG", "at most 28"),
            ("has space", "contains ` `"),
            ("-x", "must not start"),
        ] {
            let err = Layout::new(&settings(chain, &["INPUT"]), &[443]).expect_err(chain);
            assert!(err.to_string().contains(needle), "{chain}: {err}");
        }
        let err = Layout::new(
            &settings("CF-ALLOW-TWENTY-TWO-CHARS", &["INPUT", "DOCKER-USER"]),
            &[443],
        )
        .expect_err("too long with docker");
        assert!(err.to_string().contains("at most 21"), "{err}");
        let err = Layout::new(&settings("CF-ALLOW", &["OUTPUT"]), &[443]).expect_err("OUTPUT");
        assert!(err.to_string().contains("input path"), "{err}");
        let err = Layout::new(&settings("CF-ALLOW", &[]), &[443]).expect_err("no hooks");
        assert!(err.to_string().contains("hooks is empty"), "{err}");
        let err = Layout::new(&settings("CF-ALLOW", &["INPUT"]), &[0]).expect_err("port 0");
        assert!(err.to_string().contains("port 0"), "{err}");
    }

    #[test]
    fn hooks_left_out_are_told_apart_from_hooks_set_to_the_default() {
        let parse = |json: &str| serde_json::from_str::<Settings>(json).expect("settings");
        let absent = parse(r#"{"chain": "MINE"}"#);
        assert!(!absent.hooks_explicit);
        assert_eq!(absent.hooks, ["INPUT"]);
        assert_eq!(absent.chain, "MINE");
        assert_eq!(absent.lock_wait_secs, 10);
        let set = parse(r#"{"hooks": ["INPUT"]}"#);
        assert!(set.hooks_explicit);
        assert_eq!(set.hooks, ["INPUT"]);
        let err = serde_json::from_str::<Settings>(r#"{"hooks": ["INPUT"], "hook": 1}"#)
            .expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `hook`"), "{err}");
    }

    #[test]
    fn settings_reject_unknown_keys() {
        use serde::de::value::{Error as DeError, MapDeserializer};
        use serde::de::IntoDeserializer;
        let map = [("chian", "X")]
            .into_iter()
            .map(|(k, v)| (k.into_deserializer(), v.into_deserializer()));
        let de: MapDeserializer<'_, _, DeError> = MapDeserializer::new(map);
        let err = Settings::deserialize(de).expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `chian`"), "{err}");
    }
}
