//! The `firewalld:` config section.

use serde::{Deserialize, Serialize};

use crate::Error;

/// The `firewalld:` section of the config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Zones that get cf-allow's rich rules; empty = the zones of the interfaces that carry
    /// the default routes (an interface in no zone counts as the default zone), else the
    /// default zone.
    pub zones: Vec<String>,
    /// Drop TCP to the configured ports from every source outside cf-allow's ipsets, before
    /// the zone's services, ports and priority-0 rich rules (rich rules at priority -1).
    pub lockdown: bool,
    /// How long one D-Bus call may take (a reload of a large configuration takes seconds).
    pub timeout_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            zones: Vec::new(),
            lockdown: false,
            timeout_secs: 30,
        }
    }
}

impl Settings {
    /// Checks what the schema cannot, given the configured ports.
    pub fn validate(&self, ports: &[u16]) -> Result<(), Error> {
        if !(1..=3600).contains(&self.timeout_secs) {
            return Err(Error::Settings(format!(
                "timeout_secs: {} is not a timeout in seconds (1-3600)",
                self.timeout_secs
            )));
        }
        for zone in &self.zones {
            let ok = !zone.is_empty()
                && zone.len() <= 17
                && zone
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/'));
            if !ok {
                return Err(Error::Settings(format!(
                    "zones: {zone:?} is not a firewalld zone name (letters, digits, '_', '-', '/', at most 17 characters)"
                )));
            }
        }
        if self.lockdown && ports.is_empty() {
            return Err(Error::Settings(
                "lockdown with `ports: []` would drop every TCP port (SSH too) for all other sources; list the ports to lock down".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        assert!(Settings::default().validate(&[80, 443]).is_ok());
        let bad_zone = Settings {
            zones: vec!["pub lic".into()],
            ..Settings::default()
        };
        let msg = bad_zone.validate(&[443]).expect_err("bad zone").to_string();
        assert!(
            msg.contains("\"pub lic\" is not a firewalld zone name"),
            "{msg}"
        );
        let lockdown_all = Settings {
            lockdown: true,
            ..Settings::default()
        };
        let msg = lockdown_all
            .validate(&[])
            .expect_err("lockdown all")
            .to_string();
        assert!(msg.contains("ports: []"), "{msg}");
        let slow = Settings {
            timeout_secs: 0,
            ..Settings::default()
        };
        assert!(slow.validate(&[443]).is_err());
    }
}
