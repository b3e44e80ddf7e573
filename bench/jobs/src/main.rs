//! Benchmark client for SEIDRA's job system (issue 3, "Performance").
//!
//! Subcommands (each prints one JSON object on stdout, progress on stderr):
//!
//!   users       register (or log in) N accounts concurrently; writes `username token user_id` lines
//!   latency     submit → `job.started` on the WebSocket, at a fixed submit rate
//!   throughput  batch submits from several users until N jobs, then wait for all to succeed
//!   ws          N WebSocket clients each following its own job: event delivery latency
//!   list        GET /api/jobs?limit=50: max throughput (closed loop) and latency at a fixed rate
//!   mixed       everyday API traffic, 25 % writes: max throughput and per-operation latency
//!
//! `bench/jobs.sh` drives these against servers it starts; see docs/BENCHMARKS-jobs.md.

mod latency;
mod list;
mod mixed;
mod throughput;
mod users;
mod util;
mod ws;

use util::{Flags, Result};

const USAGE: &str = "usage: seidra-jobs-bench <users|latency|throughput|ws|list|mixed> --base URL [flags]
  users       --count N --prefix P --password PW [--concurrency 16] --out FILE
  latency     --token JWT [--rate 50] [--warmup 100] [--samples 600] [--pids P,P] [--postgres 1]
  throughput  --tokens FILE --admin-token JWT [--clients 8] [--jobs 10000] [--batch 8] [--timeout 180]
  ws          --tokens FILE [--clients 1000] [--spread-ms 1000] [--timeout 60] [--connect-concurrency 64]
  list        --token JWT [--duration 10] [--warmup 3] [--connections 16] [--rate 1000]
  mixed       --tokens FILE [--duration 10] [--warmup 3] [--connections 16] [--rate 300] [--fixture-jobs 8]
  common:     [--pids P,P] CPU of these server processes; [--postgres 1] also sum postgres backends";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jobs-bench: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result: Result<()> = runtime.block_on(async move {
        let flags = Flags::parse(rest)?;
        match cmd.as_str() {
            "users" => users::run(&flags).await,
            "latency" => latency::run(&flags).await,
            "throughput" => throughput::run(&flags).await,
            "ws" => ws::run(&flags).await,
            "list" => list::run(&flags).await,
            "mixed" => mixed::run(&flags).await,
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                Ok(())
            }
            other => Err(format!("unknown subcommand `{other}`\n{USAGE}").into()),
        }
    });
    if let Err(e) = result {
        eprintln!("jobs-bench {cmd}: {e}");
        std::process::exit(1);
    }
}
