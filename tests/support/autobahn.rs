//! Running the Autobahn TestSuite's cases (through kosoku) and checking their reports against
//! `tests/autobahn/expected-*.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::interop::{TempDir, install_dir, repo_root};
use crate::json::Json;

/// The pinned runner; `.ci/interop-setup` installs it.
pub const KOSOKU: &str = "0.1.0";

/// The `kosoku` command of the interop venv.
///
/// # Errors
///
/// What is missing.
pub fn kosoku() -> Result<PathBuf, String> {
    let venv = install_dir().join("venv");
    let bin = venv.join("bin").join("kosoku");
    let dist_info = format!("kosoku-{KOSOKU}.dist-info");
    let installed = fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|dir| dir.path().join("site-packages").join(&dist_info).exists());
    if bin.exists() && installed {
        Ok(bin)
    } else {
        Err(format!(
            "kosoku {KOSOKU} is not installed in {}",
            venv.display()
        ))
    }
}

/// A fresh `target/autobahn/<role>/` for the runner's reports (kept for inspection).
pub fn reports_dir(role: &str) -> PathBuf {
    let dir = repo_root().join("target").join("autobahn").join(role);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the reports folder");
    dir
}

/// `tests/autobahn/config.json`.
pub fn config() -> Json {
    let path = repo_root()
        .join("tests")
        .join("autobahn")
        .join("config.json");
    let text = fs::read_to_string(&path).expect("tests/autobahn/config.json");
    Json::parse(&text).expect("config.json is JSON")
}

/// A number from the config.
pub fn number(config: &Json, path: &[&str]) -> u64 {
    let value = path.iter().fold(config, |json, key| json.get(key));
    value.as_f64().unwrap_or_else(|| panic!("config {path:?}")) as u64
}

/// The strings of a list in the config.
pub fn strings(config: &Json, key: &str) -> Vec<String> {
    config
        .get(key)
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// One case's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// `1.1.1`.
    pub id: String,
    /// `OK`, `INFORMATIONAL`, `NON-STRICT`, `FAILED`, `UNIMPLEMENTED`, ...
    pub behavior: String,
    /// The same, for the closing behaviour.
    pub behavior_close: String,
    /// The runner's explanation.
    pub result: String,
    /// The runner's explanation of the close.
    pub result_close: String,
}

impl CaseReport {
    /// `OK` when both behaviours are OK, else `behavior/behaviorClose`.
    pub fn outcome(&self) -> String {
        if self.behavior == self.behavior_close {
            self.behavior.clone()
        } else {
            format!("{}/{}", self.behavior, self.behavior_close)
        }
    }

    /// Whether the case meets the bar: OK or INFORMATIONAL, both ways.
    pub fn passes(&self) -> bool {
        let good = |b: &str| b == "OK" || b == "INFORMATIONAL";
        good(&self.behavior) && good(&self.behavior_close)
    }
}

/// Reads every per-case JSON report in `dir`, ordered by case id.
pub fn read_reports(dir: &Path) -> Vec<CaseReport> {
    let mut reports: Vec<CaseReport> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("no reports in {}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.contains("_case_") && name.ends_with(".json")
        })
        .map(|path| {
            let text = fs::read_to_string(&path).expect("read a report");
            let json = Json::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let field = |key: &str| json.get(key).as_str().unwrap_or("").to_owned();
            CaseReport {
                id: field("id"),
                behavior: field("behavior"),
                behavior_close: field("behaviorClose"),
                result: field("result"),
                result_close: field("resultClose"),
            }
        })
        .collect();
    reports.sort_by_key(|r| case_key(&r.id));
    reports
}

fn case_key(id: &str) -> Vec<u32> {
    id.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// A table of outcomes per top-level group (`1`, `2`, ... `13`).
pub fn group_table(reports: &[CaseReport]) -> String {
    let mut groups: BTreeMap<u32, BTreeMap<String, usize>> = BTreeMap::new();
    for report in reports {
        let group = case_key(&report.id).first().copied().unwrap_or(0);
        *groups
            .entry(group)
            .or_default()
            .entry(report.outcome())
            .or_default() += 1;
    }
    let mut out = String::from("group | cases | outcomes\n");
    for (group, outcomes) in groups {
        let total: usize = outcomes.values().sum();
        let detail: Vec<String> = outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "{group:>5} | {total:>5} | {}", detail.join(", "));
    }
    out
}

/// Checks the run against the expected-results file: every case OK or INFORMATIONAL, and the
/// same outcome, case for case, as recorded. `AUTOBAHN_BLESS=1` rewrites the file from a run
/// in which every case passes.
///
/// # Errors
///
/// The list of cases that differ, each with the runner's reasons.
pub fn check(reports: &[CaseReport], expected_file: &str) -> Result<(), String> {
    let path = repo_root()
        .join("tests")
        .join("autobahn")
        .join(expected_file);
    if reports.is_empty() {
        return Err("the runner wrote no case report".into());
    }
    let failing: Vec<&CaseReport> = reports.iter().filter(|r| !r.passes()).collect();
    if std::env::var_os("AUTOBAHN_BLESS").is_some() && failing.is_empty() {
        let body: Vec<String> = reports
            .iter()
            .map(|r| format!("  \"{}\": \"{}\"", r.id, r.outcome()))
            .collect();
        fs::write(&path, format!("{{\n{}\n}}\n", body.join(",\n"))).expect("write expected");
    }
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (AUTOBAHN_BLESS=1 writes it)", path.display()));
    let expected = Json::parse(&text).expect("expected results are JSON");
    let expected: BTreeMap<&str, &str> = expected
        .as_object()
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
        .collect();
    let mut problems = String::new();
    for report in reports {
        let want = expected.get(report.id.as_str()).copied();
        if !report.passes() || want != Some(report.outcome().as_str()) {
            let _ = writeln!(
                problems,
                "{}: {} (expected {}): {} | close: {}",
                report.id,
                report.outcome(),
                want.unwrap_or("no entry"),
                report.result,
                report.result_close
            );
        }
    }
    let seen: Vec<&str> = reports.iter().map(|r| r.id.as_str()).collect();
    for id in expected.keys().filter(|id| !seen.contains(id)) {
        let _ = writeln!(problems, "{id}: no report (expected {})", expected[id]);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("Autobahn cases that differ:\n{problems}"))
    }
}

/// Runs `command` to its end or kills it at `limit`; returns the tail of its output.
///
/// # Panics
///
/// When it cannot start or runs past `limit`.
pub fn run_bounded(mut command: Command, limit: Duration) -> String {
    let log = TempDir::new("autobahn-log");
    let path = log.path().join("output.txt");
    let file = std::fs::File::create(&path).expect("log file");
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file);
    let mut child = command.spawn().expect("start kosoku");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait for kosoku").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kosoku ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(20).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}
