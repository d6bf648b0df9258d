//! A child's output (QEMU, snoo-hostd), collected by reader threads for waits to search.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// What a child process wrote, as its reader threads have collected it so far.
#[derive(Default)]
pub(super) struct Console {
    /// Everything the child wrote on its console (a guest's serial port, snoo-hostd's stderr), with
    /// `\r` removed.
    pub(super) log: String,
    /// QEMU's stderr, kept apart from the guest's console.
    pub(super) stderr: String,
    /// The console reached its end: the child exited.
    pub(super) closed: bool,
    /// The command a guest is running (abbreviated) and since when, for the watchdog's report.
    pub(super) running: Option<(String, Instant)>,
}

impl Console {
    /// The last `n` lines of the log (each cut at 300 characters), then QEMU's stderr if any.
    pub(super) fn tail(&self, n: usize) -> String {
        let mut tail: VecDeque<&str> = VecDeque::new();
        for l in self.log.lines() {
            if tail.len() == n {
                tail.pop_front();
            }
            tail.push_back(l);
        }
        let mut s = String::new();
        for l in tail {
            s.push_str("    | ");
            match l.char_indices().nth(300) {
                Some((cut, _)) => {
                    s.push_str(&l[..cut]);
                    s.push_str(" [...]");
                }
                None => s.push_str(l),
            }
            s.push('\n');
        }
        if !self.stderr.is_empty() {
            s.push_str("  qemu stderr:\n");
            for l in self.stderr.lines() {
                s.push_str("    ! ");
                s.push_str(l);
                s.push('\n');
            }
        }
        if self.closed {
            s.push_str("  (QEMU has exited)\n");
        }
        if let Some((cmd, since)) = &self.running {
            s.push_str(&format!("  running {cmd:?} for {:.1?}\n", since.elapsed()));
        }
        s
    }
}

/// A [`Console`] shared with the reader threads, which signal `cond` whenever it changes.
pub(super) struct Shared {
    pub(super) console: Mutex<Console>,
    pub(super) cond: Condvar,
}

/// Appends what `src` yields to the console log (or, with `is_stderr`, to its stderr) until EOF or
/// a read error; the end of the console (not of stderr) marks it `closed`.
pub(super) fn reader_thread(
    mut src: impl Read + Send + 'static,
    shared: Arc<Shared>,
    is_stderr: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // A UTF-8 sequence can straddle two reads.
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            let mut c = shared.console.lock().unwrap_or_else(|e| e.into_inner());
            if n == 0 {
                if !is_stderr {
                    c.closed = true;
                }
                shared.cond.notify_all();
                return;
            }
            pending.extend(buf[..n].iter().copied().filter(|&b| b != b'\r'));
            let valid = match std::str::from_utf8(&pending) {
                Ok(s) => s.len(),
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => pending.len(),
            };
            let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
            pending.drain(..valid);
            if is_stderr {
                c.stderr.push_str(&text);
            } else {
                c.log.push_str(&text);
            }
            shared.cond.notify_all();
        }
    })
}
