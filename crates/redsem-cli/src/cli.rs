//! The command line, as clap sees it.

use std::ffi::OsString;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::duration::parse_duration;

/// Exit statuses, after BSD's sysexits.h where one fits.
pub(crate) mod code {
    /// Bad usage: unknown option, bad duration, 2 URLs...
    pub(crate) const USAGE: u8 = 64;
    /// Redis could not be reached.
    pub(crate) const UNAVAILABLE: u8 = 69;
    /// The lock was lost while the command ran; the command was stopped.
    pub(crate) const LOST: u8 = 70;
    /// The lock stayed busy until `--wait` ran out.
    pub(crate) const BUSY: u8 = 75;
    /// Any other failure of redsem itself.
    pub(crate) const FAILURE: u8 = 1;
}

const EXIT_CODES: &str = "\
Exit status of `redsem run`:
  the command's own   the command ran (128 + N when a signal N ended it,
                      e.g. 137 for SIGKILL, 143 for SIGTERM)
  64                  bad usage (unknown option, bad duration, 2 URLs...)
  69                  Redis could not be reached
  70                  the lock was lost while the command ran; the command
                      was stopped (SIGTERM to its process group, SIGKILL
                      after --kill-after)
  75                  the lock stayed busy until --wait ran out
  126, 127            the command could not be run / was not found
  1                   any other error of redsem itself

Signals: SIGINT, SIGTERM and SIGHUP sent to redsem are forwarded to the
command's process group; the lock is released when the command exits.
If redsem itself is killed with SIGKILL it cannot release the lock: the
lock then expires after --lock-timeout.";

/// Run a command under a distributed mutex or semaphore on Redis.
///
/// The lock is taken before the command starts, refreshed while it runs and
/// released when it exits. Locks are stored as redis-semaphore stores them
/// (`mutex:<KEY>`, `semaphore:<KEY>`), so they interoperate with
/// redis-semaphore and the redsem library.
#[derive(Debug, Parser)]
#[command(name = "redsem", version, after_long_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Less output: no status line while waiting, no warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// More output on stderr (repeat for more).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run COMMAND while holding the lock KEY.
    ///
    /// The command runs in its own process group with REDSEM_KEY and
    /// REDSEM_IDENTIFIER in its environment; stdin, stdout and stderr pass
    /// through. Its exit status becomes redsem's.
    #[command(after_long_help = EXIT_CODES)]
    Run(RunArgs),
    /// Show who holds the lock KEY and for how long.
    Status(StatusArgs),
}

/// Where the lock lives and what kind it is.
#[derive(Debug, Args)]
pub(crate) struct LockArgs {
    /// Redis URL. Give it 3 or more times for Redlock over independent
    /// nodes. Default: $REDSEM_URL, else redis://127.0.0.1:6379.
    #[arg(long = "url", value_name = "URL")]
    pub(crate) urls: Vec<String>,
    /// A semaphore with N holders instead of a mutex.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) limit: Option<u32>,
    /// The lock's TTL in Redis, refreshed (every third of it) while the
    /// command runs.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub(crate) lock_timeout: Duration,
}

/// `redsem run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) lock: LockArgs,
    /// Take P of the N slots of the semaphore (a multi-semaphore).
    #[arg(long, value_name = "P", requires = "limit",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) permits: Option<u32>,
    /// How long to wait for the lock: 0 makes one attempt. Default: forever.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub(crate) wait: Option<Duration>,
    /// When the lock is lost: SIGTERM to the command's process group, then
    /// SIGKILL after this long.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub(crate) kill_after: Duration,
    /// The lock's name (stored as mutex:KEY or semaphore:KEY).
    #[arg(value_name = "KEY")]
    pub(crate) key: String,
    /// The command to run, after `--`.
    #[arg(value_name = "COMMAND", last = true, required = true, num_args = 1..)]
    pub(crate) command: Vec<OsString>,
}

/// `redsem status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) lock: LockArgs,
    /// Machine-readable output (one JSON object).
    #[arg(long)]
    pub(crate) json: bool,
    /// The lock's name.
    #[arg(value_name = "KEY")]
    pub(crate) key: String,
}

/// Default Redis URL when neither `--url` nor `$REDSEM_URL` gives one.
pub(crate) const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

impl LockArgs {
    /// The URLs to use: `--url`s, else `$REDSEM_URL`, else the default;
    /// an error (usage) for 2 URLs.
    pub(crate) fn resolve_urls(&self) -> Result<Vec<String>, String> {
        let urls = if !self.urls.is_empty() {
            self.urls.clone()
        } else {
            match std::env::var("REDSEM_URL") {
                Ok(url) if !url.trim().is_empty() => vec![url.trim().to_owned()],
                _ => vec![DEFAULT_URL.to_owned()],
            }
        };
        if urls.len() == 2 {
            return Err(
                "Redlock needs 3 or more independent nodes (--url given 2 times); \
                 give --url once for one Redis, or 3 or more times"
                    .to_owned(),
            );
        }
        for url in &urls {
            redsem_redis::redis::Client::open(url.as_str())
                .map_err(|e| format!("invalid Redis URL {}: {e}", redact(url)))?;
        }
        Ok(urls)
    }
}

/// `url` with its password, if any, replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("redis://u:p@ss@h:1"), "redis://u:***@h:1");
        assert_eq!(redact("redis://user@h"), "redis://user@h");
    }

    #[test]
    fn run_takes_the_command_after_double_dash() {
        let cli = Cli::try_parse_from(["redsem", "run", "k", "--", "echo", "-n", "x"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.key, "k");
        assert_eq!(run.command, ["echo", "-n", "x"]);
        assert!(Cli::try_parse_from(["redsem", "run", "k"]).is_err());
        assert!(Cli::try_parse_from(["redsem", "run", "--permits", "2", "k", "--", "x"]).is_err());
    }
}
