//! `seidra`: the SEIDRA Ultimate server, workers and administration CLI in one binary.

mod cli;
mod commands;
mod logging;

use clap::Parser;

/// mimalloc instead of glibc's malloc: under concurrent requests glibc's arena locks and
/// `malloc_consolidate` took a third of the server's CPU (perf, `GET /api/jobs` at full load).
/// The crate's `override` feature routes C `malloc` (the bundled SQLite's row copies, freed on
/// another thread) to it as well.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    seidra_net::install_crypto_provider();
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
