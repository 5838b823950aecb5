//! Property tests over the HTTP API's inputs (issue 12): whatever a caller sends to
//! `POST /bots`, a meeting path or a callback (arbitrary and huge strings, NUL, unicode,
//! numbers at their extremes, wrong types, missing and extra fields, broken JSON), the
//! answer is a 2xx or a 4xx with a clear message, never a 5xx or a panic, and the database
//! holds no row the status machine forbids and no half-written one.
//!
//! Each property runs [`CASES`] cases (`PROPTEST_CASES` overrides it) against one real
//! stack per profile, checking the database after every case.

use std::collections::BTreeMap;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use protocol::{MeetingStatus, Platform};
use rstest::rstest;
use serde_json::{Map, Value, json};

use crate::support::{DEV_TOKEN, Stack, StackOptions, unique_meet_id};

const CASES: u32 = 64;

/// A case's outcome: the status it was answered with, or why it failed.
type CaseResult = Result<u16, TestCaseError>;

// Pins issue 12: hostile input answered 500 with Postgres's text (a NUL anywhere, an
// overlong session uid), and nothing checked the rest of the input space. Any input to
// the API now gets a 2xx or a 4xx with a message, and leaves the database consistent.
#[rstest]
#[test]
fn any_input_is_answered_2xx_or_4xx_with_a_message_and_leaves_no_forbidden_or_partial_row(
    #[values("legacy", "fixed")] profile: &str,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let world = runtime.block_on(World::start(profile));
    let run = |name: &str, strategy: BoxedStrategy<Case>| {
        let mut runner = TestRunner::new(Config {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(CASES),
            failure_persistence: None,
            ..Config::default()
        });
        let answered = std::sync::Mutex::new(BTreeMap::<u16, usize>::new());
        let outcome = runner.run(&strategy, |case| {
            let status = runtime.block_on(world.check(case))?;
            *answered.lock().unwrap().entry(status).or_default() += 1;
            Ok(())
        });
        if let Err(failure) = outcome {
            panic!("{profile}, {name}: {failure}");
        }
        let answered = answered.into_inner().unwrap();
        eprintln!("{profile}, {name}: answers (status: count) {answered:?}");
        // Else the inputs never got past validation, and the property says little.
        assert!(
            answered.keys().any(|s| (200..300).contains(s)),
            "{profile}, {name}: no input was accepted"
        );
    };
    run("POST /bots", create_case(&world.keys));
    run("meeting paths", path_case(&world.keys));
    run("callbacks", callback_case(&world));
    let log = world.stack.service_log();
    assert!(!log.contains("panicked"), "the service panicked: {log}");
}

/// One request.
#[derive(Clone)]
struct Case {
    method: &'static str,
    path: String,
    body: Option<Body>,
    /// An `Authorization` header (raw bytes: not always text), as a callback carries its
    /// bot's secret under `callback_auth`.
    authorization: Option<Vec<u8>>,
}

#[derive(Clone)]
enum Body {
    Json(Value),
    Raw(Vec<u8>),
}

/// Shown abbreviated: a failing case may hold 70 kB texts.
impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.body {
            None => write!(f, "{} {}", self.method, short(&self.path))?,
            Some(body) => write!(f, "{} {} with {body:?}", self.method, short(&self.path))?,
        }
        match &self.authorization {
            Some(value) => write!(
                f,
                " and Authorization {}",
                short(&String::from_utf8_lossy(value))
            ),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Json(value) => write!(f, "JSON {}", short(&value.to_string())),
            Body::Raw(bytes) => write!(f, "bytes {}", short(&format!("{bytes:?}"))),
        }
    }
}

/// `text`, cut to its first 300 characters (saying how long it was).
fn short(text: &str) -> String {
    const KEEP: usize = 300;
    let length = text.chars().count();
    if length <= KEEP {
        return text.to_owned();
    }
    let kept: String = text.chars().take(KEEP).collect();
    format!("{kept}... ({length} characters)")
}

/// The stack, the meetings the callbacks aim at (their bots crashed at `joining`, so
/// nothing but these requests touches them), and the meeting keys requests may name.
struct World {
    stack: Stack,
    targets: Vec<(i64, String)>,
    /// A secret the test knows for each target (stored in place of its bot's under
    /// `callback_auth`; unused otherwise).
    secrets: Vec<String>,
    keys: Vec<(Platform, String)>,
}

impl World {
    async fn start(profile: &str) -> World {
        let stack = Stack::start_with(StackOptions {
            profile: profile.into(),
            ..StackOptions::default()
        })
        .await;
        let mut targets = Vec::new();
        let mut keys = Vec::new();
        for _ in 0..2 {
            let native = unique_meet_id();
            stack
                .bot_behaviour(&native, &[("MOCK_BOT_CRASH", "joining:3")])
                .await;
            let meeting = stack.start_bot(Platform::GoogleMeet, &native).await;
            let uid = stack.connection_id(meeting.id).await;
            stack.wait_container_exit(meeting.id).await;
            stack.wait_session(meeting.id, &uid).await;
            targets.push((meeting.id, uid));
            keys.push((Platform::GoogleMeet, native));
        }
        // The fixes end a crashed bot's meeting from its exit: let that happen first.
        let mut secrets = Vec::new();
        for (id, _) in &targets {
            if profile == "fixed" {
                stack.wait_terminal(*id).await;
            }
            secrets.push(stack.known_secret(*id).await);
        }
        let digits = |n: usize| -> String {
            (0..n)
                .map(|_| char::from(b'0' + rand::random::<u8>() % 10))
                .collect()
        };
        keys.push((Platform::GoogleMeet, unique_meet_id()));
        keys.push((Platform::Zoom, digits(10)));
        keys.push((Platform::Teams, digits(12)));
        World {
            stack,
            targets,
            secrets,
            keys,
        }
    }

    async fn send(&self, case: &Case) -> Result<(u16, String), TestCaseError> {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).expect("a method");
        let mut request = self
            .stack
            .http
            .request(method, self.stack.url(&case.path))
            .header("X-API-Key", DEV_TOKEN);
        request = match &case.body {
            Some(Body::Json(value)) => request.json(value),
            Some(Body::Raw(bytes)) => request
                .header("content-type", "application/json")
                .body(bytes.clone()),
            None => request,
        };
        if let Some(value) = &case.authorization {
            let value = reqwest::header::HeaderValue::from_bytes(value).map_err(|err| {
                TestCaseError::fail(format!("a header value ({err}) in {case:?}"))
            })?;
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        let resp = request
            .send()
            .await
            .map_err(|err| TestCaseError::fail(format!("no answer ({err:?}) to {case:?}")))?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.unwrap_or_default()))
    }

    async fn check(&self, case: Case) -> CaseResult {
        let before = self.rows().await;
        let targets_before = self.target_rows().await;
        let (status, text) = self.send(&case).await?;
        prop_assert!(
            (200..500).contains(&status),
            "answered {status}: {text}\nfor {case:?}"
        );
        let answer: Value = serde_json::from_str(&text).map_err(|_| {
            TestCaseError::fail(format!(
                "answered {status} without JSON: {:?}",
                short(&text)
            ))
        })?;
        if status >= 400 {
            assert_clear_error(&answer).map_err(|why| {
                TestCaseError::fail(format!(
                    "answered {status} with {why}: {}",
                    short(&answer.to_string())
                ))
            })?;
        }
        let after = self.rows().await;
        if case.path == "/bots" && status == 201 {
            prop_assert_eq!(
                after.len(),
                before.len() + 1,
                "{}",
                short(&answer.to_string())
            );
            let id = answer["id"].as_i64().unwrap_or_default();
            let row = after.iter().find(|r| i64::from(r.id) == id);
            prop_assert!(
                row.is_some_and(|r| r.bot_container_id.is_some()),
                "a created meeting without its container: {}",
                short(&format!("{row:?}"))
            );
        } else {
            prop_assert_eq!(
                after.len(),
                before.len(),
                "a row came or went: {}",
                short(&answer.to_string())
            );
        }
        if status >= 400 {
            prop_assert_eq!(
                &self.target_rows().await,
                &targets_before,
                "a refused request changed a meeting"
            );
        }
        for row in &after {
            row.allowed().map_err(|why| {
                TestCaseError::fail(format!(
                    "meeting {} {why}: {}",
                    row.id,
                    short(&format!("{row:?}"))
                ))
            })?;
        }
        Ok(status)
    }

    async fn rows(&self) -> Vec<Row> {
        sqlx::query_as(
            "SELECT id, status, bot_container_id, start_time IS NOT NULL AS started, \
             end_time IS NOT NULL AS ended, data, updated_at::text AS updated_at \
             FROM meetings ORDER BY id",
        )
        .fetch_all(&self.stack.pool)
        .await
        .expect("meetings")
    }

    /// The callbacks' meetings and the session rows, as stored.
    async fn target_rows(&self) -> (Vec<Row>, i64) {
        let ids: Vec<i64> = self.targets.iter().map(|(id, _)| *id).collect();
        let rows = self
            .rows()
            .await
            .into_iter()
            .filter(|r| ids.contains(&i64::from(r.id)))
            .collect();
        let sessions =
            sqlx::query_scalar("SELECT count(*) FROM meeting_sessions WHERE meeting_id = ANY($1)")
                .bind(ids.iter().map(|id| *id as i32).collect::<Vec<_>>())
                .fetch_one(&self.stack.pool)
                .await
                .expect("sessions");
        (rows, sessions)
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Row {
    id: i32,
    status: String,
    bot_container_id: Option<String>,
    started: bool,
    ended: bool,
    data: Value,
    updated_at: String,
}

impl Row {
    /// What the status machine allows a row to be: one of its statuses, reached by
    /// allowed transitions each on the audit list (from `requested`, each entry starting
    /// where the last ended, the last ending at the status), with the times that go with
    /// it.
    fn allowed(&self) -> Result<(), String> {
        let status: MeetingStatus = self
            .status
            .parse()
            .map_err(|_| format!("is {:?}, outside the status machine", self.status))?;
        let entries = match self.data.get("status_transition") {
            None => &Vec::new(),
            Some(Value::Array(entries)) => entries,
            Some(other) => return Err(format!("has an audit list that is not one: {other}")),
        };
        let mut at = MeetingStatus::Requested;
        for entry in entries {
            let step = |key: &str| {
                entry[key]
                    .as_str()
                    .and_then(|s| s.parse::<MeetingStatus>().ok())
                    .ok_or_else(|| format!("has an audit entry without a status {key}: {entry}"))
            };
            let (from, to) = (step("from")?, step("to")?);
            if from != at || !from.can_transition_to(to) {
                return Err(format!("went {from} -> {to} while {at}"));
            }
            at = to;
        }
        if at != status {
            return Err(format!("is {status}, its audit list ends at {at}"));
        }
        if status.is_terminal() && !self.ended {
            return Err("is terminal without an end time".into());
        }
        if status == MeetingStatus::Active && !self.started {
            return Err("is active without a start time".into());
        }
        Ok(())
    }
}

/// FastAPI's error shape, with something in it: a text, or pydantic's list of errors
/// each saying where and what.
fn assert_clear_error(answer: &Value) -> Result<(), String> {
    match &answer["detail"] {
        Value::String(text) if !text.trim().is_empty() => Ok(()),
        Value::Array(errors) if !errors.is_empty() => {
            for error in errors {
                let located = error["loc"].as_array().is_some_and(|l| !l.is_empty());
                let said = error["msg"].as_str().is_some_and(|m| !m.is_empty());
                if !(located && said && error["type"].is_string()) {
                    return Err(format!("an error without loc, msg or type ({error})"));
                }
            }
            Ok(())
        }
        _ => Err("no detail".into()),
    }
}

// ---- Inputs ----
//
// A body is mostly valid, its texts anything Postgres can hold (unicode, quotes,
// lookalikes, up to a few kB), so that cases get past validation and reach the
// database; then up to three corruptions: a field left out, set to a hostile text (NUL,
// 70 kB) or to any JSON value (wrong types, numbers at their extremes, nesting), or an
// extra field. Sometimes the body is raw bytes instead.

/// Texts a valid request may carry: anything without a NUL, up to a few kB.
fn text() -> BoxedStrategy<String> {
    let any_char = any::<char>().prop_filter("no NUL", |c| *c != '\u{0}');
    prop_oneof![
        4 => "\\PC{0,40}",
        2 => any::<String>().prop_map(|s| s.replace('\u{0}', "")),
        2 => select(vec![
            "",
            " ",
            "\u{feff}",
            "\u{202e}gnp.exe",
            "🦀🦀🦀",
            "\u{10ffff}",
            "'; DROP TABLE meetings; --",
            "%00",
            "\\u0000",
            "null",
            "../../etc/passwd",
            "\r\n\r\n",
            "vexa-bot-1-00000000",
        ])
        .prop_map(String::from),
        1 => (1usize..4_000, any_char).prop_map(|(n, c)| c.to_string().repeat(n)),
    ]
    .boxed()
}

/// Texts a hostile caller sends: any of [`text`], with a NUL, or huge (past the 64 kB
/// body limit).
fn hostile_text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => text(),
        2 => (text(), text()).prop_map(|(a, b)| format!("{a}\u{0}{b}")),
        1 => Just("\u{0}".to_owned()),
        1 => (60_000usize..70_000).prop_map(|n| "x".repeat(n)),
    ]
    .boxed()
}

/// Any JSON value, numbers at their extremes and hostile texts included.
fn hostile_json() -> BoxedStrategy<Value> {
    let integers = prop_oneof![
        select(vec![
            i64::MIN,
            i64::MAX,
            0,
            -1,
            i64::from(i32::MAX) + 1,
            i64::from(i32::MIN) - 1,
        ]),
        any::<i64>(),
    ];
    let floats = prop_oneof![
        select(vec![
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -0.0,
            1e-300,
            0.5
        ]),
        any::<f64>(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        integers.prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        floats.prop_map(Value::from),
        hostile_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A JSON value a valid request may carry where any is accepted (`error_details`).
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

fn words(values: &[&'static str]) -> BoxedStrategy<Value> {
    select(values.to_vec()).prop_map(Value::from).boxed()
}

fn texts() -> BoxedStrategy<Value> {
    text().prop_map(Value::from).boxed()
}

/// What a corruption does to one field.
#[derive(Debug, Clone)]
enum Corruption {
    Remove,
    Set(Value),
}

/// A field a valid body always has.
fn required(
    name: &'static str,
    value: BoxedStrategy<Value>,
) -> (&'static str, BoxedStrategy<Option<Value>>) {
    (name, value.prop_map(Some).boxed())
}

/// A field a valid body may leave out.
fn optional(
    name: &'static str,
    value: BoxedStrategy<Value>,
) -> (&'static str, BoxedStrategy<Option<Value>>) {
    (
        name,
        prop_oneof![1 => Just(None), 3 => value.prop_map(Some)].boxed(),
    )
}

/// A valid body of these fields, corrupted up to twice (a named field, or an extra
/// one); or, sometimes, raw bytes.
fn body(fields: Vec<(&'static str, BoxedStrategy<Option<Value>>)>) -> BoxedStrategy<Body> {
    let mut names: Vec<String> = fields.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.push("extra_field".into());
    let valid = fields
        .into_iter()
        .map(|(name, value)| value.prop_map(move |v| (name, v)))
        .collect::<Vec<_>>();
    // Values the production bot is known to send that the protocol refuses.
    let quirks = words(&[
        "removed_by_admin",
        "admission_rejected_by_admin",
        "leaving",
        "paused",
    ]);
    let corruption = (
        prop_oneof![4 => select(names), 1 => text()],
        prop_oneof![
            1 => Just(Corruption::Remove),
            3 => hostile_text().prop_map(|t| Corruption::Set(Value::from(t))),
            2 => hostile_json().prop_map(Corruption::Set),
            1 => quirks.prop_map(Corruption::Set),
        ],
    );
    let corruptions = prop_oneof![
        1 => Just(Vec::new()),
        1 => prop::collection::vec(corruption, 1..=2),
    ];
    let object = (valid, corruptions).prop_map(|(fields, corruptions)| {
        let mut body = Map::new();
        for (name, value) in fields {
            if let Some(value) = value {
                body.insert(name.to_owned(), value);
            }
        }
        for (name, corruption) in corruptions {
            match corruption {
                Corruption::Remove => body.remove(&name),
                Corruption::Set(value) => body.insert(name, value),
            };
        }
        Body::Json(Value::Object(body))
    });
    let raw = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        select(vec![
            "",
            "{",
            "[]",
            "null",
            "\"text\"",
            "{\"platform\": \"zoom\", \"native_meeting_id\": \"\\ud800\"}",
            "{\"connection_id\": \"\u{0}\"}",
            "{\"a\": 1e400}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        (1usize..200)
            .prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
    ]
    .prop_map(Body::Raw);
    prop_oneof![7 => object, 1 => raw].boxed()
}

/// A meeting key: one of the world's (its platform and native id together), or each
/// part on its own.
fn key(
    keys: &[(Platform, String)],
    platform: BoxedStrategy<Value>,
    native: BoxedStrategy<Value>,
) -> BoxedStrategy<(Value, Value)> {
    prop_oneof![
        3 => select(keys.to_vec()).prop_map(|(p, n)| (Value::from(p.as_str()), Value::from(n))),
        1 => (platform, native),
    ]
    .boxed()
}

fn create_case(keys: &[(Platform, String)]) -> BoxedStrategy<Case> {
    let key = key(
        keys,
        words(&["google_meet", "zoom", "teams", "webex"]),
        words(&["abc-defg-hij", "123456789", "1234567890", "abc", ""]),
    );
    let fields = body(vec![
        optional("bot_name", texts()),
        optional(
            "language",
            prop_oneof![words(&["en", "de", "auto"]), texts()].boxed(),
        ),
        optional("task", words(&["transcribe", "translate"])),
        optional("passcode", texts()),
    ]);
    (
        key,
        fields,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |((platform, native), mut body, drop_platform, drop_native)| {
                // The key goes in first: a corruption of the body may still replace it.
                if let Body::Json(Value::Object(map)) = &mut body {
                    if !drop_platform {
                        map.entry("platform").or_insert(platform);
                    }
                    if !drop_native {
                        map.entry("native_meeting_id").or_insert(native);
                    }
                }
                Case {
                    method: "POST",
                    path: "/bots".into(),
                    body: Some(body),
                    authorization: None,
                }
            },
        )
        .boxed()
}

/// A path segment, as a client would encode it: mostly `valid`, else any text, or raw
/// escapes of any bytes (invalid UTF-8, NUL, `/`, `..`).
fn segment(valid: Vec<String>) -> BoxedStrategy<String> {
    let encoded = |t: String| utf8_percent_encode(&t, NON_ALPHANUMERIC).to_string();
    prop_oneof![
        2 => select(valid),
        1 => text().prop_map(encoded),
        // A client cannot send a URI over 64 kB.
        1 => (text(), text()).prop_map(move |(a, b)| encoded(format!("{a}\u{0}{b}"))),
        1 => prop::collection::vec(any::<u8>(), 1..8)
            .prop_map(|bytes| bytes.iter().map(|b| format!("%{b:02X}")).collect()),
        1 => select(vec!["%00", "a%00b", "%FF%FE", "%C3%28", "%2F", "%2e%2e", "%E2%82"])
            .prop_map(String::from),
    ]
    .boxed()
}

fn path_case(keys: &[(Platform, String)]) -> BoxedStrategy<Case> {
    let platforms = ["google_meet", "zoom", "teams"].map(String::from).to_vec();
    let natives: Vec<String> = keys.iter().map(|(_, n)| n.clone()).collect();
    let key = prop_oneof![
        3 => select(keys.to_vec()).prop_map(|(p, n)| (p.as_str().to_owned(), n)),
        2 => (segment(platforms), segment(natives)),
    ];
    let config = prop_oneof![
        1 => Just(None),
        4 => body(vec![
            optional("language", prop_oneof![words(&["en", "de"]), texts()].boxed()),
            optional("task", words(&["transcribe", "translate"])),
        ])
        .prop_map(Some),
    ];
    // Mostly DELETE and PUT, the routes' own methods; sometimes another.
    let method = select(vec![
        "DELETE", "DELETE", "DELETE", "PUT", "PUT", "GET", "POST", "PATCH",
    ]);
    (key, method, any::<bool>(), config)
        .prop_map(|((platform, native), method, config_path, config)| Case {
            method,
            path: if method == "PUT" || (method != "DELETE" && config_path) {
                format!("/bots/{platform}/{native}/config")
            } else {
                format!("/bots/{platform}/{native}")
            },
            body: if method == "DELETE" { None } else { config },
            authorization: None,
        })
        .boxed()
}

fn callback_case(world: &World) -> BoxedStrategy<Case> {
    let uids: Vec<Value> = world
        .targets
        .iter()
        .map(|(_, uid)| Value::from(uid.as_str()))
        .collect();
    let ids: Vec<Value> = world.targets.iter().map(|(id, _)| json!(id)).collect();
    let uid = || prop_oneof![4 => select(uids.clone()), 1 => texts()].boxed();
    let statuses = MeetingStatus::ALL.map(|s| s.as_str()).to_vec();
    let exit_code = || select(vec![json!(0), json!(1), json!(137)]).boxed();
    let status_change = body(vec![
        required("connection_id", uid()),
        required("status", words(&statuses)),
        optional("container_id", texts()),
        optional("reason", texts()),
        optional("exit_code", exit_code()),
        optional("error_details", any_json()),
        optional(
            "completion_reason",
            words(&["stopped", "left_alone", "evicted", "validation_error"]),
        ),
        optional("failure_stage", words(&["joining", "active", "requested"])),
        optional("timestamp", words(&["2024-01-01T00:00:00Z"])),
    ]);
    let exited = body(vec![
        required("connection_id", uid()),
        required("exit_code", exit_code()),
        optional("reason", texts()),
        optional("error_details", any_json()),
        optional("completion_reason", words(&["stopped", "evicted"])),
        optional("failure_stage", words(&["requested", "active"])),
    ]);
    let session_start = body(vec![
        required("meeting_id", select(ids).boxed()),
        required("session_uid", texts()),
        required(
            "session_start_time",
            words(&["2024-01-01T00:00:00Z", "2999-12-31T23:59:59.999999+14:00"]),
        ),
    ]);
    // Mostly a target's own secret (so that inputs get past it to the body), else a
    // header no secret is in.
    let bearers: Vec<Option<Vec<u8>>> = world
        .secrets
        .iter()
        .map(|s| Some(format!("Bearer {s}").into_bytes()))
        .collect();
    let authorization = prop_oneof![
        6 => select(bearers),
        1 => select(vec![
            None,
            Some(Vec::new()),
            Some(b"Bearer".to_vec()),
            Some(b"Basic x".to_vec()),
            Some("Bearer \u{e9}".as_bytes().to_vec()),
            Some(format!("Bearer {}", "a".repeat(10_000)).into_bytes()),
            Some(format!("Bearer {}", "0".repeat(64)).into_bytes()),
        ]),
    ]
    .boxed();
    let to = |path: &'static str| {
        move |(body, authorization)| Case {
            method: "POST",
            path: path.into(),
            body: Some(body),
            authorization,
        }
    };
    prop_oneof![
        3 => (status_change, authorization.clone())
            .prop_map(to("/bots/internal/callback/status_change")),
        2 => (exited, authorization.clone()).prop_map(to("/bots/internal/callback/exited")),
        1 => (session_start, authorization).prop_map(to("/bots/internal/session_start")),
    ]
    .boxed()
}
