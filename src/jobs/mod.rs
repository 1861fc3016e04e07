//! The background side of journal exports and streams: one tokio task per running job,
//! writing through the official Rust AWS SDK clients for S3 and Kinesis.
//!
//! A job's state lives in the catalog (see [`crate::storage::sqlite::jobs`]); a task reads its job,
//! does the I/O, and reports progress through the [`ControlPlane`] after every object or
//! batch S3 or Kinesis acknowledged. That is what lets [`Jobs::resume`] pick every running
//! job up again after a restart, from its last acknowledged block. Cancelling a stream is a
//! catalog update its task sees on its next turn.
//!
//! The SDK configuration is the standard one (credential chain, region, AWS_ENDPOINT_URL,
//! AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_KINESIS), loaded once on first use, with the
//! server's `--region` when the environment names no region; the `--s3-endpoint` and
//! `--kinesis-endpoint` flags override the endpoints.

mod export;
pub mod kpl;
mod stream;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use crate::control::{ControlPlane, JobLeased};

/// The settings the workers need.
#[derive(Clone, Debug)]
pub struct JobsConfig {
    pub s3_endpoint: Option<String>,
    pub kinesis_endpoint: Option<String>,
    pub s3_path_style: bool,
    pub blocks_per_object: usize,
    pub stream_poll: Duration,
    pub stream_retry: Duration,
    pub stream_fail_after: Duration,
    /// The server's `--region`: the SDK clients' region when the environment names none.
    pub region: String,
}

/// A running job's lease.
struct Lease(Arc<dyn crate::storage::JobLease>);

impl Lease {
    /// Whether it may have been lost (checked off the async threads).
    async fn lost(&self) -> bool {
        let lease = self.0.clone();
        tokio::task::spawn_blocking(move || lease.lost())
            .await
            .unwrap_or(true)
    }
}

/// What a job is.
#[derive(Clone, Copy)]
enum Kind {
    Export,
    Stream,
}

/// Runs exports and streams in the background.
pub struct Jobs {
    control: Arc<ControlPlane>,
    cfg: JobsConfig,
    sdk: OnceCell<SdkConfig>,
    s3: OnceCell<aws_sdk_s3::Client>,
    /// Jobs with a live task, so that no job ever runs twice.
    running: Mutex<HashSet<String>>,
}

impl Jobs {
    pub fn new(control: Arc<ControlPlane>, cfg: JobsConfig) -> Arc<Self> {
        Arc::new(Jobs {
            control,
            cfg,
            sdk: OnceCell::new(),
            s3: OnceCell::new(),
            running: Mutex::new(HashSet::new()),
        })
    }

    /// Starts a task for every export in progress and every running stream (at startup).
    pub async fn resume(self: &Arc<Self>) {
        self.start_running(true).await;
    }

    /// On storage several servers share: every `stream_retry`, takes over the running jobs
    /// that no live server holds (the lease of a server that stopped or died went with its
    /// connection), so a job continues on another server without waiting for a restart.
    pub fn adopt_left_jobs(self: &Arc<Self>) {
        if !self.control.storage_is_shared() {
            return;
        }
        let jobs = Arc::downgrade(self);
        let every = self.cfg.stream_retry;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match jobs.upgrade() {
                    Some(jobs) => jobs.start_running(false).await,
                    None => return,
                }
            }
        });
    }

    /// Starts the task of every running job that has none here; `announce`: log each.
    async fn start_running(self: &Arc<Self>, announce: bool) {
        let control = self.control.clone();
        let found = tokio::task::spawn_blocking(move || control.running_jobs()).await;
        let (exports, streams) = match found {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return tracing::error!(error = %e, "cannot read the running jobs"),
            Err(e) => return tracing::error!(error = %e, "cannot read the running jobs"),
        };
        for e in exports {
            if announce {
                tracing::info!(export_id = %e.export_id, ledger = %e.ledger_name, next_block = e.next_seq, "resuming journal export");
            }
            self.start(e.export_id, Kind::Export, announce);
        }
        for s in streams {
            if announce {
                tracing::info!(stream_id = %s.stream_id, ledger = %s.ledger_name, next_block = s.next_seq, "resuming journal stream");
            }
            self.start(s.stream_id, Kind::Stream, announce);
        }
    }

    /// Starts the task of an accepted export (no-op if it already runs).
    pub fn start_export(self: &Arc<Self>, export_id: String) {
        self.start(export_id, Kind::Export, true);
    }

    /// Starts the task of a new stream (no-op if it already runs).
    pub fn start_stream(self: &Arc<Self>, stream_id: String) {
        self.start(stream_id, Kind::Stream, true);
    }

    /// Starts job `id`'s task unless one runs here; it runs once it holds the job's lease.
    fn start(self: &Arc<Self>, id: String, kind: Kind, announce: bool) {
        if let Some(guard) = self.claim(&id) {
            let jobs = self.clone();
            tokio::spawn(async move {
                if let Some((lease, accepted)) = jobs.lease(&id, announce).await {
                    let lease = Lease(Arc::from(lease));
                    if !announce && !accepted {
                        tracing::info!(job = %id, "taking over a job no running server holds");
                    }
                    match kind {
                        Kind::Export => export::run(&jobs, &id, &lease).await,
                        Kind::Stream => stream::run(&jobs, &id, &lease).await,
                    }
                    drop(lease);
                }
                drop(guard);
            });
        }
    }

    /// The storage's lease on job `id` (several servers may share a PostgreSQL database:
    /// one of them runs each job), and whether it is the one this server took when it
    /// accepted the job; `None` if another server runs it. A storage error (the database
    /// restarting) is retried until the lease is read.
    async fn lease(
        &self,
        id: &str,
        announce: bool,
    ) -> Option<(Box<dyn crate::storage::JobLease>, bool)> {
        loop {
            let job = id.to_string();
            match self.blocking(move |c| c.job_lease(&job)).await {
                Ok(JobLeased::Accepted(lease)) => return Some((lease, true)),
                Ok(JobLeased::Taken(lease)) => return Some((lease, false)),
                Ok(JobLeased::HeldElsewhere) => {
                    if announce {
                        tracing::info!(job = %id, "another server runs this job");
                    }
                    return None;
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot take the job's lease; retrying");
                    tokio::time::sleep(self.cfg.stream_retry).await;
                }
            }
        }
    }

    fn claim(self: &Arc<Self>, id: &str) -> Option<Claim> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.insert(id.to_string()).then(|| Claim {
            jobs: self.clone(),
            id: id.to_string(),
        })
    }

    /// Runs a catalog or journal call off the executor.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ControlPlane) -> crate::control::Result<T> + Send + 'static,
    ) -> crate::control::Result<T> {
        let control = self.control.clone();
        tokio::task::spawn_blocking(move || f(&control))
            .await
            .map_err(|e| crate::control::ControlError::Internal(e.to_string()))?
    }

    /// The shared SDK configuration: credential chain, region, endpoint variables.
    async fn sdk_config(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| crate::aws::sdk_config(&self.cfg.region))
            .await
    }

    async fn s3(&self) -> &aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| async {
                crate::aws::s3_client(
                    self.sdk_config().await,
                    self.cfg.s3_endpoint.as_deref(),
                    self.cfg.s3_path_style,
                )
            })
            .await
    }

    /// A Kinesis client for the region of the target stream.
    async fn kinesis(&self, region: &str) -> aws_sdk_kinesis::Client {
        let mut b = aws_sdk_kinesis::config::Builder::from(self.sdk_config().await)
            .region(aws_sdk_kinesis::config::Region::new(region.to_string()));
        if let Some(url) = &self.cfg.kinesis_endpoint {
            b = b.endpoint_url(url);
        }
        aws_sdk_kinesis::Client::from_conf(b.build())
    }
}

/// Removes a job from the running set when its task ends, however it ends.
struct Claim {
    jobs: Arc<Jobs>,
    id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut running = self.jobs.running.lock().unwrap_or_else(|p| p.into_inner());
        running.remove(&self.id);
    }
}
