//! A TCP fault proxy that speaks Toxiproxy's REST API (v2), so the standard clients drive
//! it, and an async client ([`client::Client`]) that drives it or a real Toxiproxy.
//!
//! Each proxy listens on an address and forwards every connection to its upstream through
//! two pipelines, one per direction (`upstream`: client to server; `downstream`: server to
//! client). Toxics (`latency`, `bandwidth`, `slow_close`, `timeout`, `reset_peer`,
//! `slicer`, `limit_data`) act on one direction, and a change applies to live connections
//! at once. Randomness comes from the server's seed, so a run can be replayed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fault_proxy::client::Client;
//! use fault_proxy::model::{NewProxy, NewToxic, ToxicKind};
//!
//! let server = fault_proxy::Server::start("127.0.0.1:0".parse()?, 7).await?;
//! let client = Client::new(server.url());
//! let redis = client.create_proxy(&NewProxy::new("redis", "127.0.0.1:0", "127.0.0.1:6379")).await?;
//! client.add_toxic("redis", &NewToxic::new(ToxicKind::Latency { latency: 50, jitter: 5 })).await?;
//! println!("connect to {} for Redis with 50 ms of latency", redis.listen);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
pub mod client;
mod http;
pub mod model;
mod pipe;
mod proxy;
mod registry;
mod rng;
mod server;
mod toxics;

pub use http::ApiLimits;
pub use server::{Server, ServerError};
