//! The proxies of one server, by name, and every change the API makes to them.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;

use serde_json::{Map, Value};
use tokio::sync::{Mutex, watch};

use crate::api::error::ApiError;
use crate::model::{self, NewProxy, ProxyUpdate, Stream, Toxic, ToxicKind, ToxicUpdate};
use crate::proxy::{self, Bound, ListenError, Proxy};
use crate::toxics::{Installed, ToxicSet};

/// A toxic as `POST /proxies/{name}/toxics` asks for it, its type and attributes unchecked.
pub(crate) struct ToxicRequest {
    pub name: Option<String>,
    pub type_name: String,
    pub stream: Stream,
    pub toxicity: Option<f64>,
    pub attributes: Map<String, Value>,
}

pub(crate) struct Registry {
    // An async lock: starting and stopping a proxy waits on its tasks.
    proxies: Mutex<BTreeMap<String, Proxy>>,
    seed: u64,
    /// Numbers toxic ids and revisions.
    next_number: std::sync::atomic::AtomicU64,
    closing: watch::Sender<bool>,
}

impl Registry {
    pub fn new(seed: u64) -> Self {
        Self {
            proxies: Mutex::new(BTreeMap::new()),
            seed,
            next_number: std::sync::atomic::AtomicU64::new(1),
            closing: watch::channel(false).0,
        }
    }

    fn number(&self) -> u64 {
        self.next_number
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn new_proxy(&self, spec: &NewProxy) -> Proxy {
        Proxy::new(
            spec.name.clone(),
            spec.listen.clone(),
            spec.upstream.clone(),
            self.seed,
            self.closing.subscribe(),
        )
    }

    pub async fn list(&self) -> BTreeMap<String, model::Proxy> {
        let proxies = self.proxies.lock().await;
        proxies
            .iter()
            .map(|(name, proxy)| (name.clone(), proxy.view()))
            .collect()
    }

    pub async fn create(&self, spec: NewProxy) -> Result<model::Proxy, ApiError> {
        check_spec(&spec, None)?;
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&spec.name) {
            return Err(ApiError::proxy_already_exists(&spec.name));
        }
        let mut proxy = self.new_proxy(&spec);
        if spec.enabled.unwrap_or(true) {
            start(&mut proxy).await?;
        }
        let view = proxy.view();
        proxies.insert(spec.name, proxy);
        Ok(view)
    }

    /// Creates or replaces each proxy (one with the same listen and upstream is kept as it
    /// is, toxics and all). All or nothing: the batch is checked whole (required fields,
    /// addresses, no name twice) and every new listener bound before any proxy changes;
    /// on an error nothing has changed.
    pub async fn populate(&self, specs: Vec<NewProxy>) -> Result<Vec<model::Proxy>, ApiError> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (index, spec) in specs.iter().enumerate() {
            check_spec(spec, Some(index + 1))?;
            if let Some(first) = seen.insert(spec.name.as_str(), index + 1) {
                return Err(ApiError::duplicate_in_batch(&spec.name, first, index + 1));
            }
        }
        let mut proxies = self.proxies.lock().await;
        let kept: Vec<bool> = specs
            .iter()
            .map(|spec| {
                proxies.get(&spec.name).is_some_and(|existing| {
                    existing.listen == spec.listen && existing.upstream == spec.upstream
                })
            })
            .collect();
        let changed = || (0..specs.len()).filter(|&index| !kept[index]);
        // Each new listener is bound while every proxy is as it was; an address taken by
        // a proxy this batch replaces (its port, however spelt) is bound once that one
        // has stopped.
        let freed_ports: Vec<u16> = changed()
            .filter_map(|index| proxies.get(&specs[index].name))
            .filter(|proxy| proxy.enabled())
            .filter_map(|proxy| port_of(&proxy.listen))
            .collect();
        let mut bound: Vec<Option<Bound>> = specs.iter().map(|_| None).collect();
        let mut deferred = Vec::new();
        for index in changed().filter(|&index| specs[index].enabled.unwrap_or(true)) {
            let spec = &specs[index];
            match proxy::bind(&spec.listen).await {
                Ok(listener) => bound[index] = Some(listener),
                Err(err)
                    if err.in_use()
                        && port_of(&spec.listen)
                            .is_some_and(|port| freed_ports.contains(&port)) =>
                {
                    deferred.push(index);
                }
                Err(err) => return Err(ApiError::listen_failed(&spec.name, &err)),
            }
        }
        let mut replaced = Vec::new();
        for index in changed() {
            if let Some(mut old) = proxies.remove(&specs[index].name) {
                let was_enabled = old.enabled();
                old.stop().await;
                replaced.push((old, was_enabled));
            }
        }
        for &index in &deferred {
            let spec = &specs[index];
            match proxy::bind(&spec.listen).await {
                Ok(listener) => bound[index] = Some(listener),
                Err(err) => {
                    let error = ApiError::listen_failed(&spec.name, &err);
                    drop(bound);
                    let unrestored = restore(&mut proxies, replaced).await;
                    return Err(with_unrestored(error, &unrestored));
                }
            }
        }
        // Nothing fails from here.
        let mut done = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            if kept[index] {
                done.extend(proxies.get(&spec.name).map(Proxy::view));
                continue;
            }
            let mut proxy = self.new_proxy(&spec);
            if let Some(listener) = bound[index].take() {
                proxy.run(listener);
            }
            done.push(proxy.view());
            proxies.insert(spec.name, proxy);
        }
        Ok(done)
    }

    pub async fn get(&self, name: &str) -> Result<model::Proxy, ApiError> {
        let proxies = self.proxies.lock().await;
        Ok(find(&proxies, name)?.view())
    }

    /// Toxiproxy checks the proxy before reading a request's body.
    pub async fn require(&self, name: &str) -> Result<(), ApiError> {
        self.get(name).await.map(|_| ())
    }

    /// A new listen address or upstream restarts the proxy (closing its connections);
    /// `enabled: false` is a hard down, `true` listens again. All or nothing: a new
    /// address is bound before the old listener closes (after, if it is the same one);
    /// if it cannot be, the proxy stays as it was.
    pub async fn update(&self, name: &str, update: ProxyUpdate) -> Result<model::Proxy, ApiError> {
        if let Some(listen) = &update.listen {
            check_listen(listen, None)?;
        }
        if let Some(upstream) = &update.upstream {
            check_upstream(upstream, None)?;
        }
        let mut proxies = self.proxies.lock().await;
        let proxy = find_mut(&mut proxies, name)?;
        let was_enabled = proxy.enabled();
        let enable = update.enabled.unwrap_or(was_enabled);
        let listen = update.listen.unwrap_or_else(|| proxy.listen.clone());
        let upstream = update.upstream.unwrap_or_else(|| proxy.upstream.clone());
        let moved = listen != proxy.listen || upstream != proxy.upstream;
        if !moved {
            if enable {
                start(proxy).await?;
            } else {
                proxy.stop().await;
            }
            return Ok(proxy.view());
        }
        if !enable {
            proxy.stop().await;
            proxy.listen = listen;
            proxy.upstream = upstream;
            return Ok(proxy.view());
        }
        let early = if was_enabled && listen == proxy.listen {
            None
        } else {
            match proxy::bind(&listen).await {
                Ok(bound) => Some(bound),
                // Perhaps its own address, spelt otherwise: tried again once it is free.
                Err(err)
                    if was_enabled
                        && err.in_use()
                        && port_of(&listen) == port_of(&proxy.listen) =>
                {
                    None
                }
                Err(err) => return Err(ApiError::listen_failed(name, &err)),
            }
        };
        proxy.stop().await;
        let bound = match early {
            Some(bound) => bound,
            None => match proxy::bind(&listen).await {
                Ok(bound) => bound,
                Err(err) => {
                    let error = ApiError::listen_failed(name, &err);
                    let mut unrestored = Vec::new();
                    if was_enabled && let Err(err) = proxy.start().await {
                        unrestored.push(unrestored_message(proxy, &err));
                    }
                    return Err(with_unrestored(error, &unrestored));
                }
            },
        };
        proxy.listen = listen;
        proxy.upstream = upstream;
        proxy.run(bound);
        Ok(proxy.view())
    }

    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut proxy = proxies
            .remove(name)
            .ok_or_else(|| ApiError::proxy_not_found(name))?;
        proxy.stop().await;
        Ok(())
    }

    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, ApiError> {
        let proxies = self.proxies.lock().await;
        Ok(find(&proxies, proxy)?.toxics().listed())
    }

    pub async fn toxic(&self, proxy: &str, toxic: &str) -> Result<Toxic, ApiError> {
        let proxies = self.proxies.lock().await;
        let set = find(&proxies, proxy)?.toxics();
        set.find(toxic)
            .map(|installed| installed.toxic.clone())
            .ok_or_else(|| ApiError::toxic_not_found(toxic))
    }

    /// Checks in Toxiproxy's order: type, then name clash, then attributes.
    pub async fn add_toxic(&self, proxy: &str, request: ToxicRequest) -> Result<Toxic, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = find_mut(&mut proxies, proxy)?;
        let name = request
            .name
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| format!("{}_{}", request.type_name, request.stream));
        ToxicKind::from_attributes(&request.type_name, &Map::new())
            .map_err(ApiError::invalid_toxic_type)?;
        let mut set = (*proxy.toxics()).clone();
        if set.find(&name).is_some() {
            return Err(ApiError::toxic_already_exists(&name));
        }
        let kind = ToxicKind::from_attributes(&request.type_name, &request.attributes)
            .and_then(|kind| kind.validate().map(|()| kind))
            .map_err(ApiError::bad_request_body)?;
        let toxic = Toxic {
            name,
            stream: request.stream,
            toxicity: toxicity(request.toxicity)?.unwrap_or(1.0),
            kind,
        };
        let number = self.number();
        set.toxics.push(Installed {
            id: number,
            revision: number,
            toxic: toxic.clone(),
        });
        proxy.set_toxics(set);
        Ok(toxic)
    }

    /// Changes attributes and toxicity; the rest of the toxic stays as it is.
    pub async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        update: ToxicUpdate,
    ) -> Result<Toxic, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = find_mut(&mut proxies, proxy)?;
        let mut set = (*proxy.toxics()).clone();
        let installed = set
            .toxics
            .iter_mut()
            .find(|t| t.toxic.name == toxic)
            .ok_or_else(|| ApiError::toxic_not_found(toxic))?;
        let kind = installed
            .toxic
            .kind
            .with_attributes(&update.attributes)
            .and_then(|kind| kind.validate().map(|()| kind))
            .map_err(ApiError::bad_request_body)?;
        if let Some(toxicity) = toxicity(update.toxicity.map(f64::from))? {
            installed.toxic.toxicity = toxicity;
        }
        installed.toxic.kind = kind;
        installed.revision = self.number();
        let updated = installed.toxic.clone();
        proxy.set_toxics(set);
        Ok(updated)
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = find_mut(&mut proxies, proxy)?;
        let mut set = (*proxy.toxics()).clone();
        let before = set.toxics.len();
        set.toxics.retain(|t| t.toxic.name != toxic);
        if set.toxics.len() == before {
            return Err(ApiError::toxic_not_found(toxic));
        }
        proxy.set_toxics(set);
        Ok(())
    }

    /// Enables every proxy and removes every toxic. A proxy that cannot listen again
    /// (its address taken meanwhile) does not stop the others: all are reset, then the
    /// answer names those left down.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut failed: Option<ApiError> = None;
        for proxy in proxies.values_mut() {
            proxy.set_toxics(ToxicSet::default());
            if let Err(err) = start(proxy).await {
                failed = Some(match failed {
                    None => err,
                    Some(first) => {
                        ApiError::new(first.status, format!("{}; {}", first.message, err.message))
                    }
                });
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Stops every proxy, waiting for its connections to close.
    pub async fn shutdown(&self) {
        self.closing.send_replace(true);
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            proxy.stop().await;
        }
    }

    /// From a synchronous context (drop): every proxy stops on its own, promptly.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}

async fn start(proxy: &mut Proxy) -> Result<(), ApiError> {
    proxy
        .start()
        .await
        .map_err(|err| ApiError::listen_failed(&proxy.name, &err))
}

/// Puts back the proxies a failed populate stopped, listening again where they did.
/// Answers what could not listen again (its address taken meanwhile).
async fn restore(
    proxies: &mut BTreeMap<String, Proxy>,
    replaced: Vec<(Proxy, bool)>,
) -> Vec<String> {
    let mut unrestored = Vec::new();
    for (mut proxy, was_enabled) in replaced {
        if was_enabled && let Err(err) = proxy.start().await {
            unrestored.push(unrestored_message(&proxy, &err));
        }
        proxies.insert(proxy.name.clone(), proxy);
    }
    unrestored
}

fn unrestored_message(proxy: &Proxy, err: &ListenError) -> String {
    format!("proxy {} is left disabled: it failed to {err}", proxy.name)
}

fn with_unrestored(error: ApiError, unrestored: &[String]) -> ApiError {
    if unrestored.is_empty() {
        return error;
    }
    let message = format!(
        "{}; nothing else changed, but {}",
        error.message,
        unrestored.join("; ")
    );
    ApiError::new(error.status, message)
}

/// The port of a `host:port` address; None for port 0 (any free one) or no port.
fn port_of(address: &str) -> Option<u16> {
    let (_, port) = address.rsplit_once(':')?;
    port.parse().ok().filter(|port| *port != 0)
}

/// The fields of a new proxy, checked before anything changes: `position` is its place in
/// a populate batch (1-based).
fn check_spec(spec: &NewProxy, position: Option<usize>) -> Result<(), ApiError> {
    let at = |field: &str| match position {
        Some(index) => format!("{field} at proxy {index}"),
        None => field.to_owned(),
    };
    if spec.name.is_empty() {
        return Err(ApiError::missing_field(&at("name")));
    }
    if spec.upstream.is_empty() {
        return Err(ApiError::missing_field(&at("upstream")));
    }
    if !spec.listen.is_empty() {
        check_listen(&spec.listen, position)?;
    }
    check_upstream(&spec.upstream, position)
}

fn check_listen(listen: &str, position: Option<usize>) -> Result<(), ApiError> {
    check_address(&field_at("listen", position), listen, true)
}

fn check_upstream(upstream: &str, position: Option<usize>) -> Result<(), ApiError> {
    check_address(&field_at("upstream", position), upstream, false)
}

fn field_at(field: &str, position: Option<usize>) -> String {
    match position {
        Some(index) => format!("{field} at proxy {index}"),
        None => field.to_owned(),
    }
}

/// `host:port`, as a listener binds and a client dials it: a host (a name, an IPv4
/// address, or an IPv6 one in brackets) and a port up to 65535, 0 only where `port_zero`
/// (a free one). Only the form is checked here: a name is resolved when used.
fn check_address(field: &str, value: &str, port_zero: bool) -> Result<(), ApiError> {
    let bad = |problem: &str| Err(ApiError::bad_address(field, value, problem));
    let Some((host, port)) = value.rsplit_once(':') else {
        return bad("is not host:port");
    };
    match port.parse::<u16>() {
        Err(_) => return bad("has no port from 0 to 65535 after its last `:`"),
        Ok(0) if !port_zero => return bad("has port 0, on which nothing can be reached"),
        Ok(_) => {}
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
            Some(Ok(_)) => Ok(()),
            _ => bad("has no IPv6 address between brackets"),
        };
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if host.is_empty() || !host.chars().all(name_char) {
        return bad("has no host (a name, an IPv4 address or a bracketed IPv6 one)");
    }
    Ok(())
}

fn toxicity(value: Option<f64>) -> Result<Option<f32>, ApiError> {
    match value {
        Some(t) if !(0.0..=1.0).contains(&t) => Err(ApiError::bad_request_body(format!(
            "toxicity must be between 0 and 1, not {t}"
        ))),
        other => Ok(other.map(|t| t as f32)),
    }
}

fn find<'a>(proxies: &'a BTreeMap<String, Proxy>, name: &str) -> Result<&'a Proxy, ApiError> {
    proxies
        .get(name)
        .ok_or_else(|| ApiError::proxy_not_found(name))
}

fn find_mut<'a>(
    proxies: &'a mut BTreeMap<String, Proxy>,
    name: &str,
) -> Result<&'a mut Proxy, ApiError> {
    proxies
        .get_mut(name)
        .ok_or_else(|| ApiError::proxy_not_found(name))
}
