//! The test suite's S3 proxy as a program of its own, for the benchmark:
//! `fault_proxy UPSTREAM [--opaque-etags]` prints its endpoint, counts
//! requests by S3 operation (GET /__proxy/counts, /__proxy/reset), and with
//! `--opaque-etags` gives objects ETags that are not MD5s, as real S3 does
//! under SSE-KMS.

// Shared with the tests, which use the parts this program does not.
#[allow(dead_code)]
#[path = "../tests/support/proxy.rs"]
mod proxy;

use std::io::Write;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(upstream) = args.next() else {
        eprintln!("usage: fault_proxy UPSTREAM_URL [--opaque-etags]");
        std::process::exit(2);
    };
    let opaque = args.any(|a| a == "--opaque-etags");
    let proxy = proxy::Proxy::start(&upstream, 0).await;
    proxy.configure(|faults| faults.opaque_etags = opaque);
    println!("{}", proxy.endpoint);
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
}
