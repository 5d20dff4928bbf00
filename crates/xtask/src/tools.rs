//! Finds the programs the tests need on `PATH` and installs the missing ones
//! with the platform's package manager.

use std::env;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A program the tests need on `PATH`.
#[derive(Debug)]
struct Tool {
    program: &'static str,
    /// The oldest usable (major, minor) version.
    min: (u32, u32),
    /// What to install by hand, for the message when installing fails.
    by_hand: &'static str,
    apt: &'static str,
    dnf: &'static str,
    brew: &'static str,
}

const REDIS_BY_HAND: &str = "Redis 7.0 or newer with redis-server and redis-cli \
    (Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install redis; \
    macOS: brew install redis; or https://redis.io/downloads/)";
const NODE_BY_HAND: &str = "Node.js 14.17 or newer with npm \
    (Debian/Ubuntu: apt-get install nodejs npm; Fedora: dnf install nodejs npm; \
    macOS: brew install node; or https://nodejs.org/)";

/// Everything `cargo xtask test` needs: the Redis tests start private
/// redis-servers (clusters also use redis-cli), the Node interop tests run
/// redis-semaphore 5.7.0 (Node >= 14.17) installed with `npm ci`.
const TOOLS: [Tool; 4] = [
    Tool {
        program: "redis-server",
        min: (7, 0),
        by_hand: REDIS_BY_HAND,
        apt: "redis-server",
        dnf: "redis",
        brew: "redis",
    },
    Tool {
        program: "redis-cli",
        min: (7, 0),
        by_hand: REDIS_BY_HAND,
        apt: "redis-server",
        dnf: "redis",
        brew: "redis",
    },
    Tool {
        program: "node",
        min: (14, 17),
        by_hand: NODE_BY_HAND,
        apt: "nodejs",
        dnf: "nodejs",
        brew: "node",
    },
    Tool {
        program: "npm",
        min: (7, 0),
        by_hand: NODE_BY_HAND,
        apt: "npm",
        dnf: "npm",
        brew: "node",
    },
];

/// Where package managers put programs; searched after an install that did
/// not put a program on `PATH`, to tell the user which directory to add.
const INSTALL_DIRS: [&str; 7] = [
    "/usr/bin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/local/sbin",
    "/opt/homebrew/bin",
    "/home/linuxbrew/.linuxbrew/bin",
    "/snap/bin",
];

/// What was found for one tool.
#[derive(Debug)]
enum Found {
    /// On `PATH` with a new enough version.
    Usable { path: PathBuf, version: String },
    /// Not on `PATH`.
    Missing,
    /// On `PATH`, but older than needed (`None`: its version is unreadable).
    TooOld {
        path: PathBuf,
        version: Option<String>,
    },
}

impl Found {
    fn is_usable(&self) -> bool {
        matches!(self, Found::Usable { .. })
    }
}

fn check(tool: &Tool) -> Found {
    let Some(path) = find_on_path(tool.program) else {
        return Found::Missing;
    };
    match version_of(&path) {
        Some((version, major_minor)) if major_minor >= tool.min => Found::Usable { path, version },
        Some((version, _)) => Found::TooOld {
            path,
            version: Some(version),
        },
        None => Found::TooOld {
            path,
            version: None,
        },
    }
}

fn describe(tool: &Tool, found: &Found) -> String {
    let (min_major, min_minor) = tool.min;
    match found {
        Found::Usable { path, version } => {
            format!("{} {version} ({})", tool.program, path.display())
        }
        Found::Missing => format!("{} is not on PATH", tool.program),
        Found::TooOld {
            path,
            version: Some(version),
        } => format!(
            "{} {version} ({}) is older than the {min_major}.{min_minor} the tests need",
            tool.program,
            path.display()
        ),
        Found::TooOld {
            path,
            version: None,
        } => format!(
            "{} ({}) printed no version for `--version`; the tests need {min_major}.{min_minor} or newer",
            tool.program,
            path.display()
        ),
    }
}

/// Makes sure every tool is on `PATH`, installing what is missing or too
/// old. `Err` holds the message to print before giving up.
pub(crate) fn ensure_installed() -> Result<(), String> {
    let found: Vec<(&Tool, Found)> = TOOLS.iter().map(|t| (t, check(t))).collect();
    let lacking: Vec<&Tool> = found
        .iter()
        .filter(|(_, f)| !f.is_usable())
        .map(|(t, _)| *t)
        .collect();
    if lacking.is_empty() {
        print_found(&found);
        return Ok(());
    }
    for (tool, f) in found.iter().filter(|(_, f)| !f.is_usable()) {
        println!("cargo xtask: {}", describe(tool, f));
    }

    let manager = Manager::detect().ok_or_else(|| {
        by_hand(
            &lacking,
            &format!(
                "no {} found",
                if cfg!(target_os = "macos") {
                    "Homebrew (brew)"
                } else {
                    "apt-get, dnf or brew"
                }
            ),
        )
    })?;
    let sudo = match manager {
        Manager::Brew => false,
        Manager::Apt | Manager::Dnf if is_root() => false,
        Manager::Apt | Manager::Dnf if find_on_path("sudo").is_some() => true,
        Manager::Apt | Manager::Dnf => {
            return Err(by_hand(
                &lacking,
                &format!("{manager} needs root, and this is neither root nor has sudo"),
            ))
        }
    };
    let mut packages: Vec<&str> = Vec::new();
    for tool in &lacking {
        let package = manager.package(tool);
        if !packages.contains(&package) {
            packages.push(package);
        }
    }
    let steps = manager.steps(&packages, sudo);
    println!(
        "cargo xtask: installing {} with {manager}:",
        packages.join(" ")
    );
    for step in &steps {
        match step.unless_found {
            Some(program) => println!("    {step}    (only if {program} is still missing then)"),
            None => println!("    {step}"),
        }
    }
    for step in &steps {
        if let Some(program) = step.unless_found.filter(|p| installed_anywhere(p)) {
            println!("cargo xtask: skipping {step}: {program} is installed now");
            continue;
        }
        println!("cargo xtask: running {step}");
        let status = step.command().status();
        match status {
            Ok(status) if status.success() => {}
            // A failed index refresh often still leaves a usable index.
            _ if step.may_fail => println!(
                "cargo xtask: `{step}` failed ({}); trying the install anyway",
                outcome(&status)
            ),
            _ => {
                return Err(by_hand(
                    &lacking,
                    &format!("`{step}` failed ({})", outcome(&status)),
                ))
            }
        }
    }

    // Look again: the install must have put usable programs on PATH.
    let found: Vec<(&Tool, Found)> = TOOLS.iter().map(|t| (t, check(t))).collect();
    let still: Vec<(&Tool, &Found)> = found
        .iter()
        .filter(|(_, f)| !f.is_usable())
        .map(|(t, f)| (*t, f))
        .collect();
    if still.is_empty() {
        print_found(&found);
        return Ok(());
    }
    // Installed, but into a directory that is not on PATH?
    let mut off_path: Vec<(&Tool, PathBuf)> = Vec::new();
    let mut not_installed: Vec<(&Tool, &Found)> = Vec::new();
    for (tool, f) in still {
        let elsewhere = match f {
            Found::Missing => INSTALL_DIRS
                .iter()
                .map(|dir| Path::new(dir).join(tool.program))
                .find(|p| is_executable(p)),
            _ => None,
        };
        match elsewhere {
            Some(path) => off_path.push((tool, path)),
            None => not_installed.push((tool, f)),
        }
    }
    let mut message = String::new();
    if !off_path.is_empty() {
        message.push_str(&format!(
            "cargo xtask: {manager} finished, but these programs are in directories not on PATH:\n"
        ));
        let mut dirs: Vec<String> = Vec::new();
        for (tool, path) in &off_path {
            message.push_str(&format!("  {}: {}\n", tool.program, path.display()));
            let dir = path.parent().unwrap_or(path).display().to_string();
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        message.push_str(&format!(
            "Add {} to PATH (export PATH=\"{}:$PATH\") and run `cargo xtask test` again.",
            dirs.join(" and "),
            dirs.join(":")
        ));
    }
    if !not_installed.is_empty() {
        let problems: Vec<String> = not_installed.iter().map(|(t, f)| describe(t, f)).collect();
        let lacking: Vec<&Tool> = not_installed.iter().map(|(t, _)| *t).collect();
        if !message.is_empty() {
            message.push('\n');
        }
        message.push_str(&by_hand(
            &lacking,
            &format!("after installing with {manager}: {}", problems.join("; ")),
        ));
    }
    Err(message)
}

fn print_found(found: &[(&Tool, Found)]) {
    let all: Vec<String> = found.iter().map(|(t, f)| describe(t, f)).collect();
    println!("cargo xtask: found {}", all.join(", "));
}

fn outcome(status: &std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("could not run it: {e}"),
    }
}

/// The message for giving up: why, and exactly what to install by hand.
fn by_hand(lacking: &[&Tool], reason: &str) -> String {
    let mut what: Vec<&str> = Vec::new();
    for tool in lacking {
        if !what.contains(&tool.by_hand) {
            what.push(tool.by_hand);
        }
    }
    let mut message = format!(
        "cargo xtask: cannot install the test prerequisites ({reason}).\n\
         Install by hand, put on PATH, and run `cargo xtask test` again:\n"
    );
    for w in what {
        message.push_str(&format!("  - {w}\n"));
    }
    message.push_str(
        "Without Node.js, `cargo test --workspace` needs only the Redis programs: \
         it runs every test except the opt-in Node interop ones.",
    );
    message
}

/// A package manager that can install the tools.
#[derive(Debug, Clone, Copy)]
enum Manager {
    Apt,
    Dnf,
    Brew,
}

impl fmt::Display for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Manager::Apt => "apt-get",
            Manager::Dnf => "dnf",
            Manager::Brew => "brew",
        })
    }
}

impl Manager {
    fn detect() -> Option<Self> {
        let candidates: &[Manager] = if cfg!(target_os = "macos") {
            &[Manager::Brew]
        } else {
            &[Manager::Apt, Manager::Dnf, Manager::Brew]
        };
        candidates
            .iter()
            .copied()
            .find(|m| find_on_path(&m.to_string()).is_some())
    }

    fn package(self, tool: &Tool) -> &'static str {
        match self {
            Manager::Apt => tool.apt,
            Manager::Dnf => tool.dnf,
            Manager::Brew => tool.brew,
        }
    }

    fn steps(self, packages: &[&'static str], sudo: bool) -> Vec<Step> {
        let step = |env, args: &[&str], packages: &[&str]| {
            let mut argv: Vec<String> = Vec::new();
            if sudo {
                argv.push("sudo".into());
            }
            argv.extend(args.iter().chain(packages).map(|a| (*a).to_owned()));
            Step {
                env,
                argv,
                may_fail: false,
                unless_found: None,
            }
        };
        match self {
            Manager::Apt => {
                let noninteractive = Some(("DEBIAN_FRONTEND", "noninteractive"));
                let install = ["apt-get", "install", "-y"];
                // NodeSource's nodejs package includes npm and conflicts with
                // Debian's npm package: install npm only if nodejs did not.
                let (npm, others): (Vec<&str>, Vec<&str>) =
                    packages.iter().partition(|p| **p == "npm");
                let mut steps = vec![Step {
                    may_fail: true,
                    ..step(None, &["apt-get", "update"], &[])
                }];
                if !others.is_empty() {
                    steps.push(step(noninteractive, &install, &others));
                }
                if !npm.is_empty() {
                    steps.push(Step {
                        unless_found: (!others.is_empty()).then_some("npm"),
                        ..step(noninteractive, &install, &npm)
                    });
                }
                steps
            }
            Manager::Dnf => vec![step(None, &["dnf", "install", "-y"], packages)],
            Manager::Brew => vec![step(None, &["brew", "install"], packages)],
        }
    }
}

/// One install command.
#[derive(Debug)]
struct Step {
    /// An environment variable for the package manager.
    env: Option<(&'static str, &'static str)>,
    argv: Vec<String>,
    /// Whether the install is still tried when this step fails.
    may_fail: bool,
    /// A program whose presence (after the earlier steps) skips this step.
    unless_found: Option<&'static str>,
}

impl Step {
    fn command(&self) -> Command {
        let mut argv = self.argv.iter();
        let mut command = Command::new(argv.next().map_or("true", String::as_str));
        if let Some((key, value)) = self.env {
            if self.argv.first().is_some_and(|a| a == "sudo") {
                // sudo resets the environment; it takes VAR=value arguments.
                command.arg(format!("{key}={value}"));
            } else {
                command.env(key, value);
            }
        }
        command.args(argv);
        command
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut argv = self.argv.iter().map(String::as_str);
        let mut words: Vec<String> = Vec::new();
        if self.argv.first().is_some_and(|a| a == "sudo") {
            words.extend(argv.next().map(str::to_owned));
        }
        if let Some((key, value)) = self.env {
            words.push(format!("{key}={value}"));
        }
        words.extend(argv.map(str::to_owned));
        f.write_str(&words.join(" "))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"0")
}

/// Whether `program` is on `PATH` or in one of the usual install dirs.
fn installed_anywhere(program: &str) -> bool {
    find_on_path(program).is_some()
        || INSTALL_DIRS
            .iter()
            .any(|dir| is_executable(&Path::new(dir).join(program)))
}

/// The first executable `program` in the directories of `PATH`.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        fs::metadata(path).is_ok_and(|m| m.is_file())
    }
}

/// Runs `<program> --version`: the version as printed, and its (major, minor).
fn version_of(program: &Path) -> Option<(String, (u32, u32))> {
    let out = Command::new(program).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// The first version-looking word: `Redis server v=7.0.15 sha=...` gives
/// `7.0.15`, `redis-cli 7.0.15` gives `7.0.15`, `v20.20.2` gives `v20.20.2`.
fn parse_version(text: &str) -> Option<(String, (u32, u32))> {
    text.split_whitespace().find_map(|word| {
        let shown = word.strip_prefix("v=").unwrap_or(word);
        let mut parts = shown.strip_prefix('v').unwrap_or(shown).split('.');
        let major = parts.next()?.parse().ok()?;
        let minor: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some((shown.to_owned(), (major, minor.parse().ok()?)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_versions_the_tools_print() {
        let cases = [
            (
                "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0\n",
                "7.0.15",
                (7, 0),
            ),
            ("redis-cli 7.0.15\n", "7.0.15", (7, 0)),
            ("Valkey server v=8.0.1 sha=00000000:0\n", "8.0.1", (8, 0)),
            ("v20.20.2\n", "v20.20.2", (20, 20)),
            ("11.19.1\n", "11.19.1", (11, 19)),
            ("redis-cli 6.0.16\n", "6.0.16", (6, 0)),
        ];
        for (text, shown, version) in cases {
            assert_eq!(
                parse_version(text),
                Some((shown.to_owned(), version)),
                "{text}"
            );
        }
        assert_eq!(parse_version("no version here"), None);
    }

    #[test]
    fn apt_steps_refresh_then_install_noninteractively() {
        let steps = Manager::Apt.steps(&["redis-server", "nodejs", "npm"], true);
        let shown: Vec<String> = steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "sudo apt-get update",
                "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server nodejs",
                "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y npm",
            ]
        );
        assert_eq!(steps[2].unless_found, Some("npm"));
        let steps = Manager::Apt.steps(&["npm"], false);
        assert_eq!(steps[1].unless_found, None);
        let steps = Manager::Apt.steps(&["redis-server"], false);
        let shown: Vec<String> = steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "apt-get update",
                "DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server",
            ]
        );
    }
}
