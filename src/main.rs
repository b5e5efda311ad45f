// The Lambda runtime's service stack around the whole sync future is deeper
// than the compiler's default query limit.
#![recursion_limit = "256"]

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
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
