//! An async client of Toxiproxy's REST API: this crate's server or a real Toxiproxy.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{
    ErrorBody, NewProxy, NewToxic, Populated, Proxy, ProxyUpdate, Toxic, ToxicUpdate, Version,
};

/// A failed call. Messages read after "failed to" and name the call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{action}: `{url}` is not a usable base URL")]
    BaseUrl { action: String, url: String },
    #[error("{action}: no answer from the proxy server")]
    Request {
        action: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{action}: {message} (HTTP {status})")]
    Api {
        action: String,
        status: u16,
        message: String,
    },
    #[error("{action}: the answer could not be read")]
    Body {
        action: String,
        #[source]
        source: reqwest::Error,
    },
}

impl ClientError {
    /// The HTTP status of an error answer (404: no such proxy or toxic, 409: already exists).
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client for one server, by base URL (`http://127.0.0.1:8474`; the scheme may be left out).
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base_url: impl Into<String>) -> Self {
        let base = base_url.into();
        let base = if base.contains("://") {
            base
        } else {
            format!("http://{base}")
        };
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The server's version: `{"version": ...}` as recent Toxiproxy and this crate answer,
    /// or the plain text older Toxiproxy answers.
    pub async fn version(&self) -> Result<String, ClientError> {
        let action = "get the proxy server's version".to_owned();
        let response = self
            .send(Method::GET, &["version"], None::<&()>, &action)
            .await?;
        let text = response.text().await.map_err(|source| ClientError::Body {
            action: action.clone(),
            source,
        })?;
        Ok(match serde_json::from_str::<Version>(&text) {
            Ok(version) => version.version,
            Err(_) => text.trim().to_owned(),
        })
    }

    pub async fn proxies(&self) -> Result<BTreeMap<String, Proxy>, ClientError> {
        self.call(
            Method::GET,
            &["proxies"],
            None::<&()>,
            "list the proxies".into(),
        )
        .await
    }

    pub async fn create_proxy(&self, proxy: &NewProxy) -> Result<Proxy, ClientError> {
        let action = format!("create proxy {}", proxy.name);
        self.call(Method::POST, &["proxies"], Some(proxy), action)
            .await
    }

    /// Creates or replaces each proxy (one with the same listen and upstream is kept).
    pub async fn populate(&self, proxies: &[NewProxy]) -> Result<Vec<Proxy>, ClientError> {
        let names: Vec<&str> = proxies.iter().map(|p| p.name.as_str()).collect();
        let action = format!("populate proxies [{}]", names.join(", "));
        let populated: Populated = self
            .call(Method::POST, &["populate"], Some(&proxies), action)
            .await?;
        Ok(populated.proxies)
    }

    pub async fn proxy(&self, name: &str) -> Result<Proxy, ClientError> {
        let action = format!("get proxy {name}");
        self.call(Method::GET, &["proxies", name], None::<&()>, action)
            .await
    }

    pub async fn update_proxy(
        &self,
        name: &str,
        update: &ProxyUpdate,
    ) -> Result<Proxy, ClientError> {
        let action = format!("update proxy {name}");
        self.call(Method::POST, &["proxies", name], Some(update), action)
            .await
    }

    /// `false` is a hard down: the proxy stops listening and closes its connections.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<Proxy, ClientError> {
        let action = format!(
            "{} proxy {name}",
            if enabled { "enable" } else { "disable" }
        );
        let update = ProxyUpdate {
            enabled: Some(enabled),
            ..ProxyUpdate::default()
        };
        self.call(Method::POST, &["proxies", name], Some(&update), action)
            .await
    }

    pub async fn delete_proxy(&self, name: &str) -> Result<(), ClientError> {
        let action = format!("delete proxy {name}");
        self.send(Method::DELETE, &["proxies", name], None::<&()>, &action)
            .await
            .map(drop)
    }

    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, ClientError> {
        let action = format!("list the toxics of proxy {proxy}");
        self.call(
            Method::GET,
            &["proxies", proxy, "toxics"],
            None::<&()>,
            action,
        )
        .await
    }

    pub async fn add_toxic(&self, proxy: &str, toxic: &NewToxic) -> Result<Toxic, ClientError> {
        let name = toxic
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_{}", toxic.kind.type_name(), toxic.stream));
        let action = format!("add toxic {name} to proxy {proxy}");
        self.call(
            Method::POST,
            &["proxies", proxy, "toxics"],
            Some(toxic),
            action,
        )
        .await
    }

    pub async fn toxic(&self, proxy: &str, toxic: &str) -> Result<Toxic, ClientError> {
        let action = format!("get toxic {toxic} of proxy {proxy}");
        self.call(
            Method::GET,
            &["proxies", proxy, "toxics", toxic],
            None::<&()>,
            action,
        )
        .await
    }

    pub async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        update: &ToxicUpdate,
    ) -> Result<Toxic, ClientError> {
        let action = format!("update toxic {toxic} of proxy {proxy}");
        self.call(
            Method::POST,
            &["proxies", proxy, "toxics", toxic],
            Some(update),
            action,
        )
        .await
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ClientError> {
        let action = format!("remove toxic {toxic} from proxy {proxy}");
        self.send(
            Method::DELETE,
            &["proxies", proxy, "toxics", toxic],
            None::<&()>,
            &action,
        )
        .await
        .map(drop)
    }

    /// Enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<(), ClientError> {
        let action = "reset the proxy server".to_owned();
        self.send(Method::POST, &["reset"], None::<&()>, &action)
            .await
            .map(drop)
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&B>,
        action: String,
    ) -> Result<T, ClientError> {
        let response = self.send(method, path, body, &action).await?;
        response
            .json()
            .await
            .map_err(|source| ClientError::Body { action, source })
    }

    /// Sends the request; an error status becomes [`ClientError::Api`] with the server's
    /// message.
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&B>,
        action: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url(path).ok_or_else(|| ClientError::BaseUrl {
            action: action.to_owned(),
            url: self.base.clone(),
        })?;
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Request {
                action: action.to_owned(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(ClientError::Api {
            action: action.to_owned(),
            status: status.as_u16(),
            message: error_message(status, &text),
        })
    }

    /// Each name is one path segment, escaped as needed (`bot:m1:redis` stays readable).
    fn url(&self, path: &[&str]) -> Option<Url> {
        let mut url = Url::parse(&self.base).ok()?;
        url.path_segments_mut().ok()?.pop_if_empty().extend(path);
        Some(url)
    }
}

/// The server's `error` field; else its text (older Toxiproxy, a proxy in between); else
/// the status's reason.
fn error_message(status: StatusCode, text: &str) -> String {
    if let Ok(body) = serde_json::from_str::<ErrorBody>(text) {
        return body.error;
    }
    let text = text.trim();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text.to_owned()
    }
}
