//! A last line of defence against a QEMU test that never ends.
//!
//! Every wait in this harness has a deadline, yet one CI run sat in a VFIO test until the whole job
//! was killed, with nothing printed (libtest shows a test's output only when it ends). A
//! [`Watchdog`] armed at the start of a test turns such a hang into a failure that says where: past
//! its limit it writes the test's name, every live guest's console tail and the command each guest
//! is running straight to fd 2 (past libtest's capture), then aborts the test process, which takes
//! its QEMUs and daemons with it (`PR_SET_PDEATHSIG`).

use super::guest::live_console_tails;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longer than any QEMU test takes on a slow CI runner (the slowest takes about 2 minutes here),
/// shorter than the CI's own limit.
pub const TEST_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Aborts the process if not dropped within its limit; see the module documentation.
pub struct Watchdog {
    done: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Arms a watchdog for `test`, which must end (drop it) within `limit`.
    pub fn arm(test: &str, limit: Duration) -> Watchdog {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = done.clone();
        let test = test.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("watchdog {test}"))
            .spawn(move || {
                let deadline = Instant::now() + limit;
                let (lock, cond) = &*flag;
                let mut done = lock.lock().unwrap_or_else(|e| e.into_inner());
                while !*done {
                    let now = Instant::now();
                    if now >= deadline {
                        report_and_abort(&test, limit);
                    }
                    done = cond
                        .wait_timeout(done, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            })
            .expect("spawn a watchdog thread");
        Watchdog {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cond) = &*self.done;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cond.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn report_and_abort(test: &str, limit: Duration) -> ! {
    let report = format!(
        "\nWATCHDOG: {test} is still running after {limit:?}; some wait in it has no way out. \
         Aborting the test process so that the run ends here.\n{}",
        live_console_tails()
    );
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(report.as_bytes());
    let _ = err.flush();
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Not a test of its own: the process that [`an_expired_watchdog_reports_and_aborts`] starts.
    #[test]
    fn expiring_child() {
        if std::env::var_os("SNOO_WATCHDOG_CHILD").is_none() {
            return;
        }
        let _dog = Watchdog::arm("expiring_child", Duration::from_millis(100));
        std::thread::sleep(Duration::from_secs(30));
    }

    #[test]
    fn an_expired_watchdog_reports_and_aborts() {
        let started = Instant::now();
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "qemu::watchdog::tests::expiring_child",
                "--nocapture",
            ])
            .env("SNOO_WATCHDOG_CHILD", "1")
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("WATCHDOG: expiring_child is still running after 100ms"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_watchdog_dropped_in_time_stays_quiet() {
        let dog = Watchdog::arm("quiet", Duration::from_millis(200));
        drop(dog);
        std::thread::sleep(Duration::from_millis(300));
    }
}
