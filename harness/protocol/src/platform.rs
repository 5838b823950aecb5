//! Meeting platforms and their native meeting id formats (protocol.md section 4).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    GoogleMeet,
    Zoom,
    Teams,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformIdError {
    #[error("parse platform {0:?}: not one of google_meet, zoom, teams")]
    UnknownPlatform(String),
    #[error("validate native_meeting_id {id:?} for {platform}: expected {expected}")]
    BadNativeId {
        platform: Platform,
        id: String,
        expected: &'static str,
    },
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::GoogleMeet, Platform::Zoom, Platform::Teams];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::GoogleMeet => "google_meet",
            Platform::Zoom => "zoom",
            Platform::Teams => "teams",
        }
    }

    /// Checks a native meeting id: Google Meet `abc-defg-hij`, Teams 10-15 digits, Zoom
    /// 9-11 digits.
    pub fn validate_native_id(self, id: &str) -> Result<(), PlatformIdError> {
        let ok = match self {
            Platform::GoogleMeet => {
                let parts: Vec<&str> = id.split('-').collect();
                parts.len() == 3
                    && [3, 4, 3].iter().zip(&parts).all(|(len, part)| {
                        part.len() == *len && part.bytes().all(|b| b.is_ascii_lowercase())
                    })
            }
            Platform::Teams => all_digits(id, 10..=15),
            Platform::Zoom => all_digits(id, 9..=11),
        };
        if ok {
            Ok(())
        } else {
            Err(PlatformIdError::BadNativeId {
                platform: self,
                id: id.to_owned(),
                expected: self.id_format(),
            })
        }
    }

    pub fn id_format(self) -> &'static str {
        match self {
            Platform::GoogleMeet => {
                "three lowercase letters, four, three, joined by '-' (abc-defg-hij)"
            }
            Platform::Teams => "10 to 15 digits",
            Platform::Zoom => "9 to 11 digits",
        }
    }

    /// The meeting URL the production service builds for the bot.
    pub fn meeting_url(self, native_id: &str, passcode: Option<&str>) -> String {
        match (self, passcode) {
            (Platform::GoogleMeet, _) => format!("https://meet.google.com/{native_id}"),
            (Platform::Teams, Some(p)) => format!("https://teams.live.com/meet/{native_id}?p={p}"),
            (Platform::Teams, None) => format!("https://teams.live.com/meet/{native_id}"),
            (Platform::Zoom, Some(p)) => format!("https://zoom.us/j/{native_id}?pwd={p}"),
            (Platform::Zoom, None) => format!("https://zoom.us/j/{native_id}"),
        }
    }
}

fn all_digits(id: &str, lengths: std::ops::RangeInclusive<usize>) -> bool {
    lengths.contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = PlatformIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| PlatformIdError::UnknownPlatform(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Platform::GoogleMeet, "abc-defg-hij", true)]
    #[case(Platform::GoogleMeet, "abc-defg-hi", false)]
    #[case(Platform::GoogleMeet, "ABC-defg-hij", false)]
    #[case(Platform::GoogleMeet, "abc-defg-hij-", false)]
    #[case(Platform::Teams, "1234567890", true)]
    #[case(Platform::Teams, "123456789", false)]
    #[case(Platform::Teams, "1234567890123456", false)]
    #[case(Platform::Zoom, "123456789", true)]
    #[case(Platform::Zoom, "123456789012", false)]
    #[case(Platform::Zoom, "12345678a", false)]
    fn native_id_validation_follows_platform_format(
        #[case] platform: Platform,
        #[case] id: &str,
        #[case] valid: bool,
    ) {
        assert_eq!(
            platform.validate_native_id(id).is_ok(),
            valid,
            "{platform} {id}"
        );
    }

    #[test]
    fn unknown_platform_names_itself_in_the_error() {
        let err = "webex".parse::<Platform>().unwrap_err();
        assert!(err.to_string().contains("webex"));
    }
}
