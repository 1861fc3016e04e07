//! # qldb-local
//!
//! A local server that speaks the Amazon QLDB APIs — the `qldb` control plane (restJson1)
//! and the `qldb-session` data plane (awsJson1_0, `SendCommand`) — so that code written for
//! QLDB runs unchanged against it.
//!
//! ## The life of a request
//!
//! 1. `main.rs` parses `qldb-local serve` flags into a [`config::Config`];
//!    [`server::run`] opens the storage ([`server::open_control`] → catalog and every
//!    ledger file) and serves [`http::router`] on one port.
//! 2. [`http`]'s `request_context` middleware assigns the `x-amzn-RequestId` and logs the
//!    request; `buffer_and_authenticate` reads the body (with a size limit) and verifies
//!    SigV4 with [`http::auth::Authenticator::verify`].
//! 3. The router picks the operation: a restJson1 route of the control plane, or `POST /`
//!    with `X-Amz-Target` for the session API.
//! 4. The handler decodes labels, query and body into [`api`] shapes and calls one
//!    [`control::ControlPlane`] method on a blocking thread.
//! 5. The control plane validates (names via [`names`]), applies the QLDB semantics, and
//!    stores through [`storage`] (catalog and per-ledger SQLite files, WAL, fsync on commit).
//! 6. The result goes back as JSON; a [`control::ControlError`] becomes an
//!    [`http::ApiError`]: `x-amzn-ErrorType`, status, and a body with `__type`, `Message`
//!    and the modeled members.
//!
//! A `SendCommand` request (the session API) takes the same first three steps, then:
//!
//! 4. [`http`]'s session handler decodes the one command and calls [`session::Sessions`]
//!    on a blocking thread; the session's mutex serializes its requests.
//! 5. ExecuteStatement folds the statement into the transaction's commit digest
//!    ([`journal::hash::CommitDigest`]), parses it ([`partiql::parse_statement`]) and runs it
//!    ([`partiql::exec::execute`]) against the transaction's view of the ledger — committed
//!    state from [`storage`] overlaid with the transaction's own writes, every read recorded.
//! 6. CommitTransaction compares digests, then [`storage::LedgerStore::commit`] re-validates the
//!    reads (OCC) and appends one journal block ([`journal::block`]) with its revisions and
//!    digest-tree nodes ([`journal::merkle`]) in one durable SQLite transaction.
//!
//! ## Module map (arrows point down only)
//!
//! - [`http`]: routing, SigV4, AWS error framing, restJson1 and awsJson1_0; it also serves
//!   the web console's static files (`src/console/`, a client of those same APIs).
//! - [`api`]: serde shapes of the service models in `api-models/`.
//! - [`control`]: ledgers, states, tags, ARNs; GetDigest/GetBlock/GetRevision.
//! - [`server`]: the composition root: turns [`config`] into each layer's settings, picks
//!   the storage backend, runs the listener.
//! - [`jobs`]: journal exports to S3 and streams to Kinesis, run in the background.
//! - [`session`]: sessions, transactions, commit digest, paging, OCC read sets, limits.
//! - [`partiql`]: lexer → parser → AST → executor (plans id and index lookups).
//! - [`journal`]: blocks, every hash rule, the digest tree and proofs (pure, no I/O).
//! - [`storage`]: the storage traits (catalog, ledgers: journal, documents, revisions,
//!   indexes) and their SQLite implementation in [`storage::sqlite`], the only code that
//!   issues SQL or knows file names; [`server`] picks the backend.
//! - [`verify`]: the offline verifier behind `qldb-local verify`; [`rebuild`] and
//!   [`import`]: a ledger file replayed from its journal, or from a QLDB journal export.
//!   All three work on SQLite files and live in [`storage::sqlite`]; they replay statement
//!   texts with [`partiql`]'s parser (the one arrow up from `storage`, to a module that
//!   never imports `storage`).
//! - [`aws`]: the AWS SDK clients of exports, streams and `import` (a leaf).
//! - [`ion`]: Ion values, binary and text codecs, Ion Hash.
//! - [`names`]: validated names and ids, Coral-style constraint messages.
//! - [`iam`]: principals, credentials files and IAM policy evaluation (STANDARD mode).
//! - [`tls`]: the HTTPS side of the listener (`--tls`).
//! - [`progress`]: progress bars and lines of long command-line work (a leaf).
//! - [`shell`]: `qldb-local shell`, a PartiQL prompt that is a client of the session API
//!   through the official Rust SDK (imports only [`ion`] and [`journal`]'s commit digest).
//! - [`config`]: every setting, its flag and environment variable (a leaf: [`server`]
//!   turns it into each layer's settings).

pub mod api;
pub mod aws;
pub mod config;
pub mod control;
pub mod http;
pub mod iam;
pub mod ion;
pub mod jobs;
pub mod journal;
pub mod names;
pub mod partiql;
pub mod progress;
pub mod server;
pub mod session;
pub mod shell;
pub mod storage;
pub mod tls;

/// The offline tools work on SQLite ledger files.
pub use storage::sqlite::{import, rebuild, verify};
