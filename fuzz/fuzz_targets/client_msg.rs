//! libFuzzer's entry to `tickcast_fuzz::targets::client_msg`: the server decoding a player's
//! message. The checks and the input's layout are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickcast_fuzz::targets::client_msg::run(data));
