//! The `/_runtime/` control API: rules, restarts under a new uid, faults, forgetting.

mod common;

use common::{Harness, process_gone, process_state, wait_until_gone};
use serde_json::{Value, json};

fn bot_config(meeting_id: i64, connection_id: &str) -> String {
    let config = json!({
        "meeting_id": meeting_id,
        "platform": "google_meet",
        "nativeMeetingId": format!("abc-defg-{meeting_id:03}"),
        "connectionId": connection_id,
        "redisUrl": "redis://redis:6379/0",
        "container_name": format!("vexa-bot-{meeting_id}-00000000"),
    });
    format!("BOT_CONFIG={config}")
}

async fn records(h: &Harness) -> Vec<Value> {
    let response = h.get("/_runtime/containers").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn rules_env_reaches_matching_containers_only() {
    let h = Harness::start().await;
    let rule = json!({"match": {"meeting_id": 7}, "env": {"MARK": "ruled"}});
    let response = h.post_json("/_runtime/rules", &rule).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert!(created["id"].as_u64().is_some(), "{created}");
    let by_native = json!({"match": {"native_meeting_id": "abc-defg-008", "name_prefix": "vexa-"}, "env": {"MARK": "native"}});
    assert_eq!(
        h.post_json("/_runtime/rules", &by_native).await.status(),
        201
    );

    h.run(
        "vexa-bot-7-aa",
        "printenv",
        json!({"Env": [bot_config(7, "u7")]}),
    )
    .await;
    h.run(
        "vexa-bot-8-bb",
        "printenv",
        json!({"Env": [bot_config(8, "u8")]}),
    )
    .await;
    h.run(
        "other-8",
        "printenv",
        json!({"Env": [bot_config(8, "u8b")]}),
    )
    .await;
    let seven = h
        .wait_for_log("vexa-bot-7-aa", |l| l.contains("BOT_CONFIG="))
        .await;
    let eight = h
        .wait_for_log("vexa-bot-8-bb", |l| l.contains("BOT_CONFIG="))
        .await;
    let other = h
        .wait_for_log("other-8", |l| l.contains("BOT_CONFIG="))
        .await;
    assert!(seven.contains("MARK=ruled\n"), "{seven}");
    assert!(eight.contains("MARK=native\n"), "{eight}");
    assert!(
        other.contains("MARK=\n"),
        "the name prefix did not match: {other}"
    );

    let rules: Value = h.get("/_runtime/rules").await.json().await.unwrap();
    assert_eq!(rules.as_array().unwrap().len(), 2);
    assert_eq!(h.delete("/_runtime/rules").await.status(), 204);
    let rules: Value = h.get("/_runtime/rules").await.json().await.unwrap();
    assert_eq!(rules, json!([]));

    let bad = h
        .post_json(
            "/_runtime/rules",
            &json!({"match": {"meeting": 1}, "env": {}}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("meeting"),
        "{body}"
    );
}

#[tokio::test]
async fn restart_with_new_uid_changes_bot_config_connection_id() {
    let h = Harness::start().await;
    h.run(
        "vexa-bot-3-cc",
        "printenv",
        json!({"Env": [bot_config(3, "uid-1")]}),
    )
    .await;
    h.wait_for_log("vexa-bot-3-cc", |l| l.contains("uid-1"))
        .await;
    let old_pid = h.pid("vexa-bot-3-cc").await;
    let query = "filters=%7B%22container%22%3A%5B%22vexa-bot-3-cc%22%5D%7D";
    let mut events = h.events(query).await;

    let response = h
        .post_json(
            "/_runtime/containers/vexa-bot-3-cc/restart",
            &json!({"new_uid": true}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let new_uid = body["connection_id"].as_str().unwrap().to_owned();
    assert_ne!(new_uid, "uid-1");
    assert!(uuid::Uuid::parse_str(&new_uid).is_ok(), "{new_uid}");

    assert_eq!(
        events.expect_action("die").await["Actor"]["Attributes"]["exitCode"],
        "137"
    );
    assert_eq!(events.next().await.unwrap()["Action"], "start");
    assert_eq!(events.next().await.unwrap()["Action"], "restart");
    assert!(process_gone(old_pid));

    let log = h
        .wait_for_log("vexa-bot-3-cc", |l| l.contains(&new_uid))
        .await;
    let configs: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("BOT_CONFIG="))
        .collect();
    assert_eq!(configs.len(), 2, "{log}");
    let rewritten: Value =
        serde_json::from_str(configs[1].trim_start_matches("BOT_CONFIG=")).unwrap();
    assert_eq!(rewritten["connectionId"], new_uid.as_str());
    assert_eq!(rewritten["meeting_id"], 3, "other keys are kept");

    let inspected = h.inspect("vexa-bot-3-cc").await;
    assert_eq!(inspected["RestartCount"], 1);
    assert!(
        inspected["Config"]["Env"][0]
            .as_str()
            .unwrap()
            .contains(&new_uid)
    );
    assert_ne!(h.pid("vexa-bot-3-cc").await, old_pid);
    let record = records(&h).await.remove(0);
    assert_eq!(record["connection_ids"], json!(["uid-1", new_uid]));

    let same = h
        .post("/_runtime/containers/vexa-bot-3-cc/restart")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        same["connection_id"],
        new_uid.as_str(),
        "without new_uid it is kept"
    );
}

#[tokio::test]
async fn restart_with_new_uid_of_a_container_without_bot_config_changes_nothing() {
    let h = Harness::start().await;
    h.run("plain", "graceful", json!({})).await;
    let pid = h.pid("plain").await;
    let response = h
        .post_json(
            "/_runtime/containers/plain/restart",
            &json!({"new_uid": true}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("BOT_CONFIG"),
        "{body}"
    );
    assert_eq!(h.pid("plain").await, pid, "the process was not touched");
}

#[tokio::test]
async fn stop_answers_404_leaves_the_process_running() {
    let h = Harness::start().await;
    h.run("sticky", "graceful", json!({})).await;
    let pid = h.pid("sticky").await;

    let response = h
        .put_json("/_runtime/faults", &json!({"stop_answers_404": true}))
        .await;
    assert_eq!(response.status(), 200);
    let faults: Value = response.json().await.unwrap();
    assert_eq!(
        faults,
        json!({"stop_delay_ms": 0, "stop_answers_404": true, "start_fails": false, "start_delay_ms": 0})
    );

    let stop = h.post("/containers/sticky/stop?t=1").await;
    assert_eq!(stop.status(), 404);
    let body: Value = stop.json().await.unwrap();
    assert_eq!(body["message"], "No such container: sticky");
    assert!(!process_gone(pid), "the process keeps running");
    assert_eq!(h.inspect("sticky").await["State"]["Running"], true);

    let faults: Value = h
        .put_json(
            "/_runtime/faults",
            &json!({"stop_answers_404": false, "stop_delay_ms": 20}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(faults["stop_delay_ms"], 20);
    assert_eq!(h.post("/containers/sticky/stop?t=5").await.status(), 204);
    assert!(process_gone(pid));
}

#[tokio::test]
async fn start_fails_answers_500_and_leaves_the_container_created() {
    let h = Harness::start().await;
    h.create("unlucky", "graceful", json!({})).await;
    h.put_json("/_runtime/faults", &json!({"start_fails": true}))
        .await;
    let start = h.post("/containers/unlucky/start").await;
    assert_eq!(start.status(), 500);
    let body: Value = start.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("start_fails"),
        "{body}"
    );
    assert_eq!(h.inspect("unlucky").await["State"]["Status"], "created");

    h.put_json("/_runtime/faults", &json!({"start_fails": false}))
        .await;
    h.start_container("unlucky").await;

    let typo = h
        .put_json("/_runtime/faults", &json!({"start_fail": true}))
        .await;
    assert_eq!(typo.status(), 400);
    let body: Value = typo.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("start_fail"),
        "{body}"
    );
}

#[tokio::test]
async fn forget_hides_containers_but_keeps_their_processes() {
    let h = Harness::start().await;
    h.run("ghost", "graceful", json!({})).await;
    let pid = h.pid("ghost").await;

    let forgotten: Value = h.post("/_runtime/forget").await.json().await.unwrap();
    assert_eq!(forgotten["forgotten"], 1);
    assert_eq!(h.get("/containers/ghost/json").await.status(), 404);
    assert_eq!(h.post("/containers/ghost/stop").await.status(), 404);
    let listed: Value = h.get("/containers/json?all=1").await.json().await.unwrap();
    assert_eq!(listed, json!([]));
    assert!(
        !process_gone(pid),
        "a forgotten container's process keeps running"
    );

    // The name is free again, as after a runtime restart.
    h.create("ghost", "graceful", json!({})).await;
    let all = records(&h).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["forgotten"], true);
    assert_eq!(all[0]["pid"], pid);
    assert_eq!(all[0]["state"], "running");
    assert_eq!(all[1]["forgotten"], false);

    // The control API still reaches the forgotten process by its id.
    let id = all[0]["id"].as_str().unwrap();
    let signalled = h
        .post_json(
            &format!("/_runtime/containers/{id}/signal"),
            &json!({"signal": "SIGKILL"}),
        )
        .await;
    assert_eq!(signalled.status(), 204);
    wait_until_gone(pid).await;
}

#[tokio::test]
async fn pause_and_resume_stop_and_continue_the_process() {
    let h = Harness::start().await;
    h.run("sleeper", "graceful", json!({})).await;
    let pid = h.pid("sleeper").await;
    let state = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| process_state(&stat))
    };

    assert_eq!(
        h.post("/_runtime/containers/sleeper/pause").await.status(),
        204
    );
    // Stopped ('T'), or 'D' when the shell was caught in vfork: it then waits for its
    // stopped child to exec, which is just as frozen.
    let frozen = || matches!(state(), Some('T' | 'D'));
    assert!(common::poll_until(frozen).await, "{:?}", state());
    let inspected = h.inspect("sleeper").await;
    assert_eq!(inspected["State"]["Paused"], true);
    assert_eq!(inspected["State"]["Status"], "paused");
    let listed: Value = h.get("/containers/json").await.json().await.unwrap();
    assert!(listed[0]["Status"].as_str().unwrap().ends_with("(Paused)"));
    assert_eq!(
        h.post("/_runtime/containers/sleeper/pause").await.status(),
        409
    );

    assert_eq!(
        h.post("/_runtime/containers/sleeper/resume").await.status(),
        204
    );
    assert!(common::poll_until(|| state() != Some('T')).await);
    assert_eq!(h.inspect("sleeper").await["State"]["Status"], "running");
    assert_eq!(
        h.post("/_runtime/containers/sleeper/resume").await.status(),
        409
    );
}

#[tokio::test]
async fn signal_sends_the_named_signal_to_the_containers_main_process() {
    let h = Harness::start().await;
    let mut events = h.events("").await;
    h.run_ready("listener", "graceful", json!({})).await;
    let response = h
        .post_json(
            "/_runtime/containers/listener/signal",
            &json!({"signal": "TERM"}),
        )
        .await;
    assert_eq!(response.status(), 204);
    let die = events.expect_action("die").await;
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "0", "the trap ran");

    let bad = h
        .post_json(
            "/_runtime/containers/listener/signal",
            &json!({"signal": "SIGNOPE"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let missing = h
        .post_json(
            "/_runtime/containers/nobody/signal",
            &json!({"signal": "SIGKILL"}),
        )
        .await;
    assert_eq!(missing.status(), 404);
}

// Regression: stop did not serialise with a control-API restart. It answered 204 when the
// process the restart killed died, and the restart then started a new one: the client
// believed stopped a container that was running.
#[tokio::test]
async fn stop_answers_only_once_the_incarnation_a_restart_started_during_its_grace_is_stopped() {
    let h = Harness::start().await;
    let marker = h.dir.path().join("flip-marker");
    let mut events = h.events("").await;
    h.run_ready(
        "flip",
        "flip",
        json!({"Env": [format!("FLIP_MARKER={}", marker.display())]}),
    )
    .await;

    // A grace far beyond the test: only a SIGTERM the process obeys ends this stop.
    let stop = tokio::spawn(h.http.post(h.url("/containers/flip/stop?t=600")).send());
    let term = events.expect_action("kill").await;
    assert_eq!(term["Actor"]["Attributes"]["signal"], "15", "{term}");

    // The first incarnation ignores the SIGTERM, so the stop is still in its grace.
    let restarted = h
        .post_json("/_runtime/containers/flip/restart", &json!({}))
        .await;
    assert_eq!(restarted.status(), 200);
    let stopped = tokio::time::timeout(common::DEADLINE, stop)
        .await
        .expect("the stop answers once the new incarnation obeys its SIGTERM")
        .unwrap()
        .unwrap();
    assert_eq!(stopped.status(), 204);
    let state = h.inspect("flip").await["State"].clone();
    assert_eq!(state["Running"], false, "{state}");
    assert_eq!(state["Status"], "exited", "{state}");
}

#[tokio::test]
async fn slow_start_keeps_the_container_created_until_it_answers() {
    let h = Harness::start().await;
    h.create("slow", "graceful", json!({})).await;
    let faults: Value = h
        .put_json("/_runtime/faults", &json!({"start_delay_ms": 60_000}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(faults["start_delay_ms"], 60_000);
    let pending = tokio::spawn({
        let url = h.url("/containers/slow/start");
        async move { reqwest::Client::new().post(url).send().await }
    });
    // Whatever the request has reached, the container cannot be running yet.
    assert_eq!(h.inspect("slow").await["State"]["Status"], "created");
    pending.abort();
}
