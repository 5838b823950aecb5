//! The REST API: Toxiproxy's shapes, defaults and status codes, malformed requests
//! answered with a clear message, and the crate's client over it.

mod common;

use common::Rig;
use fault_proxy::model::{NewProxy, NewToxic, ProxyUpdate, Stream, ToxicKind};
use serde_json::{Value, json};

/// Raw calls, to see exact status codes and bodies.
struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    fn new(rig: &Rig) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: rig.server.url(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// Asserts Toxiproxy's error shape, and that the message says what went wrong.
fn assert_error(answer: (u16, Value), status: u16, says: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["status"], status, "{body}");
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"));
    assert!(message.contains(says), "{message:?} should say {says:?}");
}

async fn rig_with_proxy() -> (Rig, Raw) {
    let rig = Rig::new().await;
    rig.proxy("p").await;
    let raw = Raw::new(&rig);
    (rig, raw)
}

#[tokio::test]
async fn a_new_toxic_defaults_to_downstream_full_toxicity_and_a_type_stream_name() {
    let (_rig, raw) = rig_with_proxy().await;
    let (status, toxic) = raw
        .post(
            "/proxies/p/toxics",
            r#"{"type": "latency", "attributes": {"latency": 5}}"#,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        toxic,
        json!({"name": "latency_downstream", "type": "latency", "stream": "downstream",
               "toxicity": 1.0, "attributes": {"latency": 5, "jitter": 0}})
    );
    let (status, listed) = raw.get("/proxies/p/toxics").await;
    assert_eq!((status, listed), (200, json!([toxic])));
}

#[tokio::test]
async fn proxies_show_with_their_toxics_and_the_bound_address() {
    let (rig, raw) = rig_with_proxy().await;
    let (status, all) = raw.get("/proxies").await;
    assert_eq!(status, 200);
    let proxy = &all["p"];
    assert_eq!(proxy["name"], "p");
    assert_eq!(proxy["enabled"], true);
    assert_eq!(proxy["upstream"], rig.upstream_addr().to_string());
    assert_eq!(proxy["toxics"], json!([]));
    assert!(
        !proxy["listen"].as_str().unwrap().ends_with(":0"),
        "{proxy}"
    );
    let (status, version) = raw.get("/version").await;
    assert_eq!(status, 200);
    assert!(version["version"].is_string(), "{version}");
}

#[tokio::test]
async fn an_unknown_toxic_type_is_a_400() {
    let (_rig, raw) = rig_with_proxy().await;
    let answer = raw.post("/proxies/p/toxics", r#"{"type": "lag"}"#).await;
    assert_error(answer, 400, "invalid toxic type: `lag`");
}

#[tokio::test]
async fn bad_attributes_are_a_400_that_names_the_attribute() {
    let (_rig, raw) = rig_with_proxy().await;
    let cases = [
        (
            r#"{"type": "latency", "attributes": {"latency": "slow"}}"#,
            "`latency`",
        ),
        (
            r#"{"type": "latency", "attributes": {"latency": -5}}"#,
            "non-negative",
        ),
        (
            r#"{"type": "latency", "attributes": {"latncy": 5}}"#,
            "unknown attribute `latncy`",
        ),
        (
            r#"{"type": "bandwidth", "attributes": {"rate": 0}}"#,
            "rate",
        ),
        (
            r#"{"type": "slicer", "attributes": {"average_size": 4, "size_variation": 4}}"#,
            "size_variation",
        ),
        (r#"{"type": "timeout", "toxicity": 1.5}"#, "toxicity"),
        (r#"{"type": "timeout", "attributes": [1]}"#, "attributes"),
    ];
    for (body, says) in cases {
        let answer = raw.post("/proxies/p/toxics", body).await;
        assert_error(answer, 400, says);
    }
    let (_, toxics) = raw.get("/proxies/p/toxics").await;
    assert_eq!(toxics, json!([]), "nothing was added");
}

#[tokio::test]
async fn an_invalid_stream_is_a_400() {
    let (_rig, raw) = rig_with_proxy().await;
    let answer = raw
        .post(
            "/proxies/p/toxics",
            r#"{"type": "timeout", "stream": "sideways"}"#,
        )
        .await;
    assert_error(answer, 400, "can be either upstream or downstream");
}

#[tokio::test]
async fn duplicate_names_are_a_409() {
    let (_rig, raw) = rig_with_proxy().await;
    let spec = r#"{"name": "p", "upstream": "127.0.0.1:1"}"#;
    assert_error(
        raw.post("/proxies", spec).await,
        409,
        "proxy already exists: p",
    );
    let toxic = r#"{"type": "timeout", "stream": "upstream"}"#;
    assert_eq!(raw.post("/proxies/p/toxics", toxic).await.0, 200);
    let answer = raw.post("/proxies/p/toxics", toxic).await;
    assert_error(answer, 409, "toxic already exists: timeout_upstream");
}

#[tokio::test]
async fn unknown_proxies_and_toxics_are_a_404() {
    let (_rig, raw) = rig_with_proxy().await;
    assert_error(raw.get("/proxies/nope").await, 404, "proxy not found: nope");
    assert_error(raw.delete("/proxies/nope").await, 404, "proxy not found");
    assert_error(
        raw.post("/proxies/nope", r#"{"enabled": false}"#).await,
        404,
        "proxy not found",
    );
    assert_error(
        raw.get("/proxies/nope/toxics").await,
        404,
        "proxy not found",
    );
    let toxic = r#"{"type": "timeout"}"#;
    assert_error(
        raw.post("/proxies/nope/toxics", toxic).await,
        404,
        "proxy not found",
    );
    assert_error(
        raw.get("/proxies/p/toxics/nope").await,
        404,
        "toxic not found: nope",
    );
    assert_error(
        raw.delete("/proxies/p/toxics/nope").await,
        404,
        "toxic not found",
    );
    let update = r#"{"attributes": {"timeout": 1}}"#;
    assert_error(
        raw.post("/proxies/p/toxics/nope", update).await,
        404,
        "toxic not found",
    );
}

#[tokio::test]
async fn bad_json_is_a_400() {
    let (_rig, raw) = rig_with_proxy().await;
    for (path, body) in [
        ("/proxies", "{not json"),
        ("/populate", r#"{"name": "not a list"}"#),
        ("/proxies/p", r#"{"enabled": "yes"}"#),
        ("/proxies/p/toxics", "{\"type\": "),
        ("/proxies", r#"{"name": 5, "upstream": "x"}"#),
    ] {
        assert_error(raw.post(path, body).await, 400, "bad request body");
    }
}

#[tokio::test]
async fn a_proxy_without_name_or_upstream_is_a_400() {
    let rig = Rig::new().await;
    let raw = Raw::new(&rig);
    let answer = raw.post("/proxies", r#"{"upstream": "127.0.0.1:1"}"#).await;
    assert_error(answer, 400, "missing required field: name");
    let answer = raw
        .post(
            "/populate",
            r#"[{"name": "a", "upstream": "x:1"}, {"name": "b"}]"#,
        )
        .await;
    assert_error(answer, 400, "missing required field: upstream at proxy 2");
    assert_eq!(
        raw.get("/proxies").await.1,
        json!({}),
        "populate checks before creating"
    );
}

// Regression: a listen address taken by another proxy was a 500, as in Toxiproxy, though
// the caller's input, not the server, was at fault.
#[tokio::test]
async fn a_proxy_whose_listen_address_is_taken_is_a_409_naming_the_address() {
    let (rig, raw) = rig_with_proxy().await;
    let taken = rig.client.proxy("p").await.unwrap().listen;
    let body = json!({"name": "q", "listen": taken, "upstream": "127.0.0.1:1"}).to_string();
    assert_error(raw.post("/proxies", &body).await, 409, &taken);
    assert_error(raw.get("/proxies/q").await, 404, "proxy not found: q");
}

// Regression: a listen or upstream that was not `host:port` was taken as it came; a bad
// listen address then failed as a 500, a bad upstream only at the first connection.
#[tokio::test]
async fn an_address_that_is_not_host_and_port_is_a_400_naming_the_field() {
    let rig = Rig::new().await;
    let raw = Raw::new(&rig);
    let cases = [
        (
            json!({"name": "a", "listen": "nowhere", "upstream": "127.0.0.1:1"}),
            "listen `nowhere` is not host:port",
        ),
        (
            json!({"name": "a", "listen": "127.0.0.1:99999", "upstream": "127.0.0.1:1"}),
            "listen `127.0.0.1:99999` has no port",
        ),
        (
            json!({"name": "a", "listen": "bad host:1", "upstream": "127.0.0.1:1"}),
            "listen `bad host:1` has no host",
        ),
        (
            json!({"name": "a", "listen": "[::1:0", "upstream": "127.0.0.1:1"}),
            "IPv6",
        ),
        (
            json!({"name": "a", "upstream": "127.0.0.1"}),
            "upstream `127.0.0.1` is not host:port",
        ),
        (
            json!({"name": "a", "upstream": "127.0.0.1:0"}),
            "upstream `127.0.0.1:0` has port 0",
        ),
    ];
    for (body, says) in cases {
        assert_error(raw.post("/proxies", &body.to_string()).await, 400, says);
    }
    let (rig, raw) = rig_with_proxy().await;
    let before = raw.get("/proxies").await;
    assert_error(
        raw.post("/proxies/p", r#"{"upstream": "nowhere"}"#).await,
        400,
        "upstream `nowhere` is not host:port",
    );
    assert_eq!(raw.get("/proxies").await, before);
    assert_eq!(rig.client.proxies().await.unwrap().len(), 1);
}

// Regression: moving a proxy to an address it could not listen on stopped it first, so
// the failed update left it down, on the new address, with its connections closed.
#[tokio::test]
async fn an_update_to_an_address_that_cannot_listen_leaves_the_proxy_as_it_was() {
    let rig = Rig::new().await;
    let proxy = rig.proxy("p").await;
    let mut conn = rig.connect(&proxy).await;
    let taken = rig.proxy("q").await.listen;
    let update = ProxyUpdate {
        listen: Some(taken.clone()),
        upstream: Some("127.0.0.1:1".into()),
        enabled: None,
    };
    let err = rig.client.update_proxy("p", &update).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    assert!(err.to_string().contains(&taken), "{err}");
    assert_eq!(rig.client.proxy("p").await.unwrap(), proxy);
    conn.round_trip().await;
}

// Regression: a reset stopped at the first proxy that could not listen again, leaving
// the proxies after it disabled and their toxics in place.
#[tokio::test]
async fn a_reset_resets_every_proxy_even_when_one_cannot_listen_again() {
    let rig = Rig::new().await;
    let a = rig.proxy("a").await;
    rig.proxy("b").await;
    for name in ["a", "b"] {
        rig.add(name, Stream::Downstream, ToxicKind::Timeout { timeout: 0 })
            .await;
        rig.client.set_enabled(name, false).await.unwrap();
    }
    // Proxy a's address, taken by someone else while it was down.
    let _squatter = tokio::net::TcpListener::bind(&a.listen).await.unwrap();

    let err = rig.client.reset().await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    assert!(
        err.to_string().contains("proxy a failed to listen on"),
        "{err}"
    );
    let a = rig.client.proxy("a").await.unwrap();
    let b = rig.client.proxy("b").await.unwrap();
    assert!(!a.enabled && a.toxics.is_empty(), "{a:?}");
    assert!(b.enabled && b.toxics.is_empty(), "{b:?}");
    rig.connect(&b).await.round_trip().await;
}

// Regression: two proxies of one name in a populate answered 201, the last one winning.
#[tokio::test]
async fn a_populate_naming_a_proxy_twice_is_a_400_and_changes_nothing() {
    let (rig, raw) = rig_with_proxy().await;
    rig.add("p", Stream::Upstream, ToxicKind::LimitData { bytes: 9 })
        .await;
    let before = raw.get("/proxies").await;
    let upstream = rig.upstream_addr().to_string();
    let batch = json!([
        {"name": "new", "upstream": upstream},
        {"name": "p", "upstream": "127.0.0.1:1"},
        {"name": "new", "upstream": "127.0.0.1:2"},
    ]);
    assert_error(
        raw.post("/populate", &batch.to_string()).await,
        400,
        "duplicate proxy name new at proxy 3 (also at proxy 1)",
    );
    assert_eq!(raw.get("/proxies").await, before);
}

// Regression: a proxy could listen on 0.0.0.0 or [::], a relay to any upstream that
// anyone on the network could use, though the API only answers on loopback.
#[tokio::test]
async fn a_proxy_listening_off_loopback_is_a_400_and_nothing_listens() {
    let (_rig, raw) = rig_with_proxy().await;
    let before = raw.get("/proxies").await;
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let proxy = json!({"name": "relay", "listen": listen, "upstream": "127.0.0.1:1"});
        assert_error(
            raw.post("/proxies", &proxy.to_string()).await,
            400,
            &format!("listen on {listen}: it is not a loopback address"),
        );
        let batch = json!([{"name": "relay", "listen": listen, "upstream": "127.0.0.1:1"}]);
        assert_error(
            raw.post("/populate", &batch.to_string()).await,
            400,
            "it is not a loopback address",
        );
        assert_eq!(raw.get("/proxies").await, before);
    }
    for (i, listen) in ["127.0.0.1:0", "localhost:0", "[::1]:0"].iter().enumerate() {
        let name = format!("ok-{i}");
        let proxy = json!({"name": name, "listen": listen, "upstream": "127.0.0.1:1"});
        let (status, body) = raw.post("/proxies", &proxy.to_string()).await;
        assert_eq!(status, 201, "{listen}: {body}");
    }
}

// Regression: a populate applied its proxies one by one, so one that could not listen
// left those before it created or replaced.
#[tokio::test]
async fn a_populate_with_a_proxy_that_cannot_listen_changes_nothing() {
    let (rig, raw) = rig_with_proxy().await;
    rig.add("p", Stream::Upstream, ToxicKind::LimitData { bytes: 9 })
        .await;
    let p = rig.client.proxy("p").await.unwrap();
    let mut live = rig.connect(&p).await;
    let before = raw.get("/proxies").await;
    let squatter = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let taken = squatter.local_addr().unwrap().to_string();
    let upstream = rig.upstream_addr().to_string();
    let batch = json!([
        {"name": "p", "upstream": "127.0.0.1:1"},
        {"name": "new", "upstream": upstream},
        {"name": "late", "listen": taken, "upstream": upstream},
    ]);
    assert_error(
        raw.post("/populate", &batch.to_string()).await,
        409,
        &format!("proxy late failed to listen on {taken}"),
    );
    assert_eq!(raw.get("/proxies").await, before);
    // Refused before any proxy was touched: p's connection lives on.
    live.pass(Stream::Upstream, b"ping").await;
}

// A proxy this batch replaces hands its address over: the refusal comes only after it
// has stopped, and it is put back as it was.
#[tokio::test]
async fn a_populate_that_fails_after_stopping_a_proxy_puts_it_back() {
    let (rig, raw) = rig_with_proxy().await;
    rig.add("p", Stream::Upstream, ToxicKind::LimitData { bytes: 9 })
        .await;
    let p = rig.client.proxy("p").await.unwrap();
    let before = raw.get("/proxies").await;
    let upstream = rig.upstream_addr().to_string();
    let batch = json!([
        {"name": "p", "listen": p.listen, "upstream": "127.0.0.1:1"},
        {"name": "twin", "listen": p.listen, "upstream": upstream},
    ]);
    assert_error(
        raw.post("/populate", &batch.to_string()).await,
        409,
        &format!("proxy twin failed to listen on {}", p.listen),
    );
    assert_eq!(raw.get("/proxies").await, before);
    rig.connect(&p).await.round_trip().await;
}

#[tokio::test]
async fn a_populate_may_move_a_proxy_onto_the_address_another_it_replaces_frees() {
    let rig = Rig::new().await;
    let upstream = rig.upstream_addr().to_string();
    let old = rig.proxy("old").await;
    let moved = rig
        .client
        .populate(&[
            NewProxy::new("old", "127.0.0.1:0", upstream.clone()),
            NewProxy::new("heir", old.listen.clone(), upstream),
        ])
        .await
        .unwrap();
    assert_ne!(moved[0].listen, old.listen);
    assert_eq!(moved[1].listen, old.listen);
    rig.connect(&moved[1]).await.round_trip().await;
}

#[tokio::test]
async fn populate_creates_keeps_and_replaces() {
    let rig = Rig::new().await;
    let upstream = rig.upstream_addr().to_string();
    let first = rig
        .client
        .populate(&[
            NewProxy::new("a", "127.0.0.1:0", upstream.clone()),
            NewProxy::new("b", "127.0.0.1:0", upstream.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    rig.add("a", Stream::Upstream, ToxicKind::Timeout { timeout: 0 })
        .await;
    // `a` unchanged (its toxic stays), `b` moved to another upstream.
    let again = rig
        .client
        .populate(&[
            NewProxy::new("a", first[0].listen.clone(), upstream.clone()),
            NewProxy::new("b", "127.0.0.1:0", "127.0.0.1:1"),
        ])
        .await
        .unwrap();
    assert_eq!(again[0], rig.client.proxy("a").await.unwrap());
    assert_eq!(again[0].toxics.len(), 1);
    assert_eq!(again[1].upstream, "127.0.0.1:1");
}

#[tokio::test]
async fn updating_a_proxy_moves_it_and_reset_restores_everything() {
    let rig = Rig::new().await;
    let proxy = rig.proxy("m").await;
    let moved = rig
        .client
        .update_proxy(
            "m",
            &ProxyUpdate {
                listen: Some("127.0.0.1:0".into()),
                ..ProxyUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(moved.listen, proxy.listen);
    let mut conn = rig.connect(&moved).await;
    conn.round_trip().await;

    rig.add("m", Stream::Downstream, ToxicKind::Timeout { timeout: 0 })
        .await;
    rig.client.set_enabled("m", false).await.unwrap();
    rig.client.reset().await.unwrap();
    let reset = rig.client.proxy("m").await.unwrap();
    assert!(reset.enabled && reset.toxics.is_empty(), "{reset:?}");
    rig.connect(&reset).await.round_trip().await;

    rig.client.delete_proxy("m").await.unwrap();
    assert_eq!(rig.client.proxy("m").await.unwrap_err().status(), Some(404));
}

#[tokio::test]
async fn the_client_names_the_call_and_the_servers_message() {
    let (rig, _raw) = rig_with_proxy().await;
    let toxic = NewToxic::new(ToxicKind::Timeout { timeout: 0 }).named("cut");
    rig.client.add_toxic("p", &toxic).await.unwrap();
    let err = rig.client.add_toxic("p", &toxic).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(
        err.to_string(),
        "add toxic cut to proxy p: toxic already exists: cut (HTTP 409)"
    );
    let gone = fault_proxy::client::Client::new("127.0.0.1:1");
    let err = gone.version().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "get the proxy server's version: no answer from the proxy server"
    );
}

// Regression: errors from outside the handlers (a method a path does not take, a path
// that does not decode, a browser) were plain text or empty, where the API's errors are
// `{"error": "...", "status": N}`.
#[tokio::test]
async fn errors_from_outside_the_handlers_have_the_apis_json_shape() {
    let (rig, raw) = rig_with_proxy().await;
    assert_error(
        raw.call(reqwest::Method::DELETE, "/version", None).await,
        405,
        "method not allowed: DELETE /version",
    );
    assert_error(raw.get("/proxies/%FF").await, 400, "bad request");
    let response = reqwest::Client::new()
        .get(format!("{}/proxies", rig.server.url()))
        .header("User-Agent", "Mozilla/5.0")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_error((status, body), 403, "User agent not allowed");
}

#[tokio::test]
async fn names_with_colons_work_as_link_names() {
    let rig = Rig::new().await;
    let proxy = rig.proxy("bot:m1:redis").await;
    rig.add(
        "bot:m1:redis",
        Stream::Upstream,
        ToxicKind::LimitData { bytes: 1 },
    )
    .await;
    let toxics = rig.client.toxics("bot:m1:redis").await.unwrap();
    assert_eq!(toxics[0].name, "limit_data_upstream");
    assert_eq!(
        rig.client.proxy("bot:m1:redis").await.unwrap().listen,
        proxy.listen
    );
}

// Regression: a toxic time of up to 2^64 - 1 ms was accepted; such delays summed over
// several toxics overflowed the pipeline's clock arithmetic and panicked its task.
#[tokio::test]
async fn a_toxic_time_beyond_a_year_is_a_400_naming_the_bound() {
    let (_rig, raw) = rig_with_proxy().await;
    let year = fault_proxy::model::MAX_TOXIC_MILLIS;
    let cases = [
        json!({"type": "latency", "attributes": {"latency": year + 1}}),
        json!({"type": "latency", "attributes": {"jitter": u64::MAX}}),
        json!({"type": "slow_close", "attributes": {"delay": year + 1}}),
        json!({"type": "timeout", "attributes": {"timeout": year + 1}}),
        json!({"type": "reset_peer", "attributes": {"timeout": year + 1}}),
        json!({"type": "slicer", "attributes": {"average_size": 2, "delay": year * 1000 + 1}}),
    ];
    for body in cases {
        assert_error(
            raw.post("/proxies/p/toxics", &body.to_string()).await,
            400,
            "a year",
        );
    }
    let at_most = json!({"type": "latency", "attributes": {"latency": year}});
    assert_eq!(
        raw.post("/proxies/p/toxics", &at_most.to_string()).await.0,
        200
    );
    let update = json!({"attributes": {"latency": year + 1}});
    assert_error(
        raw.post("/proxies/p/toxics/latency_downstream", &update.to_string())
            .await,
        400,
        "at most",
    );
    let (_, toxic) = raw.get("/proxies/p/toxics/latency_downstream").await;
    assert_eq!(toxic["attributes"]["latency"], year);
}
