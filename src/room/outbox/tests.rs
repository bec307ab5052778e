use std::io;

use super::*;

fn frame(n: u8) -> Bytes {
    Bytes::from(vec![n])
}

#[test]
fn refuses_past_capacity_and_keeps_order() {
    let (out, mut inbox) = outbox(2, None);
    assert_eq!(out.push(None, &frame(1)), Ok(0));
    assert_eq!(out.push(None, &frame(2)), Ok(1));
    assert_eq!(out.push(None, &frame(3)), Err(PushError::Full));
    assert_eq!(out.len(), 2);
    assert_eq!(inbox.try_frame().unwrap().frame[0], 1);
    assert_eq!(out.push(None, &frame(4)), Ok(1));
    assert_eq!(inbox.try_frame().unwrap().frame[0], 2);
    assert_eq!(inbox.try_frame().unwrap().frame[0], 4);
    assert!(inbox.try_next().is_none());
    assert!(out.is_empty());
}

#[test]
fn a_drained_backlog_gives_its_room_back() {
    let (out, mut inbox) = outbox(64, None);
    for n in 0..64 {
        out.push(None, &frame(n)).unwrap();
    }
    while inbox.try_frame().is_some() {}
    assert!(inbox.0.lock().queue.capacity() <= KEEP);
}

#[test]
fn either_end_dropped_closes_it() {
    let (out, inbox) = outbox(2, None);
    drop(inbox);
    assert!(out.is_closed());
    assert_eq!(out.push(None, &frame(1)), Err(PushError::Closed));

    let (out, mut inbox) = outbox(2, None);
    out.push(None, &frame(1)).unwrap();
    drop(out);
    assert!(
        matches!(inbox.try_next(), Some(Next::RoomGone)),
        "a closing room owes no more ticks"
    );
}

#[test]
fn a_kick_comes_before_what_is_queued_and_outlasts_the_room() {
    let (out, mut inbox) = outbox(2, None);
    out.push(None, &frame(1)).unwrap();
    out.kick();
    // The tick loop drops a kicked player at once.
    drop(out);
    assert!(matches!(inbox.try_next(), Some(Next::Kicked)));
}

#[test]
fn one_pong_waits_at_most_and_own_frames_do_not_count() {
    let (out, mut inbox) = outbox(1, None);
    out.push(None, &frame(1)).unwrap();
    for n in 10..20 {
        inbox.send_pong(Bytes::from(vec![n]));
    }
    inbox.send(Bytes::from_static(&[30]));
    assert_eq!(
        out.push(None, &frame(2)),
        Err(PushError::Full),
        "own frames take no tick's place"
    );
    let drained: Vec<u8> = std::iter::from_fn(|| inbox.try_frame()).map(|o| o.frame[0]).collect();
    assert_eq!(drained, [1, 19, 30], "the latest pong only");
}

#[tokio::test]
async fn next_waits_for_a_push_or_the_close() {
    let (out, mut inbox) = outbox(2, None);
    let waiter = tokio::spawn(async move {
        let first = inbox.next().await;
        let second = inbox.next().await;
        (first, second)
    });
    tokio::task::yield_now().await; // the waiter runs and waits
    out.push(None, &frame(7)).unwrap();
    tokio::task::yield_now().await;
    drop(out);
    let (first, second) = woken(waiter).await;
    assert!(matches!(&first, Next::Frame(f) if f.frame[0] == 7), "{first:?}");
    assert!(matches!(second, Next::RoomGone), "{second:?}");
}

#[tokio::test]
async fn a_session_waiting_or_stuck_writing_is_woken_by_a_kick() {
    let (out, mut inbox) = outbox(2, None);
    let waiter = tokio::spawn(async move { inbox.next().await });
    tokio::task::yield_now().await;
    out.kick();
    assert!(matches!(woken(waiter).await, Next::Kicked));

    let (out, inbox) = outbox(2, None);
    let stuck = tokio::spawn(async move { inbox.kicked().await });
    tokio::task::yield_now().await;
    out.push(None, &frame(1)).unwrap();
    tokio::task::yield_now().await;
    assert!(!stuck.is_finished(), "a frame is not a kick");
    out.kick();
    woken(stuck).await;
}

/// What a waiting task returned once woken; a lost wake-up fails here instead of hanging.
async fn woken<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("the waiting task was woken")
        .unwrap()
}

#[tokio::test]
async fn a_player_that_keeps_up_is_written_directly_and_its_session_never_woken() {
    use tokio::io::AsyncReadExt;
    let (socket, _read, mut peer) = loopback_pair().await;
    let (out, mut inbox) = outbox(4, Some(socket));
    for seq in 1..=3 {
        assert_eq!(out.push(Some(seq), &Bytes::from_static(&[0x82, 1, 9])), Ok(0));
    }
    assert!(inbox.try_next().is_none(), "nothing queued for the session");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), inbox.next())
            .await
            .is_err(),
        "the session is not woken"
    );
    let mut got = [0u8; 3 * (4 + 3)];
    peer.read_exact(&mut got).await.unwrap();
    for (i, seq) in (1..=3u8).enumerate() {
        assert_eq!(&got[i * 7..i * 7 + 7], &[0x82, 2, 4, seq, 0x82, 1, 9]);
    }
}

#[tokio::test]
async fn what_the_socket_does_not_take_waits_whole_for_the_session_in_order() {
    use tokio::io::AsyncReadExt;
    let (socket, _read, mut peer) = loopback_pair().await;
    // A small send buffer, so the socket backs up in a few frames.
    let stream: &tokio::net::TcpStream = (*socket).as_ref();
    socket2::SockRef::from(stream).set_send_buffer_size(4096).unwrap();
    let (out, mut inbox) = outbox(1000, Some(socket.clone()));
    // Frames of 10 000 bytes, each its index in every byte, until the socket backs up.
    let big = |n: u8| Bytes::from(frames::binary_frame(vec![n; 10_000]).to_vec());
    let mut n = 0u8;
    while inbox.0.lock().queue.is_empty() {
        out.push(None, &big(n)).unwrap();
        n += 1;
    }
    for _ in 0..3 {
        out.push(None, &big(n)).unwrap();
        n += 1;
    }
    // The session drains the queue; the peer reads every frame whole and in order.
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        peer.read_to_end(&mut all).await.unwrap();
        all
    });
    // What the session does with its queue (with the socket's async write, here by hand).
    let drain = async |inbox: &mut Inbox| {
        while let Some(next) = inbox.try_frame() {
            let mut at = 0;
            while at < next.frame.len() {
                socket.writable().await.unwrap();
                match socket.try_write(&next.frame[at..]) {
                    Ok(k) => at += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
    };
    drain(&mut inbox).await;
    assert!(
        inbox.try_next().is_none() && !inbox.0.lock().busy,
        "the socket is handed back"
    );
    // Written directly again (or queued again, if the peer has not read yet).
    out.push(None, &big(n)).unwrap();
    n += 1;
    drain(&mut inbox).await;
    drop((out, inbox, socket, _read));
    let all = reader.await.unwrap();
    assert_eq!(all.len(), usize::from(n) * big(0).len());
    for (i, chunk) in all.chunks(big(0).len()).enumerate() {
        assert_eq!(chunk, &big(i as u8)[..], "frame {i}");
    }
}

#[test]
fn a_closing_room_skips_its_ticks_but_its_own_frames_go_out_first() {
    let frame_of = |next: Option<Next>| match next {
        Some(Next::Frame(out)) => out.frame,
        other => panic!("expected a frame, not {other:?}"),
    };
    let (out, mut inbox) = outbox(2, None);
    out.push(None, &frame(1)).unwrap();
    out.send_own(&frame(2)).unwrap();
    out.refuse(4000, "team red is full");
    assert_eq!(
        frame_of(inbox.try_next()),
        frame(2),
        "the match's end before the refusal"
    );
    assert!(matches!(inbox.try_next(), Some(Next::Refused(4000, r)) if r == "team red is full"));

    let (out, mut inbox) = outbox(2, None);
    out.push(None, &frame(1)).unwrap();
    out.send_own(&frame(2)).unwrap();
    drop(out);
    assert_eq!(
        frame_of(inbox.try_next()),
        frame(2),
        "the results before the room's end"
    );
    assert!(matches!(inbox.try_next(), Some(Next::RoomGone)));
}
