//! The check that every build resolves one feature set: cargo unifies the features of a
//! dependency over everything one invocation builds, and dev-dependencies count only when
//! tests or benches are built. Were a dev-dependency to turn on a feature that a plain
//! `cargo build --workspace` lacks, the programs would be compiled twice after every change
//! (once for `run`, once for `test`/`bench`), and their dependencies with them.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use skiff_tooling::workspace;

/// Fails, naming the packages and features, when the dev-dependencies change the feature set
/// of any package that the programs use.
pub fn check() -> anyhow::Result<()> {
    // What is compiled for the target: normal edges, not the build scripts' and proc-macros'
    // dependencies (compiled for the host, apart, with features of their own).
    let programs = resolved("normal,no-proc-macro")?;
    let with_tests = resolved("normal,dev,no-proc-macro")?;
    let mut differences = Vec::new();
    for (package, features) in &programs {
        let Some(test_features) = with_tests.get(package) else {
            continue;
        };
        let added: Vec<&String> = test_features.difference(features).collect();
        if !added.is_empty() {
            differences.push(format!("  {package}: {added:?}"));
        }
    }
    if !differences.is_empty() {
        bail!(
            "dev-dependencies turn on features that `cargo build --workspace` does not, so \
             every change would compile the programs twice; enable them in the root \
             Cargo.toml's [dependencies] (section \"one feature set\"):\n{}",
            differences.join("\n")
        );
    }
    Ok(())
}

/// Every package `cargo tree --workspace` reaches over edges `edges`, with its features.
fn resolved(edges: &str) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let output = workspace::cargo()
        .args(["tree", "--workspace", "--prefix", "none", "-e", edges])
        .args(["-f", "{p}|{f}"])
        .output()
        .context("running cargo tree")?;
    if !output.status.success() {
        bail!(
            "cargo tree failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8(output.stdout).context("cargo tree output")?;
    Ok(parse(&text))
}

/// `name vX.Y.Z [(path)] [(proc-macro)]|f1,f2 [(*)]` lines into package -> features.
fn parse(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let Some((package, features)) = line.split_once('|') else {
            continue;
        };
        let features = features.trim_end_matches("(*)").trim();
        packages
            .entry(package.trim().to_owned())
            .or_default()
            .extend(
                features
                    .split(',')
                    .filter(|feature| !feature.is_empty())
                    .map(str::to_owned),
            );
    }
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_packages_and_features() {
        let text = "either v1.19.0|default,std\n\
                    serde v1.0.229|derive,std (*)\n\
                    half v2.7.1|\n\
                    skiff-node v0.1.0 (/work/node)|\n";
        let parsed = parse(text);
        assert_eq!(
            parsed["either v1.19.0"],
            BTreeSet::from(["default".to_owned(), "std".to_owned()])
        );
        assert_eq!(
            parsed["serde v1.0.229"],
            BTreeSet::from(["derive".to_owned(), "std".to_owned()])
        );
        assert!(parsed["half v2.7.1"].is_empty());
        assert!(parsed.contains_key("skiff-node v0.1.0 (/work/node)"));
    }
}
