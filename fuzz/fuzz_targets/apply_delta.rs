//! libFuzzer's entry to `tickcast_fuzz::targets::apply_delta`: a client applying a delta to the
//! world of a snapshot. The checks and the input's layout are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickcast_fuzz::targets::apply_delta::run(data));
