//! `qldb-local shell`: an interactive PartiQL prompt over the session API, in the spirit of
//! the QLDB shell.
//!
//! It is a client like any other: it talks to a qldb-local (local or remote) through the
//! official Rust SDK's `SendCommand`, signs with SigV4, and computes each transaction's
//! commit digest as the drivers do. Each statement is committed on its own unless the user
//! opens a transaction with `start transaction` (or `begin`) and ends it with `commit` or
//! `abort`. Statements end with `;` and may span lines. On a terminal it offers line
//! editing and a history file; with piped input it runs the script and stops at the first
//! error with a non-zero exit status.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

use aws_sdk_qldbsession::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_qldbsession::operation::send_command::builders::SendCommandFluentBuilder;
use aws_sdk_qldbsession::operation::send_command::{SendCommandError, SendCommandOutput};
use aws_sdk_qldbsession::types::{
    AbortTransactionRequest, CommitTransactionRequest, EndSessionRequest, ExecuteStatementRequest,
    FetchPageRequest, Page, StartSessionRequest, StartTransactionRequest, ValueHolder,
};
use aws_sdk_qldbsession::Client;

use crate::ion::{binary, text, Data, Value};
use crate::journal::hash::CommitDigest;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One Ion text value per document, structs spread over lines.
    Ion,
    /// A text table: a column per top-level field.
    Table,
}

/// What `qldb-local shell` needs to connect.
#[derive(Clone, Debug)]
pub struct ShellConfig {
    pub ledger: String,
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    pub format: Format,
    pub history: Option<std::path::PathBuf>,
}

/// Runs the shell until the input ends or the user quits; returns the exit status.
pub fn run(cfg: ShellConfig) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("qldb-local shell: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut shell = Shell {
        client: client(&cfg),
        ledger: cfg.ledger.clone(),
        format: cfg.format,
        token: None,
        tx: None,
        tx_running: false,
        rt: runtime,
    };
    let ok = if std::io::stdin().is_terminal() {
        shell.interactive(cfg.history.as_deref())
    } else {
        shell.script(std::io::stdin().lock())
    };
    shell.end_session();
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

fn client(cfg: &ShellConfig) -> Client {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let creds = aws_credential_types::Credentials::new(
        &cfg.access_key,
        &cfg.secret_key,
        cfg.session_token.clone(),
        None,
        "qldb-local-shell",
    );
    let conf = aws_sdk_qldbsession::Config::builder()
        .behavior_version(aws_sdk_qldbsession::config::BehaviorVersion::latest())
        .region(aws_sdk_qldbsession::config::Region::new(cfg.region.clone()))
        .credentials_provider(creds)
        .endpoint_url(&cfg.endpoint)
        .http_client(http)
        // A shell reports every error at once; the user decides what to retry.
        .retry_config(aws_sdk_qldbsession::config::retry::RetryConfig::disabled())
        // A server that stops answering fails the statement instead of hanging a script.
        .timeout_config(
            aws_sdk_qldbsession::config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .operation_timeout(std::time::Duration::from_secs(120))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// A transaction the user opened.
struct Tx {
    id: String,
    digest: CommitDigest,
}

struct Shell {
    client: Client,
    ledger: String,
    format: Format,
    /// The session, started with the first statement.
    token: Option<String>,
    /// The transaction opened by `start transaction`, if any.
    tx: Option<Tx>,
    /// The open transaction is out of `tx` while one of its statements runs.
    tx_running: bool,
    rt: tokio::runtime::Runtime,
}

/// One thing the user asked for.
#[derive(Debug, PartialEq)]
enum Input {
    Begin,
    Commit,
    Abort,
    Help,
    Quit,
    Format(Format),
    ShowTables,
    Statement(String),
}

/// Reads a shell command, or takes the text as a PartiQL statement.
fn classify(text: &str) -> Input {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        // As in the QLDB shell, its commands also work with a backslash.
        ["start", "transaction"]
        | ["\\start", "transaction"]
        | ["begin"]
        | ["\\begin"]
        | ["begin", "transaction"] => Input::Begin,
        ["commit"] | ["\\commit"] | ["commit", "transaction"] => Input::Commit,
        ["abort"] | ["\\abort"] | ["abort", "transaction"] | ["rollback"] => Input::Abort,
        ["help"] | ["?"] | ["\\help"] | ["\\?"] => Input::Help,
        ["\\show", "tables"] => Input::ShowTables,
        ["quit"] | ["exit"] | ["\\q"] | ["\\quit"] | ["\\exit"] => Input::Quit,
        ["\\format", "ion"] | ["\\set", "format", "ion"] => Input::Format(Format::Ion),
        ["\\format", "table"] | ["\\set", "format", "table"] => Input::Format(Format::Table),
        _ => Input::Statement(text.trim().to_string()),
    }
}

const HELP: &str = "\
Statements end with ';' and may span lines. Each statement is committed on its own,
unless a transaction is open.

  start transaction (or begin)   open a transaction: later statements join it
  commit                         commit the open transaction
  abort                          abort the open transaction
  \\format ion | \\format table    how results are printed
  \\show tables                   the ledger's active tables
  help                           this text
  quit (or exit, Ctrl-D)         leave (an open transaction is aborted)

After each statement: the documents returned, the read I/Os and the server's time.";

/// What handling an input came to.
#[derive(Debug, PartialEq)]
enum Flow {
    Done,
    Failed,
    Quit,
}

/// Why an input failed: what to print, and whether the session is gone.
struct Failure {
    message: String,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
        }
    }
}

/// What a failed SendCommand gives (boxed: the SDK's error is large).
type SendError =
    Box<SdkError<SendCommandError, aws_smithy_runtime_api::client::orchestrator::HttpResponse>>;

/// An SDK error as one line: the service's error code and message, or why the request did
/// not get an answer.
fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("Error"),
                err.message().unwrap_or("(no message)")
            )
        }
        other => {
            // The error and its causes, each once (hyper repeats its cause in its own text).
            let mut text = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(c) = cause {
                let c_text = c.to_string();
                if !text.contains(&c_text) {
                    text = format!("{text}: {c_text}");
                }
                cause = c.source();
            }
            format!("the request got no answer: {text}")
        }
    }
}

/// Whether an SDK error says the session is gone.
fn session_gone<E, R>(e: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(e, SdkError::ServiceError(s) if s.err().code() == Some("InvalidSessionException"))
}

/// QLDB's limit on a statement's length (the server refuses longer ones before it counts
/// them in the transaction's digest).
const MAX_STATEMENT_CHARS: usize = 100_000;

/// What a statement returned.
struct Outcome {
    values: Vec<Value>,
    read_ios: i64,
    server_ms: i64,
}

impl Shell {
    fn prompt(&self) -> &'static str {
        if self.tx.is_some() {
            "qldb *> "
        } else {
            "qldb> "
        }
    }

    /// Reads statements from a terminal with line editing and history.
    fn interactive(&mut self, history: Option<&std::path::Path>) -> bool {
        let mut editor = match rustyline::DefaultEditor::new() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("qldb-local shell: cannot use the terminal ({e}); reading plain lines");
                return self.script(std::io::stdin().lock());
            }
        };
        if let Some(h) = history {
            let _ = editor.load_history(h);
        }
        println!(
            "qldb-local shell: ledger {} (type 'help' for help, 'quit' to leave)",
            self.ledger
        );
        let mut lines = Lines::default();
        'read: loop {
            let prompt = if lines.pending() {
                "     -> "
            } else {
                self.prompt()
            };
            match editor.readline(prompt) {
                Ok(line) => {
                    let (inputs, entry) = lines.push(&line);
                    if let Some(entry) = entry {
                        let _ = editor.add_history_entry(entry);
                    }
                    for input in inputs {
                        match self.handle(input) {
                            Flow::Done => {}
                            // The rest of the line is not run: the user decides after an
                            // error (`begin; bad; good; commit;` must not commit half).
                            Flow::Failed => break,
                            Flow::Quit => break 'read,
                        }
                    }
                }
                // Ctrl-C drops the statement being typed, as shells do.
                Err(rustyline::error::ReadlineError::Interrupted) => lines = Lines::default(),
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => {
                    eprintln!("qldb-local shell: cannot read the terminal: {e}");
                    break;
                }
            }
        }
        if let Some(h) = history {
            if let Some(dir) = h.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = editor.save_history(h);
        }
        self.leave_transaction();
        true
    }

    /// Runs a script: every statement in order; stops at the first error (false).
    fn script(&mut self, input: impl BufRead) -> bool {
        let mut lines = Lines::default();
        let run = |shell: &mut Self, inputs: Vec<Input>| -> Option<bool> {
            for input in inputs {
                match shell.handle(input) {
                    Flow::Done => {}
                    Flow::Failed => return Some(false),
                    Flow::Quit => return Some(true),
                }
            }
            None
        };
        let mut ended = None;
        for line in input.lines() {
            match line {
                Ok(l) => {
                    let (inputs, _) = lines.push(&l);
                    if let Some(ok) = run(self, inputs) {
                        ended = Some(ok);
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("qldb-local shell: cannot read the input: {e}");
                    ended = Some(false);
                    break;
                }
            }
        }
        let ok = match ended {
            Some(ok) => ok,
            None => run(self, lines.finish().into_iter().collect()).unwrap_or(true),
        };
        if !ok {
            self.leave_transaction();
            return false;
        }
        if self.tx.is_some() {
            eprintln!("Error: the input ended inside a transaction; it was aborted, not committed");
            self.leave_transaction();
            return false;
        }
        true
    }

    /// Handles one input; an error is printed.
    fn handle(&mut self, input: Input) -> Flow {
        let result = match input {
            Input::Quit => return Flow::Quit,
            Input::Help => {
                println!("{HELP}");
                Ok(())
            }
            Input::ShowTables => self.show_tables(),
            Input::Format(f) => {
                self.format = f;
                println!("results are printed as {}", format_name(f));
                Ok(())
            }
            Input::Begin => self.begin(),
            Input::Commit => self.commit_open(),
            Input::Abort => self.abort_open(),
            Input::Statement(s) => self.statement(&s),
        };
        match result {
            Ok(()) => Flow::Done,
            Err(f) => {
                eprintln!("Error: {}", f.message);
                let _ = std::io::stderr().flush();
                Flow::Failed
            }
        }
    }

    fn session(&mut self) -> Result<String, Failure> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let r = self
            .rt
            .block_on(
                self.client
                    .send_command()
                    .start_session(
                        StartSessionRequest::builder()
                            .ledger_name(&self.ledger)
                            .build()
                            .map_err(|e| Failure::new(e.to_string()))?,
                    )
                    .send(),
            )
            .map_err(|e| Failure::new(describe(&e)))?;
        let token = r
            .start_session()
            .and_then(|s| s.session_token())
            .ok_or_else(|| Failure::new("StartSession returned no session token"))?
            .to_string();
        self.token = Some(token.clone());
        Ok(token)
    }

    /// Sends one command on the session `token`.
    fn send(
        &self,
        token: &str,
        command: impl FnOnce(SendCommandFluentBuilder) -> SendCommandFluentBuilder,
    ) -> Result<SendCommandOutput, SendError> {
        self.rt
            .block_on(command(self.client.send_command().session_token(token)).send())
            .map_err(Box::new)
    }

    /// A failed command as one message; a session the server no longer knows is forgotten
    /// here too.
    fn failure(&mut self, e: &SendError) -> Failure {
        if session_gone(&**e) {
            self.lost_session(describe(&**e))
        } else {
            Failure::new(describe(&**e))
        }
    }

    /// Forgets a session the server no longer knows, and any transaction in it.
    fn lost_session(&mut self, what: String) -> Failure {
        self.token = None;
        let lost = if self.tx.take().is_some() || self.tx_running {
            "; the open transaction is gone (nothing of it was committed)"
        } else {
            ""
        };
        Failure::new(format!(
            "{what}{lost}; the next statement starts a new session"
        ))
    }

    fn start_transaction(&mut self) -> Result<Tx, Failure> {
        let token = self.session()?;
        let r = self
            .send(&token, |c| {
                c.start_transaction(StartTransactionRequest::builder().build())
            })
            .map_err(|e| self.failure(&e))?;
        let id = r
            .start_transaction()
            .and_then(|t| t.transaction_id())
            .ok_or_else(|| Failure::new("StartTransaction returned no transaction id"))?
            .to_string();
        Ok(Tx {
            digest: CommitDigest::new(&id),
            id,
        })
    }

    fn begin(&mut self) -> Result<(), Failure> {
        if self.tx.is_some() {
            return Err(Failure::new(
                "a transaction is already open: commit or abort it first",
            ));
        }
        self.tx = Some(self.start_transaction()?);
        println!("transaction started");
        Ok(())
    }

    fn commit_open(&mut self) -> Result<(), Failure> {
        let tx = self.tx.take().ok_or_else(|| {
            Failure::new("no transaction is open (start one with 'start transaction')")
        })?;
        self.commit(&tx)?;
        println!("transaction committed");
        Ok(())
    }

    fn abort_open(&mut self) -> Result<(), Failure> {
        let tx = self
            .tx
            .take()
            .ok_or_else(|| Failure::new("no transaction is open"))?;
        drop(tx);
        self.abort()?;
        println!("transaction aborted");
        Ok(())
    }

    /// Aborts the open transaction, if any, as the shell leaves.
    fn leave_transaction(&mut self) {
        if self.tx.take().is_some() {
            match self.abort() {
                Ok(()) => eprintln!("the open transaction was aborted"),
                Err(f) => eprintln!("Error: aborting the open transaction: {}", f.message),
            }
        }
    }

    fn end_session(&mut self) {
        if let Some(token) = self.token.take() {
            let _ = self.send(&token, |c| {
                c.end_session(EndSessionRequest::builder().build())
            });
        }
    }

    fn abort(&mut self) -> Result<(), Failure> {
        let Some(token) = self.token.clone() else {
            return Ok(());
        };
        self.send(&token, |c| {
            c.abort_transaction(AbortTransactionRequest::builder().build())
        })
        .map(|_| ())
        .map_err(|e| self.failure(&e))
    }

    fn commit(&mut self, tx: &Tx) -> Result<(), Failure> {
        let token = self.session()?;
        let request = CommitTransactionRequest::builder()
            .transaction_id(&tx.id)
            .commit_digest(aws_smithy_types::Blob::new(tx.digest.bytes().to_vec()))
            .build()
            .map_err(|e| Failure::new(e.to_string()))?;
        match self.send(&token, |c| c.commit_transaction(request)) {
            Ok(_) => Ok(()),
            Err(e) if session_gone(&*e) => Err(self.failure(&e)),
            Err(e) => {
                // Whatever the server kept of the transaction goes, so the next one starts
                // clean.
                let answered = matches!(*e, SdkError::ServiceError(_));
                let _ = self.abort();
                Err(Failure::new(if answered {
                    format!("{} (the transaction was not committed)", describe(&*e))
                } else {
                    format!(
                        "{} (the commit got no answer: whether the transaction was committed \
                         is unknown; look before running it again)",
                        describe(&*e)
                    )
                }))
            }
        }
    }

    /// `\show tables`: the active tables, one `- Name` line each (in the open transaction,
    /// if there is one).
    fn show_tables(&mut self) -> Result<(), Failure> {
        const QUERY: &str =
            "SELECT VALUE name FROM information_schema.user_tables WHERE status = 'ACTIVE'";
        let outcome = self.run(QUERY)?;
        let mut names: Vec<String> = outcome
            .values
            .iter()
            .map(|v| match &v.data {
                Data::String(s) => s.clone(),
                _ => text::to_text_one(v),
            })
            .collect();
        names.sort();
        for n in names {
            println!("- {n}");
        }
        Ok(())
    }

    /// Runs one statement: in the open transaction, or in one of its own that is committed
    /// when the statement succeeds.
    fn statement(&mut self, statement: &str) -> Result<(), Failure> {
        let started = Instant::now();
        let outcome = self.run(statement)?;
        self.print(&outcome, started.elapsed().as_millis());
        Ok(())
    }

    /// [`Self::statement`] without the printing.
    fn run(&mut self, statement: &str) -> Result<Outcome, Failure> {
        let outcome = if let Some(mut tx) = self.tx.take() {
            self.tx_running = true;
            let r = self.execute(&mut tx, statement);
            self.tx_running = false;
            // A failed statement leaves the transaction open, as QLDB does; the session
            // being gone ends it (lost_session already said so).
            if self.token.is_some() {
                self.tx = Some(tx);
            }
            r?
        } else {
            let had_session = self.token.is_some();
            let mut tx = match self.start_transaction() {
                Ok(tx) => tx,
                // An expired session (the server forgot it while the user was away) costs
                // nothing here: no statement ran, so a new session takes over, as drivers do.
                Err(_) if had_session && self.token.is_none() => self.start_transaction()?,
                Err(f) => return Err(f),
            };
            let r = self.execute(&mut tx, statement);
            match r {
                Ok(outcome) => {
                    self.commit(&tx)?;
                    outcome
                }
                Err(f) => {
                    if self.token.is_some() {
                        let _ = self.abort();
                    }
                    return Err(f);
                }
            }
        };
        Ok(outcome)
    }

    fn execute(&mut self, tx: &mut Tx, statement: &str) -> Result<Outcome, Failure> {
        let token = self.session()?;
        // The server folds a statement into its digest when it takes the request, even one
        // that then fails (a syntax error); a request refused before that (too large) or
        // lost on the way must leave the digest as it was, or the commit could never match.
        let chars = statement.chars().count();
        if chars > MAX_STATEMENT_CHARS {
            // Refused before the server folds it: not sent, so the transaction stays whole.
            return Err(Failure::new(format!(
                "the statement has {chars} characters; QLDB allows at most {MAX_STATEMENT_CHARS}"
            )));
        }
        let before = tx.digest.clone();
        tx.digest.add_statement(statement, &[]);
        let request = ExecuteStatementRequest::builder()
            .transaction_id(&tx.id)
            .statement(statement)
            .build()
            .map_err(|e| Failure::new(e.to_string()))?;
        let r = match self.send(&token, |c| c.execute_statement(request)) {
            Ok(r) => r,
            Err(e) if session_gone(&*e) => return Err(self.failure(&e)),
            Err(e) => {
                let taken = matches!(&*e, SdkError::ServiceError(s)
                    if s.err().code() != Some("RequestEntityTooLargeException"));
                if !taken {
                    tx.digest = before;
                }
                return Err(Failure::new(describe(&*e)));
            }
        };
        let result = r
            .execute_statement()
            .ok_or_else(|| Failure::new("ExecuteStatement returned no result"))?;
        let mut outcome = Outcome {
            values: Vec::new(),
            read_ios: result.consumed_ios().map_or(0, |c| c.read_ios()),
            server_ms: result
                .timing_information()
                .map_or(0, |t| t.processing_time_milliseconds()),
        };
        let mut next = take_page(result.first_page(), &mut outcome.values)?;
        while let Some(page_token) = next {
            let request = FetchPageRequest::builder()
                .transaction_id(&tx.id)
                .next_page_token(page_token)
                .build()
                .map_err(|e| Failure::new(e.to_string()))?;
            let r = self
                .send(&token, |c| c.fetch_page(request))
                .map_err(|e| self.failure(&e))?;
            let page = r
                .fetch_page()
                .ok_or_else(|| Failure::new("FetchPage returned no result"))?;
            outcome.read_ios += page.consumed_ios().map_or(0, |c| c.read_ios());
            outcome.server_ms += page
                .timing_information()
                .map_or(0, |t| t.processing_time_milliseconds());
            next = take_page(page.page(), &mut outcome.values)?;
        }
        Ok(outcome)
    }

    fn print(&self, outcome: &Outcome, total_ms: u128) {
        let mut out = std::io::stdout().lock();
        match self.format {
            Format::Ion => {
                for v in &outcome.values {
                    let _ = writeln!(out, "{}", pretty(v));
                }
            }
            Format::Table => {
                if !outcome.values.is_empty() {
                    let _ = write!(out, "{}", table(&outcome.values));
                }
            }
        }
        let n = outcome.values.len();
        let _ = writeln!(
            out,
            // The QLDB shell's own statistics line, word for word.
            "{n} document{} in bag (read-ios: {}, server-time: {}ms, total-time: {}ms)",
            if n == 1 { "" } else { "s" },
            outcome.read_ios,
            outcome.server_ms,
            total_ms
        );
        let _ = out.flush();
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Ion => "Ion text",
        Format::Table => "a table",
    }
}

/// Decodes a page's values into `into`; returns its next-page token.
fn take_page(page: Option<&Page>, into: &mut Vec<Value>) -> Result<Option<String>, Failure> {
    let Some(page) = page else {
        return Ok(None);
    };
    for holder in page.values() {
        into.push(decode(holder)?);
    }
    Ok(page.next_page_token().map(str::to_string))
}

fn decode(holder: &ValueHolder) -> Result<Value, Failure> {
    if let Some(b) = holder.ion_binary() {
        let mut values = binary::decode(b.as_ref())
            .map_err(|e| Failure::new(format!("the server sent a value that is not Ion: {e}")))?;
        if values.len() == 1 {
            return Ok(values.remove(0));
        }
        return Err(Failure::new(
            "the server sent a value holder without one Ion value",
        ));
    }
    if let Some(t) = holder.ion_text() {
        return text::from_text_one(t)
            .map_err(|e| Failure::new(format!("the server sent a value that is not Ion: {e}")));
    }
    Err(Failure::new("the server sent an empty value holder"))
}

/// A value as Ion text; a struct or list with containers inside is spread over lines.
pub fn pretty(v: &Value) -> String {
    let mut out = String::new();
    write_pretty(&mut out, v, 0);
    out
}

fn write_pretty(out: &mut String, v: &Value, depth: usize) {
    fn nested<'a>(mut items: impl Iterator<Item = &'a Value>) -> bool {
        items.any(|x| matches!(x.data, Data::Struct(_) | Data::List(_) | Data::SExp(_)))
    }
    let indent = |out: &mut String, d: usize| {
        for _ in 0..d {
            out.push_str("  ");
        }
    };
    match &v.data {
        Data::Struct(fields)
            if !fields.is_empty() && (depth == 0 || nested(fields.iter().map(|f| &f.1))) =>
        {
            for a in &v.annotations {
                text::write_symbol(out, a.as_deref());
                out.push_str("::");
            }
            out.push_str("{\n");
            for (i, (name, value)) in fields.iter().enumerate() {
                indent(out, depth + 1);
                text::write_symbol(out, name.as_deref());
                out.push_str(": ");
                write_pretty(out, value, depth + 1);
                if i + 1 < fields.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, depth);
            out.push('}');
        }
        Data::List(items) if nested(items.iter()) && v.annotations.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(out, depth + 1);
                write_pretty(out, item, depth + 1);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, depth);
            out.push(']');
        }
        _ => out.push_str(&text::to_text_one(v)),
    }
}

/// Values as a text table: a column per top-level field name (in first-seen order), a
/// cell per field as Ion text; a value that is not a struct fills one `value` column.
pub fn table(values: &[Value]) -> String {
    let mut columns: Vec<String> = Vec::new();
    let mut others = false;
    for v in values {
        match &v.data {
            Data::Struct(fields) if v.annotations.is_empty() => {
                for (name, _) in fields {
                    let name = name.clone().unwrap_or_else(|| "$0".into());
                    if !columns.contains(&name) {
                        columns.push(name);
                    }
                }
            }
            _ => others = true,
        }
    }
    if others {
        columns.push("value".into());
    }
    let rows: Vec<Vec<String>> = values
        .iter()
        .map(|v| {
            columns
                .iter()
                .map(|c| match &v.data {
                    Data::Struct(fields) if v.annotations.is_empty() => fields
                        .iter()
                        .find(|(n, _)| n.as_deref().unwrap_or("$0") == c)
                        .map(|(_, x)| text::to_text_one(x))
                        .unwrap_or_default(),
                    _ if c == "value" && others => text::to_text_one(v),
                    _ => String::new(),
                })
                .collect()
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain(std::iter::once(columns[i].chars().count()))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..columns.len()).map(width).collect();
    let rule: String = widths
        .iter()
        .map(|w| "-".repeat(w + 2))
        .collect::<Vec<_>>()
        .join("+");
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c}{} ", " ".repeat(w - c.chars().count())))
            .collect::<Vec<_>>()
            .join("|")
    };
    let mut out = String::new();
    out.push_str(&line(&columns));
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// Input lines gathered into what the user asked for: a shell command is a line of its own
/// (its `;` optional) when no statement is pending; statements end with `;`.
#[derive(Default)]
struct Lines {
    pending: String,
}

impl Lines {
    /// Whether a statement has begun and awaits its `;`.
    fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes one line; returns the inputs it completed and, when it completed any, the text
    /// of them for the history.
    fn push(&mut self, line: &str) -> (Vec<Input>, Option<String>) {
        if self.pending.is_empty() {
            let command = classify(line.trim().trim_end_matches(';'));
            if !matches!(command, Input::Statement(_)) {
                return (vec![command], Some(line.trim().to_string()));
            }
            if blank(line) {
                return (Vec::new(), None);
            }
        }
        self.pending.push_str(line);
        self.pending.push('\n');
        let (statements, rest) = split_statements(&self.pending);
        if statements.is_empty() {
            return (Vec::new(), None);
        }
        let entry = self.pending[..self.pending.len() - rest.len()]
            .trim()
            .to_string();
        self.pending = if blank(&rest) { String::new() } else { rest };
        (
            statements.iter().map(|s| classify(s)).collect(),
            Some(entry),
        )
    }

    /// The input's end: a last statement may omit its `;`.
    fn finish(self) -> Option<Input> {
        let rest = self.pending.trim();
        (!blank(rest)).then(|| classify(rest))
    }
}

/// What a pass over statement text finds, outside strings, quoted names and Ion literals.
struct Scan {
    /// Byte offsets of the `;` that end statements.
    semicolons: Vec<usize>,
    /// The text without its `--` and `/* */` comments.
    code: String,
    /// The text ends inside a quote or a `/* */` comment.
    open: bool,
}

/// One pass over statement text: quotes (`'…'`, `"…"`, with doubled quotes inside, and
/// backtick Ion literals), comments and the `;` between them.
fn scan(s: &str) -> Scan {
    let b = s.as_bytes();
    let mut out = Scan {
        semicolons: Vec::new(),
        code: String::new(),
        open: false,
    };
    let (mut i, mut from) = (0, 0);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                loop {
                    if i >= b.len() {
                        out.open = true;
                        break;
                    }
                    if b[i] == q {
                        // '' and "" inside a string or name are an escaped quote.
                        if q != b'`' && b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                out.code.push_str(&s[from..i]);
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                from = i;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                out.code.push_str(&s[from..i]);
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                if i >= b.len() {
                    out.open = true;
                }
                i = (i + 2).min(b.len());
                from = i;
                continue;
            }
            b';' => out.semicolons.push(i),
            _ => {}
        }
        i += 1;
    }
    out.code.push_str(s.get(from..).unwrap_or(""));
    out
}

/// Splits text into the statements that a `;` ends (outside strings, quoted names, Ion
/// literals and comments); returns them trimmed, and the text after the last `;`.
pub fn split_statements(input: &str) -> (Vec<String>, String) {
    let mut statements = Vec::new();
    let mut start = 0;
    for end in scan(input).semicolons {
        let s = input[start..end].trim();
        if !blank(s) {
            statements.push(s.to_string());
        }
        start = end + 1;
    }
    (statements, input[start..].to_string())
}

/// Whether text holds nothing but whitespace and finished comments (an open `/*` or quote
/// is the start of something that continues on the next line).
fn blank(s: &str) -> bool {
    let scan = scan(s);
    scan.code.trim().is_empty() && !scan.open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_end_at_semicolons_outside_quotes_and_comments() {
        let (s, rest) = split_statements(
            "SELECT * FROM t WHERE a = 'x;y'; -- a; comment\nINSERT INTO t `{a:\"q;\"}`;\n/* ; */ SELECT 1",
        );
        assert_eq!(
            s,
            vec![
                "SELECT * FROM t WHERE a = 'x;y'".to_string(),
                "-- a; comment\nINSERT INTO t `{a:\"q;\"}`".to_string()
            ]
        );
        assert_eq!(rest, "\n/* ; */ SELECT 1");
        let (s, rest) = split_statements("SELECT 'it''s;' FROM t;;");
        assert_eq!(s, vec!["SELECT 'it''s;' FROM t".to_string()]);
        assert_eq!(rest, "");
        let (s, _) = split_statements("-- only a comment;\n;");
        assert!(s.is_empty(), "{s:?}");
    }

    #[test]
    fn commands_are_whole_lines_and_statements_end_with_semicolons() {
        let mut l = Lines::default();
        assert_eq!(l.push("begin").0, vec![Input::Begin]);
        assert_eq!(l.push("-- a comment").0, vec![]);
        assert!(!l.pending());
        assert_eq!(l.push("SELECT *").0, vec![]);
        assert!(l.pending());
        // Inside a statement, a line that reads like a command is part of it.
        assert_eq!(l.push("commit").0, vec![]);
        let (inputs, entry) = l.push("WHERE x = 1; SELECT 2;");
        assert_eq!(
            inputs,
            vec![
                Input::Statement("SELECT *\ncommit\nWHERE x = 1".into()),
                Input::Statement("SELECT 2".into())
            ]
        );
        assert_eq!(
            entry.as_deref(),
            Some("SELECT *\ncommit\nWHERE x = 1; SELECT 2;")
        );
        assert!(!l.pending());
        assert_eq!(l.push("commit;").0, vec![Input::Commit]);
        assert_eq!(l.push("SELECT 3").0, vec![]);
        assert_eq!(l.finish(), Some(Input::Statement("SELECT 3".into())));
        // A block comment over lines, with a ';' inside, is not a statement.
        let mut l = Lines::default();
        assert_eq!(l.push("/*").0, vec![]);
        assert!(l.pending());
        assert_eq!(l.push(" * setup; run once").0, vec![]);
        assert_eq!(l.push(" */").0, vec![]);
        assert_eq!(
            l.push("SELECT 1;").0,
            vec![Input::Statement(
                "/*\n * setup; run once\n */\nSELECT 1".into()
            )]
        );
        assert!(!l.pending());
    }

    #[test]
    fn shell_commands_are_words_in_any_case() {
        assert_eq!(classify("START   Transaction"), Input::Begin);
        assert_eq!(classify("begin"), Input::Begin);
        assert_eq!(classify("COMMIT"), Input::Commit);
        assert_eq!(classify("abort"), Input::Abort);
        assert_eq!(classify("\\format table"), Input::Format(Format::Table));
        assert_eq!(
            classify("SELECT * FROM commit"),
            Input::Statement("SELECT * FROM commit".into())
        );
    }

    #[test]
    fn tables_have_a_column_per_field() {
        let values = text::from_text("{a:1,b:\"x\"} {b:\"long text\",c:[1,2]} 5").unwrap();
        assert_eq!(
            table(&values),
            " a | b           | c     | value \n---+-------------+-------+-------\n 1 | \"x\"         |       |       \n   | \"long text\" | [1,2] |       \n   |             |       | 5     \n"
        );
    }

    #[test]
    fn pretty_spreads_top_level_structs() {
        let v = text::from_text_one("{a:1,'b c':{d:[{e:2}]},f:ann::\"s\"}").unwrap();
        assert_eq!(
            pretty(&v),
            "{\n  a: 1,\n  'b c': {\n    d: [\n      {e:2}\n    ]\n  },\n  f: ann::\"s\"\n}"
        );
        assert_eq!(pretty(&text::from_text_one("[1,2]").unwrap()), "[1,2]");
    }
}
