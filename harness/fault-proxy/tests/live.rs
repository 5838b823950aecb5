//! Toxics added, updated and removed on live connections: each applies at once, and only
//! in its own direction.

mod common;

use common::{BOTH, HOUR_MS, Rig, read_exactly};
use fault_proxy::model::{Stream, ToxicKind, ToxicUpdate};
use tokio::io::AsyncWriteExt;

fn other(stream: Stream) -> Stream {
    match stream {
        Stream::Upstream => Stream::Downstream,
        Stream::Downstream => Stream::Upstream,
    }
}

#[tokio::test]
async fn a_toxic_added_to_a_live_connection_holds_its_direction_only() {
    for stream in BOTH {
        let rig = Rig::new().await;
        let proxy = rig.proxy("live").await;
        let mut conn = rig.connect(&proxy).await;
        conn.round_trip().await;
        let hour = ToxicKind::Latency {
            latency: HOUR_MS,
            jitter: 0,
        };
        rig.add("live", stream, hour).await;

        let (from, _) = conn.ends(stream);
        from.write_all(b"held").await.unwrap();
        // The other direction is untouched, even while this one holds data.
        conn.pass(other(stream), b"still flowing").await;
        conn.pass(other(stream), b"and again").await;

        rig.remove("live", &format!("latency_{stream}")).await;
        let (_, to) = conn.ends(stream);
        assert_eq!(read_exactly(to, 4).await, b"held", "{stream}");
        conn.round_trip().await;
    }
}

#[tokio::test]
async fn updating_a_toxic_on_a_live_connection_applies_at_once() {
    for stream in BOTH {
        let rig = Rig::new().await;
        let proxy = rig.proxy("update").await;
        let mut conn = rig.connect(&proxy).await;
        let hour = ToxicKind::Latency {
            latency: HOUR_MS,
            jitter: 0,
        };
        rig.add("update", stream, hour).await;
        let (from, _) = conn.ends(stream);
        from.write_all(b"held").await.unwrap();

        let none = ToxicKind::Latency {
            latency: 0,
            jitter: 0,
        };
        let updated = rig
            .client
            .update_toxic(
                "update",
                &format!("latency_{stream}"),
                &ToxicUpdate::attributes(&none),
            )
            .await
            .unwrap();
        assert_eq!(updated.kind, none);
        let (_, to) = conn.ends(stream);
        assert_eq!(read_exactly(to, 4).await, b"held", "{stream}");
        conn.pass(stream, b"no delay now").await;
    }
}

#[tokio::test]
async fn a_reset_added_to_an_idle_connection_resets_it_in_either_direction() {
    for stream in BOTH {
        let rig = Rig::new().await;
        let proxy = rig.proxy("idle").await;
        let mut conn = rig.connect(&proxy).await;
        conn.round_trip().await;
        // Nothing flows: the toxic alone must reset the connection.
        rig.add("idle", stream, ToxicKind::ResetPeer { timeout: 0 })
            .await;
        let (_, end) = common::read_until_closed(&mut conn.client).await;
        assert_eq!(
            end.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset),
            "{stream}"
        );
    }
}

#[tokio::test]
async fn toxics_on_one_proxy_leave_another_alone() {
    let rig = Rig::new().await;
    let first = rig.proxy("first").await;
    let second = rig.proxy("second").await;
    let mut a = rig.connect(&first).await;
    let mut b = rig.connect(&second).await;
    rig.add(
        "first",
        Stream::Downstream,
        ToxicKind::Timeout { timeout: 0 },
    )
    .await;
    b.round_trip().await;
    a.pass(Stream::Upstream, b"upstream is fine").await;
}
