//! Environment rules: extra variables for every later-created container that matches.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admission::{self, EnvScope, Refusal};

/// Which containers a rule applies to; every given field must match, none given matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMatch {
    /// `BOT_CONFIG.nativeMeetingId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_meeting_id: Option<String>,
    /// `BOT_CONFIG.meeting_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
}

/// The body of `POST /_runtime/rules`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    #[serde(rename = "match", default)]
    pub matcher: RuleMatch,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub id: u64,
    #[serde(flatten)]
    pub spec: RuleSpec,
}

impl RuleSpec {
    /// Refuses what no matching container could start with, or a request may not set;
    /// names the first variable at fault.
    pub fn validate(&self) -> Result<(), Refusal> {
        admission::check_env_map(EnvScope::Rule, &self.env)
    }
}

impl RuleMatch {
    pub(crate) fn matches(
        &self,
        name: &str,
        bot_config: Option<&serde_json::Map<String, Value>>,
    ) -> bool {
        let prefix_ok = self
            .name_prefix
            .as_deref()
            .is_none_or(|prefix| name.starts_with(prefix));
        let native_ok = self.native_meeting_id.as_deref().is_none_or(|want| {
            bot_config
                .and_then(|config| config.get("nativeMeetingId"))
                .and_then(Value::as_str)
                == Some(want)
        });
        let meeting_ok = self.meeting_id.is_none_or(|want| {
            bot_config
                .and_then(|config| config.get("meeting_id"))
                .and_then(Value::as_i64)
                == Some(want)
        });
        prefix_ok && native_ok && meeting_ok
    }
}

/// The merged env of every matching rule, later rules winning.
pub(crate) fn env_for(
    rules: &[Rule],
    name: &str,
    bot_config: Option<&serde_json::Map<String, Value>>,
) -> BTreeMap<String, String> {
    rules
        .iter()
        .filter(|rule| rule.spec.matcher.matches(name, bot_config))
        .flat_map(|rule| rule.spec.env.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: u64, matcher: RuleMatch, var: &str) -> Rule {
        Rule {
            id,
            spec: RuleSpec {
                matcher,
                env: BTreeMap::from([("V".to_owned(), var.to_owned())]),
            },
        }
    }

    #[test]
    fn every_given_field_must_match_and_later_rules_win() {
        let config: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"meeting_id": 4, "nativeMeetingId": "abc-defg-hij"}"#)
                .unwrap();
        let rules = [
            rule(1, RuleMatch::default(), "all"),
            rule(
                2,
                RuleMatch {
                    meeting_id: Some(4),
                    name_prefix: Some("vexa-bot-4-".into()),
                    ..RuleMatch::default()
                },
                "four",
            ),
            rule(
                3,
                RuleMatch {
                    native_meeting_id: Some("zzz-zzzz-zzz".into()),
                    ..RuleMatch::default()
                },
                "other",
            ),
        ];
        assert_eq!(env_for(&rules, "vexa-bot-4-aa", Some(&config))["V"], "four");
        assert_eq!(env_for(&rules, "vexa-bot-5-aa", Some(&config))["V"], "all");
        assert_eq!(env_for(&rules, "vexa-bot-4-aa", None)["V"], "all");
    }
}
