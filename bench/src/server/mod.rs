//! The server under test: a release `tickcast` started on a free loopback port as a child
//! process and always stopped ([`process`]), read from outside: its CPU time, memory and open
//! files from `/proc` ([`procinfo`]) and its `/metrics` ([`scrape`]).

pub mod process;
pub mod procinfo;
pub mod scrape;
