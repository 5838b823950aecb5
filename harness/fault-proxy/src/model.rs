//! The JSON shapes of Toxiproxy's REST API (v2), shared by the server and the client.
//!
//! A toxic on the wire is `{"name", "type", "stream", "toxicity", "attributes"}`; here its
//! type and attributes are one typed value, [`ToxicKind`].

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// A proxy as the API shows it (`GET /proxies/{name}`), with its toxics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proxy {
    pub name: String,
    /// The address it listens on: once started, the bound address (port 0 resolved).
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    #[serde(default)]
    pub toxics: Vec<Toxic>,
}

/// The body of `POST /proxies`, and one entry of `POST /populate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NewProxy {
    #[serde(default)]
    pub name: String,
    /// Empty: 127.0.0.1 on a free port.
    #[serde(default)]
    pub listen: String,
    #[serde(default)]
    pub upstream: String,
    /// Absent: enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl NewProxy {
    pub fn new(
        name: impl Into<String>,
        listen: impl Into<String>,
        upstream: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            listen: listen.into(),
            upstream: upstream.into(),
            enabled: None,
        }
    }
}

/// The body of `POST /proxies/{name}`: a field left out keeps its value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProxyUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The answer to `POST /populate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Populated {
    #[serde(default)]
    pub proxies: Vec<Proxy>,
}

/// Every error answer: `{"error": "...", "status": N}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub status: u16,
}

/// The answer to `GET /version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub version: String,
}

/// The direction a toxic acts on: `upstream` is client to server, `downstream` server to
/// client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream,
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }

    /// Case-insensitive, as Toxiproxy reads it.
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("upstream") {
            Some(Stream::Upstream)
        } else if text.eq_ignore_ascii_case("downstream") {
            Some(Stream::Downstream)
        } else {
            None
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A toxic's type with its attributes. Times are milliseconds unless named otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToxicKind {
    /// Delays each chunk by `latency` ± `jitter` ms.
    Latency { latency: u64, jitter: u64 },
    /// Passes at most `rate` KB/s (1 KB = 1000 bytes, as Toxiproxy counts).
    Bandwidth { rate: u64 },
    /// Delays the close (FIN) by `delay` ms.
    SlowClose { delay: u64 },
    /// Drops all data; closes the connection after `timeout` ms (0: never).
    Timeout { timeout: u64 },
    /// Resets the connection (TCP RST) `timeout` ms after the toxic applies.
    ResetPeer { timeout: u64 },
    /// Cuts each chunk into slices of `average_size` ± `size_variation` bytes, `delay`
    /// microseconds apart.
    Slicer {
        average_size: u64,
        size_variation: u64,
        delay: u64,
    },
    /// Closes the connection once `bytes` bytes have passed.
    LimitData { bytes: u64 },
}

/// The toxic types this crate knows, as the API names them.
pub const TOXIC_TYPES: [&str; 7] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
];

/// The longest time a toxic attribute may give, in milliseconds: a year. Longer is no
/// fault a run could see, and the bound keeps every timer the toxics set far from
/// overflowing, however many of them add up.
pub const MAX_TOXIC_MILLIS: u64 = 365 * 24 * 3600 * 1000;
/// The same bound for `slicer`'s `delay`, in microseconds.
pub const MAX_TOXIC_MICROS: u64 = MAX_TOXIC_MILLIS * 1000;

/// Why attributes do not make a toxic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("`{0}` (known types: {types})", types = TOXIC_TYPES.join(", "))]
    UnknownType(String),
    #[error("unknown attribute `{name}` for a {toxic} toxic (it takes {expected})")]
    UnknownAttribute {
        toxic: &'static str,
        name: String,
        expected: String,
    },
    #[error("attribute `{name}` of a {toxic} toxic must be a non-negative integer, not {value}")]
    BadValue {
        toxic: &'static str,
        name: String,
        value: String,
    },
    #[error("a {toxic} toxic {rule}")]
    Invalid { toxic: &'static str, rule: String },
    #[error(
        "attribute `{name}` of a {toxic} toxic must be at most {max} ({unit}: a year), not {value}"
    )]
    TooLarge {
        toxic: &'static str,
        name: &'static str,
        value: u64,
        max: u64,
        unit: &'static str,
    },
}

impl ToxicKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
        }
    }

    /// The attributes as name-value pairs, in the API's order.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        match *self {
            ToxicKind::Latency { latency, jitter } => {
                vec![("latency", latency), ("jitter", jitter)]
            }
            ToxicKind::Bandwidth { rate } => vec![("rate", rate)],
            ToxicKind::SlowClose { delay } => vec![("delay", delay)],
            ToxicKind::Timeout { timeout } | ToxicKind::ResetPeer { timeout } => {
                vec![("timeout", timeout)]
            }
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => vec![
                ("average_size", average_size),
                ("size_variation", size_variation),
                ("delay", delay),
            ],
            ToxicKind::LimitData { bytes } => vec![("bytes", bytes)],
        }
    }

    /// The `attributes` object of the wire format.
    pub fn attributes(&self) -> Map<String, Value> {
        self.fields()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::from(value)))
            .collect()
    }

    /// A toxic of `type_name` from its `attributes`; absent ones are 0, as in Toxiproxy.
    /// Strict: an attribute the type does not take is an error.
    pub fn from_attributes(
        type_name: &str,
        attributes: &Map<String, Value>,
    ) -> Result<Self, AttributeError> {
        let zero = Self::zero(type_name)?;
        let names: Vec<&'static str> = zero.fields().iter().map(|(name, _)| *name).collect();
        let mut values = vec![0; names.len()];
        for (name, value) in attributes {
            let Some(index) = names.iter().position(|known| known == name) else {
                return Err(AttributeError::UnknownAttribute {
                    toxic: zero.type_name(),
                    name: name.clone(),
                    expected: names.join(", "),
                });
            };
            values[index] = value.as_u64().ok_or_else(|| AttributeError::BadValue {
                toxic: zero.type_name(),
                name: name.clone(),
                value: value.to_string(),
            })?;
        }
        Ok(zero.with_values(&values))
    }

    /// This toxic with the attributes in `changes` replaced (an update keeps the rest).
    pub fn with_attributes(&self, changes: &Map<String, Value>) -> Result<Self, AttributeError> {
        let mut merged = self.attributes();
        merged.extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self::from_attributes(self.type_name(), &merged)
    }

    /// Rules the server enforces beyond the types: values that would stall or spin, and
    /// times beyond [`MAX_TOXIC_MILLIS`].
    pub fn validate(&self) -> Result<(), AttributeError> {
        for (name, value) in self.fields() {
            let (max, unit) = match (self, name) {
                (ToxicKind::Slicer { .. }, "delay") => (MAX_TOXIC_MICROS, "microseconds"),
                (_, "latency" | "jitter" | "delay" | "timeout") => {
                    (MAX_TOXIC_MILLIS, "milliseconds")
                }
                _ => continue,
            };
            if value > max {
                return Err(AttributeError::TooLarge {
                    toxic: self.type_name(),
                    name,
                    value,
                    max,
                    unit,
                });
            }
        }
        let invalid = |rule: String| {
            Err(AttributeError::Invalid {
                toxic: self.type_name(),
                rule,
            })
        };
        match *self {
            ToxicKind::Bandwidth { rate: 0 } => {
                invalid("needs a rate of at least 1 KB/s (use `timeout` to stop data)".into())
            }
            ToxicKind::Slicer {
                average_size: 0, ..
            } => invalid("needs an average_size of at least 1".into()),
            ToxicKind::Slicer {
                average_size,
                size_variation,
                ..
            } if size_variation >= average_size => invalid(format!(
                "needs size_variation ({size_variation}) below average_size ({average_size})"
            )),
            _ => Ok(()),
        }
    }

    fn zero(type_name: &str) -> Result<Self, AttributeError> {
        Ok(match type_name {
            "latency" => ToxicKind::Latency {
                latency: 0,
                jitter: 0,
            },
            "bandwidth" => ToxicKind::Bandwidth { rate: 0 },
            "slow_close" => ToxicKind::SlowClose { delay: 0 },
            "timeout" => ToxicKind::Timeout { timeout: 0 },
            "reset_peer" => ToxicKind::ResetPeer { timeout: 0 },
            "slicer" => ToxicKind::Slicer {
                average_size: 0,
                size_variation: 0,
                delay: 0,
            },
            "limit_data" => ToxicKind::LimitData { bytes: 0 },
            other => return Err(AttributeError::UnknownType(other.to_owned())),
        })
    }

    /// Same type, the values in [`Self::fields`] order.
    fn with_values(self, v: &[u64]) -> Self {
        match self {
            ToxicKind::Latency { .. } => ToxicKind::Latency {
                latency: v[0],
                jitter: v[1],
            },
            ToxicKind::Bandwidth { .. } => ToxicKind::Bandwidth { rate: v[0] },
            ToxicKind::SlowClose { .. } => ToxicKind::SlowClose { delay: v[0] },
            ToxicKind::Timeout { .. } => ToxicKind::Timeout { timeout: v[0] },
            ToxicKind::ResetPeer { .. } => ToxicKind::ResetPeer { timeout: v[0] },
            ToxicKind::Slicer { .. } => ToxicKind::Slicer {
                average_size: v[0],
                size_variation: v[1],
                delay: v[2],
            },
            ToxicKind::LimitData { .. } => ToxicKind::LimitData { bytes: v[0] },
        }
    }
}

/// A toxic as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireToxic", into = "WireToxic")]
pub struct Toxic {
    pub name: String,
    pub stream: Stream,
    /// The probability that the toxic applies to a connection, from 0 to 1.
    pub toxicity: f32,
    pub kind: ToxicKind,
}

#[derive(Serialize, Deserialize)]
struct WireToxic {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    stream: String,
    toxicity: f32,
    #[serde(default)]
    attributes: Map<String, Value>,
}

impl From<Toxic> for WireToxic {
    fn from(toxic: Toxic) -> Self {
        WireToxic {
            name: toxic.name,
            kind: toxic.kind.type_name().to_owned(),
            stream: toxic.stream.as_str().to_owned(),
            toxicity: toxic.toxicity,
            attributes: toxic.kind.attributes(),
        }
    }
}

impl TryFrom<WireToxic> for Toxic {
    type Error = String;

    // Lenient on attributes it does not know, so a newer server's extras do not break reading.
    fn try_from(wire: WireToxic) -> Result<Self, String> {
        let stream = Stream::parse(&wire.stream)
            .ok_or_else(|| format!("unknown stream `{}` of toxic {}", wire.stream, wire.name))?;
        let zero = ToxicKind::from_attributes(&wire.kind, &Map::new())
            .map_err(|err| format!("toxic {}: {err}", wire.name))?;
        let known: Vec<&str> = zero.fields().iter().map(|(name, _)| *name).collect();
        let attributes: Map<String, Value> = wire
            .attributes
            .into_iter()
            .filter(|(name, _)| known.contains(&name.as_str()))
            .collect();
        let kind = ToxicKind::from_attributes(&wire.kind, &attributes)
            .map_err(|err| format!("toxic {}: {err}", wire.name))?;
        Ok(Toxic {
            name: wire.name,
            stream,
            toxicity: wire.toxicity,
            kind,
        })
    }
}

/// The body of `POST /proxies/{name}/toxics`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewToxic {
    /// None: the server names it `<type>_<stream>`.
    pub name: Option<String>,
    pub stream: Stream,
    pub toxicity: f32,
    pub kind: ToxicKind,
}

impl NewToxic {
    /// A downstream toxic that always applies, named by the server.
    pub fn new(kind: ToxicKind) -> Self {
        Self {
            name: None,
            stream: Stream::Downstream,
            toxicity: 1.0,
            kind,
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn stream(mut self, stream: Stream) -> Self {
        self.stream = stream;
        self
    }

    pub fn toxicity(mut self, toxicity: f32) -> Self {
        self.toxicity = toxicity;
        self
    }
}

impl Serialize for NewToxic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A struct, not a `Value`, so an f32 toxicity keeps its short form (0.8, not 0.800000011920929).
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            name: Option<&'a str>,
            #[serde(rename = "type")]
            kind: &'static str,
            stream: &'static str,
            toxicity: f32,
            attributes: Map<String, Value>,
        }
        Wire {
            name: self.name.as_deref(),
            kind: self.kind.type_name(),
            stream: self.stream.as_str(),
            toxicity: self.toxicity,
            attributes: self.kind.attributes(),
        }
        .serialize(serializer)
    }
}

/// The body of `POST /proxies/{name}/toxics/{toxic}`: attributes left out keep their value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToxicUpdate {
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxicity: Option<f32>,
}

impl ToxicUpdate {
    /// Sets every attribute of `kind` (which must be the toxic's own type).
    pub fn attributes(kind: &ToxicKind) -> Self {
        Self {
            attributes: kind.attributes(),
            toxicity: None,
        }
    }

    pub fn toxicity(mut self, toxicity: f32) -> Self {
        self.toxicity = Some(toxicity);
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_toxic_reads_and_writes_toxiproxys_shape() {
        let wire = json!({
            "name": "latency_downstream", "type": "latency", "stream": "downstream",
            "toxicity": 1.0, "attributes": {"latency": 100, "jitter": 5}
        });
        let toxic: Toxic = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(
            toxic.kind,
            ToxicKind::Latency {
                latency: 100,
                jitter: 5
            }
        );
        assert_eq!(serde_json::to_value(&toxic).unwrap(), wire);
    }

    #[test]
    fn absent_attributes_are_zero_and_unknown_ones_are_refused() {
        let attrs = json!({"latency": 7}).as_object().unwrap().clone();
        assert_eq!(
            ToxicKind::from_attributes("latency", &attrs).unwrap(),
            ToxicKind::Latency {
                latency: 7,
                jitter: 0
            }
        );
        let typo = json!({"latncy": 7}).as_object().unwrap().clone();
        let err = ToxicKind::from_attributes("latency", &typo).unwrap_err();
        assert!(err.to_string().contains("latncy"), "{err}");
        let negative = json!({"latency": -1}).as_object().unwrap().clone();
        assert!(matches!(
            ToxicKind::from_attributes("latency", &negative),
            Err(AttributeError::BadValue { .. })
        ));
    }

    #[test]
    fn an_update_keeps_the_attributes_it_leaves_out() {
        let kind = ToxicKind::Slicer {
            average_size: 10,
            size_variation: 2,
            delay: 5,
        };
        let changes = json!({"delay": 9}).as_object().unwrap().clone();
        assert_eq!(
            kind.with_attributes(&changes).unwrap(),
            ToxicKind::Slicer {
                average_size: 10,
                size_variation: 2,
                delay: 9
            }
        );
    }
}
