//! tickcast's fuzzing: what each fuzz target checks ([`targets`], one module per target, so
//! that `cargo test --lib` runs every seed through exactly what libFuzzer runs), the schemas
//! inputs are read by, a plain model of a client's world, the heap bound of a decode, and the
//! seed corpus (tests only).

mod heap;
mod model;
mod schemas;
#[cfg(test)]
mod seeds;
pub mod targets;
