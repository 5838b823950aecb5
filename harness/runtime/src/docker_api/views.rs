//! The JSON shapes of `GET /containers/json` and `GET /containers/{id}/json`, with the
//! fields the Docker CLI and bollard read.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::containers::{Container, State};

/// Docker's "never" timestamp.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn timestamp(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || ZERO_TIME.to_owned(),
        |at| at.to_rfc3339_opts(SecondsFormat::Nanos, true),
    )
}

pub(crate) fn summary(c: &Container, now: DateTime<Utc>) -> Value {
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": c.command_line(),
        "Created": c.created.timestamp(),
        "Ports": [],
        "Labels": c.labels,
        "State": c.state.as_str(),
        "Status": c.status_text(now),
        "HostConfig": { "NetworkMode": c.network_mode },
        "NetworkSettings": { "Networks": {} },
        "Mounts": [],
    })
}

pub(crate) fn inspect(c: &Container, log_path: Option<String>) -> Value {
    let cmd: Vec<String> = std::iter::once(c.program.display().to_string())
        .chain(c.args.iter().cloned())
        .collect();
    json!({
        "Id": c.id,
        "Created": timestamp(Some(c.created)),
        "Path": c.program.display().to_string(),
        "Args": c.args,
        "State": {
            "Status": c.state.as_str(),
            "Running": c.state.is_live(),
            "Paused": c.state == State::Paused,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": c.pid.unwrap_or(0),
            "ExitCode": c.exit_code,
            "Error": c.error,
            "StartedAt": timestamp(c.started_at),
            "FinishedAt": timestamp(c.finished_at),
        },
        "Image": c.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": log_path.unwrap_or_default(),
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "process",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": {
            "AutoRemove": c.auto_remove,
            "NetworkMode": c.network_mode,
            "Binds": c.binds,
            "RestartPolicy": { "Name": "no", "MaximumRetryCount": 0 },
        },
        "Mounts": [],
        "Config": {
            "Hostname": c.name,
            "Domainname": "",
            "User": "",
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "Tty": false,
            "OpenStdin": false,
            "StdinOnce": false,
            "Env": c.env,
            "Cmd": cmd,
            "Image": c.image,
            "Volumes": null,
            "WorkingDir": "",
            "Entrypoint": null,
            "OnBuild": null,
            "Labels": c.labels,
        },
        "NetworkSettings": { "Networks": {}, "Ports": {} },
    })
}
