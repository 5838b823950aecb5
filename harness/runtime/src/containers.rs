//! The container table and each container's state machine.
//!
//! ```text
//! created --start--> running --pause--> paused --resume--> running
//!    ^                  |                  |
//!    |                  +------exit--------+--> exited --start--> running
//! ```
//! Removal and forgetting are flags rather than states, because the control API keeps
//! showing every container that ever existed.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::admission::{MAX_NAME_LEN, Refusal, cut_short, shown};
use crate::bot_config;
use crate::error::OpError;
use crate::images::random_hex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Paused,
    Exited,
}

impl State {
    /// Docker's `State` string.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Paused => "paused",
            State::Exited => "exited",
        }
    }

    /// A process exists (Docker reports a paused container as running too).
    pub fn is_live(self) -> bool {
        matches!(self, State::Running | State::Paused)
    }
}

/// What waiters watch: changes on every start, exit and removal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    pub live: bool,
    pub exits: u64,
    pub exit_code: i64,
    pub removed: bool,
}

/// Everything `POST /containers/create` decides.
#[derive(Debug, Clone, Default)]
pub(crate) struct CreateSpec {
    pub name: Option<String>,
    pub image: String,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub auto_remove: bool,
    pub network_mode: Option<String>,
    pub binds: Option<Vec<String>>,
    /// Docker's `Cmd`: empty, or one the image map accepts.
    pub cmd: Vec<String>,
    /// `ExposedPorts`, normalised (`6379/tcp`).
    pub exposed_ports: Vec<String>,
    /// `HostConfig.PortBindings`: container port to the host port asked for (`None`:
    /// any free one).
    pub port_bindings: BTreeMap<String, Option<u16>>,
    /// `HostConfig.PublishAllPorts`: the exposed ports too, each on a free host port.
    pub publish_all: bool,
}

#[derive(Debug)]
pub(crate) struct Container {
    pub id: String,
    pub name: String,
    /// The reference the client asked for.
    pub image: String,
    pub image_id: String,
    pub program: std::path::PathBuf,
    /// The image's arguments, or those the image map runs for the create's `Cmd`, with
    /// their `{port:...}` placeholders ([`Container::rendered_args`]).
    pub args: Vec<String>,
    /// The image's ports and the create's `ExposedPorts`.
    pub exposed_ports: Vec<String>,
    pub port_bindings: BTreeMap<String, Option<u16>>,
    pub publish_all: bool,
    /// Host ports published, once the container has started (kept across restarts).
    pub published: BTreeMap<String, u16>,
    /// Loopback ports for the placeholders of ports not published, as a container's
    /// private ports; kept across restarts.
    pub private_ports: BTreeMap<String, u16>,
    /// Its output, for the logs endpoint.
    pub logs: Arc<crate::logs::LogStore>,
    /// The request's `Env` with the matching rules' variables merged in.
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub auto_remove: bool,
    pub network_mode: String,
    pub binds: Option<Vec<String>>,
    pub created: DateTime<Utc>,
    pub state: State,
    pub pid: Option<u32>,
    pub exit_code: i64,
    pub error: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub restart_count: u64,
    pub connection_ids: Vec<String>,
    pub forgotten: bool,
    pub removed: bool,
    /// A stop is in progress: its exit also emits `stop`.
    pub stopping: bool,
    /// A restart is in progress: its exit must not auto-remove the container.
    pub restarting: bool,
    /// Counts incarnations, so a late exit report cannot touch a newer process.
    pub generation: u64,
    pub lifecycle: watch::Sender<Lifecycle>,
    /// Serialises the operations that spawn (start, restart) with removal.
    pub ops: Arc<tokio::sync::Mutex<()>>,
}

impl Container {
    pub(crate) fn new(
        spec: CreateSpec,
        name: String,
        image: &crate::images::Image,
        args: Vec<String>,
        env: Vec<String>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut exposed_ports: Vec<String> = image
            .ports
            .iter()
            .chain(&spec.exposed_ports)
            .chain(spec.port_bindings.keys())
            .cloned()
            .collect();
        exposed_ports.sort();
        exposed_ports.dedup();
        Container {
            id: random_hex(32),
            name,
            image: spec.image,
            image_id: image.id.clone(),
            program: image.program.clone(),
            args,
            exposed_ports,
            port_bindings: spec.port_bindings,
            publish_all: spec.publish_all,
            published: BTreeMap::new(),
            private_ports: BTreeMap::new(),
            logs: crate::logs::LogStore::new(),
            env,
            labels: spec.labels,
            auto_remove: spec.auto_remove,
            network_mode: spec.network_mode.unwrap_or_else(|| "default".into()),
            binds: spec.binds,
            created: now,
            state: State::Created,
            pid: None,
            exit_code: 0,
            error: String::new(),
            started_at: None,
            finished_at: None,
            restart_count: 0,
            connection_ids: Vec::new(),
            forgotten: false,
            removed: false,
            stopping: false,
            restarting: false,
            generation: 0,
            lifecycle: watch::Sender::new(Lifecycle::default()),
            ops: Arc::default(),
        }
    }

    /// Seen by the Docker API: neither removed nor forgotten.
    pub fn is_visible(&self) -> bool {
        !self.removed && !self.forgotten
    }

    pub fn command_line(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.rendered_args())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs on the host's network: its ports are its own, and nothing is published.
    pub fn host_network(&self) -> bool {
        self.network_mode == "host"
    }

    /// The ports to publish: those bound, and with `PublishAllPorts` every exposed one.
    pub fn ports_to_publish(&self) -> Vec<(String, Option<u16>)> {
        if self.host_network() {
            return Vec::new();
        }
        let mut ports: Vec<(String, Option<u16>)> = self
            .port_bindings
            .iter()
            .map(|(port, host)| (port.clone(), *host))
            .collect();
        if self.publish_all {
            for port in &self.exposed_ports {
                if !self.port_bindings.contains_key(port) {
                    ports.push((port.clone(), None));
                }
            }
        }
        ports
    }

    /// The host port a process listens on for the container port `port`: the published
    /// one, its own on the host network, else the private one; `None` before the start.
    pub fn host_port(&self, port: &str) -> Option<u16> {
        let port = crate::images::normalise_port(port)?;
        if self.host_network() {
            return port.split('/').next()?.parse().ok();
        }
        self.published
            .get(&port)
            .or_else(|| self.private_ports.get(&port))
            .copied()
    }

    /// The arguments with every port placeholder the container can answer filled in.
    pub fn rendered_args(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|arg| {
                crate::images::render(arg, |placeholder| match placeholder {
                    crate::images::Placeholder::Port(port) => {
                        self.host_port(port).map(|p| p.to_string())
                    }
                    crate::images::Placeholder::Group(_) => None,
                })
            })
            .collect()
    }

    pub fn connection_id(&self) -> Option<String> {
        bot_config::connection_id(&self.env)
    }

    pub(crate) fn mark_started(&mut self, pid: u32, now: DateTime<Utc>) {
        self.state = State::Running;
        self.pid = Some(pid);
        self.exit_code = 0;
        self.error.clear();
        self.started_at = Some(now);
        self.generation += 1;
        if let Some(uid) = self.connection_id()
            && self.connection_ids.last() != Some(&uid)
        {
            self.connection_ids.push(uid);
        }
        self.lifecycle.send_modify(|l| l.live = true);
    }

    pub(crate) fn mark_exited(&mut self, code: i64, now: DateTime<Utc>) {
        self.state = State::Exited;
        self.pid = None;
        self.exit_code = code;
        self.finished_at = Some(now);
        self.lifecycle.send_modify(|l| {
            l.live = false;
            l.exits += 1;
            l.exit_code = code;
        });
    }

    pub(crate) fn mark_spawn_failed(&mut self, code: i64, error: String) {
        self.exit_code = code;
        self.error = error;
    }

    pub(crate) fn mark_removed(&mut self) {
        self.removed = true;
        self.lifecycle.send_modify(|l| l.removed = true);
    }

    /// Docker's `Status` text: `Up 3 seconds`, `Exited (137) 2 seconds ago`, `Created`.
    pub fn status_text(&self, now: DateTime<Utc>) -> String {
        let since = |at: Option<DateTime<Utc>>| human_duration(now - at.unwrap_or(now));
        match self.state {
            State::Created => "Created".into(),
            State::Running => format!("Up {}", since(self.started_at)),
            State::Paused => format!("Up {} (Paused)", since(self.started_at)),
            State::Exited => format!(
                "Exited ({}) {} ago",
                self.exit_code,
                since(self.finished_at)
            ),
        }
    }
}

/// go-units' `HumanDuration`, which Docker uses for `Status`.
pub(crate) fn human_duration(elapsed: chrono::TimeDelta) -> String {
    let seconds = elapsed.num_seconds();
    let minutes = elapsed.num_minutes();
    let hours = (elapsed.num_milliseconds() as f64 / 3_600_000.0 + 0.5) as i64;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", elapsed.num_hours() / 24 / 365),
    }
}

/// Docker's rule for container names (a leading `/` is allowed and dropped), and at most
/// [`MAX_NAME_LEN`] characters, so that the container's log file can be created.
pub(crate) fn validate_name(name: &str) -> Result<String, OpError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok =
        bare.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !(first_ok && rest_ok) {
        // Docker's text, which clients match on; the name itself is cut short when long.
        return Err(OpError::InvalidName(cut_short(name)));
    }
    if bare.len() > MAX_NAME_LEN {
        return Err(Refusal::NameTooLong {
            name: shown(bare),
            length: bare.len(),
        }
        .into());
    }
    Ok(bare.to_owned())
}

/// Which containers a lookup may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// What the Docker API sees.
    Visible,
    /// The control API also reaches forgotten containers (the newest one wins a tie).
    IncludingForgotten,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    /// In creation order; removed containers stay as tombstones.
    containers: Vec<Container>,
}

impl Table {
    pub(crate) fn insert(&mut self, container: Container) {
        self.containers.push(container);
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Container> {
        self.containers.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Container> {
        self.containers.iter_mut()
    }

    pub(crate) fn by_id(&self, id: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.id == id)
    }

    pub(crate) fn by_id_mut(&mut self, id: &str) -> Option<&mut Container> {
        self.containers.iter_mut().find(|c| c.id == id)
    }

    pub(crate) fn visible_by_name(&self, name: &str) -> Option<&Container> {
        self.containers
            .iter()
            .find(|c| c.is_visible() && c.name == name)
    }

    /// Docker's lookup order: full id, then name (with or without `/`), then unique id prefix.
    pub(crate) fn resolve(&self, reference: &str, scope: Scope) -> Result<&Container, OpError> {
        let index = self.resolve_index(reference, scope)?;
        Ok(&self.containers[index])
    }

    pub(crate) fn resolve_mut(
        &mut self,
        reference: &str,
        scope: Scope,
    ) -> Result<&mut Container, OpError> {
        let index = self.resolve_index(reference, scope)?;
        Ok(&mut self.containers[index])
    }

    fn resolve_index(&self, reference: &str, scope: Scope) -> Result<usize, OpError> {
        let all = self.containers.iter().enumerate();
        let visible = all.clone().filter(|(_, c)| c.is_visible());
        let found = match (lookup(visible, reference)?, scope) {
            (Some(index), _) => Some(index),
            (None, Scope::Visible) => None,
            (None, Scope::IncludingForgotten) => {
                let forgotten = all.rev().filter(|(_, c)| !c.removed && c.forgotten);
                lookup(forgotten, reference)?
            }
        };
        found.ok_or_else(|| OpError::NoSuchContainer(reference.to_owned()))
    }
}

fn lookup<'a>(
    candidates: impl Iterator<Item = (usize, &'a Container)> + Clone,
    reference: &str,
) -> Result<Option<usize>, OpError> {
    if reference.is_empty() {
        return Ok(None);
    }
    let name = reference.strip_prefix('/').unwrap_or(reference);
    let exact = candidates
        .clone()
        .find(|(_, c)| c.id == reference)
        .or_else(|| candidates.clone().find(|(_, c)| c.name == name));
    if let Some((index, _)) = exact {
        return Ok(Some(index));
    }
    let mut by_prefix = candidates.filter(|(_, c)| c.id.starts_with(reference));
    match (by_prefix.next(), by_prefix.next()) {
        (Some((index, _)), None) => Ok(Some(index)),
        (Some(_), Some(_)) => Err(OpError::AmbiguousPrefix(reference.to_owned())),
        (None, _) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::Image;

    fn container(name: &str, id: &str) -> Container {
        let image = Image {
            name: "img".into(),
            id: "sha256:0".into(),
            program: "/bin/true".into(),
            args: vec![],
            env: BTreeMap::new(),
            ports: vec![],
            cmds: vec![],
            unavailable: None,
        };
        let spec = CreateSpec {
            image: "img".into(),
            ..CreateSpec::default()
        };
        let mut c = Container::new(spec, name.into(), &image, vec![], vec![], Utc::now());
        c.id = id.into();
        c
    }

    #[test]
    fn lookup_finds_by_id_name_and_unique_prefix() {
        let mut table = Table::default();
        table.insert(container("alpha", "abc111"));
        table.insert(container("beta", "abc222"));
        let find = |r: &str| table.resolve(r, Scope::Visible).map(|c| c.name.clone());
        assert_eq!(find("abc111").unwrap(), "alpha");
        assert_eq!(find("/beta").unwrap(), "beta");
        assert_eq!(find("abc2").unwrap(), "beta");
        assert!(matches!(find("abc"), Err(OpError::AmbiguousPrefix(_))));
        assert!(matches!(find("zzz"), Err(OpError::NoSuchContainer(_))));
        assert!(matches!(find(""), Err(OpError::NoSuchContainer(_))));
    }

    #[test]
    fn forgotten_containers_are_reached_only_by_the_control_scope() {
        let mut table = Table::default();
        let mut old = container("alpha", "abc111");
        old.forgotten = true;
        table.insert(old);
        assert!(table.resolve("alpha", Scope::Visible).is_err());
        assert!(table.resolve("alpha", Scope::IncludingForgotten).is_ok());
    }

    #[test]
    fn status_text_reads_like_docker() {
        let now = Utc::now();
        let mut c = container("alpha", "abc");
        assert_eq!(c.status_text(now), "Created");
        c.mark_started(1, now - chrono::TimeDelta::seconds(3));
        assert_eq!(c.status_text(now), "Up 3 seconds");
        c.mark_exited(137, now - chrono::TimeDelta::seconds(2));
        assert_eq!(c.status_text(now), "Exited (137) 2 seconds ago");
        assert_eq!(
            human_duration(chrono::TimeDelta::minutes(1)),
            "About a minute"
        );
        assert_eq!(human_duration(chrono::TimeDelta::hours(3)), "3 hours");
    }

    #[test]
    fn container_names_follow_docker_rules() {
        assert_eq!(
            validate_name("/vexa-bot-1-abcd").unwrap(),
            "vexa-bot-1-abcd"
        );
        assert!(validate_name("-bad").is_err());
        assert!(validate_name("a").is_err());
        assert!(validate_name("has space").is_err());
        assert!(validate_name("nul\0inside").is_err());
        assert!(validate_name(&"n".repeat(MAX_NAME_LEN)).is_ok());
        let err = validate_name(&"n".repeat(MAX_NAME_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("limit of 128"), "{err}");
    }
}
