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
    /// Regenerate a ledger file from its verified journal (stop the server first): every
    /// derived table is rebuilt beside the old file, verified, then swapped in; the old file
    /// is kept in <data-dir>/rebuild-backups/.
    Rebuild {
        /// The data directory.
        #[arg(long, env = "QLDB_LOCAL_DATA_DIR", default_value = "./qldb-data")]
        data_dir: std::path::PathBuf,
        /// The ledger to rebuild.
        #[arg(long)]
        ledger: String,
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
        Command::Rebuild { data_dir, ledger } => {
            match qldb_local::rebuild::rebuild(&data_dir, &ledger) {
                Ok(r) => {
                    use base64::Engine as _;
                    println!(
                        "rebuilt {}: {} blocks, digest {} at sequenceNo {}; {} documents, {} tables, {} indexes; the previous file is kept as {}",
                        r.verified.ledger,
                        r.verified.blocks,
                        base64::engine::general_purpose::STANDARD.encode(&r.verified.digest),
                        r.verified.tip,
                        r.documents,
                        r.tables,
                        r.indexes,
                        r.backup.display()
                    );
                    for id in &r.new_index_ids {
                        println!(
                            "note: index {id} got a new id (the journal does not record index ids)"
                        );
                    }
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("qldb-local rebuild: {e}");
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
                // One line, in the log format chosen (a container's log shows why it stopped).
                Err(e) => {
                    tracing::error!("qldb-local cannot serve: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
