//! Progress of long command-line work (`verify`, `rebuild`) on stderr. On a terminal, a bar
//! redrawn in place and erased when the work ends; on anything else (a CI log, a pipe), a
//! plain line every few seconds, so a log shows the work moving without a line per block.
//! Short work prints nothing on a pipe. A leaf: it knows nothing of what is counted.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The interval of plain progress lines when stderr is not a terminal, in milliseconds.
pub const EVERY_MS_VAR: &str = "QLDB_LOCAL_PROGRESS_EVERY_MS";

/// How often a terminal's bar is redrawn at most.
const REDRAW: Duration = Duration::from_millis(100);

pub struct Progress {
    tty: bool,
    every: Duration,
    started: Instant,
    last: Option<Instant>,
    /// A bar is on the terminal's current line.
    drawn: bool,
}

impl Progress {
    /// Progress on this process's stderr.
    pub fn stderr() -> Self {
        let every = std::env::var(EVERY_MS_VAR)
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(5), Duration::from_millis);
        Progress {
            tty: std::io::stderr().is_terminal(),
            every,
            started: Instant::now(),
            last: None,
            drawn: false,
        }
    }

    /// Reports `done` of `total` units (`unit`, plural) of the work `what`.
    pub fn update(&mut self, what: &str, done: u64, total: u64, unit: &str) {
        let now = Instant::now();
        let since = self.last.unwrap_or(self.started);
        let due = if self.tty {
            self.last.is_none() || now - since >= REDRAW || done == total
        } else {
            now - since >= self.every
        };
        if !due {
            return;
        }
        self.last = Some(now);
        let pct = (done.min(total) * 100).checked_div(total).unwrap_or(100);
        let mut err = std::io::stderr().lock();
        if self.tty {
            const WIDTH: u64 = 30;
            let filled = (pct * WIDTH / 100) as usize;
            let _ = write!(
                err,
                "\r\x1b[K{what} [{}{}] {pct:>3}% {done}/{total} {unit}",
                "#".repeat(filled),
                "-".repeat(WIDTH as usize - filled)
            );
            self.drawn = true;
        } else {
            let _ = writeln!(err, "{what}: {done} of {total} {unit} ({pct}%)");
        }
        let _ = err.flush();
    }

    /// Erases the bar, if one is drawn, so the next output starts on a clean line.
    pub fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
