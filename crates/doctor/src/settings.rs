//! The `doctor:` section of the config: what the optional `dns` check needs.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Cloudflare's API, unless `doctor.cloudflare_api` says otherwise.
pub const DEFAULT_API: &str = "https://api.cloudflare.com/client/v4";

/// `doctor: {hostnames, cloudflare_api_token_file, cloudflare_api, public_addresses}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The proxied names of this origin (`www.example.com`); empty = no `dns` check.
    pub hostnames: Vec<String>,
    /// A file holding a Cloudflare API token with Zone:Read and DNS:Read; root-owned, 0600.
    pub cloudflare_api_token_file: Option<PathBuf>,
    /// The API's base URL (a proxy, or a test server).
    pub cloudflare_api: String,
    /// This origin's public addresses when NAT hides them from the host.
    pub public_addresses: Vec<IpAddr>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            hostnames: Vec::new(),
            cloudflare_api_token_file: None,
            cloudflare_api: DEFAULT_API.to_string(),
            public_addresses: Vec::new(),
        }
    }
}
