//! The `qldb-local` command: parses flags into a [`Config`] and starts the server.

use clap::{Parser, Subcommand};
use qldb_local::config::Config;

/// mimalloc instead of the system allocator: requests allocate and free many small buffers
/// across threads, and glibc's malloc was ~14 % of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// Check the ledgers of this PostgreSQL database instead of a data dir
        /// (`postgres://USER:PASSWORD@HOST:PORT/DB`, as `serve --storage`).
        #[arg(long, env = "QLDB_LOCAL_STORAGE", value_name = "URL")]
        storage: Option<String>,
        /// Also check a digest saved earlier (GetDigest's Digest, base64) against the
        /// journal at that digest's tip (needs --ledger and --digest-tip-address).
        #[arg(long, requires_all = ["ledger", "digest_tip_address"])]
        digest: Option<String>,
        /// The saved digest's DigestTipAddress, as GetDigest gave it:
        /// '{strandId:"...",sequenceNo:N}'.
        #[arg(long, requires = "digest")]
        digest_tip_address: Option<String>,
    },
    /// Copy ledgers between backends, row for row (every block, digest and proof unchanged):
    /// from a data dir to a PostgreSQL database or back. Stop the servers of both first.
    Migrate {
        /// Where the ledgers are: a data directory, or postgres://USER:PASSWORD@HOST/DB.
        #[arg(long)]
        from: String,
        /// Where to copy them (it must not have a ledger of the same name).
        #[arg(long)]
        to: String,
        /// Copy only this ledger.
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
        /// Rebuild a ledger of this PostgreSQL database instead of the data dir
        /// (`postgres://USER:PASSWORD@HOST:PORT/DB`, as `serve --storage`); the previous
        /// rows are kept in a schema no ledger names.
        #[arg(long, env = "QLDB_LOCAL_STORAGE", value_name = "URL")]
        storage: Option<String>,
        /// The ledger to rebuild.
        #[arg(long)]
        ledger: String,
    },
    /// Make a ledger from a QLDB journal export (ExportJournalToS3, ION_TEXT or ION_BINARY),
    /// hash for hash: the same strand, blocks, digests and proofs; new transactions extend
    /// the same chain. Stop the server first. An interrupted import continues when run again.
    Import {
        /// The data directory.
        #[arg(long, env = "QLDB_LOCAL_DATA_DIR", default_value = "./qldb-data")]
        data_dir: std::path::PathBuf,
        /// Import into this PostgreSQL database instead of the data dir
        /// (`postgres://USER:PASSWORD@HOST:PORT/DB`, as `serve --storage`).
        #[arg(long, env = "QLDB_LOCAL_STORAGE", value_name = "URL")]
        storage: Option<String>,
        /// The name of the new ledger.
        #[arg(long)]
        ledger: String,
        /// The export: s3://bucket/prefix (every completed export under it), or a local
        /// directory holding a copy (`aws s3 sync s3://bucket/prefix DIR`).
        #[arg(long)]
        from: String,
        /// The new ledger's permissions mode.
        #[arg(long, default_value = "STANDARD", value_parser = ["STANDARD", "ALLOW_ALL"])]
        permissions_mode: String,
        /// AWS region used in the ledger's ARN (and for S3 when the environment names none).
        #[arg(long, env = "QLDB_LOCAL_REGION", default_value = "us-east-1")]
        region: String,
        /// AWS account id used in the ledger's ARN.
        #[arg(long, env = "QLDB_LOCAL_ACCOUNT_ID", default_value = "000000000000", value_parser = qldb_local::config::parse_account_id)]
        account_id: String,
        /// S3 endpoint. Overrides AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL.
        #[arg(long, env = "QLDB_LOCAL_S3_ENDPOINT")]
        s3_endpoint: Option<String>,
        /// Address S3 buckets as https://host/bucket (path style).
        #[arg(long, env = "QLDB_LOCAL_S3_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
        s3_path_style: bool,
        /// No progress on standard error.
        #[arg(long)]
        quiet: bool,
        /// Import the data only, into a NEW chain: every hash, digest and the strand id are
        /// new (for JSON exports, whose hashes cannot be recomputed). Starts over if
        /// interrupted.
        #[arg(long)]
        rehash: bool,
    },
    /// Probe a running server's /health (for container health checks); exit 0 when ready.
    Health {
        /// The server's listen address; 0.0.0.0 is probed on 127.0.0.1.
        #[arg(long, env = "QLDB_LOCAL_LISTEN", default_value = qldb_local::config::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
    },
    /// An interactive PartiQL prompt on a ledger, over the session API of any qldb-local:
    /// each statement committed on its own, or `start transaction` … `commit`/`abort`;
    /// statements end with ';'. With piped input it runs the script and exits non-zero at
    /// the first error.
    Shell(Box<ShellArgs>),
}

#[derive(clap::Args)]
struct ShellArgs {
    /// The ledger to work on.
    #[arg(long)]
    ledger: String,
    /// The server's endpoint.
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL_QLDB_SESSION",
        default_value = "http://127.0.0.1:8901"
    )]
    endpoint: String,
    /// The region to sign requests for.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// The access key id to sign with (qldb-local's default credentials are test:test).
    #[arg(
        long,
        env = "AWS_ACCESS_KEY_ID",
        default_value = "test",
        hide_env_values = true
    )]
    access_key_id: String,
    /// The secret access key to sign with.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "test",
        hide_env_values = true
    )]
    secret_access_key: String,
    /// A session token, for temporary credentials.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    session_token: Option<String>,
    /// How results are printed (`\format ion|table` switches inside the shell).
    #[arg(long, value_enum, default_value_t = qldb_local::shell::Format::Ion)]
    format: qldb_local::shell::Format,
    /// The history file of the interactive prompt [default: ~/.qldb-local/shell_history].
    #[arg(long, env = "QLDB_LOCAL_SHELL_HISTORY")]
    history: Option<std::path::PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Shell(a) => {
            let history = a.history.or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| std::path::PathBuf::from(h).join(".qldb-local/shell_history"))
            });
            qldb_local::shell::run(qldb_local::shell::ShellConfig {
                ledger: a.ledger,
                endpoint: a.endpoint,
                region: a.region,
                access_key: a.access_key_id,
                secret_key: a.secret_access_key,
                session_token: a.session_token,
                format: a.format,
                history,
            })
        }
        Command::Verify {
            data_dir,
            ledger,
            storage,
            digest,
            digest_tip_address,
        } => {
            let saved = digest.zip(digest_tip_address);
            let verified = match &storage {
                Some(url) => qldb_local::storage::pg::verify::run(url, ledger.as_deref(), saved),
                None => qldb_local::verify::run(&data_dir, ledger.as_deref(), saved),
            };
            match verified {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("qldb-local verify: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Migrate { from, to, ledger } => {
            use base64::Engine as _;
            use qldb_local::storage::migrate::{run, Place};
            let copied = run(
                &Place::parse(&from),
                &Place::parse(&to),
                ledger.as_deref(),
                &mut |c| {
                    println!(
                        "copied {}: {} blocks, digest {} (the same in both)",
                        c.ledger,
                        c.blocks,
                        base64::engine::general_purpose::STANDARD.encode(&c.digest)
                    )
                },
            );
            match copied {
                Ok(_) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("qldb-local migrate: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Rebuild {
            data_dir,
            storage,
            ledger,
        } => {
            let mut progress = qldb_local::progress::Progress::stderr();
            let mut report = |step: &str, d, t| {
                progress.update(&format!("rebuild {ledger}: {step}"), d, t, "blocks")
            };
            let rebuilt = match &storage {
                Some(url) => {
                    qldb_local::storage::pg::rebuild::rebuild_reporting(url, &ledger, &mut report)
                }
                None => qldb_local::rebuild::rebuild_reporting(&data_dir, &ledger, &mut report),
            };
            progress.clear();
            match rebuilt {
                Ok(r) => {
                    use base64::Engine as _;
                    println!(
                        "rebuilt {}: {} blocks, digest {} at sequenceNo {}; {} documents, {} tables, {} indexes; {}",
                        r.verified.ledger,
                        r.verified.blocks,
                        base64::engine::general_purpose::STANDARD.encode(&r.verified.digest),
                        r.verified.tip,
                        r.documents,
                        r.tables,
                        r.indexes,
                        r.backup
                    );
                    print_notes(&r.new_index_ids, &r.notes);
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("qldb-local rebuild: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Import {
            data_dir,
            storage,
            ledger,
            from,
            permissions_mode,
            region,
            account_id,
            s3_endpoint,
            s3_path_style,
            quiet,
            rehash,
        } => {
            let opts = qldb_local::import::ImportOptions {
                data_dir,
                ledger,
                from,
                region,
                account_id,
                permissions_mode,
                s3_endpoint,
                s3_path_style,
                progress: !quiet,
                rehash,
            };
            let imported = match &storage {
                Some(url) => qldb_local::storage::migrate::import_into_postgres(url, &opts),
                None => qldb_local::import::import(&opts).map_err(|e| e.to_string()),
            };
            match imported {
                Ok(r) => {
                    use base64::Engine as _;
                    if r.rehashed {
                        println!(
                            "REHASHED: {} holds the export's data in a NEW chain (strand {}); its hashes, digests and proofs are not the exported journal's, and digests saved from it will not verify",
                            r.verified.ledger, r.strand
                        );
                    }
                    if let Some(after) = r.resumed_after {
                        println!("continued an interrupted import after block {after}");
                    }
                    println!(
                        "imported {}: {} blocks from {} objects, digest {} at {{strandId:\"{}\",sequenceNo:{}}}; {} documents, {} tables, {} indexes",
                        r.verified.ledger,
                        r.verified.blocks,
                        r.objects,
                        base64::engine::general_purpose::STANDARD.encode(&r.verified.digest),
                        r.strand,
                        r.verified.tip,
                        r.documents,
                        r.tables,
                        r.indexes,
                    );
                    for id in &r.new_table_ids {
                        println!("note: table {id} got a new id (the export holds its id only in an opaque hash)");
                    }
                    print_notes(&r.new_index_ids, &r.notes);
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("qldb-local import: {e}");
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
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let tokio_env = std::env::var_os("TOKIO_WORKER_THREADS").is_some();
            if let Some(n) = cfg.request_threads(cores, tokio_env) {
                builder.worker_threads(n);
            }
            let runtime = match builder
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

/// The ids a replay made up and the guesses it made, one `note:` line each.
fn print_notes(new_index_ids: &[String], notes: &[String]) {
    for id in new_index_ids {
        println!("note: index {id} got a new id (the journal does not record index ids)");
    }
    for note in notes {
        println!("note: {note}");
    }
}
