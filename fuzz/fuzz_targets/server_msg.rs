//! libFuzzer's entry to `tickcast_fuzz::targets::server_msg`: a client decoding the server's
//! messages. The checks and the input's layout are documented there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickcast_fuzz::targets::server_msg::run(data));
