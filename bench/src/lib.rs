//! tickcast-bench: the measuring harness. Its commands start the release server as a child
//! process, load it from this process (with `client-demo`'s bots) over loopback only, and
//! report what it cost, each against this machine's floors measured in the same run.
//!
//! - [`server`]: the server under test: started on a free port and always stopped
//!   ([`server::process`]), its CPU time, memory and open files ([`server::procinfo`]), its
//!   `/metrics` ([`server::scrape`]).
//! - [`clients`]: clients that count every byte on the wire (a socket wrapper, a hand-written
//!   HTTP/1.1 client, a bare player WebSocket, frames written by hand), and one follower per
//!   way of following a match.
//! - [`floors`]: this machine's loopback RTT, fan-out and serving floors.
//! - [`load`]: the step-by-step load harness and its report. [`idle`]: memory per idle
//!   connection. [`rooms`]: memory per empty room, and rooms that end giving back what they
//!   held.
//! - [`transports`]: the ways of following a match compared, directly or across a simulated
//!   network (`tickcast-relay`), with medians of runs, tables and an SVG chart.
//! - [`soak`]: bots, spectators and misbehaving clients for minutes, sampling the server.
//! - [`resume`]: players whose connections are cut take their seats back, each bot through a
//!   relay of its own.
//! - [`attack`]: the outside attack run, one attack per fresh server.
//! - [`cluster`]: a cluster on this machine, with a redis-server of our own.
//! - [`table`]: the one way every report writes its tables.

pub mod attack;
pub mod clients;
pub mod cluster;
pub mod floors;
pub mod idle;
pub mod load;
pub mod resume;
pub mod rooms;
pub mod server;
pub mod soak;
pub mod table;
pub mod transports;
