//! The `qldb-local` command: parses flags into a [`Config`] and starts the server.

use clap::{Parser, Subcommand};
use qldb_local::config::Config;

#[derive(Parser)]
#[command(
    name = "qldb-local",
    version,
    about = "A local, QLDB-compatible ledger database server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the QLDB control-plane and session APIs on one HTTP port.
    Serve(Box<Config>),
    /// Verify every hash of the ledgers in a data dir (the server may be running).
    Verify {
        /// The data directory to check.
        #[arg(long, env = "QLDB_LOCAL_DATA_DIR", default_value = "./qldb-data")]
        data_dir: std::path::PathBuf,
        /// Check only this ledger.
        #[arg(long)]
        ledger: Option<String>,
    },
    /// Probe a running server's /health (for container health checks); exit 0 when ready.
    Health {
        /// The server's listen address; 0.0.0.0 is probed on 127.0.0.1.
        #[arg(long, env = "QLDB_LOCAL_LISTEN", default_value = qldb_local::config::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify { data_dir, ledger } => {
            match qldb_local::verify::run(&data_dir, ledger.as_deref()) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("qldb-local verify: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Health { listen } => match qldb_local::server::probe_health(listen) {
            Ok(body) => {
                println!("{body}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("qldb-local health: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Serve(cfg) => {
            qldb_local::server::init_logging(cfg.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                // Statements may nest up to 1,000 operators deep; evaluating them recurses.
                .thread_stack_size(32 * 1024 * 1024)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("qldb-local: cannot start the runtime: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            match runtime.block_on(qldb_local::server::run(*cfg)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("qldb-local: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
