//! The README's tour, run as it is written: the first `sh` block of its "Tour" section starts
//! the cluster (`cargo xtask run ...`), every later `sh` block runs in bash (stopping at the
//! first failing command) from the repository root, and where a `text` block follows a `sh`
//! block, the block's output (stdout and stderr, as a terminal shows them) must match it: `[..]`
//! stands for any text within a line, a line `...` for any number of lines, and trailing
//! spaces do not count. So the tour cannot drift from the code.
//!
//! Two things differ from a user's shell, both so that the test leaves the user's own cluster
//! alone: `cargo xtask` is the already built xtask binary, and the cluster's state is in a
//! temporary directory (`SKIFF_STATE_DIR`, and `.skiff` in the commands names it). Needs
//! root, Docker and ports 6443 and 10250-10251 (a `cargo xtask run` of the user's must not be
//! running).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{Run, remove_leftovers};

/// How long one block may take (the longest waits on a node's death: 40 s of grace, then the
/// pods' toleration, then their new start).
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// The line of `cargo xtask run` that says the cluster is up.
const UP: &str = "Press Ctrl-C to stop.";

/// One block of the tour: its shell lines, what it shows (if the README says), and where it
/// is in the README.
#[derive(Debug)]
struct Step {
    script: String,
    expected: Option<String>,
    line: usize,
}

/// The `sh` blocks of the README's "Tour" section, each with the `text` block right after it.
fn tour_steps(readme: &str) -> Vec<Step> {
    let lines: Vec<&str> = readme.lines().collect();
    let start = lines
        .iter()
        .position(|line| *line == "## Tour")
        .expect("the README has a \"## Tour\" section");
    let end = lines[start + 1..]
        .iter()
        .position(|line| line.starts_with("## "))
        .map_or(lines.len(), |end| start + 1 + end);
    let block = |from: usize| -> (String, usize) {
        let close = lines[from..end]
            .iter()
            .position(|line| *line == "```")
            .map(|close| from + close)
            .unwrap_or_else(|| panic!("README line {from}: unclosed code block"));
        let mut text = lines[from..close].join("\n");
        text.push('\n');
        (text, close + 1)
    };
    let mut steps = Vec::new();
    let mut at = start;
    while at < end {
        if lines[at] != "```sh" {
            at += 1;
            continue;
        }
        let (script, next) = block(at + 1);
        let line = at + 1;
        at = next;
        let mut expected = None;
        let mut look = at;
        while look < end && lines[look].trim().is_empty() {
            look += 1;
        }
        if look < end && lines[look] == "```text" {
            let (text, next) = block(look + 1);
            expected = Some(text);
            at = next;
        }
        steps.push(Step {
            script,
            expected,
            line,
        });
    }
    steps
}

/// Whether `actual` is what `expected` shows: line by line, `[..]` for any text within a line
/// and a line `...` for any number of lines; trailing spaces do not count.
fn output_matches(expected: &str, actual: &str) -> bool {
    let expected: Vec<&str> = expected.lines().map(str::trim_end).collect();
    let actual: Vec<&str> = actual.lines().map(str::trim_end).collect();
    lines_match(&expected, &actual)
}

fn lines_match(expected: &[&str], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((&"...", rest)) => (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..])),
        Some((pattern, rest)) => actual
            .split_first()
            .is_some_and(|(line, more)| line_matches(pattern, line) && lines_match(rest, more)),
    }
}

/// `pattern` with `[..]` standing for any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    let (first, rest) = parts.split_first().expect("split yields one part at least");
    let Some(mut left) = line.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for part in middle {
        match left.find(part) {
            Some(found) => left = &left[found + part.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last)
}

/// The README's commands as this test runs them: `cargo xtask` is the built binary and `.skiff`
/// the test's state directory.
fn as_run_here(script: &str, state_dir: &Path) -> String {
    let state = state_dir.display().to_string();
    script
        .replace("cargo xtask", env!("CARGO_BIN_EXE_xtask"))
        .replace("$PWD/.skiff", ".skiff")
        .replace(".skiff", &state)
}

/// Runs one block in bash from the repository root; returns its exit status and output.
fn run_step(script: &str, root: &Path, state_dir: &Path) -> (bool, String) {
    let out = Command::new("timeout")
        .arg(STEP_TIMEOUT.as_secs().to_string())
        .args(["bash", "-e", "-c"])
        .arg(format!("exec 2>&1\n{}", as_run_here(script, state_dir)))
        .current_dir(root)
        .env("SKIFF_STATE_DIR", state_dir)
        .env("KUBECONFIG", state_dir.join("kubeconfig"))
        .output()
        .expect("running bash");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The nodes the README's cluster runs; the tour's first block names them.
fn tour_nodes(run_args: &[&str]) -> Vec<String> {
    let base = run_args
        .iter()
        .position(|arg| *arg == "--node-name")
        .and_then(|at| run_args.get(at + 1))
        .expect("the tour's cluster names its nodes (--node-name), so its commands can");
    let count = run_args
        .iter()
        .position(|arg| *arg == "--nodes")
        .and_then(|at| run_args.get(at + 1))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1);
    (1..=count)
        .map(|i| match i {
            1 => (*base).to_owned(),
            i => format!("{base}-{i}"),
        })
        .collect()
}

/// Stops the test unless the Service CIDR stays on this machine: a Service address must not
/// route through the default gateway (the agents install the route that keeps it local).
fn assert_service_cidr_is_local() {
    let out = Command::new("ip")
        .args(["route", "get", "10.96.0.1"])
        .output()
        .expect("ip route get");
    let route = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !route.contains(" via "),
        "a Service address would leave this machine ({route}); the tour stops here"
    );
}

#[test]
fn the_readme_tour_runs_as_written() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ is in the repository")
        .to_path_buf();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let steps = tour_steps(&readme);
    let (start, steps) = steps.split_first().expect("the tour has blocks");
    let run_args: Vec<&str> = start
        .script
        .trim()
        .strip_prefix("cargo xtask run")
        .unwrap_or_else(|| {
            panic!(
                "README line {}: the tour starts with `cargo xtask run`",
                start.line
            )
        })
        .split_whitespace()
        .collect();
    let nodes = tour_nodes(&run_args);
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();

    remove_leftovers(&nodes);
    let state = tempfile::tempdir().expect("state dir");
    let state_dir = state.path().join(".skiff");
    let mut run = Run::start(&run_args, &state_dir, state.path().join("run.log"));
    run.wait_up();
    if let Some(expected) = &start.expected {
        // Up to the line that says it is up; the master's log goes on after it.
        let log = run.log();
        let up = log
            .find(UP)
            .map_or(log.as_str(), |at| &log[..at + UP.len()]);
        assert!(
            output_matches(expected, up),
            "README line {}: `cargo xtask run` printed\n{up}\nnot\n{expected}",
            start.line,
        );
    }
    assert_service_cidr_is_local();

    for step in steps {
        let (succeeded, output) = run_step(&step.script, &root, &state_dir);
        // Shown with --nocapture: what the user would see today.
        println!("README line {}:\n{output}", step.line);
        assert!(
            succeeded,
            "README line {}: the block failed:\n{}\nits output:\n{output}\nthe run's:\n{}",
            step.line,
            step.script,
            run.log()
        );
        if let Some(expected) = &step.expected {
            assert!(
                output_matches(expected, &output),
                "README line {}: the block\n{}\nprinted\n{output}\nnot\n{expected}",
                step.line,
                step.script
            );
        }
    }

    run.signal_and_wait(libc::SIGINT);
    drop(run);
    remove_leftovers(&nodes);
}

#[test]
fn outputs_match_with_wildcards_and_skipped_lines() {
    assert!(output_matches("a [..] c\n", "a b b c\n"));
    assert!(output_matches("[..]x[..]\n", "axb\n"));
    assert!(!output_matches("a [..] c\n", "a b d\n"));
    assert!(!output_matches("abc[..]c\n", "abc\n"));
    assert!(output_matches(
        "first\n...\nlast\n",
        "first\none\ntwo\nlast\n"
    ));
    assert!(output_matches("first\n...\nlast\n", "first\nlast\n"));
    assert!(!output_matches("first\nlast\n", "first\nmore\nlast\n"));
    assert!(output_matches("padded\n", "padded   \n"));
    assert!(!output_matches("one\n", "one\ntwo\n"));
}

#[test]
fn tour_blocks_pair_commands_with_their_output() {
    let readme = "# x\n## Tour\n```sh\ncargo xtask run\n```\ntext\n```sh\necho hi\n```\n\n```text\nhi\n```\n## After\n```sh\nnot this\n```\n";
    let steps = tour_steps(readme);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0].script, "cargo xtask run\n");
    assert_eq!(steps[0].expected, None);
    assert_eq!(steps[1].script, "echo hi\n");
    assert_eq!(steps[1].expected.as_deref(), Some("hi\n"));
    assert_eq!(
        tour_nodes(&["--nodes", "2", "--node-name", "skiff"]),
        ["skiff", "skiff-2"]
    );
}
