//! SIGINT and SIGTERM (a person at a terminal, cron, systemd; Lambda sends
//! neither): the run starts no more files, finishes those in flight, writes
//! its manifest as incomplete and releases its lock, as when its time limit
//! comes; the CLI then exits 128 plus the signal's number.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal that asked the process to stop; 0: none yet.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The signal that asked the process to stop, if one did.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Listens for SIGINT and SIGTERM for the rest of the process. A second
/// signal ends the process at once, as a user pressing Ctrl-C twice expects.
pub fn listen() {
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, number) in [
        (SignalKind::interrupt(), libc_number::SIGINT),
        (SignalKind::terminate(), libc_number::SIGTERM),
    ] {
        let Ok(mut stream) = signal(kind) else {
            continue;
        };
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if RECEIVED.swap(number, Ordering::SeqCst) != 0 {
                    std::process::exit(128 + number);
                }
                tracing::warn!(
                    signal = number,
                    "stopping: no more files are started, those under way finish, and what was done is reported (again to quit at once)"
                );
            }
        });
    }
}

/// The numbers POSIX gives the two signals on Linux.
mod libc_number {
    pub const SIGINT: i32 = 2;
    pub const SIGTERM: i32 = 15;
}
