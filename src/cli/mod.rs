//! The command-line front end: one subcommand per command, each with the
//! shared target and run flags flattened beside its own. stdout carries
//! the result (JSON off a terminal, a few lines on one); stderr the log
//! and the progress.

mod env_value;
mod human;
mod logging;
mod versioning;

use std::io::Write;
use std::process::ExitCode;

use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand};
use serde::Serialize;

use crate::commands;
use crate::commands::audit::{AuditArgs, AuditOptions, AuditStatus};
use crate::commands::diff::{DiffArgs, DiffOptions};
use crate::commands::find::{FindArgs, FindOptions};
use crate::commands::forget::{ForgetArgs, ForgetOptions, ForgetStatus};
use crate::commands::listing::json_wanted;
use crate::commands::ls::{LsArgs, LsOptions};
use crate::commands::replication::{Clients, ReplicationArgs};
use crate::commands::restore::{RestoreArgs, RestoreOptions};
use crate::commands::snapshots::{SnapshotsArgs, SnapshotsOptions};
use crate::commands::sync::{SyncArgs, SyncOptions, SyncRequest};
use crate::commands::unlock::{UnlockArgs, UnlockOptions, Unlocked};
use crate::commands::verify::{VerifyArgs, VerifyOptions, VerifyStatus, Warning};
use crate::config::{Config, ConfigArgs, Options};
use crate::error::{Error, Result};
use crate::manifest::RunStatus;
use crate::run::{Mode, NoLockArgs};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "s3-kms-sync",
    version,
    about,
    after_help = "Settings also come from SYNC_* variables (each flag's help names its own).\n\
                  Exit status: 0 done; 1 a file or a check failed; 2 could not start; 3 another run holds the lock;\n\
                  130/143 stopped by SIGINT/SIGTERM."
)]
pub struct Cli {
    #[command(flatten)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

/// How much is said, and in which form; for every command.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Output")]
pub struct Output {
    /// Print the result as JSON even on a terminal (it is JSON whenever
    /// stdout is not one).
    #[arg(long, global = true)]
    pub json: bool,
    /// Say less on stderr: -q warnings and errors, no progress; -qq errors only.
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    /// Say more on stderr: -v this tool's debug log; -vv everyone's, the
    /// SDK's requests included. RUST_LOG, when set, wins over both.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// A command that writes and takes the prefix's lock.
type Writer<A> = Box<ConfigArgs<A>>;
/// A command that only reads: no KMS key id, no lock.
type Reader<A> = Box<ConfigArgs<A, NoLockArgs>>;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back the source directory up: upload what changed, record every
    /// file in a signed manifest (a snapshot).
    Sync(Writer<SyncArgs>),
    /// Prove that a snapshot can be restored: every object, version, key
    /// and link of the manifest chain checked.
    Verify(Reader<VerifyArgs>),
    /// Bring a snapshot's tree back into a directory: contents, modes,
    /// owners, times, empty directories and links, synced to disk.
    Restore(Reader<RestoreArgs>),
    /// List the prefix's snapshots, oldest first.
    Snapshots(Reader<SnapshotsArgs>),
    /// List the files of a snapshot ("latest" by default), optionally only
    /// those a glob matches: `size md5 path`, or JSON lines.
    Ls(Reader<LsArgs>),
    /// The files added, removed and changed (by MD5) from one snapshot to
    /// another, then a summary line.
    Diff(Reader<DiffArgs>),
    /// Every distinct content of the paths a glob matches, across
    /// snapshots: first and last snapshot, size, MD5, how to restore it.
    Find(Reader<FindArgs>),
    /// Keep the snapshots a --keep-* policy names and forget the others;
    /// with --prune, delete the object versions no kept snapshot needs.
    Forget(Writer<ForgetArgs>),
    /// Find objects not under the KMS key with a Bucket Key, and fix them.
    Audit(Box<ConfigArgs<AuditArgs, NoLockArgs>>),
    /// Set up KMS-aware replication of the buckets in a sheet (plan prints
    /// the changes, apply makes them); the report is JSON.
    Replication(ReplicationArgs),
    /// Remove the prefix's lock when the run that took it is gone (its lease
    /// expired); a live lock only with --force. Exit 3 when it is live.
    Unlock(Writer<UnlockArgs>),
    /// Print the MD5 this tool records for each file, as md5sum does: the
    /// digest a sync compares, whatever the object's ETag says.
    Md5 {
        /// The files to hash.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Print a completion script for a shell: `s3-kms-sync completions bash
    /// > /etc/bash_completion.d/s3-kms-sync`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// The command line, parsed; a bad value from an environment variable is
/// reported by the variable's name. Exits 2 on a usage error.
pub fn parse() -> Cli {
    let argv: Vec<String> = std::env::args().collect();
    Cli::try_parse_from(&argv).unwrap_or_else(|err| {
        match env_value::explained(&err, &Cli::command(), &argv) {
            Some(text) => {
                eprint!("{text}");
                std::process::exit(2);
            }
            None => err.exit(),
        }
    })
}

/// Exit status: 0 when every file was uploaded or skipped (or verified, or
/// compliant), 1 when a file or the manifest failed (or verify found a
/// problem, or audit findings remain), 2 when the run could not start, 3
/// when another run held the lock, 128 plus the signal when one stopped it.
pub async fn run(cli: Cli) -> ExitCode {
    logging::init(cli.output.quiet, cli.output.verbose);
    crate::run::interrupt::listen();
    let json = json_wanted(cli.output.json);
    let outcome = match cli.command {
        Command::Sync(args) => sync(*args, json).await,
        Command::Verify(args) => verify(*args, json).await,
        Command::Restore(args) => restore(*args, json).await,
        Command::Snapshots(args) => snapshots(*args, json).await,
        Command::Ls(args) => ls(*args, json).await,
        Command::Diff(args) => diff(*args, json).await,
        Command::Find(args) => find(*args, json).await,
        Command::Forget(args) => forget(*args, json).await,
        Command::Unlock(args) => unlock(*args, json).await,
        Command::Audit(args) => audit(*args, json).await,
        Command::Replication(args) => replication(&args).await,
        Command::Md5 { files } => print_md5(&files),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "s3-kms-sync", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
    };
    // A run a signal stopped exits as a process killed by it would.
    if let Some(signal) = crate::run::interrupt::received() {
        return ExitCode::from(u8::try_from(128 + signal).unwrap_or(1));
    }
    match outcome {
        Ok(code) => ExitCode::from(code),
        // The reader of the output went away: nothing is left to tell it.
        Err(err) if err.is_closed_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("s3-kms-sync: {err}");
            ExitCode::from(2)
        }
    }
}

/// The settings validated, and the store they name.
async fn connect<O: Options>(args: ConfigArgs<O::Args, O::Run>) -> Result<(Config<O>, Store)> {
    let config = Config::<O>::from_args(args, Mode::Cli)?;
    let store = config.connect().await;
    Ok((config, store))
}

/// `value` as JSON, or as `text` renders it for a person.
fn print<T: Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) -> Result<()> {
    let shown = match json {
        true => format!("{}\n", serde_json::to_string_pretty(value)?),
        false => text(value),
    };
    write_out(&shown)
}

/// Writes to standard output, failing (not panicking, as `print!` does)
/// when its reader has gone.
fn write_out(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|err| Error::io("write", "standard output", err))
}

/// Each file's MD5 as md5sum prints it: 1 when a file could not be read.
fn print_md5(files: &[std::path::PathBuf]) -> Result<u8> {
    let mut status = 0;
    for file in files {
        match crate::local::hash::md5_file(file) {
            Ok((digest, _)) => write_out(&format!("{}  {}\n", digest.hex(), file.display()))?,
            Err(err) => {
                eprintln!("s3-kms-sync: {err}");
                status = 1;
            }
        }
    }
    Ok(status)
}

fn exit_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Succeeded => 0,
        RunStatus::Skipped => 3,
        RunStatus::Partial | RunStatus::Failed => 1,
    }
}

async fn sync(args: ConfigArgs<SyncArgs>, json: bool) -> Result<u8> {
    let (config, store) = connect::<SyncOptions>(args).await?;
    versioning::warn_if_unversioned(&store).await;
    let summary = commands::sync::run(
        &store,
        &config.target.prefix,
        &config.run,
        &config.command,
        &SyncRequest::default(),
        None,
    )
    .await?;
    print(json, &summary, human::sync)?;
    Ok(exit_code(summary.status))
}

async fn restore(args: ConfigArgs<RestoreArgs, NoLockArgs>, json: bool) -> Result<u8> {
    let (config, store) = connect::<RestoreOptions>(args).await?;
    let report = commands::restore::run(&store, &config.target.prefix, &config.command).await?;
    print(json, &report, human::restore)?;
    Ok(exit_code(report.status))
}

async fn snapshots(args: ConfigArgs<SnapshotsArgs, NoLockArgs>, json: bool) -> Result<u8> {
    let (config, store) = connect::<SnapshotsOptions>(args).await?;
    let lines = commands::snapshots::run(&store, &config.target.prefix).await?;
    print(json, &lines, |lines| commands::snapshots::table(lines))?;
    Ok(0)
}

async fn ls(args: ConfigArgs<LsArgs, NoLockArgs>, json: bool) -> Result<u8> {
    let (mut config, store) = connect::<LsOptions>(args).await?;
    config.command.json = json;
    let out = Box::new(std::io::BufWriter::new(std::io::stdout()));
    commands::ls::run(&store, &config.target.prefix, &config.command, out).await?;
    Ok(0)
}

async fn diff(args: ConfigArgs<DiffArgs, NoLockArgs>, json: bool) -> Result<u8> {
    let (mut config, store) = connect::<DiffOptions>(args).await?;
    config.command.json = json;
    let out = Box::new(std::io::BufWriter::new(std::io::stdout()));
    commands::diff::run(&store, &config.target.prefix, &config.command, out).await?;
    Ok(0)
}

async fn find(args: ConfigArgs<FindArgs, NoLockArgs>, json: bool) -> Result<u8> {
    let (config, store) = connect::<FindOptions>(args).await?;
    let report = commands::find::run(&store, &config.target.prefix, &config.command).await?;
    print(json, &report, commands::find::table)?;
    Ok(0)
}

async fn forget(args: ConfigArgs<ForgetArgs>, json: bool) -> Result<u8> {
    let (mut config, store) = connect::<ForgetOptions>(args).await?;
    config.command.whole_bucket = config.target.prefix_given;
    let prefix = &config.target.prefix;
    let report = commands::forget::run(&store, prefix, &config.run, &config.command, None).await?;
    print(json, &report, commands::forget::table)?;
    Ok(match report.status {
        ForgetStatus::Succeeded => 0,
        ForgetStatus::Partial => 1,
        ForgetStatus::Skipped => 3,
    })
}

async fn unlock(args: ConfigArgs<UnlockArgs>, json: bool) -> Result<u8> {
    let (config, store) = connect::<UnlockOptions>(args).await?;
    let prefix = &config.target.prefix;
    let unlocked = commands::unlock::run(&store, prefix, &config.run, &config.command).await?;
    print(json, &unlocked, human::unlock)?;
    Ok(match &unlocked {
        Unlocked::Held { holder } => {
            eprintln!(
                "s3-kms-sync: the lock is held by run {} (since {}, until {}); pass --force only if that run is gone",
                holder.run_id,
                crate::manifest::timestamp(holder.acquired_at),
                crate::manifest::timestamp(holder.expires_at)
            );
            3
        }
        _ => 0,
    })
}

async fn verify(args: ConfigArgs<VerifyArgs, NoLockArgs>, json: bool) -> Result<u8> {
    let request = args.command.request.clone();
    let (config, store) = connect::<VerifyOptions>(args).await?;
    let prefix = &config.target.prefix;
    let mut report = commands::verify::run(&store, prefix, &config.command, &request).await?;
    if let Some(why) = versioning::unversioned(&store).await {
        report.warnings.push(Warning {
            key: store.uri(""),
            detail: why,
        });
    }
    print(json, &report, human::verify)?;
    Ok(match report.status {
        VerifyStatus::Ok => 0,
        VerifyStatus::Problems => 1,
    })
}

async fn audit(args: ConfigArgs<AuditArgs, NoLockArgs>, json: bool) -> Result<u8> {
    let request = args.command.request.clone();
    let (config, store) = connect::<AuditOptions>(args).await?;
    let prefix = &config.target.prefix;
    let report = commands::audit::run(&store, prefix, &config.command, &request).await?;
    print(json, &report, human::audit)?;
    Ok(match report.status {
        AuditStatus::Compliant => 0,
        AuditStatus::Findings => 1,
    })
}

async fn replication(args: &ReplicationArgs) -> Result<u8> {
    let connection = &args.connection;
    let mut shared = crate::store::shared_config(connection).await;
    if let Some(url) = &connection.endpoint_url {
        // An emulator's: S3 Control goes there too.
        shared = shared.to_builder().endpoint_url(url).build();
    }
    let control = aws_sdk_s3control::Client::new(&shared);
    let path_style = connection.endpoint_url.is_some() || crate::store::custom_endpoint();
    let clients = Clients::new(shared, path_style);
    let report = commands::replication::run(&clients, Some(&control), args).await?;
    write_out(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    Ok(if report.all_done() { 0 } else { 1 })
}
