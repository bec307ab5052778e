//! The server binary the harness's tests run, shared by them (`#[path]`).

use std::path::PathBuf;

/// `target/<profile>/tickcast`, if it has been built.
pub(crate) fn server_bin() -> Option<PathBuf> {
    // This test runs as target/<profile>/deps/harness-<hash>.
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("tickcast");
    if bin.is_file() {
        Some(bin)
    } else {
        // A workspace `cargo test` always builds it; in CI its absence is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "no server binary at {} in CI",
            bin.display()
        );
        eprintln!(
            "skipped: no server binary at {}; build it with cargo build -p tickcast",
            bin.display()
        );
        None
    }
}
