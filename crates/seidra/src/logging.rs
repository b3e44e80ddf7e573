//! Log output: JSON (Loki-ready) or pretty, filtered by `RUST_LOG` or `SEIDRA_LOG_LEVEL`.

use seidra_config::{LogFormat, Settings};
use tracing_subscriber::EnvFilter;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Servers and migrations (container log collectors read stdout).
    Stdout,
    /// CLI commands whose stdout is their output.
    Stderr,
}

/// Parses the filter directive in effect, naming the setting when it is invalid.
pub fn filter(settings: &Settings) -> anyhow::Result<EnvFilter> {
    if let Ok(directive) = std::env::var("RUST_LOG") {
        return EnvFilter::try_new(&directive).map_err(|e| anyhow::anyhow!("RUST_LOG `{directive}` is invalid: {e}"));
    }
    EnvFilter::try_new(&settings.log_level)
        .map_err(|e| anyhow::anyhow!("SEIDRA_LOG_LEVEL `{}` is invalid: {e}", settings.log_level))
}

/// Installs the global subscriber.
pub fn init(settings: &Settings, target: Target) -> anyhow::Result<()> {
    let filter = filter(settings)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match (settings.effective_log_format(), target) {
        (LogFormat::Json, Target::Stdout) => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
        }
        (LogFormat::Json, Target::Stderr) => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .try_init(),
        (LogFormat::Pretty, Target::Stdout) => builder.compact().try_init(),
        (LogFormat::Pretty, Target::Stderr) => builder.compact().with_writer(std::io::stderr).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
