//! The command-line front end: one subcommand per command, each with the
//! shared target and run flags flattened beside its own.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

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
use crate::commands::verify::{VerifyArgs, VerifyOptions, VerifyStatus};
use crate::config::{Config, ConfigArgs};
use crate::error::Result;
use crate::manifest::RunStatus;
use crate::run::Mode;

#[derive(Debug, Parser)]
#[command(name = "s3-kms-sync", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one sync and print its summary as JSON on stdout.
    Sync(Box<ConfigArgs<SyncArgs>>),
    /// Prove a backup against its manifest and print the report as JSON.
    Verify(Box<ConfigArgs<VerifyArgs>>),
    /// Bring a manifest's tree back into a directory; print the report as JSON.
    Restore(Box<ConfigArgs<RestoreArgs>>),
    /// List the prefix's snapshots, oldest first: a table on a terminal,
    /// JSON otherwise (or with --json).
    Snapshots(Box<ConfigArgs<SnapshotsArgs>>),
    /// List the files of a snapshot ("latest" by default), optionally only
    /// those a glob matches: `size md5 path` on a terminal, JSON lines otherwise.
    Ls(Box<ConfigArgs<LsArgs>>),
    /// The files added, removed and changed (by MD5) from one snapshot to
    /// another, then a summary line.
    Diff(Box<ConfigArgs<DiffArgs>>),
    /// Every distinct content of the paths a glob matches, across
    /// snapshots: first and last snapshot, size, MD5, how to restore it.
    Find(Box<ConfigArgs<FindArgs>>),
    /// Keep the snapshots a --keep-* policy names and forget the others;
    /// with --prune, delete the object versions no kept snapshot needs.
    Forget(Box<ConfigArgs<ForgetArgs>>),
    /// Find objects not under the KMS key with a Bucket Key, and fix them;
    /// print the report as JSON.
    Audit(Box<ConfigArgs<AuditArgs>>),
    /// Set up KMS-aware replication of the buckets in a sheet (plan prints
    /// the changes, apply makes them); print the report as JSON.
    Replication(ReplicationArgs),
    /// Remove the prefix's lock when the run that took it is gone (its lease
    /// expired); a live lock only with --force. Exit 3 when it is live.
    Unlock(Box<ConfigArgs<UnlockArgs>>),
    /// Print the MD5 this tool would record for each file, as md5sum does.
    Md5 {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

/// Exit status: 0 when every file was uploaded or skipped (or verified, or
/// compliant), 1 when a file or the manifest failed (or verify found a
/// problem, or audit findings remain), 2 when the run could not start, 3
/// when another run held the lock.
pub async fn run(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // The SDK's own warnings (a region looked up in IMDS, say) are
            // noise beside the one-line error that names the cause.
            EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                EnvFilter::new("info,aws_config=error,aws_smithy_runtime=error")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    crate::run::interrupt::listen();
    let outcome = match cli.command {
        Command::Sync(args) => sync(*args).await,
        Command::Verify(args) => verify(*args).await,
        Command::Restore(args) => restore(*args).await,
        Command::Snapshots(args) => snapshots(*args).await,
        Command::Ls(args) => ls(*args).await,
        Command::Diff(args) => diff(*args).await,
        Command::Find(args) => find(*args).await,
        Command::Forget(args) => forget(*args).await,
        Command::Unlock(args) => unlock(*args).await,
        Command::Audit(args) => audit(*args).await,
        Command::Replication(args) => replication(&args).await,
        Command::Md5 { files } => return print_md5(&files),
    };
    // A run a signal stopped exits as a process killed by it would.
    if let Some(signal) = crate::run::interrupt::received() {
        return ExitCode::from(u8::try_from(128 + signal).unwrap_or(1));
    }
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("s3-kms-sync: {err}");
            ExitCode::from(2)
        }
    }
}

fn print_md5(files: &[std::path::PathBuf]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for file in files {
        match crate::local::hash::md5_file(file) {
            Ok((digest, _)) => println!("{}  {}", digest.hex(), file.display()),
            Err(err) => {
                eprintln!("s3-kms-sync: {err}");
                status = ExitCode::from(1);
            }
        }
    }
    status
}

async fn sync(args: ConfigArgs<SyncArgs>) -> Result<u8> {
    let config = Config::<SyncOptions>::from_args(args, Mode::Cli)?;
    let store = config.connect().await;
    let summary = commands::sync::run(
        &store,
        &config.target.prefix,
        &config.run,
        &config.command,
        &SyncRequest::default(),
        None,
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(exit_code(summary.status))
}

fn exit_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Succeeded => 0,
        RunStatus::Skipped => 3,
        RunStatus::Partial | RunStatus::Failed => 1,
    }
}

async fn restore(args: ConfigArgs<RestoreArgs>) -> Result<u8> {
    let config = Config::<RestoreOptions>::from_args(args, Mode::Cli)?;
    let store = config.connect().await;
    let report = commands::restore::run(&store, &config.target.prefix, &config.command).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(exit_code(report.status))
}

async fn snapshots(args: ConfigArgs<SnapshotsArgs>) -> Result<u8> {
    let config = Config::<SnapshotsOptions>::from_args(args, Mode::Cli)?;
    let store = config.connect().await;
    let lines = commands::snapshots::run(&store, &config.target.prefix).await?;
    if json_wanted(config.command.json) {
        println!("{}", serde_json::to_string_pretty(&lines)?);
    } else {
        print!("{}", commands::snapshots::table(&lines));
    }
    Ok(0)
}

async fn ls(args: ConfigArgs<LsArgs>) -> Result<u8> {
    let mut config = Config::<LsOptions>::from_args(args, Mode::Cli)?;
    config.command.json = json_wanted(config.command.json);
    let store = config.connect().await;
    let out = Box::new(std::io::BufWriter::new(std::io::stdout()));
    commands::ls::run(&store, &config.target.prefix, &config.command, out).await?;
    Ok(0)
}

async fn diff(args: ConfigArgs<DiffArgs>) -> Result<u8> {
    let mut config = Config::<DiffOptions>::from_args(args, Mode::Cli)?;
    config.command.json = json_wanted(config.command.json);
    let store = config.connect().await;
    let out = Box::new(std::io::BufWriter::new(std::io::stdout()));
    commands::diff::run(&store, &config.target.prefix, &config.command, out).await?;
    Ok(0)
}

async fn find(args: ConfigArgs<FindArgs>) -> Result<u8> {
    let config = Config::<FindOptions>::from_args(args, Mode::Cli)?;
    let store = config.connect().await;
    let report = commands::find::run(&store, &config.target.prefix, &config.command).await?;
    if json_wanted(config.command.json) {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", commands::find::table(&report));
    }
    Ok(0)
}

async fn forget(args: ConfigArgs<ForgetArgs>) -> Result<u8> {
    let config = Config::<ForgetOptions>::from_args(args, Mode::Cli)?;
    let store = config.connect().await;
    let report = commands::forget::run(
        &store,
        &config.target.prefix,
        &config.run,
        &config.command,
        None,
    )
    .await?;
    if json_wanted(config.command.json) {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", commands::forget::table(&report));
    }
    Ok(match report.status {
        ForgetStatus::Succeeded => 0,
        ForgetStatus::Partial => 1,
        ForgetStatus::Skipped => 3,
    })
}

async fn unlock(args: ConfigArgs<UnlockArgs>) -> Result<u8> {
    let config = Config::<UnlockOptions>::from_args(args, Mode::Cli)?;
    let store = config.connect().await;
    let unlocked =
        commands::unlock::run(&store, &config.target.prefix, &config.run, &config.command).await?;
    println!("{}", serde_json::to_string_pretty(&unlocked)?);
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

async fn verify(args: ConfigArgs<VerifyArgs>) -> Result<u8> {
    let request = args.command.request.clone();
    let config = Config::<VerifyOptions>::from_args(args, Mode::Cli)?;
    let store = config.connect().await;
    let report =
        commands::verify::run(&store, &config.target.prefix, &config.command, &request).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(match report.status {
        VerifyStatus::Ok => 0,
        VerifyStatus::Problems => 1,
    })
}

async fn audit(args: ConfigArgs<AuditArgs>) -> Result<u8> {
    let request = args.command.request.clone();
    let config = Config::<AuditOptions>::from_args(args, Mode::Cli)?;
    let store = config.connect().await;
    let report =
        commands::audit::run(&store, &config.target.prefix, &config.command, &request).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(match report.status {
        AuditStatus::Compliant => 0,
        AuditStatus::Findings => 1,
    })
}

async fn replication(args: &ReplicationArgs) -> Result<u8> {
    let shared = aws_config::load_from_env().await;
    let control = aws_sdk_s3control::Client::new(&shared);
    let clients = Clients::new(shared, crate::store::custom_endpoint());
    let report = commands::replication::run(&clients, Some(&control), args).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.all_done() { 0 } else { 1 })
}
