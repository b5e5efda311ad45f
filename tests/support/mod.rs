//! Shared test fixtures: a moto server on a loopback port, real SDK clients
//! pointed at it, and sample trees.
#![allow(dead_code)]

pub mod cli;
pub mod proxy;
pub mod trust;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::config::retry::RetryConfig;
use s3_kms_sync::commands::sync::{self, SyncArgs, SyncOptions, SyncRequest};
use s3_kms_sync::config::{Config, ConfigArgs};
use s3_kms_sync::lambda::Function;
use s3_kms_sync::manifest::Summary;
use s3_kms_sync::run::{Mode, RunArgs};
use s3_kms_sync::store::multipart::MIB;
use s3_kms_sync::store::s3_client_from;
use s3_kms_sync::target::TargetArgs;

/// A moto server (S3 + KMS over HTTP) that lives as long as this value.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

/// Attempts at starting moto, each on a fresh port.
const MOTO_ATTEMPTS: usize = 5;

impl Moto {
    /// Starts moto on a free port, and proves the listener there is this
    /// moto: a port found free can be taken by another test's server before
    /// ours binds it, and a bare TCP connect would then trust the stranger
    /// until it exits. Retries on a fresh port. Fails loudly when moto is
    /// not installed: these tests are never skipped silently.
    pub fn start() -> Moto {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        // moto's server as scripts/moto_server.py runs it: KMS signs by
        // digest as AWS does.
        let command: Vec<PathBuf> = match std::env::var_os("MOTO_SERVER") {
            Some(binary) => vec![PathBuf::from(binary)],
            None => vec![
                root.join(".venv/bin/python"),
                root.join("scripts/moto_server.py"),
            ],
        };
        assert!(
            command[0].exists(),
            "moto server not found at {}: run `make test` (it installs moto into .venv) or set MOTO_SERVER",
            command[0].display()
        );
        let mut failures = Vec::new();
        for _ in 0..MOTO_ATTEMPTS {
            match Moto::start_on(&command, free_port()) {
                Ok(moto) => return moto,
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "moto server did not start in {MOTO_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// One attempt on `port`. Ours once its own log says it bound the port
    /// (werkzeug logs "Running on" only after the bind), an HTTP request
    /// there is answered, and the process is still alive.
    fn start_on(command: &[PathBuf], port: u16) -> Result<Moto, String> {
        let binary = &command[0];
        let mut child = Command::new(binary)
            .args(&command[1..])
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot run {}: {err}", binary.display()))?;
        let log = ServerLog::follow(child.stderr.take().expect("piped stderr"));
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let banner = format!("Running on {}", moto.endpoint);
        let bound = log.wait_for(&banner, Duration::from_secs(60));
        let proven = bound
            .and_then(|()| http_answers(port))
            .and_then(|()| moto.still_running());
        proven.map(|()| moto).map_err(|why| {
            format!(
                "port {port}: {why}; its log ends:\n{}",
                log.tail().join("\n")
            )
        })
    }

    fn still_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("moto exited ({status})")),
            Err(err) => Err(format!("cannot tell whether moto runs: {err}")),
        }
    }

    pub fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint)
    }

    /// The S3 client exactly as the function builds it, pointed at moto.
    pub fn s3(&self) -> Client {
        client_for(&self.endpoint)
    }

    /// The function as it starts at cold start, over moto: its S3 and KMS
    /// clients point here.
    pub fn engine(&self, settings: Settings) -> Engine {
        let mut engine = engine(self.s3(), settings);
        engine.store = engine.store.with_kms(self.kms());
        engine
    }

    /// Creates a bucket and a KMS key; returns the key's ARN.
    pub async fn bucket_and_key(&self, bucket: &str) -> String {
        self.s3()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create bucket");
        let key = self.kms_key().await;
        self.encrypt_by_default(bucket, &key).await;
        key
    }

    /// As the template sets a bucket up: default SSE-KMS under the key, with
    /// a Bucket Key (moto gives multipart objects a Bucket Key only from it).
    pub async fn encrypt_by_default(&self, bucket: &str, key: &str) {
        let default = aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
            .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
            .kms_master_key_id(key)
            .build()
            .unwrap();
        let rule = aws_sdk_s3::types::ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(default)
            .bucket_key_enabled(true)
            .build();
        self.s3()
            .put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(
                aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("default encryption");
    }

    /// The KMS client, as the function builds it, pointed at moto.
    pub fn kms(&self) -> aws_sdk_kms::Client {
        s3_kms_sync::store::kms_client_from(&self.sdk_config(), RetryConfig::standard())
    }

    /// Creates an asymmetric signing key (ECC_NIST_P256, SIGN_VERIFY), as
    /// the template does; returns its ARN.
    pub async fn signing_key(&self) -> String {
        let key = self
            .kms()
            .create_key()
            .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
            .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
            .send()
            .await
            .expect("create signing key");
        key.key_metadata().unwrap().arn().unwrap().to_owned()
    }

    /// Signs with `signing_key` and trusts it, as SYNC_SIGNING_KEY_ID does.
    pub fn trust(&self, signing_key: &str) -> s3_kms_sync::trust::Trust {
        s3_kms_sync::trust::Trust::new(&self.kms(), Some(signing_key), None)
    }

    /// Creates another KMS key; returns its ARN.
    pub async fn kms_key(&self) -> String {
        let key = self
            .kms()
            .create_key()
            .description("s3-kms-sync test")
            .send()
            .await
            .expect("create key");
        key.key_metadata()
            .expect("key metadata")
            .arn()
            .expect("key arn")
            .to_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shared AWS configuration of a test: us-east-1, test credentials,
/// `endpoint` (moto, or the proxy in front of it).
pub fn sdk_config_for(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            Credentials::for_tests(),
        ))
        .build()
}

/// The function's S3 client for an endpoint, with short backoffs so retried
/// faults do not slow the tests down.
pub fn client_for(endpoint: &str) -> Client {
    let shared = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            Credentials::for_tests(),
        ))
        .build();
    let retry = RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(200));
    s3_client_from(&shared, true, retry)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A server's stderr, drained for its whole life (a full pipe would stall
/// it), with its last lines kept for error messages.
struct ServerLog {
    lines: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
    ended: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ServerLog {
    const KEPT: usize = 20;

    fn follow(stderr: impl std::io::Read + Send + 'static) -> ServerLog {
        use std::io::BufRead;
        let log = ServerLog {
            lines: Default::default(),
            ended: Default::default(),
        };
        let (lines, ended) = (log.lines.clone(), log.ended.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut kept = lines.lock().unwrap();
                if kept.len() == Self::KEPT {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
            ended.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        log
    }

    /// Waits until a line holds `needle`; fails when the log ends first
    /// (the server exited) or at `timeout`.
    fn wait_for(&self, needle: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return Ok(());
            }
            if self.ended.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("moto exited before it bound the port".into());
            }
            if Instant::now() >= deadline {
                return Err(format!("no {needle:?} within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn tail(&self) -> Vec<String> {
        self.lines.lock().unwrap().iter().cloned().collect()
    }
}

/// Whether an HTTP request to `port` gets an HTTP answer.
fn http_answers(port: u16) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
        .map_err(|err| format!("connect: {err}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|err| err.to_string())?;
    stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|err| format!("send: {err}"))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|err| format!("no HTTP answer: {err}"))?;
    if head.starts_with(b"HTTP/1.") {
        Ok(())
    } else {
        Err(format!("not HTTP: {:?}", String::from_utf8_lossy(&head)))
    }
}

/// Settings for a test run: a 1 MiB multipart threshold so a small file
/// exercises multipart upload (parts stay at S3's 5 MiB minimum).
pub fn settings(
    source: &Path,
    manifests: &Path,
    bucket: &str,
    key: &str,
    prefix: &str,
) -> Settings {
    let args = ConfigArgs {
        target: TargetArgs {
            bucket: Some(bucket.into()),
            prefix: Some(prefix.into()),
            kms_key_id: Some(key.into()),
            max_attempts: 3,
            ..TargetArgs::default()
        },
        run: RunArgs {
            manifest_dir: Some(manifests.into()),
            lock_ttl_secs: 60,
            ..RunArgs::default()
        },
        command: SyncArgs {
            source_dir: Some(source.into()),
            concurrency: 4,
            walk_threads: 4,
            slice_files: 10_000,
            memory_budget: 64 * MIB,
            multipart_threshold: MIB,
            part_size: 5 * MIB,
            part_concurrency: 4,
            ..SyncArgs::default()
        },
    };
    Config::from_args(args, Mode::Cli).expect("valid settings")
}

/// The validated settings of a sync.
pub type Settings = Config<SyncOptions>;

/// What the Lambda function builds at cold start; the tests run syncs on it.
pub type Engine = Function;

pub fn engine(client: Client, settings: Settings) -> Engine {
    Function::new(client, settings)
}

/// One sync, with no time limit as the CLI runs it, or with one as the
/// Lambda handler does.
pub trait RunSync {
    async fn run_until(
        &self,
        request: &SyncRequest,
        stop_at: Option<Instant>,
    ) -> s3_kms_sync::Result<Summary>;

    async fn run(&self, request: &SyncRequest) -> s3_kms_sync::Result<Summary> {
        self.run_until(request, None).await
    }
}

impl RunSync for Function {
    async fn run_until(
        &self,
        request: &SyncRequest,
        stop_at: Option<Instant>,
    ) -> s3_kms_sync::Result<Summary> {
        let config = &self.config;
        sync::run(
            &self.store,
            &config.target.prefix,
            &config.run,
            &config.command,
            request,
            stop_at,
        )
        .await
    }
}

/// Relative path → content for the standard sample tree.
pub fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    let big: Vec<u8> = (0..6 * MIB as usize + 12_345)
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    vec![
        ("top.txt", b"top level\n".to_vec()),
        ("empty.dat", Vec::new()),
        ("with space/file name.txt", b"spaces\n".to_vec()),
        (
            "unicode/ünïcødé 文件.txt",
            "non-ASCII ✓\n".as_bytes().to_vec(),
        ),
        ("deep/a/b/c/leaf.json", br#"{"leaf": true}"#.to_vec()),
        ("reports/2026/q1.csv", b"a,b\n1,2\n".to_vec()),
        ("reports/big.bin", big),
    ]
}

/// Writes the files, then waits until their stamps have settled, as the files
/// of a real backup have: a stamp taken within the file system's timestamp
/// granularity of the last write is not trusted, and the next run reads the
/// file again (see `Stamp::settled_before`).
pub fn write_tree(root: &Path, files: &[(&str, Vec<u8>)]) {
    for (relative, content) in files {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    settle();
}

/// `write_tree` for generated paths.
pub fn write_owned(root: &Path, files: &[(String, Vec<u8>)]) {
    let borrowed: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    write_tree(root, &borrowed);
}

/// S3 lists Last-Modified in whole seconds, and prune judges by it: what
/// must fall before or after a moment is written a second apart.
pub fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// The local copy of a run's manifest.
pub fn manifest_of(summary: &s3_kms_sync::manifest::Summary) -> s3_kms_sync::manifest::Manifest {
    let path = summary
        .manifest_local_path
        .as_deref()
        .expect("local manifest");
    serde_json::from_slice(&local_copy(path).unwrap()).unwrap()
}

/// The bytes of a run's local manifest copy, as written (a paged
/// snapshot's is gzip-compressed on disk).
pub fn local_copy(path: impl AsRef<Path>) -> std::io::Result<Vec<u8>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain)?;
        return Ok(plain);
    }
    Ok(bytes)
}

/// The records of the snapshot a run stored, read back as every command
/// reads them (a paged one's from its pages, each checked).
pub async fn stored_records(
    engine: &Engine,
    summary: &s3_kms_sync::manifest::Summary,
) -> Vec<s3_kms_sync::manifest::FileRecord> {
    let key = manifest_key(summary, engine.store.bucket());
    let fetched = engine
        .store
        .get(&key)
        .await
        .unwrap()
        .expect("a stored snapshot");
    let keep = |records: &mut Vec<_>, record| records.push(record);
    let read =
        s3_kms_sync::manifest::read::read_fetched(&engine.store, &key, fetched, Vec::new(), keep);
    read.await.unwrap().state
}

/// The key of the manifest a run stored in `bucket`.
pub fn manifest_key(summary: &s3_kms_sync::manifest::Summary, bucket: &str) -> String {
    let uri = summary
        .manifest_s3_uri
        .as_deref()
        .expect("a stored manifest");
    uri.strip_prefix(&format!("s3://{bucket}/"))
        .expect("a manifest of this bucket")
        .to_owned()
}

/// Waits out the stamp window of a file system with sub-second timestamps.
pub fn settle() {
    let window = s3_kms_sync::local::stamp::FINE_STAMP_WINDOW_NS as u64;
    std::thread::sleep(Duration::from_nanos(window + 50_000_000));
}

pub async fn list_keys(client: &Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.expect("list objects");
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    keys.sort();
    keys
}

/// HeadObject of `key`, which must exist.
pub async fn head(
    s3: &Client,
    bucket: &str,
    key: &str,
) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("HEAD {key}: {e}"))
}

pub async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    get_version_bytes(client, bucket, key, None).await
}

/// The bytes of one version of `key` (the current one for `None`).
pub async fn get_version_bytes(
    client: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Vec<u8> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .expect("get object");
    object
        .body
        .collect()
        .await
        .expect("read body")
        .into_bytes()
        .to_vec()
}

pub fn md5_hex(bytes: &[u8]) -> String {
    s3_kms_sync::local::hash::Md5Digest::of(bytes).hex()
}

/// moto with the fault proxy in front, a bucket and KMS key in it, and a
/// source and a manifest directory: what the proxy-backed tests run on.
pub struct Stack {
    pub moto: Moto,
    pub proxy: proxy::Proxy,
    pub bucket: &'static str,
    pub prefix: &'static str,
    pub key_arn: String,
    pub source: tempfile::TempDir,
    pub manifests: tempfile::TempDir,
}

impl Stack {
    pub async fn start(bucket: &'static str, prefix: &'static str, seed: u64) -> Stack {
        let moto = Moto::start();
        let key_arn = moto.bucket_and_key(bucket).await;
        let proxy = proxy::Proxy::start(&moto.endpoint, seed).await;
        Stack {
            moto,
            proxy,
            bucket,
            prefix,
            key_arn,
            source: tempfile::tempdir().unwrap(),
            manifests: tempfile::tempdir().unwrap(),
        }
    }

    /// An engine that talks through the proxy, with another key or concurrency.
    pub fn engine_with(&self, kms_key: &str, concurrency: usize) -> Engine {
        self.engine_tuned(kms_key, |settings| {
            settings.command.concurrency = concurrency
        })
    }

    /// An engine that talks through the proxy, with settings `tune` adjusts.
    pub fn engine_tuned(&self, kms_key: &str, tune: impl FnOnce(&mut Settings)) -> Engine {
        let mut settings = settings(
            self.source.path(),
            self.manifests.path(),
            self.bucket,
            kms_key,
            self.prefix,
        );
        tune(&mut settings);
        engine(client_for(&self.proxy.endpoint), settings)
    }

    pub fn engine(&self) -> Engine {
        self.engine_with(&self.key_arn, 8)
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub async fn open_uploads(&self) -> usize {
        let listed = self
            .moto
            .s3()
            .list_multipart_uploads()
            .bucket(self.bucket)
            .send()
            .await
            .unwrap();
        listed.uploads().len()
    }
}

/// Asserts that `key` is stored under SSE-KMS with `kms_key`, with the MD5 of
/// `content` recorded, and (when `compare_bytes`) holds exactly `content`.
pub async fn assert_stored(
    s3: &Client,
    bucket: &str,
    key: &str,
    kms_key: &str,
    content: &[u8],
    compare_bytes: bool,
) {
    use aws_sdk_s3::types::ServerSideEncryption;
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect(key);
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms),
        "{key}"
    );
    assert_eq!(head.ssekms_key_id(), Some(kms_key), "{key}");
    let recorded = head.metadata().and_then(|m| m.get("md5checksum")).cloned();
    assert_eq!(recorded, Some(md5_hex(content)), "{key}");
    if compare_bytes {
        assert_eq!(get_bytes(s3, bucket, key).await, content, "{key}");
    }
}

/// A moto server with a bucket (versioned or not) and a KMS key, a source
/// holding the sample tree, and the engine that backs it up.
pub struct Backup {
    pub moto: Moto,
    pub bucket: &'static str,
    pub prefix: &'static str,
    pub key_arn: String,
    pub source: tempfile::TempDir,
    pub engine: Engine,
    pub manifests: tempfile::TempDir,
}

impl Backup {
    pub async fn new(bucket: &'static str, prefix: &'static str, versioned: bool) -> Backup {
        let moto = Moto::start();
        let key_arn = moto.bucket_and_key(bucket).await;
        if versioned {
            let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build();
            moto.s3()
                .put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(enabled)
                .send()
                .await
                .unwrap();
        }
        let source = tempfile::tempdir().unwrap();
        write_tree(source.path(), &sample_files());
        let manifests = tempfile::tempdir().unwrap();
        let config = settings(source.path(), manifests.path(), bucket, &key_arn, prefix);
        Backup {
            engine: moto.engine(config),
            moto,
            bucket,
            prefix,
            key_arn,
            source,
            manifests,
        }
    }

    /// One full sync, which must succeed.
    pub async fn sync(&self) -> Summary {
        let summary = self.engine.run(&SyncRequest::default()).await.unwrap();
        assert_eq!(summary.status, s3_kms_sync::manifest::RunStatus::Succeeded);
        summary
    }

    /// Another writer puts `body` at `key`, SSE-KMS under the same key,
    /// with one user metadata entry.
    pub async fn put(&self, key: &str, body: Vec<u8>, metadata: (&str, &str)) {
        self.moto
            .s3()
            .put_object()
            .bucket(self.bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .metadata(metadata.0, metadata.1)
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
            .ssekms_key_id(&self.key_arn)
            .send()
            .await
            .unwrap();
    }
}

/// `diff FROM TO` on the backup's prefix as JSON lines, which must run:
/// its summary, and the file it printed to.
pub async fn diff_json(
    backup: &Backup,
    from: &str,
    to: &str,
) -> (
    s3_kms_sync::commands::diff::DiffSummary,
    tempfile::NamedTempFile,
) {
    use s3_kms_sync::commands::diff::{self, DiffArgs, DiffOptions};
    use s3_kms_sync::config::Options;
    let args = DiffArgs {
        from: from.to_owned(),
        to: to.to_owned(),
    };
    let mut options = DiffOptions::from_args(args, Mode::Cli).unwrap();
    options.json = true;
    let out = tempfile::NamedTempFile::new().unwrap();
    let printed = Box::new(out.reopen().unwrap());
    let summary = diff::run(&backup.engine.store, backup.prefix, &options, printed)
        .await
        .unwrap();
    (summary, out)
}

/// `forget` with `args` on the backup's prefix, which must start.
pub async fn forget_with(
    backup: &Backup,
    args: s3_kms_sync::commands::forget::ForgetArgs,
) -> s3_kms_sync::commands::forget::ForgetReport {
    use s3_kms_sync::commands::forget::{self, ForgetOptions};
    use s3_kms_sync::config::Options;
    let options = ForgetOptions::from_args(args, Mode::Cli).unwrap();
    let config = &backup.engine.config;
    Box::pin(forget::run(
        &backup.engine.store,
        backup.prefix,
        &config.run,
        &options,
        None,
    ))
    .await
    .unwrap()
}

/// Every regular file under `root`, by relative path, with its bytes.
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, into: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, into);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                into.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut files = std::collections::BTreeMap::new();
    walk(root, root, &mut files);
    files
}

/// `restore` into `target` of the latest snapshot, everything, as the CLI's
/// defaults would (but 4 files at once).
pub fn restore_options(target: &Path) -> s3_kms_sync::commands::restore::RestoreOptions {
    s3_kms_sync::commands::restore::RestoreOptions {
        target_dir: target.to_path_buf(),
        manifest: None,
        filter: s3_kms_sync::local::filter::Filter::new(&[], &[]).unwrap(),
        dry_run: false,
        overwrite: false,
        concurrency: 4,
        ranges: s3_kms_sync::commands::restore::Ranges::default(),
        thaw: None,
        no_owner: false,
        allow_unsigned: false,
    }
}
