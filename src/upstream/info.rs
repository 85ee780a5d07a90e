//! What an upstream said of itself when it was connected: its version, capabilities,
//! server info and instructions.

use super::*;

/// What the upstream told us at initialize.
#[derive(Debug, Clone)]
pub struct UpstreamInfo {
    /// The revision it agreed (or `2026-07-28` for a stateless server).
    pub protocol_version: String,
    /// Raw `capabilities` object of the InitializeResult.
    pub capabilities: Box<RawValue>,
    /// Raw `serverInfo` of the InitializeResult.
    pub server_info: Option<Box<RawValue>>,
    /// Its `instructions`, if any.
    pub instructions: Option<String>,
    /// The capabilities offered (top-level keys of `capabilities` whose value is not null).
    offered: Vec<String>,
}

impl UpstreamInfo {
    /// From an InitializeResult (the handshake era).
    pub fn from_result(result: &str) -> Result<UpstreamInfo, String> {
        #[derive(Deserialize)]
        struct Init<'a> {
            #[serde(rename = "protocolVersion")]
            protocol_version: String,
            #[serde(borrow)]
            capabilities: &'a RawValue,
            #[serde(borrow, default, rename = "serverInfo")]
            server_info: Option<&'a RawValue>,
            #[serde(default)]
            instructions: Option<String>,
        }
        let i: Init<'_> =
            serde_json::from_str(result).map_err(|e| format!("bad initialize result: {e}"))?;
        UpstreamInfo::new(
            i.protocol_version,
            i.capabilities,
            i.server_info,
            i.instructions,
        )
    }

    /// From a DiscoverResult: the upstream speaks 2026-07-28 if it lists it.
    pub fn from_discover(result: &str) -> Result<UpstreamInfo, String> {
        #[derive(Deserialize)]
        struct Discover<'a> {
            #[serde(rename = "supportedVersions")]
            supported: Vec<String>,
            #[serde(borrow)]
            capabilities: &'a RawValue,
            #[serde(borrow, default, rename = "serverInfo")]
            server_info: Option<&'a RawValue>,
            #[serde(default)]
            instructions: Option<String>,
        }
        let d: Discover<'_> =
            serde_json::from_str(result).map_err(|e| format!("bad discover result: {e}"))?;
        let version = crate::protocol::modern::VERSION;
        if !d.supported.iter().any(|v| v == version) {
            return Err(format!(
                "the server does not offer {version} (it offers {:?})",
                d.supported
            ));
        }
        UpstreamInfo::new(
            version.to_string(),
            d.capabilities,
            d.server_info,
            d.instructions,
        )
    }

    fn new(
        protocol_version: String,
        capabilities: &RawValue,
        server_info: Option<&RawValue>,
        instructions: Option<String>,
    ) -> Result<UpstreamInfo, String> {
        let caps: HashMap<String, &RawValue> = serde_json::from_str(capabilities.get())
            .map_err(|e| format!("bad capabilities: {e}"))?;
        let offered = caps
            .into_iter()
            .filter(|(_, v)| v.get() != "null")
            .map(|(k, _)| k)
            .collect();
        Ok(UpstreamInfo {
            offered,
            protocol_version,
            capabilities: capabilities.to_owned(),
            server_info: server_info.map(|r| r.to_owned()),
            instructions,
        })
    }

    /// Is this upstream spoken to in the 2026-07-28 era?
    pub fn is_modern(&self) -> bool {
        self.protocol_version == crate::protocol::modern::VERSION
    }

    /// Does the upstream offer this top-level capability (`tools`, `prompts`, ...)?
    pub fn has(&self, cap: &str) -> bool {
        self.offered.iter().any(|c| c == cap)
    }

    /// Does capability `cap` set `flag` to true (e.g. `resources.subscribe`)?
    pub fn declares(&self, cap: &str, flag: &str) -> bool {
        let Some(c) = self.capability(cap) else {
            return false;
        };
        serde_json::from_str::<HashMap<&str, &RawValue>>(c.get())
            .is_ok_and(|m| m.get(flag).is_some_and(|v| v.get() == "true"))
    }

    /// The raw value of capability `cap`, if the server declared it.
    pub fn capability(&self, cap: &str) -> Option<Box<RawValue>> {
        let map: HashMap<&str, &RawValue> = serde_json::from_str(self.capabilities.get()).ok()?;
        map.get(cap)
            .filter(|v| v.get() != "null")
            .map(|v| (*v).to_owned())
    }
}
