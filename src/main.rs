// The Lambda runtime's service stack around the whole sync future is deeper
// than the compiler's default query limit.
#![recursion_limit = "256"]

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    return_large_buffers();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return match s3_kms_sync::lambda::serve().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("s3-kms-sync: {err}");
                ExitCode::FAILURE
            }
        };
    }
    s3_kms_sync::cli::run(s3_kms_sync::cli::parse()).await
}

/// Buffers of a MiB and more (a part of a large file, a read buffer) get a
/// mapping of their own and go back to the system when freed. glibc
/// otherwise raises that threshold once such a buffer is freed and keeps
/// the next ones in per-thread arenas: 200 files of 20 MiB sent at once
/// then held 512 MiB under a 256 MiB budget; with it, 291 MiB.
fn return_large_buffers() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt changes a process-wide tuning parameter under
    // glibc's own lock; no memory is touched.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
