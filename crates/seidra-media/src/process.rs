//! Running media tools (ffmpeg, espeak-ng, piper) as child processes: each in its own process
//! group so a cancel or timeout kills the whole group, with ffmpeg's `-progress` read from
//! stdout and the tail of stderr kept for the error message.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Bytes of stderr kept for error messages.
const STDERR_TAIL_BYTES: usize = 4096;
/// Lines of stderr quoted in an error.
const STDERR_TAIL_LINES: usize = 12;

/// Why a tool run did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The executable could not be started.
    #[error("`{tool}` is not available ({reason})")]
    Missing {
        /// The executable.
        tool: String,
        /// The OS error.
        reason: String,
    },
    /// It exited unsuccessfully; `stderr` is the tail of what it printed.
    #[error("`{tool}` failed ({status}): {stderr}")]
    Failed {
        /// The executable.
        tool: String,
        /// Exit status.
        status: String,
        /// Last lines of stderr.
        stderr: String,
    },
    /// The cancellation token fired; the process group was killed.
    #[error("cancelled")]
    Cancelled,
    /// It ran past its time limit; the process group was killed.
    #[error("`{tool}` ran longer than {secs} s and was stopped")]
    Timeout {
        /// The executable.
        tool: String,
        /// The limit.
        secs: u64,
    },
    /// Reading its output failed.
    #[error("i/o error talking to `{tool}`: {reason}")]
    Io {
        /// The executable.
        tool: String,
        /// The error.
        reason: String,
    },
}

/// A tool invocation.
pub struct Run<'a> {
    /// The command (program and arguments); stdio and the process group are set by [`run`].
    pub command: Command,
    /// Bytes written to stdin (then closed); `None` = no stdin.
    pub stdin: Option<Vec<u8>>,
    /// ffmpeg: the output's length in seconds, to turn `-progress` lines into fractions
    /// (the command must carry `-progress pipe:1`). `None`: stdout is discarded.
    pub progress_total_secs: Option<f64>,
    /// Called with 0..=1 as ffmpeg reports progress.
    pub on_progress: &'a mut (dyn FnMut(f64) + Send),
    /// Fires to stop the run.
    pub cancel: &'a CancellationToken,
    /// Longest it may take.
    pub timeout: Duration,
}

/// Runs the tool to completion, relaying progress; kills its process group on cancel or timeout.
pub async fn run(run: Run<'_>) -> Result<(), ToolError> {
    let Run { mut command, stdin, progress_total_secs, on_progress, cancel, timeout } = run;
    let tool = command.as_std().get_program().to_string_lossy().into_owned();
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(if progress_total_secs.is_some() { Stdio::piped() } else { Stdio::null() })
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| ToolError::Missing { tool: tool.clone(), reason: e.to_string() })?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    let kill_group = || {
        if let Some(pgid) = pgid {
            // The group may already be gone; nothing to do then.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    };
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = pipe.write_all(&bytes).await;
            let _ = pipe.shutdown().await;
        });
    }
    let stderr_task = child.stderr.take().map(|mut err| {
        tokio::spawn(async move {
            let mut tail: VecDeque<u8> = VecDeque::with_capacity(STDERR_TAIL_BYTES);
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend(&buf[..n]);
                let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                tail.drain(..excess);
            }
            tail.into_iter().collect::<Vec<u8>>()
        })
    });
    let mut lines = child.stdout.take().map(|out| BufReader::new(out).lines());
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let status = loop {
        tokio::select! {
            () = cancel.cancelled() => {
                kill_group();
                let _ = child.wait().await;
                return Err(ToolError::Cancelled);
            }
            () = &mut deadline => {
                kill_group();
                let _ = child.wait().await;
                return Err(ToolError::Timeout { tool, secs: timeout.as_secs() });
            }
            line = async { match lines.as_mut() { Some(l) => l.next_line().await, None => std::future::pending().await } } => {
                match line {
                    Ok(Some(line)) => {
                        if let (Some(total), Some(secs)) = (progress_total_secs, out_time_secs(&line))
                            && total > 0.0
                        {
                            on_progress((secs / total).clamp(0.0, 1.0));
                        }
                    }
                    // Stdout closed: only the exit remains.
                    Ok(None) | Err(_) => lines = None,
                }
            }
            status = child.wait(), if lines.is_none() => break status,
        }
    };
    let status = status.map_err(|e| ToolError::Io { tool: tool.clone(), reason: e.to_string() })?;
    let stderr = match stderr_task {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    if status.success() {
        return Ok(());
    }
    Err(ToolError::Failed { tool, status: status.to_string(), stderr: tail_lines(&stderr) })
}

/// `out_time_us=` (or the misnamed `out_time_ms=`, also microseconds) of an ffmpeg `-progress` line, seconds.
fn out_time_secs(line: &str) -> Option<f64> {
    let value = line.strip_prefix("out_time_us=").or_else(|| line.strip_prefix("out_time_ms="))?;
    value.trim().parse::<i64>().ok().filter(|v| *v >= 0).map(|us| us as f64 / 1e6)
}

/// The last lines of a tool's stderr, as one string.
fn tail_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_parse() {
        assert_eq!(out_time_secs("out_time_us=1500000"), Some(1.5));
        assert_eq!(out_time_secs("out_time_ms=500000"), Some(0.5));
        assert_eq!(out_time_secs("out_time_us=N/A"), None);
        assert_eq!(out_time_secs("frame=3"), None);
        assert_eq!(tail_lines(b"a\n\nb\nc\n"), "a\nb\nc");
    }
}
