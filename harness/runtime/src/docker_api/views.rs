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

/// `NetworkSettings.Ports`: every exposed port, with its loopback binding once published.
fn port_map(c: &Container) -> Value {
    if c.host_network() {
        return json!({});
    }
    let ports: serde_json::Map<String, Value> = c
        .exposed_ports
        .iter()
        .map(|port| {
            let binding = c.published.get(port).map_or(
                Value::Null,
                |host| json!([{ "HostIp": "127.0.0.1", "HostPort": host.to_string() }]),
            );
            (port.clone(), binding)
        })
        .collect();
    Value::Object(ports)
}

/// `HostConfig.PortBindings` as asked.
fn bindings(c: &Container) -> Value {
    let map: serde_json::Map<String, Value> = c
        .port_bindings
        .iter()
        .map(|(port, host)| {
            let host = host.map(|p| p.to_string()).unwrap_or_default();
            (port.clone(), json!([{ "HostIp": "", "HostPort": host }]))
        })
        .collect();
    Value::Object(map)
}

/// The summary's `Ports`: `[{"IP", "PrivatePort", "PublicPort", "Type"}]`.
fn port_list(c: &Container) -> Vec<Value> {
    c.exposed_ports
        .iter()
        .filter(|_| !c.host_network())
        .map(|port| {
            let (number, kind) = port.split_once('/').unwrap_or((port, "tcp"));
            let private: u16 = number.parse().unwrap_or(0);
            match c.published.get(port) {
                Some(public) => json!({
                    "IP": "127.0.0.1", "PrivatePort": private, "PublicPort": public, "Type": kind,
                }),
                None => json!({ "PrivatePort": private, "Type": kind }),
            }
        })
        .collect()
}

pub(crate) fn summary(c: &Container, now: DateTime<Utc>) -> Value {
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": c.command_line(),
        "Created": c.created.timestamp(),
        "Ports": port_list(c),
        "Labels": c.labels,
        "State": c.state.as_str(),
        "Status": c.status_text(now),
        "HostConfig": { "NetworkMode": c.network_mode },
        "NetworkSettings": { "Networks": {} },
        "Mounts": [],
    })
}

pub(crate) fn inspect(c: &Container, log_path: Option<String>) -> Value {
    let args = c.rendered_args();
    let cmd: Vec<String> = std::iter::once(c.program.display().to_string())
        .chain(args.iter().cloned())
        .collect();
    let exposed: serde_json::Map<String, Value> = c
        .exposed_ports
        .iter()
        .map(|port| (port.clone(), json!({})))
        .collect();
    json!({
        "Id": c.id,
        "Created": timestamp(Some(c.created)),
        "Path": c.program.display().to_string(),
        "Args": args,
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
            "PortBindings": bindings(c),
            "PublishAllPorts": c.publish_all,
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
            "ExposedPorts": if exposed.is_empty() { Value::Null } else { Value::Object(exposed) },
            "Volumes": null,
            "WorkingDir": "",
            "Entrypoint": null,
            "OnBuild": null,
            "Labels": c.labels,
        },
        "NetworkSettings": { "Networks": {}, "Ports": port_map(c) },
    })
}
