//! `cargo xtask`: developer commands for the redsem workspace (std only).
//!
//! `cargo xtask test [CARGO_TEST_ARGS] [-- TEST_ARGS]` makes sure the test
//! prerequisites are on `PATH` (`redis-server` and `redis-cli` of Redis 7.0
//! or newer, Node.js and npm), installs the missing ones with the platform's
//! package manager (apt-get, dnf or Homebrew) after saying what it installs,
//! then runs `cargo test --workspace` and the opt-in Node interop tests
//! (`cargo test --test node_interop -- --ignored`) and prints a summary.

mod tools;

use std::env;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus, Stdio};

const USAGE: &str = "\
Usage: cargo xtask <command>

Commands:
  test [CARGO_TEST_ARGS] [-- TEST_ARGS]
        Installs redis-server/redis-cli (Redis 7.0+), Node.js and npm when they
        are missing or too old (apt-get, dnf or Homebrew), then runs
            cargo test --workspace [CARGO_TEST_ARGS] [-- TEST_ARGS]
            cargo test --test node_interop [CARGO_TEST_ARGS] -- --ignored [TEST_ARGS]
        and prints a summary. Exits with the first failing run's exit code.
  help  Prints this message.
";

fn main() -> ExitCode {
    let mut args = env::args_os().skip(1);
    let command = args.next();
    match command.as_ref().and_then(|c| c.to_str()) {
        Some("test") => test(args.collect()),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        None => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
        Some(_) => {
            eprintln!(
                "cargo xtask: unknown command {:?}\n\n{USAGE}",
                command.unwrap_or_default()
            );
            ExitCode::from(2)
        }
    }
}

/// `cargo xtask test`.
fn test(args: Vec<OsString>) -> ExitCode {
    if let Err(message) = tools::ensure_installed() {
        eprintln!("{message}");
        return ExitCode::FAILURE;
    }

    // Arguments before `--` go to cargo, the rest to the test binaries.
    let split = args.iter().position(|a| a == "--");
    let (cargo_args, test_args) = match split {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (&args[..], &[][..]),
    };

    let mut workspace: Vec<OsString> = vec!["test".into(), "--workspace".into()];
    workspace.extend(cargo_args.iter().cloned());
    if split.is_some() {
        workspace.push("--".into());
        workspace.extend(test_args.iter().cloned());
    }
    let mut node: Vec<OsString> = vec!["test".into(), "--test".into(), "node_interop".into()];
    node.extend(cargo_args.iter().cloned());
    node.extend(["--".into(), "--ignored".into()]);
    node.extend(test_args.iter().cloned());

    let runs = [
        run_cargo_test("every test, against private redis-servers", &workspace),
        run_cargo_test(
            "Node interop (redis-semaphore from the npm registry)",
            &node,
        ),
    ];

    println!("\n== cargo xtask test: summary");
    for run in &runs {
        let outcome = match &run.status {
            Ok(status) if status.success() => "ok".to_owned(),
            Ok(status) => format!("FAILED ({status})"),
            Err(e) => format!("FAILED (could not run cargo: {e})"),
        };
        println!(
            "  {:<58} {outcome}: {} passed, {} failed, {} ignored ({} `test result` line{})",
            run.command,
            run.counts.passed,
            run.counts.failed,
            run.counts.ignored,
            run.counts.results,
            if run.counts.results == 1 { "" } else { "s" },
        );
    }
    match runs
        .iter()
        .find(|r| !matches!(&r.status, Ok(s) if s.success()))
    {
        None => ExitCode::SUCCESS,
        Some(failed) => {
            let code = failed.status.as_ref().ok().and_then(ExitStatus::code);
            ExitCode::from(code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1))
        }
    }
}

/// The outcome of one `cargo test` run.
#[derive(Debug)]
struct Run {
    command: String,
    status: io::Result<ExitStatus>,
    counts: Counts,
}

/// Sums of the `test result:` lines of one run.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    results: u32,
    passed: u32,
    failed: u32,
    ignored: u32,
}

impl Counts {
    /// Adds one output line if it is a libtest `test result:` line.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim_start().strip_prefix("test result: ") else {
            return;
        };
        self.results += 1;
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(number)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = number.parse::<u32>() else {
                continue;
            };
            match label {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// Runs `cargo <args>` in the workspace root, passing its stdout through
/// line by line (so CI still sees every `test result:` line) while counting.
fn run_cargo_test(title: &str, args: &[OsString]) -> Run {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let command = format!(
        "cargo {}",
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("\n== {title}: {command}");
    let mut counts = Counts::default();
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            let copied = match child.stdout.take() {
                Some(out) => copy_counting(out, &mut counts),
                None => Ok(()),
            };
            // Wait also when copying failed, so no cargo outlives us.
            let status = child.wait();
            copied.and(status)
        });
    Run {
        command,
        status,
        counts,
    }
}

/// Copies `out` to stdout line by line, counting `test result:` lines.
fn copy_counting(out: impl io::Read, counts: &mut Counts) -> io::Result<()> {
    let mut out = BufReader::new(out);
    let mut line = Vec::new();
    let stdout = io::stdout();
    loop {
        line.clear();
        if out.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let mut lock = stdout.lock();
        lock.write_all(&line)?;
        lock.flush()?;
        counts.add_line(&String::from_utf8_lossy(&line));
    }
}

/// The workspace root: this crate lives in `<root>/crates/xtask`.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.clone(), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn counts_test_result_lines() {
        let mut counts = Counts::default();
        for line in [
            "running 3 tests",
            "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.52s",
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 5 filtered out; finished in 1.00s\n",
            "test something ... ok",
        ] {
            counts.add_line(line);
        }
        assert_eq!(
            counts,
            Counts {
                results: 2,
                passed: 13,
                failed: 2,
                ignored: 3,
            }
        );
    }
}
