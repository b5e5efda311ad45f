//! The command-line front end over the same engine.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{Mode, Settings, SyncArgs};
use crate::error::{Error, Result};
use crate::manifest::RunStatus;
use crate::remote::s3_client;
use crate::request::RunRequest;
use crate::sync::Engine;

#[derive(Debug, Parser)]
#[command(name = "s3-kms-sync", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one sync and print its summary as JSON on stdout.
    Sync(SyncArgs),
    /// Print the MD5 this tool would record for each file, as md5sum does.
    Md5 {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

impl SyncArgs {
    /// The settings from the environment alone, as under Lambda.
    pub fn from_env() -> Result<Self> {
        #[derive(Parser)]
        struct EnvOnly {
            #[command(flatten)]
            args: SyncArgs,
        }
        EnvOnly::try_parse_from(["s3-kms-sync"])
            .map(|parsed| parsed.args)
            .map_err(|err| Error::Config(err.to_string()))
    }
}

/// Exit status: 0 when every file was uploaded or skipped, 1 when a file or
/// the manifest failed, 2 when the run could not start, 3 when another run
/// held the lock.
pub async fn run(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match cli.command {
        Command::Sync(args) => args,
        Command::Md5 { files } => return print_md5(&files),
    };
    match sync(args).await {
        Ok(RunStatus::Succeeded) => ExitCode::SUCCESS,
        Ok(RunStatus::Skipped) => ExitCode::from(3),
        Ok(RunStatus::Partial | RunStatus::Failed) => ExitCode::from(1),
        Err(err) => {
            eprintln!("s3-kms-sync: {err}");
            ExitCode::from(2)
        }
    }
}

fn print_md5(files: &[std::path::PathBuf]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for file in files {
        match crate::hash::md5_file(file) {
            Ok((digest, _)) => println!("{}  {}", digest.hex(), file.display()),
            Err(err) => {
                eprintln!("s3-kms-sync: {err}");
                status = ExitCode::from(1);
            }
        }
    }
    status
}

async fn sync(args: SyncArgs) -> Result<RunStatus> {
    let settings = Settings::from_args(args, Mode::Cli)?;
    let engine = Engine::new(s3_client(settings.max_attempts).await, settings);
    let summary = engine.run(&RunRequest::default()).await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(summary.status)
}
