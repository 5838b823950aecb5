//! Every network path of a run goes through a named link of a Toxiproxy-compatible proxy,
//! so a scenario can slow, cut or reset any of them: the embedded `fault-proxy`, or a real
//! Toxiproxy given by `TOXIPROXY_URL`.
//!
//! Link names: `service:postgres`, `service:redis`, `service:runtime` (the Docker API),
//! `bot:<meeting>:redis`, `bot:<meeting>:callbacks`.
//!
//! On a shared Toxiproxy a run names its proxies `stopflow-<pid>-<host tag><random>-<link>`
//! ([`proxy_prefix`]) and removes them when it ends; those of a run that was killed are
//! removed by the next run's [`sweep_leftover_links`].

use fault_proxy::client::{Client, ClientError};
use fault_proxy::model::{NewProxy, NewToxic, Stream, ToxicKind};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("start the embedded fault proxy: {0}")]
    Start(#[source] fault_proxy::ServerError),
    #[error("{0}")]
    Proxy(#[from] ClientError),
    #[error("read the address of link {link} from {listen:?}")]
    Listen { link: String, listen: String },
    #[error("find the Toxiproxy for the links: {0}")]
    Infra(String),
}

pub struct Links {
    client: Client,
    /// Prefix of this run's proxy names on a shared (external) Toxiproxy.
    prefix: String,
    _embedded: Option<fault_proxy::Server>,
}

impl Links {
    /// The embedded proxy on a free port, or a Toxiproxy: `TOXIPROXY_URL`'s, else the
    /// `containers` provider's (the first time in this process, after sweeping the
    /// proxies killed runs left there).
    pub async fn start(seed: u64) -> Result<Links, LinkError> {
        let toxiproxy = tokio::task::spawn_blocking(infra::provider::toxiproxy_url)
            .await
            .map_err(|err| LinkError::Infra(err.to_string()))?
            .map_err(|err| LinkError::Infra(err.to_string()))?;
        if let Some(url) = toxiproxy {
            let client = Client::new(url);
            client.version().await?;
            sweep_once(&client).await;
            return Ok(Links {
                client,
                prefix: proxy_prefix(std::process::id()),
                _embedded: None,
            });
        }
        let listen = "127.0.0.1:0".parse().expect("a socket address");
        let server = fault_proxy::Server::start(listen, seed)
            .await
            .map_err(LinkError::Start)?;
        Ok(Links {
            client: Client::new(server.url()),
            prefix: String::new(),
            _embedded: Some(server),
        })
    }

    /// The Toxiproxy-compatible API at `url` (a `fault-proxy` process of the caller's),
    /// its proxies named as on a shared one.
    pub async fn at(url: &str) -> Result<Links, LinkError> {
        let client = Client::new(url.to_owned());
        client.version().await?;
        Ok(Links {
            client,
            prefix: proxy_prefix(std::process::id()),
            _embedded: None,
        })
    }

    fn name(&self, link: &str) -> String {
        format!("{}{link}", self.prefix)
    }

    /// Creates a link to `upstream` (`host:port`); answers the `host:port` to dial instead.
    pub async fn create(&self, link: &str, upstream: &str) -> Result<String, LinkError> {
        let proxy = self
            .client
            .create_proxy(&NewProxy::new(self.name(link), "127.0.0.1:0", upstream))
            .await?;
        if proxy.listen.ends_with(":0") || proxy.listen.is_empty() {
            return Err(LinkError::Listen {
                link: link.to_owned(),
                listen: proxy.listen,
            });
        }
        Ok(proxy.listen)
    }

    /// Adds a toxic; answers the name to remove it by.
    pub async fn add_toxic(
        &self,
        link: &str,
        name: &str,
        kind: ToxicKind,
        stream: Stream,
        toxicity: f32,
    ) -> Result<String, LinkError> {
        let toxic = NewToxic::new(kind)
            .named(name)
            .stream(stream)
            .toxicity(toxicity);
        Ok(self.client.add_toxic(&self.name(link), &toxic).await?.name)
    }

    pub async fn remove_toxic(&self, link: &str, toxic: &str) -> Result<(), LinkError> {
        Ok(self.client.remove_toxic(&self.name(link), toxic).await?)
    }

    /// Down refuses new connections and closes the open ones; up listens again.
    pub async fn set_up(&self, link: &str, up: bool) -> Result<(), LinkError> {
        self.client.set_enabled(&self.name(link), up).await?;
        Ok(())
    }

    /// What removes this run's proxies from a shared Toxiproxy; `None` for the embedded
    /// proxy, which goes with the run.
    fn external(&self) -> Option<ExternalLinks> {
        self._embedded.is_none().then(|| ExternalLinks {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
        })
    }
}

impl Drop for Links {
    /// Removes this run's proxies from a shared Toxiproxy, however the run ends: a stack
    /// start cut short (an interrupt, a deadline) drops its links with no chance to await
    /// anything, and the server would keep them listening. On a thread of its own, as this
    /// may be a runtime's worker, with a client of its own bound to no runtime.
    fn drop(&mut self) {
        let Some(external) = self.external() else {
            return;
        };
        let external = ExternalLinks {
            client: Client::new(external.client.base_url()),
            prefix: external.prefix,
        };
        let removal = std::thread::Builder::new()
            .name("links-removal".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        tracing::warn!(error = %err, "failed to remove the run's proxies: no runtime");
                        return;
                    }
                };
                // The timer must be made inside the runtime.
                let removed = runtime.block_on(async {
                    tokio::time::timeout(REMOVAL_TIMEOUT, external.remove_all()).await
                });
                if removed.is_err() {
                    tracing::warn!(prefix = %external.prefix, "failed to remove the run's proxies within {REMOVAL_TIMEOUT:?}");
                }
            });
        match removal {
            Ok(thread) => {
                let _ = thread.join();
            }
            Err(err) => tracing::warn!(error = %err, "failed to remove the run's proxies"),
        }
    }
}

/// A hang guard on removing a run's proxies from a shared Toxiproxy.
const REMOVAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// This run's proxies on a shared Toxiproxy, to remove once the run is over: the server
/// outlives the run, so nothing else would.
#[derive(Debug, Clone)]
pub struct ExternalLinks {
    client: Client,
    prefix: String,
}

impl ExternalLinks {
    pub async fn remove_all(&self) {
        let proxies = match self.client.proxies().await {
            Ok(proxies) => proxies,
            Err(err) => {
                tracing::warn!(error = %err, prefix = %self.prefix, "failed to list the run's proxies for removal");
                return;
            }
        };
        for name in proxies.keys().filter(|n| n.starts_with(&self.prefix)) {
            if let Err(err) = self.client.delete_proxy(name).await {
                tracing::warn!(error = %err, proxy = %name, "failed to remove a proxy of the run");
            }
        }
    }
}

/// The prefix of the proxy names of a run of process `pid` on a shared Toxiproxy (a new
/// random part each call): `stopflow-<pid>-<host tag><random>-`. The host tag
/// ([`infra::sweep::host_tag`]) tells a later sweep whether the pid is one of this host's.
pub fn proxy_prefix(pid: u32) -> String {
    format!(
        "stopflow-{pid}-{}{:08x}-",
        infra::sweep::host_tag(),
        rand::random::<u32>()
    )
}

/// The pid and host tag in a name made with [`proxy_prefix`].
fn proxy_owner(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix("stopflow-")?;
    let (pid, rest) = rest.split_once('-')?;
    let (tag, link) = rest.split_once('-')?;
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if tag.len() != 16 || !hex(tag) || link.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((pid.parse().ok()?, &tag[..8]))
}

/// Removes from the Toxiproxy at `url` the proxies of runs whose process is gone: names
/// made by [`proxy_prefix`] on this host (same boot and pid namespace) whose pid no longer
/// runs. A killed run cannot remove its own, and they keep listening forever otherwise.
/// Proxies of live runs, of other hosts, and of anyone else are left alone. Answers the
/// names removed.
pub async fn sweep_external(url: &str) -> Result<Vec<String>, LinkError> {
    sweep(&Client::new(url)).await
}

/// [`sweep_external`] on the Toxiproxy at `TOXIPROXY_URL`, once per process (the first
/// external [`Links::start`] does it too); logs what it removed and any failure.
pub async fn sweep_leftover_links() {
    if let Ok(url) = std::env::var("TOXIPROXY_URL") {
        sweep_once(&Client::new(url)).await;
    }
}

async fn sweep_once(client: &Client) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            match sweep(client).await {
                Ok(removed) => {
                    for name in removed {
                        tracing::info!(proxy = %name, "removed a proxy left by a killed run");
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "failed to sweep proxies left by killed runs")
                }
            }
        })
        .await;
}

async fn sweep(client: &Client) -> Result<Vec<String>, LinkError> {
    let tag = infra::sweep::host_tag();
    let me = std::process::id();
    let mut removed = Vec::new();
    for name in client.proxies().await?.into_keys() {
        let Some((pid, host)) = proxy_owner(&name) else {
            continue;
        };
        if host != tag || pid == me || !infra::sweep::pid_is_gone(pid) {
            continue;
        }
        match client.delete_proxy(&name).await {
            Ok(()) => removed.push(name),
            // Another run's sweep took it first.
            Err(err) if err.status() == Some(404) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(removed)
}

/// `host:port` of a URL's authority (`postgres://u@h:p/db` -> `h:p`).
pub fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().filter(|a| a.contains(':'))
}

/// The URL with its `host:port` replaced.
pub fn with_authority(url: &str, authority_now: &str) -> Option<String> {
    let old = authority(url)?;
    Some(url.replacen(old, authority_now, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_name_yields_the_pid_and_host_tag_of_its_run() {
        let prefix = proxy_prefix(4242);
        let name = format!("{prefix}bot:m1:redis");
        assert_eq!(
            proxy_owner(&name),
            Some((4242, infra::sweep::host_tag().as_str()))
        );
        assert_ne!(
            proxy_prefix(4242),
            prefix,
            "the random part differs per run"
        );
    }

    #[test]
    fn names_not_made_by_a_run_have_no_owner() {
        for name in [
            "redis",
            "stopflow-x-0123456789abcdef-link",
            "stopflow-12-0123456789abcdef-",
            // The earlier format, without a host tag: whose pid it is cannot be told.
            "stopflow-12-89abcdef-service:redis",
            "stopflow-12-0123456789abcdeg-service:redis",
        ] {
            assert_eq!(proxy_owner(name), None, "{name}");
        }
    }

    #[test]
    fn urls_are_rewritten_to_the_link_address() {
        assert_eq!(
            authority("postgres://postgres@127.0.0.1:5432/test"),
            Some("127.0.0.1:5432")
        );
        assert_eq!(authority("redis://127.0.0.1:6379/"), Some("127.0.0.1:6379"));
        assert_eq!(
            with_authority("postgres://postgres@127.0.0.1:5432/t?x=1", "127.0.0.1:9").as_deref(),
            Some("postgres://postgres@127.0.0.1:9/t?x=1")
        );
    }
}
