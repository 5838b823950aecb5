//! Service profiles. `legacy` reproduces the incident's code, bugs included; the fixes
//! arrive as switches of their own (the fixed-profile issue).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Legacy,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("select profile {0:?}: the only profile implemented so far is `legacy`")]
pub struct UnknownProfile(String);

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "legacy" => Ok(Profile::Legacy),
            other => Err(UnknownProfile(other.to_owned())),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Profile::Legacy => f.write_str("legacy"),
        }
    }
}
