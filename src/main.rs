//! The tickcast server binary: the built-in games, served with the flags given
//! ([`tickcast::server::main_with`]).

use tickcast::Games;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tickcast::server::main_with(Games::builtin()).await
}
