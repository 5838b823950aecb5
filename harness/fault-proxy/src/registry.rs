//! The proxies of one server, by name, and every change the API makes to them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tokio::sync::{Mutex, watch};

use crate::api::error::ApiError;
use crate::model::{self, NewProxy, ProxyUpdate, Stream, Toxic, ToxicKind, ToxicUpdate};
use crate::proxy::Proxy;
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
        check_required(&spec, None)?;
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

    /// Creates or replaces each proxy in turn (one with the same listen and upstream is
    /// kept as it is, toxics and all). On an error, the proxies handled so far and the error.
    pub async fn populate(
        &self,
        specs: Vec<NewProxy>,
    ) -> Result<Vec<model::Proxy>, (Vec<model::Proxy>, ApiError)> {
        // Checked before anything changes, as Toxiproxy does.
        for (index, spec) in specs.iter().enumerate() {
            check_required(spec, Some(index + 1)).map_err(|err| (Vec::new(), err))?;
        }
        let mut proxies = self.proxies.lock().await;
        let mut done = Vec::new();
        for spec in specs {
            if let Some(existing) = proxies.get(&spec.name)
                && existing.listen == spec.listen
                && existing.upstream == spec.upstream
            {
                done.push(existing.view());
                continue;
            }
            if let Some(mut replaced) = proxies.remove(&spec.name) {
                replaced.stop().await;
            }
            let mut proxy = self.new_proxy(&spec);
            if spec.enabled.unwrap_or(true)
                && let Err(err) = start(&mut proxy).await
            {
                return Err((done, err));
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
    /// `enabled: false` is a hard down, `true` listens again.
    pub async fn update(&self, name: &str, update: ProxyUpdate) -> Result<model::Proxy, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = find_mut(&mut proxies, name)?;
        let was_enabled = proxy.enabled();
        let moved = update.listen.as_ref().is_some_and(|l| *l != proxy.listen)
            || update
                .upstream
                .as_ref()
                .is_some_and(|u| *u != proxy.upstream);
        if moved {
            proxy.stop().await;
            if let Some(listen) = update.listen {
                proxy.listen = listen;
            }
            if let Some(upstream) = update.upstream {
                proxy.upstream = upstream;
            }
        }
        if update.enabled.unwrap_or(was_enabled) {
            start(proxy).await?;
        } else {
            proxy.stop().await;
        }
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

    /// Enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            start(proxy).await?;
            proxy.set_toxics(ToxicSet::default());
        }
        Ok(())
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
    let listen = proxy.listen.clone();
    proxy
        .start()
        .await
        .map_err(|err| ApiError::listen_failed(&proxy.name, &listen, &err))
}

fn check_required(spec: &NewProxy, position: Option<usize>) -> Result<(), ApiError> {
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
