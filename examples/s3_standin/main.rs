//! A small in-memory S3 for the benchmark's latency row: `s3_standin
//! [--delay-ms N] [--connect-ms M]` prints its endpoint and answers every
//! request after N ms, as a distant S3 would, however many are in flight;
//! a new connection's first request waits M ms more, the round trip of a
//! TCP handshake to that S3. moto cannot stand in here: it answers a few
//! hundred requests a second, so at 30 ms a request every client would
//! measure moto, not itself. `GET /_standin/stats` tells how many
//! connections and requests it has served, and the bytes of the objects
//! it sent.
//!
//! It speaks the part of S3 a sync and a restore use, path-style:
//! CreateBucket, HeadBucket, PutObject (with If-None-Match / If-Match),
//! HeadObject, GetObject (whole or one range), DeleteObject (with
//! If-Match), ListObjectsV2 (prefix, delimiter, start-after, continuation,
//! url encoding) and multipart uploads (create, parts, complete with the
//! same conditions, abort). `--per-connection-mb-s R` caps what each
//! connection carries to R MB a second, each way, as one connection to S3
//! is capped in practice: that cap is what makes parts in parallel matter. It echoes
//! SSE-KMS as S3 does: the requested key, or the bucket default's, with a
//! Bucket Key. It keeps one version of each object, whatever version id a
//! read names, and says of any KMS key (DescribeKey) that it is enabled.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use s3_kms_sync::local::hash::Md5Digest;

/// Characters S3 leaves alone when it URL-encodes keys in a listing.
const KEY_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
mod multipart;

const DEFAULT_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/standin";

#[derive(Clone)]
struct Object {
    body: Bytes,
    etag: String,
    metadata: Vec<(String, String)>,
    kms_key: String,
    /// When it was stored, as a listing shows it (readers hold a
    /// manifest's claimed start to it).
    stored_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct Store {
    buckets: BTreeMap<String, BTreeMap<String, Object>>,
    /// Multipart uploads under way, by upload id.
    uploads: BTreeMap<String, multipart::Upload>,
    next_upload: u64,
}

/// Bytes a second each connection carries each way (0: no cap).
static PER_CONNECTION: AtomicU64 = AtomicU64::new(0);

/// Waits as long as `bytes` take over one capped connection.
async fn carry(bytes: usize) {
    let rate = PER_CONNECTION.load(Ordering::Relaxed);
    if rate > 0 && bytes > 0 {
        tokio::time::sleep(Duration::from_secs_f64(bytes as f64 / rate as f64)).await;
    }
}

type Answer = Response<Full<Bytes>>;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut delay, mut connect) = (Duration::ZERO, Duration::ZERO);
    while let Some(arg) = args.next() {
        match (
            arg.as_str(),
            args.next().and_then(|v| v.parse::<u64>().ok()),
        ) {
            ("--delay-ms", Some(ms)) => delay = Duration::from_millis(ms),
            ("--connect-ms", Some(ms)) => connect = Duration::from_millis(ms),
            ("--per-connection-mb-s", Some(rate)) => {
                PER_CONNECTION.store(rate * 1_000_000, Ordering::Relaxed)
            }
            _ => {
                eprintln!(
                    "usage: s3_standin [--delay-ms N] [--connect-ms M] [--per-connection-mb-s R]"
                );
                std::process::exit(2);
            }
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("http://{}", listener.local_addr().unwrap());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let store = Arc::new(Mutex::new(Store::default()));
    let stats = Arc::new(Stats::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (store, stats) = (Arc::clone(&store), Arc::clone(&stats));
        stats.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let fresh = Arc::new(std::sync::atomic::AtomicBool::new(true));
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (store, stats, fresh) =
                    (Arc::clone(&store), Arc::clone(&stats), Arc::clone(&fresh));
                async move {
                    if req.uri().path() == "/_standin/stats" {
                        return Ok::<_, Infallible>(stats.answer());
                    }
                    stats.requests.fetch_add(1, Ordering::Relaxed);
                    let _under_way = stats.start();
                    let handshake = if fresh.swap(false, Ordering::Relaxed) {
                        connect
                    } else {
                        Duration::ZERO
                    };
                    tokio::time::sleep(delay + handshake).await;
                    let object_get = req.method() == Method::GET
                        && req.uri().path().trim_start_matches('/').contains('/');
                    let answer = handle(&store, req).await;
                    let sent = answer.body().size_hint().exact().unwrap_or(0);
                    if object_get && answer.status().is_success() {
                        stats.sent.fetch_add(sent, Ordering::Relaxed);
                    }
                    carry(sent as usize).await;
                    Ok::<_, Infallible>(answer)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// What the stand-in has served, for the benchmark to report.
#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    requests: AtomicU64,
    /// Bytes of object bodies sent (GetObject).
    sent: AtomicU64,
    /// Requests under way, and the most at once.
    in_flight: AtomicU64,
    peak: AtomicU64,
}

/// One request under way, counted until dropped.
struct UnderWay<'a>(&'a Stats);

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stats {
    fn start(&self) -> UnderWay<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        UnderWay(self)
    }

    fn answer(&self) -> Answer {
        let body = format!(
            "{{\"connections\": {}, \"requests\": {}, \"sent\": {}, \"peak_in_flight\": {}}}",
            self.connections.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
            self.peak.load(Ordering::Relaxed)
        );
        Response::new(Full::new(Bytes::from(body)))
    }
}

fn error(status: u16, code: &str) -> Answer {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{code}</Message></Error>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn empty(status: u16) -> Answer {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn query_of(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

async fn handle(store: &Mutex<Store>, req: Request<Incoming>) -> Answer {
    let path = percent_decode_str(req.uri().path())
        .decode_utf8_lossy()
        .into_owned();
    let (bucket, key) = match path.trim_start_matches('/').split_once('/') {
        Some((bucket, key)) => (bucket.to_owned(), key.to_owned()),
        None => (path.trim_start_matches('/').to_owned(), String::new()),
    };
    let query = query_of(&req);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (if_match, if_none_match) = (header("if-match"), header("if-none-match"));
    let range = header("range");
    if header("x-amz-target").as_deref() == Some("TrentService.DescribeKey") {
        return key_enabled();
    }
    let kms_key = header("x-amz-server-side-encryption-aws-kms-key-id");
    let metadata: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-amz-meta-"))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let method = req.method().clone();
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return error(400, "IncompleteBody");
    };
    carry(body.len()).await;
    let mut store = store.lock().unwrap();
    let upload_id = query.get("uploadId").cloned();
    if let Some(answer) = multipart_step(
        &mut store,
        &method,
        (&bucket, &key),
        &query,
        (&metadata, &kms_key),
        &body,
    ) {
        return answer;
    }
    if key.is_empty() {
        return match method {
            Method::PUT => {
                store.buckets.entry(bucket).or_default();
                empty(200)
            }
            Method::HEAD if store.buckets.contains_key(&bucket) => empty(200),
            Method::GET => match store.buckets.get(&bucket) {
                Some(objects) => list(&bucket, objects, &query),
                None => error(404, "NoSuchBucket"),
            },
            _ => error(404, "NoSuchBucket"),
        };
    }
    let Some(objects) = store.buckets.get_mut(&bucket) else {
        return error(404, "NoSuchBucket");
    };
    let current = objects.get(&key).cloned();
    let precondition = match (&if_match, &if_none_match, &current) {
        (Some(_), _, None) => Some(error(404, "NoSuchKey")),
        (Some(wanted), _, Some(object)) if *wanted != object.etag => {
            Some(error(412, "PreconditionFailed"))
        }
        (_, Some(any), Some(_))
            if any == "*" && method != Method::GET && method != Method::HEAD =>
        {
            Some(error(412, "PreconditionFailed"))
        }
        _ => None,
    };
    if let Some(refused) = precondition {
        return refused;
    }
    match method {
        Method::POST => {
            let Some(upload) = upload_id.and_then(|id| store.uploads.remove(&id)) else {
                return error(404, "NoSuchUpload");
            };
            let Some((body, etag)) = upload.complete(&String::from_utf8_lossy(&body)) else {
                return error(400, "InvalidPart");
            };
            let object = Object {
                body,
                etag: etag.clone(),
                metadata: upload.metadata,
                kms_key: upload.kms_key,
                stored_at: chrono::Utc::now(),
            };
            let answer = encrypted(Response::builder().status(200), &object);
            let objects = store
                .buckets
                .get_mut(&bucket)
                .expect("the bucket was found");
            objects.insert(key.clone(), object);
            let xml = multipart::completed(&bucket, &key, &etag);
            answer.body(Full::new(Bytes::from(xml))).unwrap()
        }
        Method::PUT => {
            let etag = format!("\"{}\"", Md5Digest::of(&body).hex());
            let object = Object {
                body,
                etag: etag.clone(),
                metadata,
                kms_key: kms_key.unwrap_or_else(|| DEFAULT_KEY.to_owned()),
                stored_at: chrono::Utc::now(),
            };
            let answer = encrypted(
                Response::builder().status(200).header("etag", &etag),
                &object,
            );
            objects.insert(key, object);
            answer.body(Full::new(Bytes::new())).unwrap()
        }
        Method::HEAD | Method::GET => match current {
            Some(object) => {
                let mut answer = encrypted(Response::builder().status(200), &object)
                    .header("etag", &object.etag)
                    .header(
                        "last-modified",
                        object
                            .stored_at
                            .format("%a, %d %b %Y %H:%M:%S GMT")
                            .to_string(),
                    );
                for (name, value) in &object.metadata {
                    answer = answer.header(name, value);
                }
                let length = object.body.len();
                match (
                    &method,
                    range.as_deref().and_then(|r| byte_range(r, length)),
                ) {
                    (&Method::GET, Some((first, last))) => answer
                        .status(206)
                        .header("content-length", last + 1 - first)
                        .header("content-range", format!("bytes {first}-{last}/{length}"))
                        .body(Full::new(object.body.slice(first..=last)))
                        .unwrap(),
                    (&Method::GET, None) if range.is_some() => error(416, "InvalidRange"),
                    (&Method::GET, None) => answer
                        .header("content-length", length)
                        .body(Full::new(object.body))
                        .unwrap(),
                    // HEAD: the length of what a GET would send.
                    _ => answer
                        .header("content-length", length)
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                }
            }
            None if method == Method::HEAD => empty(404),
            None => error(404, "NoSuchKey"),
        },
        Method::DELETE => {
            objects.remove(&key);
            empty(204)
        }
        _ => error(501, "NotImplemented"),
    }
}

/// `bytes=<first>-<last>` (or open-ended) within an object of `length`.
fn byte_range(header: &str, length: usize) -> Option<(usize, usize)> {
    let (first, last) = header.strip_prefix("bytes=")?.split_once('-')?;
    let first: usize = first.parse().ok()?;
    let last = match last {
        "" => length.checked_sub(1)?,
        last => last.parse::<usize>().ok()?.min(length.checked_sub(1)?),
    };
    (first <= last).then_some((first, last))
}

/// The steps of a multipart upload that touch no object: create, a part,
/// abort. Completion is answered with the object's conditions.
fn multipart_step(
    store: &mut Store,
    method: &Method,
    (bucket, key): (&str, &str),
    query: &BTreeMap<String, String>,
    (metadata, kms_key): (&[(String, String)], &Option<String>),
    body: &Bytes,
) -> Option<Answer> {
    if key.is_empty() || !store.buckets.contains_key(bucket) {
        return None;
    }
    let upload_id = query.get("uploadId");
    match (method, upload_id) {
        (&Method::POST, None) if query.contains_key("uploads") => {
            store.next_upload += 1;
            let id = format!("upload-{}", store.next_upload);
            let kms = kms_key.clone().unwrap_or_else(|| DEFAULT_KEY.to_owned());
            let upload = multipart::Upload::new(key, metadata.to_vec(), kms);
            let object = Object {
                body: Bytes::new(),
                etag: String::new(),
                metadata: Vec::new(),
                kms_key: upload.kms_key.clone(),
                stored_at: chrono::Utc::now(),
            };
            store.uploads.insert(id.clone(), upload);
            let xml = multipart::initiated(bucket, key, &id);
            Some(
                encrypted(Response::builder().status(200), &object)
                    .body(Full::new(Bytes::from(xml)))
                    .unwrap(),
            )
        }
        (&Method::PUT, Some(id)) => {
            let number = query.get("partNumber").and_then(|n| n.parse().ok());
            let (Some(upload), Some(number)) = (store.uploads.get_mut(id), number) else {
                return Some(error(404, "NoSuchUpload"));
            };
            if upload.key != key {
                return Some(error(404, "NoSuchUpload"));
            }
            let etag = upload.part(number, body.clone());
            Some(
                Response::builder()
                    .status(200)
                    .header("etag", etag)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
        }
        (&Method::DELETE, Some(id)) => Some(match store.uploads.remove(id) {
            Some(_) => empty(204),
            None => error(404, "NoSuchUpload"),
        }),
        _ => None,
    }
}

/// KMS DescribeKey, as a restore asks it of the key its objects name: the
/// key is enabled.
fn key_enabled() -> Answer {
    let body = format!(
        "{{\"KeyMetadata\":{{\"KeyId\":\"standin\",\"Arn\":\"{DEFAULT_KEY}\",\"KeyState\":\"Enabled\",\"Enabled\":true}}}}"
    );
    Response::builder()
        .status(200)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn encrypted(
    builder: hyper::http::response::Builder,
    object: &Object,
) -> hyper::http::response::Builder {
    builder
        .header("x-amz-server-side-encryption", "aws:kms")
        .header(
            "x-amz-server-side-encryption-aws-kms-key-id",
            &object.kms_key,
        )
        .header("x-amz-server-side-encryption-bucket-key-enabled", "true")
}

fn list(
    bucket: &str,
    objects: &BTreeMap<String, Object>,
    query: &BTreeMap<String, String>,
) -> Answer {
    let get = |name: &str| query.get(name).map(String::as_str);
    let prefix = get("prefix").unwrap_or("");
    let delimiter = get("delimiter").filter(|d| !d.is_empty());
    let max_keys: usize = get("max-keys")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000)
        .min(1000);
    let after = get("continuation-token")
        .or(get("start-after"))
        .unwrap_or("");
    let url = get("encoding-type") == Some("url");
    let encode = |key: &str| {
        let escaped = if url {
            utf8_percent_encode(key, KEY_SAFE).to_string()
        } else {
            key.to_owned()
        };
        escaped
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut contents = String::new();
    let mut prefixes = Vec::<String>::new();
    let (mut count, mut last, mut truncated) = (0, String::new(), false);
    for (key, object) in
        objects.range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
    {
        if !key.starts_with(prefix) {
            if key.as_str() > prefix {
                break;
            }
            continue;
        }
        if count == max_keys {
            truncated = true;
            break;
        }
        if let Some(d) = delimiter
            && let Some(at) = key[prefix.len()..].find(d)
        {
            let common = &key[..prefix.len() + at + d.len()];
            if prefixes.last().map(String::as_str) != Some(common) {
                prefixes.push(common.to_owned());
                count += 1;
            }
            last = key.clone();
            continue;
        }
        contents.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            encode(key),
            object.stored_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            object.etag.replace('"', "&quot;"),
            object.body.len()
        ));
        count += 1;
        last = key.clone();
    }
    let common: String = prefixes
        .iter()
        .map(|p| {
            format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                encode(p)
            )
        })
        .collect();
    let next = if truncated {
        format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            encode(&last)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{bucket}</Name><Prefix>{}</Prefix><KeyCount>{count}</KeyCount><MaxKeys>{max_keys}</MaxKeys><IsTruncated>{truncated}</IsTruncated>{}{next}{contents}{common}</ListBucketResult>",
        encode(prefix),
        if url {
            "<EncodingType>url</EncodingType>"
        } else {
            ""
        },
    );
    Response::builder()
        .status(200)
        .header("content-type", "application/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}
