//! Properties of the API over its inputs: whatever a caller sends (proxy names, listen
//! and upstream addresses, toxic attributes, populate batches, any body to any path), the
//! answer is a 2xx, or a 4xx in the API's JSON shape with a message, never a 5xx; and a
//! refused request leaves everything as it was, an accepted one shows as answered.
//!
//! Each case runs against a fresh server holding one proxy, `p`, with one toxic. The
//! addresses drawn never make the server ask DNS (only `localhost`, from the hosts
//! file): a name that cannot resolve is refused by its form first, or is an upstream,
//! which is only dialled when a client connects.

mod common;

use common::Rig;
use fault_proxy::model::{MAX_TOXIC_MILLIS, NewToxic, TOXIC_TYPES, ToxicKind};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reqwest::{Method, Url};
use serde_json::{Map, Value, json};

/// Stands for the address of proxy `p`, taken, in drawn listen addresses.
const TAKEN: &str = "<taken>";

struct Api {
    _rig: Rig,
    http: reqwest::Client,
    base: Url,
    /// Proxy `p`'s address.
    taken: String,
}

impl Api {
    async fn start() -> Self {
        let rig = Rig::new().await;
        let p = rig.proxy("p").await;
        let latency = ToxicKind::Latency {
            latency: 5,
            jitter: 1,
        };
        rig.client
            .add_toxic("p", &NewToxic::new(latency))
            .await
            .expect("add a toxic");
        Self {
            base: Url::parse(&rig.server.url()).expect("the server's URL"),
            http: reqwest::Client::new(),
            taken: p.listen,
            _rig: rig,
        }
    }

    /// The URL of `segments`, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("a base URL")
            .extend(segments);
        url
    }

    async fn call(&self, method: Method, segments: &[&str], body: Option<Vec<u8>>) -> Answer {
        let mut request = self.http.request(method, self.url(segments));
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .expect("an answer, not a dropped connection");
        let status = response.status().as_u16();
        let text = response.text().await.expect("the answer's body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer { status, body }
    }

    async fn post(&self, segments: &[&str], body: &Value) -> Answer {
        let body = body.to_string().replace(TAKEN, &self.taken);
        self.call(Method::POST, segments, Some(body.into_bytes()))
            .await
    }

    /// Everything the API shows: the proxies, with their toxics.
    async fn state(&self) -> Value {
        let answer = self.call(Method::GET, &["proxies"], None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    /// A 2xx, or a 4xx saying what was wrong in the API's shape; never a 5xx.
    fn check(&self) -> Result<(), TestCaseError> {
        prop_assert!(
            (200..500).contains(&self.status),
            "HTTP {}: {}",
            self.status,
            self.body
        );
        if self.status >= 400 {
            prop_assert_eq!(&self.body["status"], &json!(self.status), "{}", self.body);
            let message = self.body["error"].as_str().unwrap_or_default();
            prop_assert!(!message.is_empty(), "no message in {}", self.body);
        }
        Ok(())
    }

    fn refused(&self) -> bool {
        self.status >= 400
    }
}

fn run(case: impl Future<Output = Result<(), TestCaseError>>) -> Result<(), TestCaseError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(case)
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,12}",
        Just(String::new()),
        Just("p".to_owned()),
        Just("a/b".to_owned()),
        Just("%2F..".to_owned()),
        Just("bot:m1:redis".to_owned()),
    ]
}

fn listen() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("127.0.0.1:0".to_owned()),
        Just("localhost:0".to_owned()),
        Just("[::1]:0".to_owned()),
        Just("0.0.0.0:0".to_owned()),
        // Not this host's (TEST-NET-1).
        Just("192.0.2.1:0".to_owned()),
        Just(TAKEN.to_owned()),
        // No port, a port that is no number or too large, a host that is no host.
        "[^:]{0,12}",
        "[a-z0-9.]{1,8}:[a-z]{0,4}",
        "127\\.0\\.0\\.1:(65536|99999|-1|1e3|0x10)",
        "[ /@#?%é\\[]{1,3}:[0-9]{1,4}",
        "\\[[0-9a-f:]{0,6}\\]?:0",
    ]
}

fn upstream() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("127.0.0.1:1".to_owned()),
        Just("upstream.invalid:6379".to_owned()),
        Just(String::new()),
        Just("127.0.0.1:0".to_owned()),
        "\\PC{0,16}",
    ]
}

fn optional_bool() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        Just(json!("yes")),
    ]
}

fn attribute_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "latency",
            "jitter",
            "rate",
            "delay",
            "timeout",
            "average_size",
            "size_variation",
            "bytes",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{0,10}",
    ]
}

fn attribute_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0..=2 * MAX_TOXIC_MILLIS).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,6}".prop_map(Value::from),
        Just(Value::Null),
        Just(json!([1])),
        Just(json!({"ms": 1})),
    ]
}

fn attributes() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::collection::btree_map(attribute_name(), attribute_value(), 0..4)
            .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        1 => attribute_value(),
    ]
}

fn toxicity() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-1.0f64..2.0).prop_map(Value::from),
        Just(json!(1)),
        Just(json!(0)),
        Just(json!("0.5")),
        Just(Value::Null),
    ]
}

/// A toxic's body: each field drawn, left out (None), or of the wrong kind.
fn toxic() -> impl Strategy<Value = Value> {
    let type_name = prop_oneof![
        prop::sample::select(TOXIC_TYPES.to_vec()).prop_map(Value::from),
        "\\PC{0,10}".prop_map(Value::from),
        Just(json!(7)),
    ];
    let stream = prop_oneof![
        Just(json!("upstream")),
        Just(json!("downstream")),
        Just(json!("UpStream")),
        "\\PC{0,8}".prop_map(Value::from),
        Just(json!(true)),
    ];
    let toxic_name = prop_oneof![
        Just(json!("")),
        "\\PC{0,10}".prop_map(Value::from),
        Just(json!("latency_downstream")),
    ];
    (
        prop::option::of(toxic_name),
        prop::option::of(type_name),
        prop::option::of(stream),
        prop::option::of(toxicity()),
        prop::option::of(attributes()),
    )
        .prop_map(|(name, type_name, stream, toxicity, attributes)| {
            let fields = [
                ("name", name),
                ("type", type_name),
                ("stream", stream),
                ("toxicity", toxicity),
                ("attributes", attributes),
            ];
            Value::Object(
                fields
                    .into_iter()
                    .filter_map(|(key, value)| value.map(|value| (key.to_owned(), value)))
                    .collect(),
            )
        })
}

fn proxy_spec() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        3 => prop::sample::select(vec!["a", "b", "p"]).prop_map(str::to_owned),
        1 => name(),
    ];
    let upstream = prop_oneof![3 => Just("127.0.0.1:1".to_owned()), 1 => upstream()];
    (name, listen(), upstream, optional_bool()).prop_map(|(name, listen, upstream, enabled)| {
        json!({"name": name, "listen": listen, "upstream": upstream, "enabled": enabled})
    })
}

/// A name that cannot be a path segment of its own (the URL drops `.` and `..`).
fn addressable(name: &str) -> bool {
    !matches!(name, "" | "." | "..")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_new_proxy_is_created_or_refused_with_a_4xx_that_changes_nothing(
        name in name(),
        listen in listen(),
        upstream in upstream(),
        enabled in optional_bool(),
    ) {
        run(async {
            let api = Api::start().await;
            let before = api.state().await;
            let spec = json!({
                "name": name, "listen": listen, "upstream": upstream, "enabled": enabled,
            });
            let answer = api.post(&["proxies"], &spec).await;
            answer.check()?;
            if answer.refused() {
                prop_assert_eq!(api.state().await, before);
                return Ok(());
            }
            prop_assert_eq!(answer.status, 201);
            prop_assert_eq!(&answer.body["name"], &json!(name));
            prop_assert_eq!(&answer.body["upstream"], &json!(upstream));
            let enabled = answer.body["enabled"].as_bool().unwrap_or(false);
            let listening = answer.body["listen"].as_str().unwrap_or_default();
            prop_assert!(!enabled || !listening.ends_with(":0"), "{}", answer.body);
            prop_assert_eq!(&api.state().await[name.as_str()], &answer.body);
            if addressable(&name) {
                let shown = api.call(Method::GET, &["proxies", &name], None).await;
                prop_assert_eq!(shown.body, answer.body);
            }
            Ok(())
        })?;
    }

    #[test]
    fn any_populate_applies_whole_or_is_refused_with_a_4xx_that_changes_nothing(
        batch in prop::collection::vec(proxy_spec(), 0..5),
    ) {
        run(async {
            let api = Api::start().await;
            let before = api.state().await;
            let answer = api.post(&["populate"], &Value::Array(batch.clone())).await;
            answer.check()?;
            let after = api.state().await;
            if answer.refused() {
                prop_assert_eq!(after, before);
                return Ok(());
            }
            prop_assert_eq!(answer.status, 201);
            let populated = answer.body["proxies"].as_array().cloned().unwrap_or_default();
            prop_assert_eq!(populated.len(), batch.len());
            for (spec, proxy) in batch.iter().zip(&populated) {
                let name = spec["name"].as_str().unwrap_or_default();
                prop_assert_eq!(&proxy["name"], &spec["name"]);
                prop_assert_eq!(&proxy["upstream"], &spec["upstream"]);
                prop_assert_eq!(&after[name], proxy);
            }
            if !batch.iter().any(|spec| spec["name"] == "p") {
                prop_assert_eq!(&after["p"], &before["p"]);
            }
            Ok(())
        })?;
    }

    #[test]
    fn any_new_toxic_is_added_or_refused_with_a_4xx_that_changes_nothing(toxic in toxic()) {
        run(async {
            let api = Api::start().await;
            let before = api.state().await;
            let answer = api.post(&["proxies", "p", "toxics"], &toxic).await;
            answer.check()?;
            let after = api.state().await;
            if answer.refused() {
                prop_assert_eq!(after, before);
                return Ok(());
            }
            prop_assert_eq!(answer.status, 200);
            let listed = after["p"]["toxics"].as_array().cloned().unwrap_or_default();
            prop_assert_eq!(listed.len(), 2);
            prop_assert!(listed.contains(&answer.body), "{} not in {:?}", answer.body, listed);
            let name = answer.body["name"].as_str().unwrap_or_default();
            if addressable(name) {
                let path = ["proxies", "p", "toxics", name];
                let shown = api.call(Method::GET, &path, None).await;
                prop_assert_eq!(shown.body, answer.body);
            }
            Ok(())
        })?;
    }

    #[test]
    fn any_toxic_update_is_applied_or_refused_with_a_4xx_that_changes_nothing(
        attributes in prop::option::of(attributes()),
        toxicity in prop::option::of(toxicity()),
    ) {
        run(async {
            let api = Api::start().await;
            let before = api.state().await;
            let mut update = Map::new();
            update.extend(attributes.map(|a| ("attributes".to_owned(), a)));
            update.extend(toxicity.map(|t| ("toxicity".to_owned(), t)));
            let path = ["proxies", "p", "toxics", "latency_downstream"];
            let answer = api.post(&path, &Value::Object(update)).await;
            answer.check()?;
            if answer.refused() {
                prop_assert_eq!(api.state().await, before);
                return Ok(());
            }
            prop_assert_eq!(answer.status, 200);
            let shown = api.call(Method::GET, &path, None).await;
            prop_assert_eq!(shown.body, answer.body);
            Ok(())
        })?;
    }

    #[test]
    fn any_request_to_any_path_is_answered_2xx_or_4xx_in_the_apis_shape(
        method in prop::sample::select(vec![
            Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::PUT, Method::HEAD,
        ]),
        path in prop_oneof![
            prop::sample::select(vec!["version", "reset", "populate", "proxies"])
                .prop_map(|path| vec![path.to_owned()]),
            prop_oneof![Just("p".to_owned()), name()]
                .prop_map(|proxy| vec!["proxies".to_owned(), proxy]),
            prop_oneof![Just("p".to_owned()), name()]
                .prop_map(|proxy| vec!["proxies".to_owned(), proxy, "toxics".to_owned()]),
            (
                prop_oneof![Just("p".to_owned()), name()],
                prop_oneof![Just("latency_downstream".to_owned()), name()],
            )
                .prop_map(|(proxy, toxic)| {
                    vec!["proxies".to_owned(), proxy, "toxics".to_owned(), toxic]
                }),
            prop::collection::vec("\\PC{0,6}", 0..4),
        ],
        body in prop_oneof![
            Just(None),
            prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
            prop::sample::select(vec![
                "{}",
                "[]",
                "null",
                "[{}]",
                r#"{"name": "x", "upstream": "127.0.0.1:1"}"#,
                r#"{"type": "timeout", "attributes": {"timeout": 1}}"#,
            ])
            .prop_map(|text| Some(text.as_bytes().to_vec())),
            toxic().prop_map(|toxic| Some(toxic.to_string().into_bytes())),
            proxy_spec().prop_map(|spec| Some(spec.to_string().into_bytes())),
        ],
    ) {
        run(async {
            let api = Api::start().await;
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            let is_head = method == Method::HEAD;
            let answer = api.call(method, &segments, body).await;
            if is_head {
                // No body to hold a message: the status alone.
                prop_assert!(answer.status < 500, "HTTP {}", answer.status);
            } else {
                answer.check()?;
            }
            // The server still serves.
            api.state().await;
            Ok(())
        })?;
    }
}
