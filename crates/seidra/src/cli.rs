//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// SEIDRA Ultimate: self-hosted AI media studio.
#[derive(Debug, Parser)]
#[command(name = "seidra", version, about, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file (also `SEIDRA_CONFIG`); environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// All-in-one: apply migrations, then run the API, in-process workers and the UI.
    Up,
    /// API server only (expects migrations to have been applied).
    Serve,
    /// A generation worker process.
    Worker {
        /// Jobs run at once by this worker (default: SEIDRA_WORKER__CONCURRENCY).
        #[arg(long)]
        concurrency: Option<u32>,
    },
    /// Database schema migrations.
    Migrate {
        /// Migration action.
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Manage accounts.
    User {
        /// User action.
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage API keys.
    Apikey {
        /// API key action.
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Print the OpenAPI document (JSON).
    Openapi,
    /// Inspect the configuration.
    Config {
        /// Config action.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `seidra migrate …`
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the N most recent migrations (default 1).
    Down {
        /// How many to revert.
        #[arg(default_value_t = 1)]
        steps: usize,
    },
    /// List applied and pending migrations and the current version.
    Status,
}

/// `seidra user …`
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an account (password from --password-stdin, else generated and printed).
    Create {
        /// Login name.
        username: String,
        /// `user` or `admin`.
        #[arg(long, default_value = "user")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Set a new password (from --password-stdin, else generated and printed); signs the user out.
    SetPassword {
        /// Login name.
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account (or re-enable it with --enable).
    Disable {
        /// Login name.
        username: String,
        /// Re-enable instead.
        #[arg(long)]
        enable: bool,
    },
    /// Change an account's role.
    SetRole {
        /// Login name.
        username: String,
        /// `user` or `admin`.
        role: String,
    },
}

/// `seidra apikey …`
#[derive(Debug, Subcommand)]
pub enum ApiKeyAction {
    /// Create an API key for a user and print its token once.
    Create {
        /// Owner's login name.
        username: String,
        /// Label.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: read, generate, admin.
        #[arg(long, default_value = "read,generate")]
        scopes: String,
        /// Lifetime in days (default: no expiry).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List a user's API keys.
    List {
        /// Owner's login name.
        username: String,
    },
    /// Revoke an API key by id.
    Revoke {
        /// Owner's login name.
        username: String,
        /// Key id (as listed).
        id: String,
    },
}

/// `seidra config …`
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration (secrets masked); exit non-zero when it is invalid.
    Check,
}
