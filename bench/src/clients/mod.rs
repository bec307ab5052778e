//! Clients of the harness's own, each counting every byte on the wire, HTTP heads and
//! WebSocket framing included ([`counted`]): a hand-written HTTP/1.1 client ([`http1`]), a bare
//! player WebSocket ([`wire`]), frames written by hand for the attacks ([`rawws`]), and one
//! follower per way of following a match ([`followers`]).

pub mod counted;
pub mod followers;
pub mod http1;
pub mod rawws;
pub mod wire;
