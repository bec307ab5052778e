//! The measuring harness: commands that start the release server as a child process, load it
//! from this process over loopback only, and report what it cost.
//!
//! - [`server_proc`]: the server under test, started on a free port and always stopped.
//! - [`procinfo`]: its CPU time, memory and open files, from `/proc`.
//! - [`scrape`]: its `/metrics`, and quantiles from histogram buckets.
//! - [`counted`], [`http1`], [`wire`]: clients that count every byte on the wire: a socket
//!   wrapper, a hand-written HTTP/1.1 client, and a bare player WebSocket.
//! - [`floors`]: loopback RTT and fan-out floors of this machine.
//! - [`load`] and [`load_report`]: the step-by-step load harness and its table.
//! - [`idle`]: memory per idle connection. [`rooms`]: memory per empty room, and rooms that
//!   end giving back what they held.
//! - [`followers`] and [`transports`]: one client per way of following a match, and their
//!   comparison, directly or across a simulated network (`tickcast-relay`), with the server's
//!   memory per connection, medians of runs, markdown tables and an SVG chart.
//! - [`attack`] and [`rawws`]: the outside attack run, one attack per fresh server, with
//!   WebSocket frames written by hand.
//! - [`cluster`] and [`redis`]: a cluster on this machine, with a redis-server of our own.
//! - [`abuse`], [`soak`] and [`soak_report`]: misbehaving clients, the bounded soak that runs
//!   them with bots and spectators while sampling the server, and its verdicts.

pub mod abuse;
pub mod attack;
pub mod cluster;
pub mod counted;
pub mod floors;
pub mod followers;
pub mod http1;
pub mod idle;
pub mod load;
pub mod load_report;
pub mod procinfo;
pub mod rawws;
pub mod redis;
pub mod rooms;
pub mod scrape;
pub mod server_proc;
pub mod soak;
pub mod soak_report;
pub mod transports;
pub mod wire;
