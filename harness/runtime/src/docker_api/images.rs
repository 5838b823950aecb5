//! `/images/...` and `/networks`: what clients ask before they create a container. An
//! image "exists" when the image map runs it; a pull of one succeeds at once (nothing is
//! downloaded), and a pull of any other fails as Docker's does for an unknown repository.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::http::{ApiError, Params};
use crate::images::Image;
use crate::supervisor::Supervisor;

type QueryParams = Result<Query<HashMap<String, String>>, QueryRejection>;

/// `GET /images/{name}/json` (the name may hold slashes: `ghcr.io/org/name:tag`).
pub(super) async fn inspect(
    State(supervisor): State<Arc<Supervisor>>,
    Path(rest): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Some(reference) = rest.strip_suffix("/json").filter(|r| !r.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("page not found: GET /images/{rest} is not supported by this runtime"),
        ));
    };
    let image = available(&supervisor, reference)?;
    Ok(Json(view(image, reference)))
}

/// `POST /images/create?fromImage=name[:tag]&tag=...`: newline-delimited progress, as
/// Docker streams it, for a mapped image; 404 for any other.
pub(super) async fn pull(
    State(supervisor): State<Arc<Supervisor>>,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let params = Params(query?.0);
    if params.get("fromSrc").is_some() {
        return Err(ApiError::bad_request(
            "this runtime imports no images (fromSrc): its images are the image map's",
        ));
    }
    let Some(from) = params.get("fromImage") else {
        return Err(ApiError::bad_request("the pull names no image (fromImage)"));
    };
    let reference = match params.get("tag") {
        Some(tag) if tag.starts_with("sha256:") => format!("{from}@{tag}"),
        Some(tag) if crate::images::split_tag(from).is_none() => format!("{from}:{tag}"),
        _ => from.to_owned(),
    };
    let image = match available(&supervisor, &reference) {
        Ok(image) => image,
        Err(_) if supervisor.image(&reference).is_none() => {
            // Docker's answer for a repository the registry does not have.
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "pull access denied for {reference}, repository does not exist or may \
                     require 'docker login': this runtime runs only the images of its image \
                     map, and this is not one of them"
                ),
            ));
        }
        Err(err) => return Err(err),
    };
    let tag = crate::images::split_tag(&reference).map_or("latest", |(_, tag)| tag);
    let lines = [
        json!({ "status": format!("Pulling from {}", repository(&reference)), "id": tag }),
        json!({ "status": format!("Digest: {}", image.id) }),
        json!({ "status": format!("Status: Image is up to date for {reference}") }),
    ];
    let body: String = lines.iter().map(|line| format!("{line}\r\n")).collect();
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /networks`: Docker's three predefined networks, which is all there is here.
pub(super) async fn networks() -> Json<Value> {
    let network = |name: &str, driver: &str| {
        json!({
            "Name": name,
            "Id": format!("{:0<64}", hex(name)),
            "Created": "0001-01-01T00:00:00Z",
            "Scope": "local",
            "Driver": driver,
            "EnableIPv6": false,
            "Internal": false,
            "Attachable": false,
            "Ingress": false,
            "IPAM": { "Driver": "default", "Config": [] },
            "Options": {},
            "Labels": {},
        })
    };
    Json(json!([
        network("bridge", "bridge"),
        network("host", "host"),
        network("none", "null"),
    ]))
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// `name:tag` -> `name`, with Docker Hub's `library/` for a bare name.
fn repository(reference: &str) -> String {
    let name = crate::images::split_tag(reference).map_or(reference, |(name, _)| name);
    let name = name.split('@').next().unwrap_or(name);
    if name.contains('/') {
        name.to_owned()
    } else {
        format!("library/{name}")
    }
}

/// The image `reference` names, if it can run here: 404 as Docker's when there is none.
fn available<'a>(supervisor: &'a Supervisor, reference: &str) -> Result<&'a Image, ApiError> {
    let image = supervisor.image(reference).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("No such image: {reference}"))
    })?;
    if let Some(reason) = &image.unavailable {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("No such image: {reference} (the image map runs it here, but {reason})"),
        ));
    }
    Ok(image)
}

fn view(image: &Image, reference: &str) -> Value {
    let exposed: BTreeMap<&str, Value> = image
        .ports
        .iter()
        .map(|port| (port.as_str(), json!({})))
        .collect();
    let env: Vec<String> = image.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "Id": image.id,
        "RepoTags": [crate::images::normalise_reference(reference)],
        "RepoDigests": [],
        "Parent": "",
        "Comment": "",
        "Created": "1970-01-01T00:00:00Z",
        "DockerVersion": "",
        "Author": "",
        "Config": {
            "Env": env,
            "Cmd": image.args,
            "Entrypoint": [image.program.display().to_string()],
            "ExposedPorts": if exposed.is_empty() { Value::Null } else { json!(exposed) },
            "WorkingDir": "",
            "Labels": {},
            "Volumes": null,
            "OnBuild": null,
        },
        "Architecture": arch,
        "Os": "linux",
        "Size": 0,
        "GraphDriver": { "Name": "process", "Data": {} },
        "RootFS": { "Type": "layers", "Layers": [] },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    })
}
