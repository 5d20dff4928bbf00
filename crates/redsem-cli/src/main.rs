//! `redsem`: run a command under a distributed mutex or semaphore on Redis.
//!
//! See the crate's README.md and `redsem --help` for the interface and the
//! exit statuses.

mod cli;
mod duration;
mod node;
mod run;
mod status;

use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::Parser;

use crate::cli::{code, Cli, Command};

/// What goes to stderr besides errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    /// `-q`: no warnings.
    pub(crate) quiet: bool,
    /// `-v` count.
    pub(crate) verbose: u8,
    /// Draw the status line while waiting (on a terminal only).
    pub(crate) status_line: bool,
}

impl Output {
    /// A note shown with `-v`.
    pub(crate) fn info(&self, message: &str) {
        if self.verbose > 0 {
            eprintln!("redsem: {message}");
        }
    }

    /// A warning, unless `-q`.
    pub(crate) fn warn(&self, message: &str) {
        if !self.quiet {
            eprintln!("redsem: warning: {message}");
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits 2 on bad usage; redsem exits 64 (EX_USAGE).
            let status = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => code::USAGE,
            };
            // Prints help/version on stdout, errors on stderr.
            let _ = e.print();
            return ExitCode::from(status);
        }
    };
    let out = Output {
        quiet: cli.quiet,
        verbose: cli.verbose,
        status_line: !cli.quiet,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redsem: cannot start the tokio runtime: {e}");
            return ExitCode::from(code::FAILURE);
        }
    };
    let status = runtime.block_on(async move {
        let status = match cli.command {
            Command::Run(args) => match args.lock.resolve_urls() {
                Ok(urls) => run::run(args, urls, out).await,
                Err(e) => usage(&e),
            },
            Command::Status(args) => match args.lock.resolve_urls() {
                Ok(urls) => status::status(&args, &urls).await,
                Err(e) => usage(&e),
            },
        };
        // Let releases of dropped guards finish (bounded).
        redsem_core::flush(Duration::from_secs(2)).await;
        status
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(status)
}

/// Reports a usage error found after parsing.
fn usage(message: &str) -> u8 {
    eprintln!("redsem: error: {message}");
    eprintln!("For more information, try '--help'.");
    code::USAGE
}
