//! Docker's `filters` query parameter, in both of its JSON forms:
//! `{"label":["a=b"]}` (bollard, newer clients) and `{"label":{"a=b":true}}` (the CLI).

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use crate::containers::{Container, State};
use crate::events::Event;
use crate::http::ApiError;
use crate::images::normalise_reference;

#[derive(Debug, Default)]
pub(crate) struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the raw parameter; a key outside `allowed` is Docker's "invalid filter".
    pub(crate) fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let Some(raw) = raw.filter(|raw| !raw.trim().is_empty()) else {
            return Ok(Filters::default());
        };
        let value: Value = serde_json::from_str(raw)
            .map_err(|err| ApiError::bad_request(format!("invalid filters {raw:?}: {err}")))?;
        let Value::Object(object) = value else {
            return Err(ApiError::bad_request(format!(
                "invalid filters {raw:?}: expected a JSON object"
            )));
        };
        let mut filters = BTreeMap::new();
        for (key, values) in object {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
            }
            let values = match values {
                Value::Array(items) => items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(text) => Ok(text),
                        other => Err(other),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .ok(),
                Value::Object(map) => Some(
                    map.into_iter()
                        .filter(|(_, on)| on.as_bool() == Some(true))
                        .map(|(text, _)| text)
                        .collect(),
                ),
                _ => None,
            };
            let Some(values) = values else {
                return Err(ApiError::bad_request(format!(
                    "invalid filter '{key}': expected a list of strings"
                )));
            };
            filters.insert(key, values);
        }
        Ok(Filters(filters))
    }

    fn values(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    fn has(&self, key: &str) -> bool {
        !self.values(key).is_empty()
    }

    /// True when `key` is not filtered on or one of its values passes.
    fn any(&self, key: &str, test: impl Fn(&str) -> bool) -> bool {
        let values = self.values(key);
        values.is_empty() || values.iter().any(|value| test(value))
    }

    fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.values("label")
            .iter()
            .all(|want| match want.split_once('=') {
                Some((key, value)) => labels.get(key).is_some_and(|have| have == value),
                None => labels.contains_key(want.as_str()),
            })
    }
}

/// The filters of `GET /containers/json`.
#[derive(Debug)]
pub(crate) struct ContainerFilter {
    filters: Filters,
    names: Vec<Regex>,
    all: bool,
}

const STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

impl ContainerFilter {
    pub(crate) fn parse(raw: Option<&str>, all: bool) -> Result<Self, ApiError> {
        let filters = Filters::parse(raw, &["label", "status", "name", "id", "exited"])?;
        if let Some(bad) = filters
            .values("status")
            .iter()
            .find(|status| !STATUSES.contains(&status.as_str()))
        {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'status={bad}': expected one of {}",
                STATUSES.join(", ")
            )));
        }
        if let Some(bad) = filters
            .values("exited")
            .iter()
            .find(|code| code.parse::<i64>().is_err())
        {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'exited={bad}': expected an exit code"
            )));
        }
        // Docker matches names as unanchored regular expressions; a pattern that is not
        // one is matched literally.
        let names = filters
            .values("name")
            .iter()
            .map(|pattern| {
                Regex::new(pattern)
                    .or_else(|_| Regex::new(&regex::escape(pattern)))
                    .map_err(|err| {
                        // Only a literal too large for the regex engine's size limit.
                        ApiError::bad_request(format!(
                            "invalid filter 'name={}': {err}",
                            crate::admission::cut_short(pattern)
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        // A status filter asks for those states whatever `all` says.
        let all = all || filters.has("status");
        Ok(ContainerFilter {
            filters,
            names,
            all,
        })
    }

    pub(crate) fn matches(&self, c: &Container) -> bool {
        let f = &self.filters;
        let slash_name = format!("/{}", c.name);
        (self.all || c.state.is_live())
            && f.any("status", |status| status == c.state.as_str())
            && f.labels_match(&c.labels)
            && (self.names.is_empty() || self.names.iter().any(|re| re.is_match(&slash_name)))
            && f.any("id", |prefix| c.id.starts_with(prefix))
            && f.any("exited", |code| {
                c.state == State::Exited && code.parse() == Ok(c.exit_code)
            })
    }
}

/// The filters of `GET /events`.
#[derive(Debug)]
pub(crate) struct EventFilter(Filters);

impl EventFilter {
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        Filters::parse(raw, &["type", "container", "event", "label", "image"]).map(EventFilter)
    }

    pub(crate) fn matches(&self, event: &Event) -> bool {
        let f = &self.0;
        f.any("type", |kind| kind == event.kind)
            && f.any("event", |action| action == event.action)
            && f.any("container", |wanted| {
                let name = wanted.strip_prefix('/').unwrap_or(wanted);
                event.actor.id.starts_with(wanted) || event.attribute("name") == Some(name)
            })
            && f.any("image", |image| {
                normalise_reference(image) == normalise_reference(&event.from)
            })
            && f.labels_match(&event.actor.attributes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_json_forms_of_filters_are_accepted() {
        let list = Filters::parse(
            Some(r#"{"label":["a=b"],"status":["running"]}"#),
            &["label", "status"],
        )
        .unwrap();
        assert_eq!(list.values("label"), ["a=b"]);
        let map = Filters::parse(Some(r#"{"label":{"a=b":true,"c":false}}"#), &["label"]).unwrap();
        assert_eq!(map.values("label"), ["a=b"]);
    }

    #[test]
    fn unknown_filter_keys_and_bad_json_are_named() {
        let err = Filters::parse(Some(r#"{"colour":["red"]}"#), &["label"]).unwrap_err();
        assert!(err.message().contains("invalid filter 'colour'"));
        let err = Filters::parse(Some("{nope"), &["label"]).unwrap_err();
        assert!(err.message().contains("{nope"));
        let err = ContainerFilter::parse(Some(r#"{"status":["sleeping"]}"#), false).unwrap_err();
        assert!(err.message().contains("status=sleeping"));
    }

    #[test]
    fn label_filters_must_all_match() {
        let labels = BTreeMap::from([
            ("vexa.user_id".to_owned(), "1".to_owned()),
            ("role".to_owned(), "bot".to_owned()),
        ]);
        let both =
            Filters::parse(Some(r#"{"label":["vexa.user_id=1","role"]}"#), &["label"]).unwrap();
        assert!(both.labels_match(&labels));
        let wrong =
            Filters::parse(Some(r#"{"label":["vexa.user_id=1","role=x"]}"#), &["label"]).unwrap();
        assert!(!wrong.labels_match(&labels));
    }
}
