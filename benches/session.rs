//! Session-API throughput and latency over the real HTTP API, against raw SQLite.
//!
//!     cargo bench --bench session -- [--clients 8] [--seconds 10] [--durability full|relaxed]
//!
//! Starts the release qldb-local, then for `--seconds` each phase runs `--clients`
//! concurrent Rust-SDK clients (one session each):
//!   1. single-document INSERT transactions (StartTransaction, ExecuteStatement, Commit);
//!   2. indexed point SELECT transactions on the inserted keys;
//!   3. mixed: half the clients insert while the other half run the point SELECTs.
//!
//! In the same run it times raw rusqlite single-row transactions (one connection per thread,
//! WAL, the same synchronous setting). Prints transactions/s, p50/p99 latency and the
//! ratio to raw SQLite, and the server process's own CPU time per transaction of each phase
//! (from /proc). Figures go to docs/performance.md.
//!
//! Last, the same INSERT transactions run against the HTTP floor: this bench binary started
//! again as `--serve-floor`, an axum server on the same stack as qldb-local (axum, hyper,
//! a multi-threaded tokio runtime, mimalloc) that parses each SendCommand body and answers
//! it with a fixed reply of the right shape, with no SigV4, session or storage work. Its CPU
//! per transaction is what the HTTP stack alone costs for three requests, the part of the
//! server's figure no engine work can remove.
//!
//! With `--postgres URL` (a database the bench may fill; its user needs CREATE), the INSERT
//! and SELECT phases run again with the ledger in PostgreSQL (`serve --storage URL`): once
//! on one qldb-local process, once on two processes sharing the database (each client's
//! session on one of them, alternately). Server CPU per transaction sums both processes.
//! `--only-postgres` runs those phases alone.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_qldbsession::Client;
use support::*;

/// The allocator qldb-local uses, so the floor server below runs on the same stack.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    clients: usize,
    seconds: u64,
    relaxed: bool,
    postgres: Option<String>,
    /// `--only-postgres`: the PostgreSQL phases alone (an A/B of two server binaries).
    only_postgres: bool,
}

fn args() -> Args {
    let mut a = Args {
        clients: 8,
        seconds: 10,
        relaxed: false,
        postgres: None,
        only_postgres: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--clients" => a.clients = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.clients),
            "--seconds" => a.seconds = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.seconds),
            "--durability" => a.relaxed = it.next().as_deref() == Some("relaxed"),
            "--postgres" => a.postgres = it.next(),
            "--only-postgres" => a.only_postgres = true,
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

struct Stats {
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Stats {
    fn report(&mut self, name: &str) -> f64 {
        self.latencies_us.sort_unstable();
        let n = self.latencies_us.len();
        let pct = |p: f64| {
            self.latencies_us
                .get(((n as f64 * p) as usize).min(n.saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let tps = n as f64 / self.elapsed.as_secs_f64();
        println!(
            "{name:<44} {tps:>9.0} tx/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({n} tx)",
            pct(0.50) as f64 / 1000.0,
            pct(0.99) as f64 / 1000.0
        );
        tps
    }
}

async fn run_clients<F, Fut>(clients: usize, seconds: u64, f: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for c in 0..clients {
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                f(c, i).await;
                lat.push(t.elapsed().as_micros() as u64);
                i += 1;
            }
            lat
        }));
    }
    let mut latencies_us = Vec::new();
    for h in handles {
        latencies_us.extend(h.await.unwrap());
    }
    Stats {
        latencies_us,
        elapsed: started.elapsed(),
    }
}

fn raw_sqlite(clients: usize, seconds: u64, relaxed: bool) -> (Stats, Stats) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.sqlite");
    let open = || {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", if relaxed { "NORMAL" } else { "FULL" })
            .unwrap();
        c.busy_timeout(Duration::from_secs(30)).unwrap();
        c
    };
    open()
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v BLOB); CREATE INDEX t_k ON t (k);")
        .unwrap();
    let phase = |select: bool| {
        let inserted = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(seconds);
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let conn = open();
                let inserted = inserted.clone();
                std::thread::spawn(move || {
                    let mut lat = Vec::new();
                    let mut i = 0u64;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        if select {
                            let k = format!("k-{c}-{}", i % 100);
                            let _: Option<Vec<u8>> = conn
                                .query_row("SELECT v FROM t WHERE k = ?1", [&k], |r| r.get(0))
                                .ok();
                        } else {
                            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                            conn.execute(
                                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                                rusqlite::params![format!("k-{c}-{i}"), vec![7u8; 64]],
                            )
                            .unwrap();
                            conn.execute_batch("COMMIT").unwrap();
                            inserted.fetch_add(1, Ordering::Relaxed);
                        }
                        lat.push(t.elapsed().as_micros() as u64);
                        i += 1;
                    }
                    lat
                })
            })
            .collect();
        let mut latencies_us = Vec::new();
        for h in handles {
            latencies_us.extend(h.join().unwrap());
        }
        Stats {
            latencies_us,
            elapsed: started.elapsed(),
        }
    };
    (phase(false), phase(true))
}

/// One single-document INSERT transaction of key `key` on the session `token`.
async fn insert_tx(c: &Client, token: &str, key: String, i: u64) {
    let s = Session {
        c,
        token: token.to_string(),
    };
    let (tx, mut d) = s.start_tx().await;
    let doc = format!("{{k:\"{key}\",v:{i},pad:\"{}\"}}", "x".repeat(48));
    s.exec(&tx, &mut d, "INSERT INTO Bench ?", &[&doc])
        .await
        .unwrap();
    s.commit(&tx, d.bytes()).await.unwrap();
}

/// One indexed point SELECT transaction of key `key` on the session `token`.
async fn select_tx(c: &Client, token: &str, key: String) {
    let s = Session {
        c,
        token: token.to_string(),
    };
    let (tx, mut d) = s.start_tx().await;
    let key = format!("\"{key}\"");
    s.exec(
        &tx,
        &mut d,
        "SELECT * FROM Bench AS b WHERE b.k = ?",
        &[&key],
    )
    .await
    .unwrap();
    s.commit(&tx, d.bytes()).await.unwrap();
}

/// The floor server's one handler: decodes the SendCommand body and gives the fixed reply
/// each command needs for the SDK to go on (the commit echoes the client's digest, as a
/// real commit returns the same value).
async fn floor_reply(body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let req: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return (axum::http::StatusCode::BAD_REQUEST, "not JSON").into_response(),
    };
    let reply = if req.get("StartSession").is_some() {
        serde_json::json!({"StartSession": {"SessionToken": "floor-session-token"}})
    } else if req.get("StartTransaction").is_some() {
        serde_json::json!({"StartTransaction": {"TransactionId": "FloorTransactionId0001"}})
    } else if req.get("ExecuteStatement").is_some() {
        serde_json::json!({"ExecuteStatement": {"FirstPage": {"Values": []},
            "ConsumedIOs": {"ReadIOs": 0, "WriteIOs": 1}, "TimingInformation": {"ProcessingTimeMilliseconds": 0}}})
    } else if let Some(c) = req.get("CommitTransaction") {
        serde_json::json!({"CommitTransaction": {"TransactionId": c["TransactionId"],
            "CommitDigest": c["CommitDigest"]}})
    } else {
        serde_json::json!({"EndSession": {}})
    };
    (
        [("content-type", "application/x-amz-json-1.0")],
        serde_json::to_vec(&reply).unwrap_or_default(),
    )
        .into_response()
}

/// `--serve-floor`: serves [`floor_reply`] on a loopback port, printed as the first line.
fn serve_floor() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        let app = axum::Router::new().route("/", axum::routing::post(floor_reply));
        axum::serve(listener, app).await.unwrap();
    });
}

/// A child process killed when this goes out of scope (a panic included).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this binary again as the floor server; returns the child and its endpoint.
fn start_floor() -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--serve-floor")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, format!("http://127.0.0.1:{}", line.trim()))
}

fn main() {
    if std::env::args().any(|a| a == "--serve-floor") {
        return serve_floor();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

async fn bench() {
    let a = args();
    let durability = if a.relaxed { "relaxed" } else { "full" };
    if let (true, Some(url)) = (a.only_postgres, &a.postgres) {
        for processes in [1, 2] {
            postgres_phases(url, processes, &a, durability).await;
        }
        return;
    }
    let srv = start(&[
        "--durability",
        durability,
        "--max-sessions-per-ledger",
        "10000",
    ]);
    create_ledger(&srv.endpoint, "bench");
    let client = Arc::new(client(&srv.endpoint));
    {
        let s = session(&client, "bench").await;
        let (tx, mut d) = s.start_tx().await;
        s.exec(&tx, &mut d, "CREATE TABLE Bench", &[])
            .await
            .unwrap();
        s.exec(&tx, &mut d, "CREATE INDEX ON Bench (k)", &[])
            .await
            .unwrap();
        s.commit(&tx, d.bytes()).await.unwrap();
    }
    let mut tokens = Vec::new();
    for _ in 0..a.clients {
        tokens.push(session(&client, "bench").await.token);
    }
    let tokens = Arc::new(tokens);
    println!(
        "qldb-local session benchmark: {} clients, {} s per phase, durability {durability}, {} cores",
        a.clients,
        a.seconds,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    let me = std::process::id();
    let cpu_before = srv.cpu_time();
    let clients_before = process_cpu_time(me);
    let (c, t) = (client.clone(), tokens.clone());
    let mut ins = run_clients(a.clients, a.seconds, move |ci, i| {
        let (c, t) = (c.clone(), t.clone());
        async move { insert_tx(&c, &t[ci], format!("k-{ci}-{i}"), i).await }
    })
    .await;
    let cpu_ins = srv.cpu_time() - cpu_before;
    let clients_ins = process_cpu_time(me) - clients_before;
    let cpu_before = srv.cpu_time();
    let clients_before = process_cpu_time(me);
    let (c, t) = (client.clone(), tokens.clone());
    let mut sel = run_clients(a.clients, a.seconds, move |ci, i| {
        let (c, t) = (c.clone(), t.clone());
        async move { select_tx(&c, &t[ci], format!("k-{ci}-{}", i % 100)).await }
    })
    .await;
    let cpu_sel = srv.cpu_time() - cpu_before;
    let clients_sel = process_cpu_time(me) - clients_before;

    // Mixed: half the clients insert while the other half read, at the same time. What the
    // read connections are for: a read should not wait behind a commit's fsync.
    let half = (a.clients / 2).max(1);
    let (c, t) = (client.clone(), tokens.clone());
    let writers = run_clients(half, a.seconds, move |ci, i| {
        let (c, t) = (c.clone(), t.clone());
        async move { insert_tx(&c, &t[ci], format!("m-{ci}-{i}"), i).await }
    });
    let (c, t) = (client.clone(), tokens.clone());
    let readers = run_clients(half, a.seconds, move |ci, i| {
        let (c, t) = (c.clone(), t.clone());
        async move { select_tx(&c, &t[(half + ci) % t.len()], format!("k-{ci}-{}", i % 100)).await }
    });
    let (mut mixed_ins, mut mixed_sel) = tokio::join!(writers, readers);
    let (mut raw_ins, mut raw_sel) =
        tokio::task::spawn_blocking(move || raw_sqlite(a.clients, a.seconds, a.relaxed))
            .await
            .unwrap();

    // The HTTP floor: the same INSERT transactions against canned answers.
    let (floor, floor_endpoint) = start_floor();
    let floor = KillOnDrop(floor);
    let floor_client = Arc::new(support::client(&floor_endpoint));
    let floor_token = Arc::new(session(&floor_client, "bench").await.token);
    let cpu_before = process_cpu_time(floor.0.id());
    let (c, t) = (floor_client.clone(), floor_token.clone());
    let mut floor_ins = run_clients(a.clients, a.seconds, move |ci, i| {
        let (c, t) = (c.clone(), t.clone());
        async move { insert_tx(&c, &t, format!("f-{ci}-{i}"), i).await }
    })
    .await;
    let cpu_floor = process_cpu_time(floor.0.id()) - cpu_before;
    drop(floor);

    let qi = ins.report("qldb-local INSERT transaction (HTTP, SDK)");
    let qs = sel.report("qldb-local indexed point SELECT transaction");
    mixed_ins.report(&format!("mixed: {half} clients INSERT"));
    mixed_sel.report(&format!("mixed: {half} clients SELECT at the same time"));
    floor_ins.report("HTTP floor: INSERT-shaped, canned answers");
    let ri = raw_ins.report("raw rusqlite single-row INSERT transaction");
    let rs = raw_sel.report("raw rusqlite indexed point SELECT");
    let per_tx = |cpu: Duration, stats: &Stats| {
        cpu.as_secs_f64() * 1e6 / stats.latencies_us.len().max(1) as f64
    };
    println!(
        "server CPU per INSERT transaction: {:.0} µs ({:.2} s of CPU in the phase)",
        per_tx(cpu_ins, &ins),
        cpu_ins.as_secs_f64()
    );
    println!(
        "server CPU per SELECT transaction: {:.0} µs ({:.2} s of CPU in the phase)",
        per_tx(cpu_sel, &sel),
        cpu_sel.as_secs_f64()
    );
    println!(
        "HTTP floor's CPU per transaction (3 requests, no SigV4, no session or storage work): \
         {:.0} µs ({:.2} s of CPU in the phase)",
        per_tx(cpu_floor, &floor_ins),
        cpu_floor.as_secs_f64()
    );
    // The clients share the machine: their CPU per transaction plus the server's is what a
    // transaction costs the machine, so cores / (both) bounds the throughput.
    for (what, cpu, stats, server) in [
        ("INSERT", clients_ins, &ins, cpu_ins),
        ("SELECT", clients_sel, &sel, cpu_sel),
    ] {
        let (c, s) = (per_tx(cpu, stats), per_tx(server, stats));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        println!(
            "clients' (SDK) CPU per {what} transaction: {c:.0} µs; with the server's, the \
             cores allow at most {:.0} tx/s",
            cores * 1e6 / (c + s)
        );
    }
    println!("ratio INSERT qldb-local / raw SQLite: {:.3}", qi / ri);
    println!("ratio SELECT qldb-local / raw SQLite: {:.3}", qs / rs);

    if let Some(url) = &a.postgres {
        for processes in [1, 2] {
            postgres_phases(url, processes, &a, durability).await;
        }
    }
}

/// The INSERT and SELECT phases with the ledger in PostgreSQL, on `processes` qldb-local
/// processes sharing the database.
async fn postgres_phases(url: &str, processes: usize, a: &Args, durability: &str) {
    let servers: Vec<Server> = (0..processes)
        .map(|_| {
            start(&[
                "--storage",
                url,
                "--durability",
                durability,
                "--max-sessions-per-ledger",
                "10000",
                "--max-ledgers",
                "100",
            ])
        })
        .collect();
    let ledger = format!("pg{processes}-{}", std::process::id());
    create_ledger(&servers[0].endpoint, &ledger);
    let clients: Vec<Arc<Client>> = servers
        .iter()
        .map(|s| Arc::new(client(&s.endpoint)))
        .collect();
    {
        let s = session(&clients[0], &ledger).await;
        let (tx, mut d) = s.start_tx().await;
        s.exec(&tx, &mut d, "CREATE TABLE Bench", &[])
            .await
            .unwrap();
        s.exec(&tx, &mut d, "CREATE INDEX ON Bench (k)", &[])
            .await
            .unwrap();
        s.commit(&tx, d.bytes()).await.unwrap();
    }
    // Client i talks to process i % processes, in a session started there.
    let mut sessions = Vec::new();
    for i in 0..a.clients {
        let c = clients[i % processes].clone();
        let token = session(&c, &ledger).await.token;
        sessions.push((c, token));
    }
    let sessions = Arc::new(sessions);
    let cpu = |servers: &[Server]| servers.iter().map(|s| s.cpu_time()).sum::<Duration>();
    let before = cpu(&servers);
    let t = sessions.clone();
    let mut ins = run_clients(a.clients, a.seconds, move |ci, i| {
        let t = t.clone();
        async move {
            let (c, token) = &t[ci];
            insert_tx(c, token, format!("k-{ci}-{i}"), i).await
        }
    })
    .await;
    let cpu_ins = cpu(&servers) - before;
    let before = cpu(&servers);
    let t = sessions.clone();
    let mut sel = run_clients(a.clients, a.seconds, move |ci, i| {
        let t = t.clone();
        async move {
            let (c, token) = &t[ci];
            select_tx(c, token, format!("k-{ci}-{}", i % 100)).await
        }
    })
    .await;
    let cpu_sel = cpu(&servers) - before;
    let what = if processes == 1 {
        "1 process".to_string()
    } else {
        format!("{processes} processes")
    };
    ins.report(&format!("PostgreSQL, {what}: INSERT transaction"));
    sel.report(&format!("PostgreSQL, {what}: indexed point SELECT"));
    let per_tx = |cpu: Duration, stats: &Stats| {
        cpu.as_secs_f64() * 1e6 / stats.latencies_us.len().max(1) as f64
    };
    println!(
        "PostgreSQL, {what}: qldb-local CPU per INSERT / SELECT transaction: {:.0} / {:.0} µs",
        per_tx(cpu_ins, &ins),
        per_tx(cpu_sel, &sel)
    );
}
