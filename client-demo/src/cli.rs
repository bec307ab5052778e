//! What a command-line tool of ours does around its work, the same in `client-demo` and
//! `tickcast-bench`: stop on ctrl-c, log to stderr, and fail with a hint.

use std::fmt::Display;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// A token cancelled at the first ctrl-c (the run then stops and reports what it has).
pub fn stop_on_ctrl_c() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            token.cancel();
        }
    });
    stop
}

/// Logs to stderr, `warn` and up unless RUST_LOG says otherwise.
pub fn logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .init();
}

/// Prints an error and its hint, and gives the failure exit status.
pub fn fail(err: &dyn Display, hint: Option<&str>) -> ExitCode {
    eprintln!("error: {err}");
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
    ExitCode::FAILURE
}
