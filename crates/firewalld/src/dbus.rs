//! firewalld's D-Bus API, one typed method per call cf-allow makes (signatures checked with
//! `busctl introspect` against firewalld 1.3.3).

use std::collections::HashMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use zbus::blocking::Connection;
use zbus::zvariant::{DynamicType, OwnedObjectPath, OwnedValue, Type};

use crate::error::{Error, Result};

/// firewalld's bus name.
pub const NAME: &str = "org.fedoraproject.FirewallD1";
const PATH: &str = "/org/fedoraproject/FirewallD1";
const CONFIG_PATH: &str = "/org/fedoraproject/FirewallD1/config";
const IF_MAIN: &str = "org.fedoraproject.FirewallD1";
const IF_IPSET: &str = "org.fedoraproject.FirewallD1.ipset";
const IF_ZONE: &str = "org.fedoraproject.FirewallD1.zone";
const IF_POLICY: &str = "org.fedoraproject.FirewallD1.policy";
const IF_CONFIG: &str = "org.fedoraproject.FirewallD1.config";
const IF_CONFIG_IPSET: &str = "org.fedoraproject.FirewallD1.config.ipset";
const IF_CONFIG_ZONE: &str = "org.fedoraproject.FirewallD1.config.zone";
const IF_CONFIG_POLICY: &str = "org.fedoraproject.FirewallD1.config.policy";

/// A zone's or policy's settings as `getZoneSettings2` / `getSettings2` return them.
pub type Settings2 = HashMap<String, OwnedValue>;

/// An ipset's settings: version, short, description, type, options, entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, Type)]
pub struct IpsetSettings {
    /// Version string (unused by cf-allow).
    pub version: String,
    /// Short description.
    pub short: String,
    /// Long description (cf-allow's ownership tag).
    pub description: String,
    /// `hash:net`, `hash:ip`, …
    pub kind: String,
    /// `family`, `maxelem`, `timeout`, …
    pub options: HashMap<String, String>,
    /// The entries, as firewalld stores them.
    pub entries: Vec<String>,
}

/// The system bus, and the timeout every call gets.
pub struct Bus {
    conn: Connection,
    secs: u64,
}

/// The address cf-allow connects to, for messages.
pub fn system_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .unwrap_or_else(|_| "unix:path=/var/run/dbus/system_bus_socket".to_string())
}

impl Bus {
    /// Connects to the system bus (`$DBUS_SYSTEM_BUS_ADDRESS` when set) and checks that
    /// firewalld owns its name.
    pub fn connect(secs: u64) -> Result<Bus> {
        let unreachable = |e: zbus::Error| {
            let detail = e.to_string();
            if detail.contains("os error 13") || detail.contains("Permission denied") {
                Error::AccessDenied {
                    call: format!("the system bus {}", system_address()),
                    detail,
                }
            } else {
                Error::BusUnreachable {
                    address: system_address(),
                    detail,
                }
            }
        };
        let conn = zbus::blocking::connection::Builder::system()
            .map_err(unreachable)?
            .method_timeout(Duration::from_secs(secs))
            .build()
            .map_err(unreachable)?;
        let bus = Bus { conn, secs };
        if !bus.name_has_owner()? {
            return Err(Error::NotRunning);
        }
        Ok(bus)
    }

    fn name_has_owner(&self) -> Result<bool> {
        self.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            &(NAME,),
        )
    }

    fn call<B, R>(&self, dest: &str, path: &str, iface: &str, method: &str, body: &B) -> Result<R>
    where
        B: Serialize + DynamicType,
        R: DeserializeOwned + Type,
    {
        let call = || format!("{}.{method}", iface.rsplit('.').next().unwrap_or(iface));
        let reply = self
            .conn
            .call_method(Some(dest), path, Some(iface), method, body)
            .map_err(|e| map_error(e, call(), self.secs))?;
        reply.body().deserialize::<R>().map_err(|e| Error::Bus {
            call: call(),
            detail: format!("unexpected reply: {e}"),
        })
    }

    fn fw<B, R>(&self, path: &str, iface: &str, method: &str, body: &B) -> Result<R>
    where
        B: Serialize + DynamicType,
        R: DeserializeOwned + Type,
    {
        tracing::trace!(method, path, "firewalld D-Bus call");
        self.call(NAME, path, iface, method, body)
    }

    /// Calls that change something, logged at debug level (the tests count them).
    fn write<B>(&self, path: &str, iface: &str, method: &str, body: &B) -> Result<()>
    where
        B: Serialize + DynamicType + std::fmt::Debug,
    {
        tracing::debug!("firewalld D-Bus write {method}{body:?}");
        self.call::<B, ()>(NAME, path, iface, method, body)
    }

    // ---- runtime

    /// The default zone.
    pub fn default_zone(&self) -> Result<String> {
        self.fw(PATH, IF_MAIN, "getDefaultZone", &())
    }

    /// Rebuilds the runtime configuration from the permanent one.
    pub fn reload(&self) -> Result<()> {
        self.write(PATH, IF_MAIN, "reload", &())
    }

    /// The runtime zones.
    pub fn zones(&self) -> Result<Vec<String>> {
        self.fw(PATH, IF_ZONE, "getZones", &())
    }

    /// The zone an interface is bound to at runtime; empty when none.
    pub fn zone_of_interface(&self, interface: &str) -> Result<String> {
        self.fw(PATH, IF_ZONE, "getZoneOfInterface", &(interface,))
    }

    /// A runtime zone's settings.
    pub fn zone_settings(&self, zone: &str) -> Result<Settings2> {
        self.fw(PATH, IF_ZONE, "getZoneSettings2", &(zone,))
    }

    /// A runtime zone's rich rules.
    pub fn rich_rules(&self, zone: &str) -> Result<Vec<String>> {
        self.fw(PATH, IF_ZONE, "getRichRules", &(zone,))
    }

    /// Adds a rich rule to a runtime zone (no timeout).
    pub fn add_rich_rule(&self, zone: &str, rule: &str) -> Result<()> {
        tracing::debug!("firewalld D-Bus write addRichRule({zone:?}, {rule:?})");
        self.fw::<_, String>(PATH, IF_ZONE, "addRichRule", &(zone, rule, 0i32))
            .map(drop)
    }

    /// Removes a rich rule from a runtime zone.
    pub fn remove_rich_rule(&self, zone: &str, rule: &str) -> Result<()> {
        tracing::debug!("firewalld D-Bus write removeRichRule({zone:?}, {rule:?})");
        self.fw::<_, String>(PATH, IF_ZONE, "removeRichRule", &(zone, rule))
            .map(drop)
    }

    /// The runtime policies.
    pub fn policies(&self) -> Result<Vec<String>> {
        self.fw(PATH, IF_POLICY, "getPolicies", &())
    }

    /// A runtime policy's settings.
    pub fn policy_settings(&self, policy: &str) -> Result<Settings2> {
        self.fw(PATH, IF_POLICY, "getPolicySettings", &(policy,))
    }

    /// The runtime ipsets.
    pub fn ipsets(&self) -> Result<Vec<String>> {
        self.fw(PATH, IF_IPSET, "getIPSets", &())
    }

    /// A runtime ipset's settings, entries included.
    pub fn ipset_settings(&self, name: &str) -> Result<IpsetSettings> {
        self.fw(PATH, IF_IPSET, "getIPSetSettings", &(name,))
    }

    /// Adds one entry to a runtime ipset.
    pub fn add_entry(&self, name: &str, entry: &str) -> Result<()> {
        self.write(PATH, IF_IPSET, "addEntry", &(name, entry))
    }

    /// Removes one entry from a runtime ipset.
    pub fn remove_entry(&self, name: &str, entry: &str) -> Result<()> {
        self.write(PATH, IF_IPSET, "removeEntry", &(name, entry))
    }

    /// Replaces a runtime ipset's entries.
    pub fn set_entries(&self, name: &str, entries: &[String]) -> Result<()> {
        self.write(PATH, IF_IPSET, "setEntries", &(name, entries))
    }

    // ---- permanent

    /// The permanent zones.
    pub fn config_zone_names(&self) -> Result<Vec<String>> {
        self.fw(CONFIG_PATH, IF_CONFIG, "getZoneNames", &())
    }

    /// The object of a permanent zone.
    pub fn config_zone(&self, zone: &str) -> Result<OwnedObjectPath> {
        self.fw(CONFIG_PATH, IF_CONFIG, "getZoneByName", &(zone,))
    }

    /// A permanent zone's settings.
    pub fn config_zone_settings(&self, obj: &OwnedObjectPath) -> Result<Settings2> {
        self.fw(obj.as_str(), IF_CONFIG_ZONE, "getSettings2", &())
    }

    /// A permanent zone's rich rules.
    pub fn config_rich_rules(&self, obj: &OwnedObjectPath) -> Result<Vec<String>> {
        self.fw(obj.as_str(), IF_CONFIG_ZONE, "getRichRules", &())
    }

    /// Adds a rich rule to a permanent zone.
    pub fn config_add_rich_rule(&self, obj: &OwnedObjectPath, rule: &str) -> Result<()> {
        self.write(obj.as_str(), IF_CONFIG_ZONE, "addRichRule", &(rule,))
    }

    /// Removes a rich rule from a permanent zone.
    pub fn config_remove_rich_rule(&self, obj: &OwnedObjectPath, rule: &str) -> Result<()> {
        self.write(obj.as_str(), IF_CONFIG_ZONE, "removeRichRule", &(rule,))
    }

    /// Whether a permanent zone is unchanged from its defaults (no file in /etc).
    pub fn config_zone_default(&self, obj: &OwnedObjectPath) -> Result<bool> {
        self.property(obj, IF_CONFIG_ZONE, "default")
    }

    /// Resets a built-in permanent zone to its defaults (deletes its file in /etc).
    pub fn config_zone_load_defaults(&self, obj: &OwnedObjectPath) -> Result<()> {
        self.write(obj.as_str(), IF_CONFIG_ZONE, "loadDefaults", &())
    }

    /// Replaces a permanent zone's settings.
    pub fn config_zone_update(&self, obj: &OwnedObjectPath, settings: &Settings2) -> Result<()> {
        tracing::debug!("firewalld D-Bus write update2({})", obj.as_str());
        self.fw::<_, ()>(obj.as_str(), IF_CONFIG_ZONE, "update2", &(settings,))
    }

    /// The permanent policies.
    pub fn config_policy_names(&self) -> Result<Vec<String>> {
        self.fw(CONFIG_PATH, IF_CONFIG, "getPolicyNames", &())
    }

    /// A permanent policy's settings.
    pub fn config_policy_settings(&self, policy: &str) -> Result<Settings2> {
        let obj: OwnedObjectPath =
            self.fw(CONFIG_PATH, IF_CONFIG, "getPolicyByName", &(policy,))?;
        self.fw(obj.as_str(), IF_CONFIG_POLICY, "getSettings", &())
    }

    /// The permanent ipsets.
    pub fn config_ipset_names(&self) -> Result<Vec<String>> {
        self.fw(CONFIG_PATH, IF_CONFIG, "getIPSetNames", &())
    }

    /// The object of a permanent ipset.
    pub fn config_ipset(&self, name: &str) -> Result<OwnedObjectPath> {
        self.fw(CONFIG_PATH, IF_CONFIG, "getIPSetByName", &(name,))
    }

    /// A permanent ipset's settings.
    pub fn config_ipset_settings(&self, obj: &OwnedObjectPath) -> Result<IpsetSettings> {
        self.fw(obj.as_str(), IF_CONFIG_IPSET, "getSettings", &())
    }

    /// Creates a permanent ipset.
    pub fn config_add_ipset(
        &self,
        name: &str,
        settings: &IpsetSettings,
    ) -> Result<OwnedObjectPath> {
        tracing::debug!("firewalld D-Bus write addIPSet({name:?})");
        self.fw(CONFIG_PATH, IF_CONFIG, "addIPSet", &(name, settings))
    }

    /// Replaces a permanent ipset's entries.
    pub fn config_set_entries(&self, obj: &OwnedObjectPath, entries: &[String]) -> Result<()> {
        self.write(obj.as_str(), IF_CONFIG_IPSET, "setEntries", &(entries,))
    }

    /// Deletes a permanent ipset.
    pub fn config_remove_ipset(&self, obj: &OwnedObjectPath) -> Result<()> {
        self.write(obj.as_str(), IF_CONFIG_IPSET, "remove", &())
    }

    fn property<T>(&self, obj: &OwnedObjectPath, iface: &str, name: &str) -> Result<T>
    where
        T: TryFrom<OwnedValue>,
    {
        let value: OwnedValue = self.fw(
            obj.as_str(),
            "org.freedesktop.DBus.Properties",
            "Get",
            &(iface, name),
        )?;
        T::try_from(value).map_err(|_| Error::Bus {
            call: format!("Get {name}"),
            detail: "unexpected property type".into(),
        })
    }
}

/// Maps a zbus error to the backend's words.
fn map_error(e: zbus::Error, call: String, secs: u64) -> Error {
    match e {
        zbus::Error::MethodError(name, detail, _) => {
            let name = name.as_str().to_string();
            let detail = detail.unwrap_or_else(|| name.clone());
            if name == "org.freedesktop.DBus.Error.ServiceUnknown"
                || name == "org.freedesktop.DBus.Error.NameHasNoOwner"
            {
                Error::NotRunning
            } else if name == "org.freedesktop.DBus.Error.AccessDenied"
                || name.contains("NotAuthorized")
                || detail.contains("NOT_AUTHORIZED")
                || detail.starts_with("ACCESS_DENIED")
            {
                Error::AccessDenied { call, detail }
            } else if name == "org.freedesktop.DBus.Error.NoReply"
                || name == "org.freedesktop.DBus.Error.Timeout"
            {
                Error::Timeout { call, secs }
            } else if name.starts_with(NAME) {
                Error::Refused { call, detail }
            } else {
                Error::Bus {
                    call,
                    detail: format!("{name}: {detail}"),
                }
            }
        }
        zbus::Error::InputOutput(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            Error::Timeout { call, secs }
        }
        other => Error::Bus {
            call,
            detail: other.to_string(),
        },
    }
}

/// True when firewalld owns its name on the system bus (a quick check for detection).
pub fn running() -> bool {
    Bus::connect(5).is_ok()
}
