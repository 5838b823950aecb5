//! How long each provider takes to give a run its servers, for the README's figures:
//! `cargo run -p infra --example startup -- auto|containers|local [ROUNDS]`.
//!
//! Each round is a process's first start (as `chaos` pays once: the provider's choice,
//! the shared Postgres, and for containers the shared Toxiproxy) and then what every run
//! pays (a database of its own and a Redis of its own). Rounds after the first reuse the
//! process's Postgres and Toxiproxy, as a `chaos` invocation's later runs do.

use std::time::Instant;

use infra::postgres::{TestDatabase, shared_server};
use infra::provider::{self, Choice};
use infra::redis::RedisServer;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let choice: Choice = args
        .next()
        .unwrap_or_else(|| "auto".to_owned())
        .parse()
        .expect("auto, containers, local or env");
    let rounds: usize = args
        .next()
        .map_or(5, |n| n.parse().expect("a number of rounds"));
    let ms = |since: Instant| since.elapsed().as_secs_f64() * 1000.0;

    let at = Instant::now();
    let selection = provider::select(choice).expect("a provider");
    println!("{selection}");
    println!("choose the provider: {:.1} ms", ms(at));
    let at = Instant::now();
    let server = tokio::task::spawn_blocking(shared_server)
        .await
        .unwrap()
        .expect("the shared Postgres");
    println!("shared Postgres ready: {:.1} ms", ms(at));
    let at = Instant::now();
    let toxiproxy = tokio::task::spawn_blocking(provider::toxiproxy_url)
        .await
        .unwrap()
        .expect("the links' Toxiproxy");
    println!(
        "links' Toxiproxy ({}): {:.1} ms",
        toxiproxy.as_deref().unwrap_or("embedded, started per run"),
        ms(at)
    );
    for round in 1..=rounds {
        let at = Instant::now();
        let database = TestDatabase::create(server).await.expect("a database");
        let database_ms = ms(at);
        let at = Instant::now();
        let redis = RedisServer::from_env_async().await.expect("a Redis");
        let redis_ms = ms(at);
        println!("run {round}: database {database_ms:.1} ms, Redis {redis_ms:.1} ms");
        database.destroy().await.expect("drop the database");
        tokio::task::spawn_blocking(move || drop(redis))
            .await
            .unwrap();
    }
}
