//! The Docker Engine API subset, driven over loopback HTTP against real processes.

mod common;

use common::{Harness, process_gone, wait_until_gone};
use serde_json::{Value, json};

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["Names"][0].as_str().unwrap().to_owned())
        .collect()
}

fn filters(value: Value) -> String {
    let text = value.to_string();
    url_encode(&text)
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn create_start_inspect_and_list_report_a_running_container() {
    let h = Harness::start().await;
    let id = h
        .create(
            "bot-1",
            "graceful",
            json!({
                "Env": ["A=1"],
                "Labels": {"vexa.user_id": "1"},
                "HostConfig": {"AutoRemove": false, "NetworkMode": "vexa_default", "Binds": ["/tmp:/data"]},
            }),
        )
        .await;
    assert_eq!(id.len(), 64);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    let created = h.inspect("bot-1").await;
    assert_eq!(created["State"]["Status"], "created");
    let listed: Value = h.get("/containers/json?all=1").await.json().await.unwrap();
    assert_eq!(listed[0]["Status"], "Created");

    h.start_container("bot-1").await;
    let again = h.post("/containers/bot-1/start").await;
    assert_eq!(again.status(), 304, "a second start is not modified");

    let inspected = h.inspect(&id).await;
    assert_eq!(inspected["Id"], id.as_str());
    assert_eq!(inspected["Name"], "/bot-1");
    assert_eq!(inspected["State"]["Status"], "running");
    assert_eq!(inspected["State"]["Running"], true);
    assert!(inspected["State"]["Pid"].as_i64().unwrap() > 0);
    assert_eq!(inspected["Config"]["Image"], "graceful");
    assert_eq!(inspected["Config"]["Labels"]["vexa.user_id"], "1");
    assert_eq!(inspected["Config"]["Env"], json!(["A=1"]));
    assert_eq!(inspected["HostConfig"]["NetworkMode"], "vexa_default");
    assert_eq!(inspected["HostConfig"]["AutoRemove"], false);
    assert!(
        chrono::DateTime::parse_from_rfc3339(inspected["Created"].as_str().unwrap()).is_ok(),
        "Created is RFC 3339: {}",
        inspected["Created"]
    );

    h.create("idle", "graceful", json!({"Labels": {"vexa.user_id": "2"}}))
        .await;
    let running: Value = h.get("/containers/json").await.json().await.unwrap();
    assert_eq!(
        names(&running),
        ["/bot-1"],
        "without all, only running ones"
    );
    let entry = &running[0];
    assert_eq!(entry["Id"], id.as_str());
    assert_eq!(entry["Image"], "graceful");
    assert_eq!(entry["State"], "running");
    assert!(
        entry["Status"].as_str().unwrap().starts_with("Up "),
        "{entry}"
    );
    assert!(entry["Created"].as_i64().unwrap() > 0);
    assert!(entry["Command"].as_str().unwrap().contains("/bin/sh"));
    assert_eq!(entry["Ports"], json!([]));
    assert_eq!(entry["Mounts"], json!([]));
    assert_eq!(entry["Labels"]["vexa.user_id"], "1");

    let query = filters(json!({"label": ["vexa.user_id=1"], "status": ["running"]}));
    let matched: Value = h
        .get(&format!("/containers/json?filters={query}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&matched), ["/bot-1"]);

    let query = filters(json!({"label": {"vexa.user_id=2": true}}));
    let by_map_form: Value = h
        .get(&format!("/containers/json?all=true&filters={query}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&by_map_form), ["/idle"]);

    let query = filters(json!({"status": ["created"]}));
    let created_only: Value = h
        .get(&format!("/containers/json?filters={query}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        names(&created_only),
        ["/idle"],
        "a status filter implies all"
    );

    let query = filters(json!({"label": ["vexa.user_id=3"]}));
    let none: Value = h
        .get(&format!("/containers/json?all=1&filters={query}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none, json!([]));
}

#[tokio::test]
async fn stop_of_a_graceful_process_reports_its_own_exit_code() {
    let h = Harness::start().await;
    h.run_ready("polite", "graceful", json!({})).await;
    let pid = h.pid("polite").await;

    let stopped = h.post("/containers/polite/stop?t=10").await;
    assert_eq!(stopped.status(), 204);
    assert!(
        process_gone(pid),
        "stop answers after the process has exited"
    );
    let inspected = h.inspect("polite").await;
    assert_eq!(inspected["State"]["Status"], "exited");
    assert_eq!(inspected["State"]["ExitCode"], 0);
    assert_eq!(inspected["State"]["Running"], false);

    let listed: Value = h.get("/containers/json?all=1").await.json().await.unwrap();
    let status = listed[0]["Status"].as_str().unwrap();
    assert!(status.starts_with("Exited (0) "), "{status}");
    assert!(status.ends_with(" ago"), "{status}");

    let again = h.post("/containers/polite/stop").await;
    assert_eq!(
        again.status(),
        304,
        "an already stopped container is not modified"
    );
}

#[tokio::test]
async fn stop_after_grace_kills_with_sigkill() {
    let h = Harness::start().await;
    h.run_ready("deaf", "stubborn", json!({})).await;
    let pid = h.pid("deaf").await;
    let mut events = h
        .events("filters=%7B%22container%22%3A%5B%22deaf%22%5D%7D")
        .await;

    let stopped = h.post("/v1.47/containers/deaf/stop?t=1").await;
    assert_eq!(stopped.status(), 204);
    assert!(process_gone(pid));
    assert_eq!(h.inspect("deaf").await["State"]["ExitCode"], 137);

    let term = events.expect_action("kill").await;
    assert_eq!(term["Actor"]["Attributes"]["signal"], "15");
    let kill = events.expect_action("kill").await;
    assert_eq!(kill["Actor"]["Attributes"]["signal"], "9");
    let die = events.next().await.unwrap();
    assert_eq!(die["Action"], "die");
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "137");
    assert_eq!(events.next().await.unwrap()["Action"], "stop");
}

#[tokio::test]
async fn auto_remove_destroys_the_container_after_exit() {
    let h = Harness::start().await;
    let mut events = h.events("").await;
    h.run("once", "exit3", json!({"HostConfig": {"AutoRemove": true}}))
        .await;

    let die = events.expect_action("die").await;
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "3");
    let destroy = events.next().await.unwrap();
    assert_eq!(destroy["Action"], "destroy");
    assert_eq!(destroy["Actor"]["Attributes"]["name"], "once");

    let gone = h.get("/containers/once/json").await;
    assert_eq!(gone.status(), 404);
    let stop = h.post("/containers/once/stop").await;
    assert_eq!(stop.status(), 404, "a removed container is unknown to stop");
}

#[tokio::test]
async fn remove_refuses_a_running_container_unless_forced() {
    let h = Harness::start().await;
    h.run("busy", "graceful", json!({})).await;
    let pid = h.pid("busy").await;

    let refused = h.delete("/containers/busy").await;
    assert_eq!(refused.status(), 409);
    let message: Value = refused.json().await.unwrap();
    assert!(
        message["message"]
            .as_str()
            .unwrap()
            .contains("container is running")
    );

    let forced = h.delete("/containers/busy?force=1").await;
    assert_eq!(forced.status(), 204);
    assert!(process_gone(pid));
    assert_eq!(h.get("/containers/busy/json").await.status(), 404);
    h.create("busy", "graceful", json!({})).await;
    let removed = h.delete("/containers/busy").await;
    assert_eq!(
        removed.status(),
        204,
        "a created container is removed without force"
    );
}

#[tokio::test]
async fn events_stream_reports_die_with_exit_code() {
    let h = Harness::start().await;
    let query = filters(json!({"type": ["container"], "event": ["die"]}));
    let mut events = h.events(&format!("filters={query}")).await;
    let id = h
        .run("quitter", "exit3", json!({"Labels": {"vexa.user_id": "9"}}))
        .await;

    let die = events.next().await.unwrap();
    assert_eq!(die["Type"], "container");
    assert_eq!(die["Action"], "die");
    assert_eq!(die["status"], "die");
    assert_eq!(die["id"], id.as_str());
    assert_eq!(die["from"], "exit3");
    assert_eq!(die["Actor"]["ID"], id.as_str());
    let attributes = &die["Actor"]["Attributes"];
    assert_eq!(attributes["exitCode"], "3");
    assert_eq!(attributes["name"], "quitter");
    assert_eq!(attributes["image"], "exit3");
    assert_eq!(attributes["vexa.user_id"], "9");
    assert!(die["time"].as_i64().unwrap() > 0);
    assert!(die["timeNano"].as_i64().unwrap() > die["time"].as_i64().unwrap());

    // `since` replays what happened before the subscription, in order.
    let since = die["time"].as_i64().unwrap() - 1;
    let mut replay = h.events(&format!("since={since}")).await;
    let actions = [
        replay.next().await.unwrap(),
        replay.next().await.unwrap(),
        replay.next().await.unwrap(),
    ]
    .map(|e| e["Action"].as_str().unwrap().to_owned());
    assert_eq!(actions, ["create", "start", "die"]);

    let bad = h.get("/events?filters=%7B%22colour%22%3A%5B%5D%7D").await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn paths_with_a_version_prefix_reach_the_same_endpoints() {
    let h = Harness::start().await;
    for path in ["/_ping", "/v1.47/_ping", "/v1.24/_ping"] {
        let ping = h.get(path).await;
        assert_eq!(ping.status(), 200, "{path}");
        assert_eq!(ping.headers()["api-version"], "1.47");
        assert_eq!(ping.headers()["ostype"], "linux");
        assert_eq!(ping.headers()["docker-experimental"], "false");
        assert_eq!(ping.text().await.unwrap(), "OK");
    }
    let head = h.http.head(h.url("/v1.47/_ping")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["api-version"], "1.47");

    for path in ["/version", "/v1.43/version"] {
        let version: Value = h.get(path).await.json().await.unwrap();
        assert_eq!(version["ApiVersion"], "1.47");
        assert_eq!(version["MinAPIVersion"], "1.24");
        assert_eq!(version["Os"], "linux");
    }
    h.create("prefixed", "graceful", json!({})).await;
    let unprefixed: Value = h.get("/containers/json?all=1").await.json().await.unwrap();
    let prefixed: Value = h
        .get("/v1.47/containers/json?all=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(&unprefixed), names(&prefixed));
    assert_eq!(names(&prefixed), ["/prefixed"]);
}

#[tokio::test]
async fn containers_are_addressed_by_name_id_and_unique_prefix() {
    let h = Harness::start().await;
    let id = h.create("vexa-bot-7-0123abcd", "graceful", json!({})).await;
    for reference in [
        id.clone(),
        id[..12].to_owned(),
        "vexa-bot-7-0123abcd".to_owned(),
        "%2Fvexa-bot-7-0123abcd".to_owned(),
    ] {
        let inspected = h.inspect(&reference).await;
        assert_eq!(inspected["Id"], id.as_str(), "by {reference}");
    }
    h.start_container(&id[..8]).await;
    let stopped = h.post("/containers/vexa-bot-7-0123abcd/stop?t=5").await;
    assert_eq!(stopped.status(), 204);
    let missing = h.get("/containers/nothing-here/json").await;
    assert_eq!(missing.status(), 404);
    let message: Value = missing.json().await.unwrap();
    assert_eq!(message["message"], "No such container: nothing-here");
}

#[tokio::test]
async fn unknown_image_and_taken_names_are_refused_like_docker() {
    let h = Harness::start().await;
    let response = h
        .post_json("/containers/create?name=x1", &json!({"Image": "nope"}))
        .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "No such image: nope");

    let id = h.create("taken", "graceful:latest", json!({})).await;
    let conflict = h
        .post_json(
            "/containers/create?name=taken",
            &json!({"Image": "graceful"}),
        )
        .await;
    assert_eq!(conflict.status(), 409);
    let body: Value = conflict.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains(&id), "{body}");

    let bad_name = h
        .post_json(
            "/containers/create?name=-bad",
            &json!({"Image": "graceful"}),
        )
        .await;
    assert_eq!(bad_name.status(), 400);
}

#[tokio::test]
async fn unsupported_paths_and_methods_answer_404_naming_them() {
    let h = Harness::start().await;
    let response = h.get("/v1.47/containers/x/top").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("GET /v1.47/containers/x/top"), "{message}");

    let response = h
        .http
        .put(h.url("/containers/create"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("PUT /containers/create")
    );
}

#[tokio::test]
async fn malformed_requests_answer_400_naming_the_problem() {
    let h = Harness::start().await;
    let response = h
        .http
        .post(h.url("/containers/create?name=broken"))
        .header("content-type", "application/json")
        .body("{\"Image\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("create request body"), "{message}");
    assert!(message.contains("line 1"), "{message}");

    let response = h.post_json("/containers/create", &json!({"Env": []})).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("Image"));

    let response = h.get("/containers/json?filters=%7Bnot-json").await;
    assert_eq!(response.status(), 400);
    let response = h
        .get("/containers/json?filters=%7B%22colour%22%3A%5B%5D%7D")
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "invalid filter 'colour'");

    h.run("target", "graceful", json!({})).await;
    let response = h.post("/containers/target/stop?t=soon").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("t=\"soon\""));
    let response = h.post("/containers/target/kill?signal=SIGNOPE").await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        h.inspect("target").await["State"]["Running"],
        true,
        "nothing was done"
    );
}

#[tokio::test]
async fn kill_and_wait_report_docker_exit_codes() {
    let h = Harness::start().await;
    h.run("victim", "graceful", json!({})).await;
    let pid = h.pid("victim").await;

    // `not-running` answers at once after the exit and waits before it, so the order of
    // the wait and the kill does not matter.
    let waiter = {
        let http = h.http.clone();
        let url = h.url("/containers/victim/wait");
        tokio::spawn(async move { http.post(url).send().await.unwrap().json::<Value>().await })
    };
    let killed = h.post("/containers/victim/kill?signal=SIGKILL").await;
    assert_eq!(killed.status(), 204);
    let code = waiter.await.unwrap().unwrap();
    assert_eq!(code["StatusCode"], 137);
    wait_until_gone(pid).await;

    let again = h.post("/containers/victim/kill").await;
    assert_eq!(again.status(), 409, "killing a stopped container conflicts");
}

#[tokio::test]
async fn environment_reaches_the_process_with_hostname_and_host_aliases() {
    let h = Harness::start().await;
    h.run(
        "env-bot",
        "printenv",
        json!({"Env": ["MARK=from-request", "BOT_CONFIG={\"connectionId\":\"c-1\"}"]}),
    )
    .await;
    let log = h
        .wait_for_log("env-bot", |log| log.contains("BOT_CONFIG="))
        .await;
    assert!(log.contains("MARK=from-request\n"), "{log}");
    assert!(log.contains("HOSTNAME=env-bot\n"), "{log}");
    assert!(log.contains("EXTRA=from-runtime\n"), "{log}");
    assert!(log.contains("IMAGE_VAR=from-image\n"), "{log}");
    assert!(
        log.contains("ALIASES=redis=127.0.0.1,bot-manager=127.0.0.2\n"),
        "{log}"
    );
    assert!(
        log.contains(r#"BOT_CONFIG={"connectionId":"c-1"}"#),
        "{log}"
    );
    let inspected = h.inspect("env-bot").await;
    assert!(
        inspected["LogPath"]
            .as_str()
            .unwrap()
            .ends_with("env-bot.log"),
        "{inspected}"
    );
}

#[tokio::test]
async fn shutdown_kills_every_container_process() {
    let h = Harness::start().await;
    h.run("a-polite", "graceful", json!({})).await;
    h.run("a-deaf", "stubborn", json!({})).await;
    let pids = [h.pid("a-polite").await, h.pid("a-deaf").await];
    let socket = h.socket();
    h.runtime.shutdown().await;
    for pid in pids {
        assert!(process_gone(pid), "{pid} outlived the runtime");
    }
    assert!(!socket.exists(), "the socket file is removed");
}

#[tokio::test]
async fn dropping_the_runtime_kills_every_container_process() {
    let h = Harness::start().await;
    h.run("dropped", "stubborn", json!({})).await;
    let pid = h.pid("dropped").await;
    drop(h);
    wait_until_gone(pid).await;
}

/// The pid the `shell-pid1` image's child printed, once it has set its TERM trap.
async fn shielded_child_pid(h: &Harness, name: &str) -> i32 {
    let log = h
        .wait_for_log(name, |log| {
            log.contains("pid1-ready\n") && log.contains("child-pid=")
        })
        .await;
    let line = log
        .lines()
        .find_map(|line| line.strip_prefix("child-pid="))
        .expect("the child printed its pid");
    line.parse().expect("a pid")
}

/// Whether `signal` is pending for `pid` (queued but not yet handled).
fn signal_pending(pid: i32, signal: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .filter_map(|line| {
            line.strip_prefix("SigPnd:")
                .or_else(|| line.strip_prefix("ShdPnd:"))
        })
        .map(|mask| u64::from_str_radix(mask.trim(), 16).expect("a hex mask"))
        .any(|mask| mask & (1 << (signal - 1)) != 0)
}

// Regression: stop sent SIGTERM to the whole process group, so a PID-1 shell that ignores
// SIGTERM (the production bot's case) could not keep it from its children as under Docker.
#[tokio::test]
async fn stop_sends_sigterm_to_pid_1_only_so_its_children_last_until_the_sigkill() {
    let h = Harness::start().await;
    h.run("shielded", "shell-pid1", json!({})).await;
    let child = shielded_child_pid(&h, "shielded").await;

    let stop = h.post("/containers/shielded/stop?t=1").await;
    assert_eq!(stop.status(), 204);
    let state = h.inspect("shielded").await["State"].clone();
    // A child that saw SIGTERM would have exited, ending the shell's `wait` (exit 7).
    assert_eq!(state["ExitCode"], 137, "{state}");
    let log = h.log("shielded");
    assert!(!log.contains("child-term"), "{log}");
    assert!(!log.contains("pid1-wait-returned"), "{log}");
    wait_until_gone(child).await;
}

// Regression: `kill?signal=` signalled the whole process group, where Docker signals only
// the container's PID 1.
#[tokio::test]
async fn kill_with_a_signal_reaches_pid_1_and_not_its_children() {
    let h = Harness::start().await;
    h.run("shielded", "shell-pid1", json!({})).await;
    let child = shielded_child_pid(&h, "shielded").await;
    // Stopped, the child cannot handle a SIGTERM: one sent to it would stay pending.
    let child_pid = nix::unistd::Pid::from_raw(child);
    nix::sys::signal::kill(child_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let stopped = common::poll_until(|| {
        std::fs::read_to_string(format!("/proc/{child}/stat"))
            .ok()
            .and_then(|stat| common::process_state(&stat))
            == Some('T')
    })
    .await;
    assert!(stopped, "the child never stopped");

    let killed = h.post("/containers/shielded/kill?signal=TERM").await;
    assert_eq!(killed.status(), 204);
    assert!(
        !signal_pending(child, libc::SIGTERM),
        "SIGTERM reached PID 1's child"
    );
    assert_eq!(h.inspect("shielded").await["State"]["Running"], true);
    nix::sys::signal::kill(child_pid, nix::sys::signal::Signal::SIGCONT).unwrap();
}
