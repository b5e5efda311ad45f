//! The Lambda function: the store and the settings are built once at cold
//! start; each invocation is turned into a command and run.

mod deadline;
pub mod event;
pub mod handler;

use crate::commands::sync::{SyncArgs, SyncOptions};
use crate::config::{Config, ConfigArgs};
use crate::error::Result;
use crate::run::Mode;
use crate::store::Store;

pub use event::Invocation;
pub use handler::handle;

/// What the function builds once and every invocation uses.
#[derive(Debug, Clone)]
pub struct Function {
    pub store: Store,
    pub config: Config<SyncOptions>,
}

impl Function {
    pub fn new(client: aws_sdk_s3::Client, config: Config<SyncOptions>) -> Self {
        Function {
            store: config.store(client),
            config,
        }
    }
}

/// Serves the Lambda runtime API until the runtime shuts the process down.
/// A bad configuration fails the cold start, so Lambda reports an init error
/// naming the variable to fix.
pub async fn serve() -> std::result::Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let function = from_env().await?;
    let function = &function;
    lambda_runtime::run(lambda_runtime::service_fn(move |event| {
        handle(function, event)
    }))
    .await
}

/// The settings from the environment, checked before the client is built.
async fn from_env() -> Result<Function> {
    let config = Config::from_args(ConfigArgs::<SyncArgs>::from_env()?, Mode::Lambda)?;
    let store = config.connect().await;
    Ok(Function { store, config })
}
