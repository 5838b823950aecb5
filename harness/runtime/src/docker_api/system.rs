//! `/_ping` and `/version`.

use axum::Json;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::{API_VERSION, MIN_API_VERSION};

/// Answers GET and HEAD (axum serves HEAD from the GET route, headers included).
pub(super) async fn ping() -> impl IntoResponse {
    (
        [
            ("Api-Version", API_VERSION),
            ("OSType", "linux"),
            ("Docker-Experimental", "false"),
            (
                CACHE_CONTROL.as_str(),
                "no-cache, no-store, must-revalidate",
            ),
            (PRAGMA.as_str(), "no-cache"),
            (CONTENT_TYPE.as_str(), "text/plain; charset=utf-8"),
        ],
        "OK",
    )
}

pub(super) async fn version() -> impl IntoResponse {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let version = concat!(env!("CARGO_PKG_VERSION"), "-stopflow");
    let body: Value = json!({
        "Platform": { "Name": "stopflow process runtime" },
        "Components": [{
            "Name": "Engine",
            "Version": version,
            "Details": { "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch },
        }],
        "Version": version,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": "",
        "BuildTime": "",
    });
    ([("Api-Version", API_VERSION)], Json(body))
}
