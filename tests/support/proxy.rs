//! A fault-injecting HTTP proxy between the function and moto, so tests see
//! what real S3 does where moto differs:
//! - opaque ETags on objects (real S3 under SSE-KMS), while part ETags still
//!   round-trip to CompleteMultipartUpload;
//! - refusal of unknown or disabled KMS keys, and of a body whose Content-MD5
//!   does not match (BadDigest);
//! - a seeded share of 503 SlowDown / 500 InternalError answers and dropped
//!   connections, so a failing run reproduces;
//! - `x-amz-copy-source-if-match` on CopyObject and UploadPartCopy, which
//!   moto ignores;
//! - GetBucketVersioning's answer under S3's root element, where moto's
//!   (`GetBucketVersioningResponse`) fails the SDK's parser;
//! - request counts by operation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the proxy does to the traffic; change it between phases with [`Proxy::configure`].
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Replace object ETags with values that are not the content's MD5.
    pub opaque_etags: bool,
    /// When set, only these KMS key ids are accepted in SSE-KMS writes.
    pub kms_keys: Option<Vec<String>>,
    /// Share of requests answered 503 SlowDown or 500 InternalError (half each).
    pub error_rate: f64,
    /// Share of requests whose connection is dropped without an answer.
    pub drop_rate: f64,
    /// Added before each request is forwarded.
    pub delay: Duration,
    /// Flip a byte in the body of every ranged GetObject answer: a range
    /// damaged on the way, which only the whole file's MD5 can catch.
    pub corrupt_ranges: bool,
}

type Hook = Box<dyn Fn(&str, &str) + Send + Sync>;

struct State {
    upstream: String,
    faults: Mutex<Faults>,
    rng: Mutex<StdRng>,
    counts: Mutex<BTreeMap<String, u64>>,
    /// Requests under way, and the most at once, by operation.
    in_flight: Mutex<BTreeMap<String, (u64, u64)>>,
    injected: Mutex<BTreeMap<String, u64>>,
    /// Opaque ETag → moto's ETag, for conditional requests.
    etags: Mutex<HashMap<String, String>>,
    hook: Mutex<Option<Hook>>,
    /// (operation, path suffix, matching requests still to let through):
    /// the next matching request after those takes effect, but its answer is lost.
    lose_answer: Mutex<Option<(String, String, u32)>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Proxy {
    pub endpoint: String,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: &str, seed: u64) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            faults: Mutex::new(Faults::default()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counts: Mutex::default(),
            in_flight: Mutex::default(),
            injected: Mutex::default(),
            etags: Mutex::default(),
            hook: Mutex::new(None),
            lose_answer: Mutex::new(None),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let shared = Arc::clone(&state);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| handle(Arc::clone(&state), req));
                    // A connection dropped on purpose ends in an error here.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy {
            endpoint,
            state,
            server,
        }
    }

    pub fn configure(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.state.faults.lock().unwrap());
    }

    /// Called with (operation, path) before each request is forwarded.
    pub fn on_request(&self, hook: impl Fn(&str, &str) + Send + Sync + 'static) {
        *self.state.hook.lock().unwrap() = Some(Box::new(hook));
    }

    /// The `nth` (from 1) request from now on of `op` to a path ending in
    /// `suffix` reaches moto, but its answer is dropped: the client retries a
    /// request that already took effect.
    pub fn lose_answer(&self, op: &str, suffix: &str, nth: u32) {
        *self.state.lose_answer.lock().unwrap() = Some((op.into(), suffix.into(), nth - 1));
    }

    /// Requests seen, by S3 operation.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.state.counts.lock().unwrap().clone()
    }

    /// The most requests of each operation that were under way at once.
    pub fn peaks(&self) -> BTreeMap<String, u64> {
        let in_flight = self.state.in_flight.lock().unwrap();
        in_flight
            .iter()
            .map(|(op, (_, peak))| (op.clone(), *peak))
            .collect()
    }

    /// Faults injected, by kind.
    pub fn injected(&self) -> BTreeMap<String, u64> {
        self.state.injected.lock().unwrap().clone()
    }

    pub fn reset_counts(&self) {
        self.state.counts.lock().unwrap().clear();
        self.state.in_flight.lock().unwrap().clear();
        self.state.injected.lock().unwrap().clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The S3 operation of a path-style request.
pub fn operation(method: &Method, path: &str, query: &str, copy: bool) -> &'static str {
    let has = |name: &str| {
        query
            .split('&')
            .any(|p| p == name || p.starts_with(&format!("{name}=")))
    };
    let object = path
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    match (method.as_str(), object) {
        ("GET", false) if has("uploads") => "ListMultipartUploads",
        ("GET", false) if has("versions") => "ListObjectVersions",
        ("POST", false) if has("delete") => "DeleteObjects",
        ("GET", false) if has("versioning") => "GetBucketVersioning",
        ("GET", false) if has("list-type") => "ListObjectsV2",
        ("GET", false) => "ListObjects",
        ("PUT", false) => "CreateBucket",
        ("HEAD", false) => "HeadBucket",
        ("PUT", true) if has("partNumber") && copy => "UploadPartCopy",
        ("PUT", true) if has("partNumber") => "UploadPart",
        ("PUT", true) if copy => "CopyObject",
        ("PUT", true) => "PutObject",
        ("POST", true) if has("uploads") => "CreateMultipartUpload",
        ("POST", true) if has("uploadId") => "CompleteMultipartUpload",
        ("DELETE", true) if has("uploadId") => "AbortMultipartUpload",
        ("DELETE", true) => "DeleteObject",
        ("HEAD", true) => "HeadObject",
        ("GET", true) => "GetObject",
        _ => "Other",
    }
}

/// The benchmark's window into the proxy: `counts` and `reset`.
fn control(state: &State, command: &str) -> Response<Full<Bytes>> {
    if command == "reset" {
        state.counts.lock().unwrap().clear();
        state.injected.lock().unwrap().clear();
    }
    let body = serde_json::json!({
        "requests": *state.counts.lock().unwrap(),
        "injected": *state.injected.lock().unwrap(),
    });
    Response::new(Full::new(Bytes::from(body.to_string())))
}

fn s3_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// A stable stand-in for an ETag that is not an MD5 of anything stored.
fn opaque(etag: &str) -> String {
    let digest = s3_kms_sync::local::hash::Md5Digest::of(
        format!("opaque:{}", etag.trim_matches('"')).as_bytes(),
    );
    format!("\"{}\"", digest.hex())
}

/// One request under way, counted in [`State::in_flight`] until dropped.
struct UnderWay<'a> {
    state: &'a State,
    op: &'static str,
}

impl<'a> UnderWay<'a> {
    fn start(state: &'a State, op: &'static str) -> Self {
        let mut in_flight = state.in_flight.lock().unwrap();
        let (now, peak) = in_flight.entry(op.to_owned()).or_default();
        *now += 1;
        *peak = (*peak).max(*now);
        UnderWay { state, op }
    }
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        if let Some((now, _)) = self.state.in_flight.lock().unwrap().get_mut(self.op) {
            *now = now.saturating_sub(1);
        }
    }
}

#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}
impl std::error::Error for Dropped {}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Err(Dropped);
    };
    let path = parts.uri.path().to_owned();
    if let Some(command) = path.strip_prefix("/__proxy/") {
        return Ok(control(&state, command));
    }
    let query = parts.uri.query().unwrap_or("").to_owned();
    let copy = parts.headers.contains_key("x-amz-copy-source");
    let op = operation(&parts.method, &path, &query, copy);
    *state
        .counts
        .lock()
        .unwrap()
        .entry(op.to_owned())
        .or_default() += 1;
    let _under_way = UnderWay::start(&state, op);
    let faults = state.faults.lock().unwrap().clone();
    let count = |kind: &str| {
        *state
            .injected
            .lock()
            .unwrap()
            .entry(kind.to_owned())
            .or_default() += 1
    };

    if let Some(hook) = state.hook.lock().unwrap().as_ref() {
        hook(op, &path);
    }
    if !faults.delay.is_zero() {
        tokio::time::sleep(faults.delay).await;
    }

    // Drawn once per request so a seed reproduces the same sequence.
    let (roll, after_forward) = {
        let mut rng = state.rng.lock().unwrap();
        (rng.random::<f64>(), rng.random::<bool>())
    };
    let lose = {
        let mut armed = state.lose_answer.lock().unwrap();
        match armed.as_mut() {
            Some((want, suffix, skip)) if want == op && path.ends_with(suffix.as_str()) => {
                if *skip == 0 {
                    *armed = None;
                    true
                } else {
                    *skip -= 1;
                    false
                }
            }
            _ => false,
        }
    };
    let drop = roll < faults.drop_rate || lose;
    if drop && !after_forward && !lose {
        count("drop");
        return Err(Dropped);
    }
    if !drop && roll < faults.drop_rate + faults.error_rate {
        let slow_down = roll < faults.drop_rate + faults.error_rate / 2.0;
        return Ok(if slow_down {
            count("503");
            s3_error(503, "SlowDown", "Please reduce your request rate.")
        } else {
            count("500");
            s3_error(
                500,
                "InternalError",
                "We encountered an internal error. Please try again.",
            )
        });
    }

    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let (Some(keys), Some(key)) = (
        &faults.kms_keys,
        header("x-amz-server-side-encryption-aws-kms-key-id"),
    ) && !keys.contains(&key)
    {
        count("kms-refused");
        return Ok(s3_error(
            400,
            "KMS.NotFoundException",
            &format!("Invalid keyId '{key}'"),
        ));
    }
    if let Some(expected) = header("content-md5")
        && s3_kms_sync::local::hash::Md5Digest::of(&body).base64() != expected
    {
        count("bad-digest");
        return Ok(s3_error(
            400,
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
        ));
    }

    if let Some(wanted) = header("x-amz-copy-source-if-match")
        && let Some(source) = header("x-amz-copy-source")
        && !copy_source_matches(
            &state,
            &source,
            &wanted,
            &header("authorization").unwrap_or_default(),
        )
        .await
    {
        count("copy-precondition");
        return Ok(s3_error(
            412,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        ));
    }

    let mut upstream = Request::builder().method(parts.method.clone()).uri(format!(
        "{}{}",
        state.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    ));
    for (name, value) in &parts.headers {
        if name == "host" {
            continue;
        }
        if name == "if-match" && faults.opaque_etags {
            let given = value.to_str().unwrap_or_default().to_owned();
            let real = state
                .etags
                .lock()
                .unwrap()
                .get(&given)
                .cloned()
                .unwrap_or(given);
            upstream = upstream.header(name, real);
            continue;
        }
        upstream = upstream.header(name, value);
    }
    let Ok(response) = state
        .client
        .request(upstream.body(Full::new(body)).unwrap())
        .await
    else {
        return Ok(s3_error(502, "BadGateway", "moto did not answer"));
    };
    if drop {
        // The request took effect, but its answer is lost.
        count("drop");
        return Err(Dropped);
    }
    let (mut head, body) = response.into_parts();
    let mut body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if faults.opaque_etags && op != "UploadPart" {
        if let Some(etag) = head
            .headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        {
            let hidden = opaque(&etag);
            state.etags.lock().unwrap().insert(hidden.clone(), etag);
            head.headers.insert("etag", hidden.parse().unwrap());
        }
        if matches!(
            op,
            "CompleteMultipartUpload" | "ListObjectsV2" | "CopyObject" | "UploadPartCopy"
        ) {
            body = Bytes::from(rewrite_xml_etags(&state, &String::from_utf8_lossy(&body)));
            head.headers.remove("content-length");
        }
    }
    if faults.corrupt_ranges && op == "GetObject" && header("range").is_some() && !body.is_empty() {
        count("corrupt-range");
        let mut damaged = body.to_vec();
        damaged[0] ^= 0xff;
        body = Bytes::from(damaged);
    }
    if op == "GetBucketVersioning" {
        let xml = String::from_utf8_lossy(&body)
            .replace("GetBucketVersioningResponse", "VersioningConfiguration");
        body = Bytes::from(xml);
        head.headers.remove("content-length");
    }
    Ok(Response::from_parts(head, Full::new(body)))
}

/// Whether the copy source (`bucket/key[?versionId=v]`, URL-encoded) still
/// has the ETag `wanted` (opaque or moto's own).
async fn copy_source_matches(
    state: &State,
    source: &str,
    wanted: &str,
    authorization: &str,
) -> bool {
    let (path, version) = source
        .trim_start_matches('/')
        .split_once("?versionId=")
        .map_or((source.trim_start_matches('/'), None), |(p, v)| {
            (p, Some(v))
        });
    let query = version
        .map(|v| format!("?versionId={v}"))
        .unwrap_or_default();
    let Some(head) = head_upstream(state, &format!("/{path}{query}"), authorization).await else {
        return false;
    };
    let Some(etag) = head.get("etag").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let real = state.etags.lock().unwrap().get(wanted).cloned();
    etag == wanted || real.as_deref() == Some(etag)
}

/// Moto's HeadObject answer for `path_and_query`, headers only.
/// `authorization` is the proxied request's own: moto wants one, and checks
/// no signature.
async fn head_upstream(
    state: &State,
    path_and_query: &str,
    authorization: &str,
) -> Option<hyper::HeaderMap> {
    let request = Request::builder()
        .method(Method::HEAD)
        .uri(format!("{}{path_and_query}", state.upstream))
        .header("authorization", authorization)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = state.client.request(request).await.ok()?;
    response
        .status()
        .is_success()
        .then(|| response.into_parts().0.headers)
}

fn rewrite_xml_etags(state: &State, xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find("<ETag>") {
        let Some(len) = rest[start..].find("</ETag>") else {
            break;
        };
        let value = &rest[start + 6..start + len];
        let real = value.replace("&quot;", "\"").replace("&#34;", "\"");
        let hidden = opaque(&real);
        state.etags.lock().unwrap().insert(hidden.clone(), real);
        out.push_str(&rest[..start + 6]);
        out.push_str(&hidden.replace('"', "&quot;"));
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}
