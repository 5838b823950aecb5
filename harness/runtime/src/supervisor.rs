//! The supervisor: container operations over the table, the processes and the events.
//!
//! Lock order is table, then controls, then the event bus; no lock is held across an
//! await. An event is published while the table lock is held, so the event order always
//! agrees with the state changes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use nix::sys::signal::Signal;
use tokio::sync::watch;

use crate::admission::{self, EnvScope};
use crate::bot_config;
use crate::config::{EnvVar, HostAlias};
use crate::containers::{Container, CreateSpec, Lifecycle, Scope, State, Table, validate_name};
use crate::error::OpError;
use crate::events::{Event, EventBus, EventSubscription};
use crate::faults::{Faults, FaultsPatch};
use crate::images::{Images, random_hex};
use crate::process::{self, ContainerProcess, ProcessSpec, Spawner};
use crate::rules::{self, Rule, RuleSpec};

/// How long a SIGKILLed process may take to be reaped before the operation gives up.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings that apply to every container.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub env: Vec<EnvVar>,
    pub host_aliases: Vec<HostAlias>,
    pub log_dir: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Controls {
    rules: Vec<Rule>,
    next_rule_id: u64,
    faults: Faults,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    /// Nothing to do: already running for start, already stopped for stop (Docker's 304).
    NotModified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

pub(crate) struct Supervisor {
    table: Mutex<Table>,
    controls: Mutex<Controls>,
    events: Arc<EventBus>,
    spawner: Spawner,
    images: Images,
    settings: Settings,
    shutting_down: watch::Sender<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, so a panic elsewhere does not
    // make it unusable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Supervisor {
    pub(crate) fn new(images: Images, settings: Settings, spawner: Spawner) -> Arc<Self> {
        Arc::new(Supervisor {
            table: Mutex::default(),
            controls: Mutex::default(),
            events: EventBus::new(),
            spawner,
            images,
            settings,
            shutting_down: watch::Sender::new(false),
        })
    }

    /// The image map's entry for `reference`.
    pub(crate) fn image(&self, reference: &str) -> Option<&crate::images::Image> {
        self.images.get(reference)
    }

    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    pub(crate) fn subscribe(&self, since_nanos: Option<i64>) -> EventSubscription {
        self.events.subscribe(since_nanos)
    }

    fn emit(&self, container: &Container, action: &str, extra: &[(&str, String)]) {
        if container.forgotten {
            // Unknown to the Docker API, as after a runtime restart.
            return;
        }
        let mut attributes: BTreeMap<String, String> = container.labels.clone();
        attributes.insert("name".into(), container.name.clone());
        attributes.insert("image".into(), container.image.clone());
        for (key, value) in extra {
            attributes.insert((*key).into(), value.clone());
        }
        self.events.publish(Event::container(
            action,
            &container.id,
            &container.image,
            attributes,
            Utc::now(),
        ));
    }

    // ----- Docker operations -------------------------------------------------------------

    pub(crate) fn create(&self, spec: CreateSpec) -> Result<String, OpError> {
        // As Docker, the request is checked before the image is looked up: what is refused
        // is refused whatever the image.
        let name = match &spec.name {
            Some(name) => validate_name(name)?,
            None => format!("stopflow_{}", random_hex(6)),
        };
        admission::check_env_entries(EnvScope::Create, &spec.env)?;
        let image = self
            .images
            .get(&spec.image)
            .ok_or_else(|| OpError::NoSuchImage(spec.image.clone()))?;
        if let Some(reason) = &image.unavailable {
            return Err(OpError::NoSuchImage(format!(
                "{} (the image map runs it here, but {reason})",
                spec.image
            )));
        }
        let args = image
            .args_for(&spec.cmd)
            .ok_or_else(|| admission::Refusal::CmdNotListed {
                image: admission::shown(&spec.image),
                cmd: admission::shown(&serde_json::Value::from(spec.cmd.clone()).to_string()),
            })?;
        let mut table = self.table();
        if let Some(existing) = table.visible_by_name(&name) {
            return Err(OpError::NameConflict {
                name,
                id: existing.id.clone(),
            });
        }
        let rule_env = {
            let controls = lock(&self.controls);
            let config = bot_config::parse(&spec.env);
            rules::env_for(&controls.rules, &name, config.as_ref())
        };
        let env: Vec<String> = spec
            .env
            .iter()
            .cloned()
            .chain(rule_env.iter().map(|(key, value)| format!("{key}={value}")))
            .collect();
        // Each rule was bounded when it was added, but several may match one container.
        admission::check_env_entries(EnvScope::CreateWithRules, &env)?;
        let container = Container::new(spec, name, image, args, env, Utc::now());
        let id = container.id.clone();
        self.emit(&container, "create", &[]);
        table.insert(container);
        Ok(id)
    }

    pub(crate) async fn start(self: &Arc<Self>, reference: &str) -> Result<Outcome, OpError> {
        let (id, name, ops) = {
            let table = self.table();
            let c = table.resolve(reference, Scope::Visible)?;
            (c.id.clone(), c.name.clone(), Arc::clone(&c.ops))
        };
        if self.faults().start_fails {
            return Err(OpError::InjectedFault {
                operation: "start",
                name,
                fault: "start_fails",
            });
        }
        self.slow_start().await;
        let _op = ops.lock().await;
        {
            let table = self.table();
            match table.by_id(&id) {
                Some(c) if c.is_visible() && c.state.is_live() => return Ok(Outcome::NotModified),
                Some(c) if c.is_visible() => {}
                _ => return Err(OpError::NoSuchContainer(reference.to_owned())),
            }
        }
        self.spawn_process(&id).await?;
        Ok(Outcome::Done)
    }

    pub(crate) async fn stop(
        self: &Arc<Self>,
        reference: &str,
        grace: Option<Duration>,
        signal: Signal,
    ) -> Result<Outcome, OpError> {
        let faults = self.faults();
        if faults.stop_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.stop_delay_ms)).await;
        }
        if faults.stop_answers_404 {
            return Err(OpError::NoSuchContainer(reference.to_owned()));
        }
        let (id, ops) = {
            let table = self.table();
            let c = table.resolve(reference, Scope::Visible)?;
            (c.id.clone(), Arc::clone(&c.ops))
        };
        // Each round stops one incarnation. A restart or start that ran meanwhile leaves a
        // newer one, and a stop that answered then would report a running container stopped.
        let mut outcome = Outcome::NotModified;
        loop {
            let (mut lifecycle, exits) = {
                // Serialised with start and restart, so the process signalled is not one
                // they are about to replace.
                let _op = ops.lock().await;
                let mut table = self.table();
                let Some(c) = table.by_id_mut(&id).filter(|c| c.is_visible()) else {
                    // Removed (or forgotten) while a round ran: nothing of it runs any more.
                    return match outcome {
                        Outcome::Done => Ok(Outcome::Done),
                        Outcome::NotModified => Err(OpError::NoSuchContainer(reference.to_owned())),
                    };
                };
                let Some(pid) = c.pid.filter(|_| c.state.is_live()) else {
                    return Ok(outcome);
                };
                c.stopping = true;
                signal_container(c, pid, signal)?;
                self.emit(c, "kill", &[("signal", (signal as i32).to_string())]);
                let lifecycle = c.lifecycle.subscribe();
                let exits = lifecycle.borrow().exits;
                (lifecycle, exits)
            };
            outcome = Outcome::Done;
            if wait_for_exit(&mut lifecycle, exits, grace).await {
                continue;
            }
            self.kill_incarnation(&id, exits)?;
            if !wait_for_exit(&mut lifecycle, exits, Some(KILL_TIMEOUT)).await {
                return Err(OpError::KillTimeout(reference.to_owned()));
            }
        }
    }

    /// SIGKILLs the container's process if it is still the one that had `exits` exits before.
    fn kill_incarnation(&self, id: &str, exits: u64) -> Result<(), OpError> {
        let table = self.table();
        let Some(c) = table.by_id(id) else {
            return Ok(());
        };
        if let Some(pid) = c.pid
            && c.lifecycle.borrow().exits == exits
        {
            signal_container(c, pid, Signal::SIGKILL)?;
            self.emit(
                c,
                "kill",
                &[("signal", (Signal::SIGKILL as i32).to_string())],
            );
        }
        Ok(())
    }

    pub(crate) fn kill(
        &self,
        reference: &str,
        signal: Signal,
        scope: Scope,
    ) -> Result<(), OpError> {
        let table = self.table();
        let c = table.resolve(reference, scope)?;
        let Some(pid) = c.pid.filter(|_| c.state.is_live()) else {
            return Err(OpError::NotRunning(c.id.clone()));
        };
        signal_container(c, pid, signal)?;
        self.emit(c, "kill", &[("signal", (signal as i32).to_string())]);
        Ok(())
    }

    /// Waits as Docker's `/wait` does and answers the exit code. The container is looked
    /// up at once (an unknown one is an error now); the answer resolves with the exit.
    pub(crate) fn wait(
        &self,
        reference: &str,
        condition: WaitCondition,
    ) -> Result<impl std::future::Future<Output = Result<i64, OpError>> + Send + 'static, OpError>
    {
        let mut lifecycle = {
            let table = self.table();
            table
                .resolve(reference, Scope::Visible)?
                .lifecycle
                .subscribe()
        };
        let mut shutting_down = self.shutting_down.subscribe();
        Ok(async move {
            let before = *lifecycle.borrow();
            let done = |l: &Lifecycle| match condition {
                WaitCondition::NotRunning => !l.live,
                WaitCondition::NextExit => l.exits > before.exits,
                WaitCondition::Removed => l.removed,
            };
            let exited = async {
                // Records are never dropped, so the sender outlives every waiter.
                let code = lifecycle.wait_for(done).await.map(|l| l.exit_code);
                code.unwrap_or(before.exit_code)
            };
            tokio::select! {
                code = exited => Ok(code),
                _ = shutting_down.wait_for(|down| *down) => Err(OpError::ShuttingDown),
            }
        })
    }

    pub(crate) async fn remove(
        self: &Arc<Self>,
        reference: &str,
        force: bool,
    ) -> Result<(), OpError> {
        let (id, ops) = {
            let table = self.table();
            let c = table.resolve(reference, Scope::Visible)?;
            (c.id.clone(), Arc::clone(&c.ops))
        };
        let _op = ops.lock().await;
        let running = {
            let table = self.table();
            let c = table
                .by_id(&id)
                .filter(|c| c.is_visible())
                .ok_or_else(|| OpError::NoSuchContainer(reference.to_owned()))?;
            match c.pid.filter(|_| c.state.is_live()) {
                Some(_) if !force => return Err(OpError::RemoveRunning(c.name.clone())),
                Some(pid) => {
                    signal_container(c, pid, Signal::SIGKILL)?;
                    self.emit(
                        c,
                        "kill",
                        &[("signal", (Signal::SIGKILL as i32).to_string())],
                    );
                    let lifecycle = c.lifecycle.subscribe();
                    let exits = lifecycle.borrow().exits;
                    Some((lifecycle, exits))
                }
                None => None,
            }
        };
        if let Some((mut lifecycle, exits)) = running
            && !wait_for_exit(&mut lifecycle, exits, Some(KILL_TIMEOUT)).await
        {
            return Err(OpError::KillTimeout(reference.to_owned()));
        }
        let mut table = self.table();
        if let Some(c) = table.by_id_mut(&id)
            && !c.removed
        {
            c.mark_removed();
            self.emit(c, "destroy", &[]);
        }
        Ok(())
    }

    // ----- control operations ------------------------------------------------------------

    /// SIGKILLs the process and starts it again in the same container, optionally under a
    /// fresh `BOT_CONFIG.connectionId`; answers the connection id it now runs with.
    /// The `start_delay_ms` fault: every start waits this long first.
    async fn slow_start(&self) {
        let delay = self.faults().start_delay_ms;
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }

    pub(crate) async fn restart(
        self: &Arc<Self>,
        reference: &str,
        new_uid: bool,
    ) -> Result<Option<String>, OpError> {
        let (id, ops) = {
            let table = self.table();
            let c = table.resolve(reference, Scope::IncludingForgotten)?;
            (c.id.clone(), Arc::clone(&c.ops))
        };
        let _op = ops.lock().await;
        let (new_env, running) = {
            let mut table = self.table();
            let c = table
                .by_id_mut(&id)
                .filter(|c| !c.removed)
                .ok_or_else(|| OpError::NoSuchContainer(reference.to_owned()))?;
            // Checked before anything is killed, so a bad request changes nothing.
            let new_env = if new_uid {
                let uid = uuid::Uuid::new_v4().to_string();
                let env = bot_config::with_connection_id(&c.env, &uid).map_err(|problem| {
                    OpError::InvalidRequest(format!(
                        "cannot give container {} a new uid: {problem}",
                        c.name
                    ))
                })?;
                Some(env)
            } else {
                None
            };
            let running = match c.pid.filter(|_| c.state.is_live()) {
                Some(pid) => {
                    c.restarting = true;
                    signal_container(c, pid, Signal::SIGKILL)?;
                    self.emit(
                        c,
                        "kill",
                        &[("signal", (Signal::SIGKILL as i32).to_string())],
                    );
                    let lifecycle = c.lifecycle.subscribe();
                    let exits = lifecycle.borrow().exits;
                    Some((lifecycle, exits))
                }
                None => None,
            };
            (new_env, running)
        };
        if let Some((mut lifecycle, exits)) = running
            && !wait_for_exit(&mut lifecycle, exits, Some(KILL_TIMEOUT)).await
        {
            return Err(OpError::KillTimeout(reference.to_owned()));
        }
        // A slow start slows the restart's start too: the container stays listed as
        // exited, restarting, meanwhile.
        self.slow_start().await;
        {
            let mut table = self.table();
            if let Some(c) = table.by_id_mut(&id) {
                c.restarting = false;
                if let Some(env) = new_env {
                    c.env = env;
                }
            }
        }
        self.spawn_process(&id).await?;
        let mut table = self.table();
        let c = table
            .by_id_mut(&id)
            .ok_or_else(|| OpError::NoSuchContainer(reference.to_owned()))?;
        c.restart_count += 1;
        self.emit(c, "restart", &[]);
        Ok(c.connection_id())
    }

    pub(crate) fn pause(&self, reference: &str, scope: Scope) -> Result<(), OpError> {
        let mut table = self.table();
        let c = table.resolve_mut(reference, scope)?;
        match (c.state, c.pid) {
            (State::Running, Some(pid)) => {
                freeze_container(c, pid, Signal::SIGSTOP)?;
                c.state = State::Paused;
                self.emit(c, "pause", &[]);
                Ok(())
            }
            (State::Paused, _) => Err(OpError::AlreadyPaused(c.name.clone())),
            _ => Err(OpError::NotRunning(c.name.clone())),
        }
    }

    pub(crate) fn resume(&self, reference: &str, scope: Scope) -> Result<(), OpError> {
        let mut table = self.table();
        let c = table.resolve_mut(reference, scope)?;
        match (c.state, c.pid) {
            (State::Paused, Some(pid)) => {
                freeze_container(c, pid, Signal::SIGCONT)?;
                c.state = State::Running;
                self.emit(c, "unpause", &[]);
                Ok(())
            }
            _ => Err(OpError::NotPaused(c.name.clone())),
        }
    }

    /// Hides every container from the Docker API, as a runtime restart would; their
    /// processes keep running. Answers how many were forgotten.
    pub(crate) fn forget(&self) -> usize {
        let mut table = self.table();
        let mut count = 0;
        for c in table.iter_mut().filter(|c| c.is_visible()) {
            c.forgotten = true;
            count += 1;
        }
        count
    }

    pub(crate) fn add_rule(&self, spec: RuleSpec) -> Result<u64, OpError> {
        spec.validate()?;
        let mut controls = lock(&self.controls);
        controls.next_rule_id += 1;
        let id = controls.next_rule_id;
        controls.rules.push(Rule { id, spec });
        Ok(id)
    }

    pub(crate) fn rules(&self) -> Vec<Rule> {
        lock(&self.controls).rules.clone()
    }

    pub(crate) fn clear_rules(&self) {
        lock(&self.controls).rules.clear();
    }

    pub(crate) fn faults(&self) -> Faults {
        lock(&self.controls).faults
    }

    pub(crate) fn patch_faults(&self, patch: FaultsPatch) -> Faults {
        let mut controls = lock(&self.controls);
        controls.faults.apply(patch);
        controls.faults
    }

    // ----- processes ---------------------------------------------------------------------

    /// Where the container's output goes, when the runtime writes logs.
    pub(crate) fn log_path(&self, c: &Container) -> Option<String> {
        let dir = self.settings.log_dir.as_ref()?;
        Some(dir.join(format!("{}.log", c.name)).display().to_string())
    }

    fn process_spec(&self, c: &Container) -> ProcessSpec {
        // Docker passes a container none of its own environment; PATH stands in for the
        // image's, which Docker images always set.
        let mut env: Vec<(OsString, OsString)> = vec![("PATH".into(), process::base_path())];
        if let Some(image) = self.images.get(&c.image) {
            env.extend(image.env.iter().map(|(k, v)| (k.into(), v.into())));
        }
        env.extend(
            self.settings
                .env
                .iter()
                .map(|var| (var.key.clone().into(), var.value.clone().into())),
        );
        // An entry without `=` means "unset" in Docker: nothing to add.
        env.extend(
            c.env
                .iter()
                .filter_map(|entry| entry.split_once('='))
                .map(|(k, v)| (k.into(), v.into())),
        );
        env.push(("HOSTNAME".into(), c.name.clone().into()));
        if !self.settings.host_aliases.is_empty() {
            let aliases = self
                .settings
                .host_aliases
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            env.push(("STOPFLOW_HOST_ALIASES".into(), aliases.into()));
        }
        ProcessSpec {
            program: c.program.clone(),
            args: c.rendered_args(),
            env,
            log_file: self.log_path(c).map(PathBuf::from),
        }
    }

    /// Publishes the container's ports on loopback and picks the private ones its
    /// command names, the first time it starts; later starts keep them, as clients
    /// already know them.
    fn reserve_ports(c: &mut Container) -> Result<(), OpError> {
        for (port, asked) in c.ports_to_publish() {
            if c.published.contains_key(&port) {
                continue;
            }
            let host_port = process::reserve_port(asked).map_err(|source| OpError::Publish {
                name: c.name.clone(),
                port: port.clone(),
                host_port: asked.unwrap_or(0),
                source,
            })?;
            c.published.insert(port, host_port);
        }
        if c.host_network() {
            return Ok(());
        }
        let named: Vec<String> = c
            .args
            .iter()
            .flat_map(|arg| crate::images::port_placeholders(arg))
            .collect();
        for port in named {
            if c.published.contains_key(&port) || c.private_ports.contains_key(&port) {
                continue;
            }
            let host_port = process::reserve_port(None).map_err(|source| OpError::Publish {
                name: c.name.clone(),
                port: port.clone(),
                host_port: 0,
                source,
            })?;
            c.private_ports.insert(port, host_port);
        }
        Ok(())
    }

    /// Starts a new incarnation of the container's process; the caller holds its op lock.
    async fn spawn_process(self: &Arc<Self>, id: &str) -> Result<(), OpError> {
        let (spec, name) = {
            let mut table = self.table();
            let c = table
                .by_id_mut(id)
                .ok_or_else(|| OpError::NoSuchContainer(id.to_owned()))?;
            Self::reserve_ports(c)?;
            (self.process_spec(c), c.name.clone())
        };
        if *self.shutting_down.borrow() {
            return Err(OpError::ShuttingDown);
        }
        let spawned = self.spawner.spawn(&spec).await;
        let mut table = self.table();
        let Some(c) = table.by_id_mut(id) else {
            return Err(OpError::NoSuchContainer(id.to_owned()));
        };
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => {
                // Docker's codes for "not found" and "cannot execute".
                let code = if source.kind() == io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
                c.mark_spawn_failed(code, source.to_string());
                return Err(OpError::Spawn { name, source });
            }
        };
        let pid = child.pid();
        if let Some((stdout, stderr)) = child.take_output() {
            let sink = match &spec.log_file {
                Some(path) => crate::logs::Sink::File(path.clone()),
                None => crate::logs::Sink::Stderr,
            };
            // Opened before the start is answered: a follower that comes next waits.
            c.logs.open(2);
            Arc::clone(&c.logs).pump(stdout, crate::logs::Stream::Stdout, sink.clone());
            Arc::clone(&c.logs).pump(stderr, crate::logs::Stream::Stderr, sink);
        }
        c.mark_started(pid, Utc::now());
        let generation = c.generation;
        if *self.shutting_down.borrow() {
            // kill_all ran while this process was being forked.
            let _ = process::signal_group(pid, Signal::SIGKILL);
        }
        self.emit(c, "start", &[]);
        drop(table);
        let supervisor = Arc::clone(self);
        let id = id.to_owned();
        tokio::spawn(async move {
            let status = child.exited().await;
            supervisor.on_exit(&id, generation, child, status);
        });
        Ok(())
    }

    /// Records an exit the watcher observed. The process is still unreaped, so its pid and
    /// group id cannot belong to anyone else yet: the group is killed and the state updated
    /// under the table lock, and only then is the pid released.
    fn on_exit(
        &self,
        id: &str,
        generation: u64,
        child: ContainerProcess,
        status: io::Result<ExitStatus>,
    ) {
        let code = match &status {
            Ok(status) => process::docker_exit_code(*status),
            Err(err) => {
                tracing::error!(
                    container = id,
                    "failed to wait for the container process: {err}"
                );
                255
            }
        };
        {
            let mut table = self.table();
            if status.is_ok() {
                // As when a container's init exits: whatever it left behind in its group goes too.
                let _ = process::signal_group(child.pid(), Signal::SIGKILL);
            }
            if let Some(c) = table.by_id_mut(id)
                && c.generation == generation
            {
                self.record_exit(c, code);
            }
        }
        if status.is_ok()
            && let Err(err) = child.reap()
        {
            tracing::error!(
                container = id,
                "failed to reap the container process: {err}"
            );
        }
        // Unobserved exits are left to dropping `child`, which reaps without blocking here.
    }

    fn record_exit(&self, c: &mut Container, code: i64) {
        let started = c.started_at;
        let now = Utc::now();
        c.mark_exited(code, now);
        let duration = started.map_or(0, |at| (now - at).num_seconds());
        self.emit(
            c,
            "die",
            &[
                ("exitCode", code.to_string()),
                ("execDuration", duration.to_string()),
            ],
        );
        if std::mem::take(&mut c.stopping) {
            self.emit(c, "stop", &[]);
        }
        if c.auto_remove && !c.restarting && !c.removed {
            c.mark_removed();
            self.emit(c, "destroy", &[]);
        }
    }

    /// SIGKILLs every process group, forgotten containers' too; later spawns are refused.
    pub(crate) fn kill_all(&self) -> usize {
        let table = self.table();
        self.shutting_down.send_replace(true);
        let mut killed = 0;
        for c in table.iter() {
            if let Some(pid) = c.pid {
                let _ = process::signal_group(pid, Signal::SIGKILL);
                killed += 1;
            }
        }
        killed
    }

    /// Waits, up to `deadline`, until every killed process has been reaped.
    pub(crate) async fn wait_all_exited(&self, deadline: Duration) -> bool {
        let waiting: Vec<_> = {
            let table = self.table();
            table
                .iter()
                .filter(|c| c.pid.is_some())
                .map(|c| {
                    let lifecycle = c.lifecycle.subscribe();
                    let exits = lifecycle.borrow().exits;
                    (lifecycle, exits)
                })
                .collect()
        };
        let all = async {
            for (mut lifecycle, exits) in waiting {
                let _ = lifecycle.wait_for(|l| l.exits > exits).await;
            }
        };
        tokio::time::timeout(deadline, all).await.is_ok()
    }

    pub(crate) fn close_events(&self) {
        self.events.close();
    }
}

/// Signals the container as Docker does: only its PID 1, except SIGKILL, which takes the
/// whole group as the end of a PID namespace would. So a PID-1 shell that ignores SIGTERM
/// keeps its children from ever seeing it.
fn signal_container(c: &Container, pid: u32, signal: Signal) -> Result<(), OpError> {
    let sent = if signal == Signal::SIGKILL {
        process::signal_group(pid, signal)
    } else {
        process::signal_process(pid, signal)
    };
    sent.map_err(|source| OpError::Signal {
        name: c.name.clone(),
        source,
    })
}

/// Pause and resume reach every process of the container, as Docker's cgroup freezer does.
fn freeze_container(c: &Container, pid: u32, signal: Signal) -> Result<(), OpError> {
    process::signal_group(pid, signal).map_err(|source| OpError::Signal {
        name: c.name.clone(),
        source,
    })
}

/// True once the container has exited more than `exits` times; `None` waits without limit.
async fn wait_for_exit(
    lifecycle: &mut watch::Receiver<Lifecycle>,
    exits: u64,
    timeout: Option<Duration>,
) -> bool {
    let exited = lifecycle.wait_for(|l| l.exits > exits);
    match timeout {
        // A dropped sender means the container record is gone: nothing left to wait for.
        Some(limit) => tokio::time::timeout(limit, exited).await.is_ok(),
        None => {
            let _ = exited.await;
            true
        }
    }
}
