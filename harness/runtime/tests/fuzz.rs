//! Property-based: whatever a caller sends to create, rules, events or any other endpoint,
//! the runtime answers a 2xx or 3xx, or a 4xx with a message; never a 5xx, a dropped
//! connection or a half-created container. One real runtime per property, driven over
//! loopback HTTP; a case that is accepted is also started, to show it can be.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Harness, url_encode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use runtime::{MAX_ENV_BYTES, MAX_NAME_LEN, MAX_VAR_BYTES, MAX_VARS};
use serde_json::{Value, json};

/// A runtime for one property. The harness is dropped before the tokio runtime it uses.
struct Fuzz {
    h: Harness,
    rt: tokio::runtime::Runtime,
    counter: AtomicU64,
}

impl Fuzz {
    fn start() -> Fuzz {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let h = rt.block_on(Harness::start());
        Fuzz {
            h,
            rt,
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn run<S: Strategy>(
        &self,
        cases: u32,
        strategy: S,
        test: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) where
        S::Value: std::fmt::Debug,
    {
        let mut runner = TestRunner::new(Config {
            cases,
            // Nothing is written into the source tree; a failure prints its minimal input.
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(err) = runner.run(&strategy, test) {
            panic!("{err}");
        }
    }
}

/// An answer: the status and the body, JSON when it parses.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Result<Answer, TestCaseError> {
    // A handler that panics drops the connection: that is an error here, not an answer.
    let response = request
        .send()
        .await
        .map_err(|err| TestCaseError::fail(format!("no answer: {err}")))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|err| TestCaseError::fail(format!("the answer broke off: {err}")))?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer { status, body })
}

/// Never a 5xx; any 4xx carries Docker's JSON `message`.
fn check_answer(what: &str, answer: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(answer.status < 500, "{what}: {answer:?}");
    if answer.status >= 400 {
        let message = answer.body["message"].as_str().unwrap_or_default();
        prop_assert!(!message.is_empty(), "{what}: no message in {answer:?}");
    }
    Ok(())
}

async fn record_count(h: &Harness) -> Result<usize, TestCaseError> {
    let answer = send(h.http.get(h.url("/_runtime/containers"))).await?;
    prop_assert_eq!(answer.status, 200);
    Ok(answer.body.as_array().map_or(0, Vec::len))
}

/// Starts an accepted container, which must work, then removes it.
async fn start_and_remove(h: &Harness, id: &str) -> Result<(), TestCaseError> {
    let started = send(h.http.post(h.url(&format!("/containers/{id}/start")))).await?;
    prop_assert_eq!(
        started.status,
        204,
        "an accepted container failed to start: {:?}",
        started
    );
    let removed = send(h.http.delete(h.url(&format!("/containers/{id}?force=1")))).await?;
    // 404: AutoRemove got there first.
    prop_assert!([204, 404].contains(&removed.status), "{removed:?}");
    Ok(())
}

// ----- generators ------------------------------------------------------------------------

/// Names the runtime must refuse whatever their value.
const STEERING: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "GCONV_PATH",
    "PATH",
    "BASH_ENV",
    "ENV",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "NODE_OPTIONS",
    "PERL5OPT",
    "RUBYOPT",
    "BASH_FUNC_sleep%%",
];

/// Whether a variable must be refused alone (`Some(true)`), may be accepted alone
/// (`Some(false)`), or either (`None`).
type Verdict = Option<bool>;

/// `(name, value, verdict)` triples.
fn variable() -> impl Strategy<Value = (String, String, Verdict)> {
    let value = "[ -~]{0,24}";
    prop_oneof![
        4 => ("SAFE_[A-Z0-9_]{0,12}", value).prop_map(|(n, v)| (n, v, Some(false))),
        2 => (prop::sample::select(STEERING), value)
            .prop_map(|(n, v)| (n.to_owned(), v, Some(true))),
        1 => ("SAFE_[A-Z]{0,6}", value, any::<prop::sample::Index>(), any::<bool>()).prop_map(
            |(n, v, at, in_name)| {
                let (mut n, mut v) = (n, v);
                let target = if in_name { &mut n } else { &mut v };
                let at = at.index(target.len() + 1);
                target.insert(at, '\0');
                (n, v, Some(true))
            }
        ),
        1 => value.prop_map(|v| (String::new(), v, Some(true))),
        1 => (MAX_VAR_BYTES - 64..MAX_VAR_BYTES + 64).prop_map(|size| {
            // The entry `BIG=...` is `size` bytes.
            ("BIG".to_owned(), "x".repeat(size - 4), Some(size > MAX_VAR_BYTES))
        }),
        1 => Just(("BIG".to_owned(), "x".repeat(128 * 1024), Some(true))),
        1 => ("\\PC{0,12}", "\\PC{0,12}").prop_map(|(n, v)| (n, v, None)),
        1 => (".{0,12}", ".{0,12}").prop_map(|(n, v)| (n, v, None)),
    ]
}

/// A create's `Env` entries and whether they must be refused (`Some(true)`), must be
/// accepted (`Some(false)`), or either.
fn env_entries() -> impl Strategy<Value = (Vec<String>, Verdict)> {
    let few = prop::collection::vec(variable(), 0..6);
    let many = (MAX_VARS - 3..MAX_VARS + 4).prop_map(|count| {
        (0..count)
            .map(|i| (format!("SAFE_{i}"), "v".into(), Some(false)))
            .collect()
    });
    prop_oneof![8 => few, 1 => many, 1 => prop::collection::vec(variable(), 6..14)].prop_map(
        |vars: Vec<(String, String, Verdict)>| {
            let mut verdict = Some(false);
            let mut entries = Vec::new();
            for (name, value, alone) in vars {
                entries.push(format!("{name}={value}"));
                verdict = match (verdict, alone) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                };
            }
            let bytes: usize = entries.iter().map(String::len).sum();
            if entries.len() > MAX_VARS || bytes > MAX_ENV_BYTES {
                verdict = Some(true);
            }
            (entries, verdict)
        },
    )
}

/// A container name for the query, and whether it must be refused.
fn container_name() -> impl Strategy<Value = (Option<String>, Verdict)> {
    prop_oneof![
        4 => "[a-zA-Z0-9][a-zA-Z0-9_.-]{1,30}".prop_map(|n| (Some(n), Some(false))),
        1 => (MAX_NAME_LEN - 3..MAX_NAME_LEN + 200)
            .prop_map(|len| (Some("n".repeat(len)), Some(len > MAX_NAME_LEN))),
        1 => "[a-z]{1,8}\0[a-z]{0,8}".prop_map(|n| (Some(n), Some(true))),
        1 => "\\PC{0,20}".prop_map(|n| (Some(n), None)),
        1 => Just((None, Some(false))),
    ]
}

/// A `Cmd`, `Entrypoint`, `WorkingDir` or `User`: `None` absent, and whether it overrides.
fn override_value() -> impl Strategy<Value = (Option<Value>, bool)> {
    prop_oneof![
        6 => Just((None, false)),
        1 => Just((Some(Value::Null), false)),
        1 => Just((Some(json!("")), false)),
        1 => Just((Some(json!([])), false)),
        1 => "\\PC{1,12}".prop_map(|s| (Some(json!(s)), true)),
        1 => prop::collection::vec("\\PC{0,8}", 1..3).prop_map(|v| (Some(json!(v)), true)),
        1 => Just((Some(json!(0)), true)),
        1 => Just((Some(json!({"a": 1})), true)),
    ]
}

#[derive(Debug)]
struct CreateCase {
    name: (Option<String>, Verdict),
    image: String,
    env: (Vec<String>, Verdict),
    overrides: Vec<(&'static str, Option<Value>, bool)>,
    labels: BTreeMap<String, String>,
    auto_remove: Option<bool>,
    network_mode: Option<String>,
    /// Sent instead of the JSON body when set.
    raw_body: Option<Vec<u8>>,
}

fn create_case() -> impl Strategy<Value = CreateCase> {
    let image = prop_oneof![
        6 => Just("exit3".to_owned()),
        1 => Just("exit3:latest".to_owned()),
        1 => "\\PC{0,16}",
    ];
    let overrides = (
        override_value(),
        override_value(),
        override_value(),
        override_value(),
    )
        .prop_map(|(cmd, entrypoint, dir, user)| {
            vec![
                ("Cmd", cmd.0, cmd.1),
                ("Entrypoint", entrypoint.0, entrypoint.1),
                ("WorkingDir", dir.0, dir.1),
                ("User", user.0, user.1),
            ]
        });
    let raw_body = prop_oneof![
        9 => Just(None),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
    ];
    (
        container_name(),
        image,
        env_entries(),
        overrides,
        prop::collection::btree_map(".{0,8}", ".{0,8}", 0..3),
        prop::option::of(any::<bool>()),
        prop::option::of(".{0,8}"),
        raw_body,
    )
        .prop_map(
            |(name, image, env, overrides, labels, auto_remove, network_mode, raw_body)| {
                CreateCase {
                    name,
                    image,
                    env,
                    overrides,
                    labels,
                    auto_remove,
                    network_mode,
                    raw_body,
                }
            },
        )
}

impl CreateCase {
    fn body(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw_body {
            return raw.clone();
        }
        let mut body = json!({
            "Image": self.image,
            "Env": self.env.0,
            "Labels": self.labels,
            "HostConfig": {"AutoRemove": self.auto_remove, "NetworkMode": self.network_mode},
        });
        for (field, value, _) in &self.overrides {
            if let Some(value) = value {
                body[*field] = value.clone();
            }
        }
        body.to_string().into_bytes()
    }

    /// True when the request must be refused with a 400 whatever else it holds.
    fn must_be_refused(&self) -> bool {
        self.raw_body.is_none()
            && (self.name.1 == Some(true)
                || self.env.1 == Some(true)
                || self.overrides.iter().any(|(_, _, overrides)| *overrides))
    }
}

// ----- properties ------------------------------------------------------------------------

// Pins: create took any Env, Cmd, name and size, and what it could not honour failed
// later, at start, with a 500 (or ran what the caller chose).
#[test]
fn any_create_request_is_answered_2xx_or_4xx_and_never_leaves_a_half_created_container() {
    let fuzz = Fuzz::start();
    fuzz.run(160, create_case(), |case| {
        fuzz.rt.block_on(async {
            let h = &fuzz.h;
            let before = record_count(h).await?;
            let query = case
                .name
                .0
                .as_ref()
                .map(|name| format!("?name={}", url_encode(name)))
                .unwrap_or_default();
            let request = h
                .http
                .post(h.url(&format!("/containers/create{query}")))
                .header("content-type", "application/json")
                .body(case.body());
            let answer = send(request).await?;
            check_answer("create", &answer)?;
            prop_assert!(
                [201, 400, 404, 409].contains(&answer.status),
                "unexpected {answer:?}"
            );
            let after = record_count(h).await?;
            if answer.status == 201 {
                prop_assert!(!case.must_be_refused(), "accepted: {answer:?}");
                prop_assert_eq!(after, before + 1, "no container for a 201");
                let id = answer.body["Id"].as_str().unwrap_or_default().to_owned();
                start_and_remove(h, &id).await?;
            } else {
                prop_assert_eq!(after, before, "a container was left by {:?}", answer);
                if case.must_be_refused() {
                    prop_assert_eq!(answer.status, 400, "{:?}", answer);
                }
            }
            Ok(())
        })
    });
}

fn rule_case() -> impl Strategy<Value = (Value, Verdict)> {
    let vars = prop_oneof![
        8 => prop::collection::vec(variable(), 0..5),
        1 => (MAX_VARS - 2..MAX_VARS + 3).prop_map(|count| {
            (0..count).map(|i| (format!("SAFE_{i}"), "v".into(), Some(false))).collect()
        }),
        1 => (4..6usize).prop_map(|count| {
            let chunk = "x".repeat(MAX_VAR_BYTES - 16);
            (0..count).map(|i| (format!("SAFE_{i}"), chunk.clone(), Some(false))).collect()
        }),
    ];
    let matcher = prop_oneof![
        4 => Just(json!({})),
        2 => Just(json!({"name_prefix": "fz-"})),
        1 => ("\\PC{0,8}", any::<i64>(), "\\PC{0,8}").prop_map(|(prefix, id, native)| {
            json!({"name_prefix": prefix, "meeting_id": id, "native_meeting_id": native})
        }),
        1 => Just(json!({"colour": "red"})),
    ];
    let name_with_equals = prop_oneof![9 => Just(false), 1 => Just(true)];
    (vars, matcher, name_with_equals).prop_map(|(vars, matcher, name_with_equals)| {
        // A name drawn twice keeps its last value, as the JSON object does: the verdict is
        // of what is sent (an oversized `BIG` overwritten by a small one was judged
        // refused and then, rightly, accepted).
        let mut drawn: std::collections::BTreeMap<String, (String, Verdict)> = Default::default();
        for (name, value, alone) in vars {
            let name = if name_with_equals {
                format!("{name}=x")
            } else {
                name
            };
            drawn.insert(name, (value, alone));
        }
        let mut verdict = Some(matcher.get("colour").is_some());
        let mut env = serde_json::Map::new();
        for (name, (value, alone)) in drawn {
            verdict = match (verdict, alone, name.contains('=')) {
                (Some(true), _, _) | (_, Some(true), _) | (_, _, true) => Some(true),
                (Some(false), Some(false), false) => Some(false),
                _ => None,
            };
            env.insert(name, json!(value));
        }
        let bytes: usize = env
            .iter()
            .map(|(name, value)| name.len() + 1 + value.as_str().map_or(0, str::len))
            .sum();
        if env.len() > MAX_VARS || bytes > MAX_ENV_BYTES {
            verdict = Some(true);
        }
        (json!({"match": matcher, "env": env}), verdict)
    })
}

// Pins: a rule with a NUL (or any env no process can take) was accepted, and then every
// container it matched failed to start.
#[test]
fn any_rule_is_answered_2xx_or_4xx_and_an_accepted_one_never_stops_a_matching_start() {
    let fuzz = Fuzz::start();
    fuzz.run(96, rule_case(), |(rule, verdict)| {
        fuzz.rt.block_on(async {
            let h = &fuzz.h;
            // From no rule: a case that failed half-way (as shrinking replays it) left its
            // rule behind, and every later case then failed on the count instead.
            let cleared = send(h.http.delete(h.url("/_runtime/rules"))).await?;
            prop_assert_eq!(cleared.status, 204);
            let answer = send(h.http.post(h.url("/_runtime/rules")).json(&rule)).await?;
            check_answer("add a rule", &answer)?;
            prop_assert!([201, 400].contains(&answer.status), "{answer:?}");
            if verdict == Some(true) {
                prop_assert_eq!(answer.status, 400, "accepted: {:?}", rule);
            }
            if verdict == Some(false) {
                prop_assert_eq!(answer.status, 201, "refused: {:?}", answer);
            }
            let listed = send(h.http.get(h.url("/_runtime/rules"))).await?;
            prop_assert_eq!(listed.status, 200);
            let count = listed.body.as_array().map_or(0, Vec::len);
            prop_assert_eq!(count, usize::from(answer.status == 201));

            // One rule alone always fits a container whose own Env is empty.
            let name = format!("fz-{}", fuzz.next());
            let created = send(
                h.http
                    .post(h.url(&format!("/containers/create?name={name}")))
                    .json(&json!({"Image": "exit3"})),
            )
            .await?;
            prop_assert_eq!(created.status, 201, "{:?}", created);
            start_and_remove(h, &name).await
        })
    });
}

/// A `since` or `until`, and whether it must be refused.
fn event_time() -> impl Strategy<Value = (String, Verdict)> {
    // The last second whose nanoseconds fit an i64 (2262-04-11).
    const LAST: i64 = 9_223_372_036;
    let seconds = |n: i64| (n.to_string(), Some(!(0..=LAST).contains(&n)));
    prop_oneof![
        3 => (-LAST - 100_000_000..LAST + 100_000_000).prop_map(seconds),
        1 => prop::sample::select(vec![i64::MIN, -LAST - 1, -LAST, -1, 0, LAST, LAST + 1, i64::MAX])
            .prop_map(seconds),
        1 => any::<i64>().prop_map(seconds),
        1 => any::<u64>().prop_map(|n| (n.to_string(), Some(n > LAST as u64))),
        2 => (0..4_000_000_000i64, "[0-9]{0,12}").prop_map(|(s, f)| {
            let text = if f.is_empty() { s.to_string() } else { format!("{s}.{f}") };
            (text, Some(f.len() > 9))
        }),
        1 => ("-[0-9]{1,20}", "(\\.[0-9]{0,9})?").prop_map(|(s, f)| {
            // Refused unless it is a spelling of zero, which is malformed or not.
            let negative = s.bytes().chain(f.bytes()).any(|b| (b'1'..=b'9').contains(&b));
            (format!("{s}{f}"), negative.then_some(true))
        }),
        2 => "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,12})?(Z|[+-][0-1][0-9]:[0-5][0-9])"
            .prop_map(|t| (t, None)),
        1 => "\\PC{0,16}".prop_map(|t| (t, None)),
        1 => ".{0,16}".prop_map(|t| (t, None)),
    ]
}

// Pins: `until=-9223372036` panicked the events handler (an overflow) and dropped the
// connection; any `since`, `until` or `filters` must be answered.
#[test]
fn any_events_query_is_answered_200_or_400_and_never_drops_the_connection() {
    let fuzz = Fuzz::start();
    let filters = prop_oneof![
        3 => Just(None),
        1 => Just(Some(json!({"event": ["die"]}).to_string())),
        1 => "\\PC{0,24}".prop_map(Some),
    ];
    let case = (
        prop::option::of(event_time()),
        prop::option::of(event_time()),
        filters,
    );
    fuzz.run(384, case, |(since, until, filters)| {
        fuzz.rt.block_on(async {
            let h = &fuzz.h;
            let mut query = Vec::new();
            for (key, value) in [("since", &since), ("until", &until)] {
                if let Some((text, _)) = value {
                    query.push(format!("{key}={}", url_encode(text)));
                }
            }
            if let Some(filters) = &filters {
                query.push(format!("filters={}", url_encode(filters)));
            }
            let url = h.url(&format!("/events?{}", query.join("&")));
            let response = h
                .http
                .get(url)
                .send()
                .await
                .map_err(|err| TestCaseError::fail(format!("no answer: {err}")))?;
            let status = response.status().as_u16();
            // A 200 is a stream that may go on: only its status is read.
            let answer = if status == 200 {
                Answer {
                    status,
                    body: Value::Null,
                }
            } else {
                let body = response.json().await.unwrap_or(Value::Null);
                Answer { status, body }
            };
            check_answer("events", &answer)?;
            prop_assert!([200, 400].contains(&answer.status), "{answer:?}");
            let must_refuse = [&since, &until]
                .iter()
                .any(|time| matches!(time, Some((_, Some(true)))));
            if must_refuse {
                prop_assert_eq!(answer.status, 400, "accepted: {:?} {:?}", since, until);
            }
            Ok(())
        })
    });
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Created,
    Exited,
    IdPrefix,
    Random,
}

// Pins: every other handler must answer any reference, query parameter and body it is
// given with a 2xx, 3xx or a 4xx with a message (the fuzz found no more panics there).
#[test]
fn any_request_to_any_other_endpoint_is_answered_without_a_5xx() {
    let fuzz = Fuzz::start();
    let endpoints: &[(&str, &str)] = &[
        ("GET", "/containers/json"),
        ("GET", "/containers/{}/json"),
        ("POST", "/containers/{}/start"),
        ("POST", "/containers/{}/stop"),
        ("POST", "/containers/{}/kill"),
        ("POST", "/containers/{}/wait"),
        ("DELETE", "/containers/{}"),
        ("GET", "/_ping"),
        ("HEAD", "/_ping"),
        ("GET", "/version"),
        ("GET", "/_runtime/containers"),
        ("GET", "/_runtime/rules"),
        ("DELETE", "/_runtime/rules"),
        ("GET", "/_runtime/faults"),
        ("POST", "/_runtime/containers/{}/restart"),
        ("POST", "/_runtime/containers/{}/pause"),
        ("POST", "/_runtime/containers/{}/resume"),
        ("POST", "/_runtime/containers/{}/signal"),
        ("PUT", "/containers/{}/json"),
    ];
    let target = prop_oneof![
        Just(Target::Created),
        Just(Target::Exited),
        Just(Target::IdPrefix),
        Just(Target::Random),
    ];
    let key = prop::sample::select(vec![
        "t",
        "signal",
        "force",
        "condition",
        "filters",
        "all",
        "limit",
        "v",
        "name",
        "size",
    ]);
    let value = prop_oneof![
        Just("not-running".to_owned()),
        Just("-1".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("SIGTERM".to_owned()),
        Just("0".to_owned()),
        Just("{\"status\":[\"exited\"]}".to_owned()),
        "\\PC{0,12}",
        ".{0,12}",
    ];
    let body = prop_oneof![
        3 => Just(None),
        1 => Just(Some(json!({"signal": "SIGTERM"}).to_string().into_bytes())),
        1 => Just(Some(json!({"new_uid": true}).to_string().into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..48).prop_map(Some),
    ];
    let case = (
        prop::sample::select(endpoints.to_vec()),
        target,
        "\\PC{0,12}",
        prop::collection::vec((key, value), 0..4),
        body,
    );
    fuzz.run(
        192,
        case,
        |((method, path), target, random, query, body)| {
            fuzz.rt.block_on(async {
                let h = &fuzz.h;
                let n = fuzz.next();
                // Fresh containers each case: the request may remove, restart or kill them.
                let created = h
                    .create(&format!("fz-created-{n}"), "exit3", json!({}))
                    .await;
                let exited = format!("fz-exited-{n}");
                h.create(&exited, "exit3", json!({})).await;
                h.start_container(&exited).await;
                let waited =
                    send(h.http.post(h.url(&format!("/containers/{exited}/wait")))).await?;
                prop_assert_eq!(waited.status, 200);

                let reference = match target {
                    Target::Created => format!("fz-created-{n}"),
                    Target::Exited => exited.clone(),
                    Target::IdPrefix => created[..6].to_owned(),
                    Target::Random => random.clone(),
                };
                // `next-exit` and `removed` wait for what may never come: out of scope here.
                let query: Vec<(&str, String)> = query
                    .into_iter()
                    .filter(|(key, value)| !(*key == "condition" && value != "not-running"))
                    .collect();
                let mut url = h.url(&path.replace("{}", &url_encode(&reference)));
                if !query.is_empty() {
                    let pairs: Vec<String> = query
                        .iter()
                        .map(|(k, v)| format!("{k}={}", url_encode(v)))
                        .collect();
                    url = format!("{url}?{}", pairs.join("&"));
                }
                let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let mut request = h.http.request(method.clone(), url);
                if let Some(body) = body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body);
                }
                let answer = send(request).await?;
                if method == reqwest::Method::HEAD {
                    prop_assert!(answer.status < 500, "{answer:?}");
                } else {
                    check_answer(path, &answer)?;
                }
                for name in [format!("fz-created-{n}"), exited] {
                    let removed =
                        send(h.http.delete(h.url(&format!("/containers/{name}?force=1")))).await?;
                    prop_assert!([204, 404].contains(&removed.status), "{removed:?}");
                }
                Ok(())
            })
        },
    );
}
