//! The `resume` round, tiny, against a real in-process server on 127.0.0.1:0: bots whose
//! relays are cut take their seats back as the same entity, with their worlds in step.

// The fixtures client-demo's tests use: one copy for both crates.
#[path = "../../client-demo/tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{TestServer, within};
use tickcast_bench::resume::{self, ResumeConfig};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_bots_take_their_seats_back_as_the_same_entity_in_step() {
    let server = TestServer::at(30).await;
    let config = ResumeConfig {
        bots: 4,
        duration: Duration::from_secs(5),
        cut_every: Duration::from_secs(1),
        silence: Duration::from_millis(500),
        // A round is measured against the server given, not a started binary.
        ..ResumeConfig::new(PathBuf::new())
    };
    let round = within(resume::measure(
        server.addr,
        Duration::ZERO,
        &config,
        &CancellationToken::new(),
    ))
    .await
    .expect("the round runs");

    assert_eq!(round.bots.bots_connected, 4, "{round:?}");
    assert!(round.cuts >= 4 && round.resumed > 0, "{round:?}");
    // Every cut was answered by one resume, as the same entity, and the checksums that
    // followed matched.
    assert_eq!(
        (round.unanswered, round.unprompted, round.no_delta),
        (0, 0, 0),
        "{round:?}"
    );
    assert_eq!(round.same_entity, round.resumed, "{round:?}");
    assert_eq!((round.entity_changed, round.bots.desyncs), (0, 0), "{round:?}");
    assert!(round.bots.checksums_verified > 0, "{round:?}");
    assert!(round.attempts >= round.resumed, "{round:?}");
    // The cut comes before the silence is noticed, so it is the longer delay.
    let (cut, noticed) = (round.cut_to_delta_us, round.noticed_to_delta_us);
    assert_eq!(cut.samples, round.resumed, "{round:?}");
    assert!(cut.p50 >= 500_000 && cut.p50 > noticed.p50, "{round:?}");
    // The server took back as many seats, refused none and let none expire; everyone left.
    let s = round.server;
    assert_eq!(s.resumes, round.resumed, "{round:?}");
    assert_eq!(
        (s.resumes_refused, s.seats_expired, s.players_away),
        (0, 0, 0),
        "{round:?}"
    );
    server.stop().await;
}
