//! `cargo xtask codegen`: the tables of Kubernetes' API types that skiff generates instead of
//! keeping by hand.
//!
//! - `master/src/apiserver/protobuf/schema.rs` ([`protobuf`]): the protobuf messages of the
//!   kinds the API server decodes from protobuf request bodies, with each field's number, JSON
//!   name and shape.
//! - `master/src/apiserver/strategic_merge/schema.rs` ([`strategic_merge`]): the patch strategy
//!   and merge key of each list strategic merge patch merges, and the way to it from each kind.
//!
//! The inputs are read offline:
//!
//! - the `k8s-pb` crate (prost code of Kubernetes' `generated.proto`: message fields, numbers
//!   and protobuf types), wherever `cargo metadata` says its source is;
//! - `xtask/codegen-inputs/kubernetes-v1.32-go-fields.txt` ([`go_types`]): the Go struct fields
//!   (protobuf number, `json` tag, Go type) of every type the protobuf kinds reach. Only Go
//!   says which fields are pointers, `omitempty` or inlined, which is what Go's JSON encoder
//!   goes by;
//! - `xtask/codegen-inputs/kubernetes-v1.32-openapi.json` ([`openapi`]): the part of the
//!   OpenAPI spec the strategic-merge kinds reach, with its `x-kubernetes-patch-strategy` and
//!   `x-kubernetes-patch-merge-key`.
//!
//! The two vendored inputs are made by `cargo xtask codegen --extract <kubernetes checkout>`
//! from a checkout of kubernetes/kubernetes at release-1.32: its `api/openapi-spec/swagger.json`
//! and the `types.go` of each API package under `staging/src/k8s.io/api` and
//! `staging/src/k8s.io/apimachinery`. The checked-in copies were made from the release-1.32
//! `swagger.json` as kubernetes-client/python v32.0.1 carries it
//! (`kubernetes/swagger.json.unprocessed`) and the `types.go` of k8s.io/api and
//! k8s.io/apimachinery v0.32.1 (the published staging directories of Kubernetes v1.32.1). Which
//! kinds the tables cover is set here ([`PROTOBUF_KINDS`], [`STRATEGIC_MERGE_KINDS`]), and the
//! extract keeps what those kinds reach: a kind that reaches further needs a new extract (the
//! generator says which type it lacks).
//!
//! `cargo xtask codegen --check` generates in memory and fails, naming the file and showing the
//! first lines that differ, when a checked-in file is not what the inputs give; CI runs it.

mod go_types;
mod k8s_pb;
mod openapi;
mod protobuf;
mod strategic_merge;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use serde_json::Value;

/// `cargo xtask codegen` options.
#[derive(clap::Args)]
pub struct Args {
    /// Write nothing; fail if a generated file is not what the inputs give.
    #[arg(long)]
    check: bool,
    /// Make the vendored inputs (xtask/codegen-inputs/) again from a checkout of
    /// kubernetes/kubernetes (release-1.32) instead of generating.
    #[arg(long, value_name = "KUBERNETES_CHECKOUT", conflicts_with = "check")]
    extract: Option<PathBuf>,
}

/// The kinds whose protobuf bodies the API server decodes: (apiVersion, kind), in the order of
/// the generated `KINDS`.
const PROTOBUF_KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "Pod"),
    ("v1", "Node"),
    ("v1", "Service"),
    ("v1", "Endpoints"),
    ("v1", "ReplicationController"),
    ("v1", "Event"),
    ("v1", "Binding"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("v1", "PodTemplate"),
    ("v1", "ResourceQuota"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "ControllerRevision"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("policy/v1", "PodDisruptionBudget"),
    ("policy/v1", "Eviction"),
    ("coordination.k8s.io/v1", "Lease"),
    ("autoscaling/v1", "Scale"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SubjectAccessReview"),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
    ("authentication.k8s.io/v1", "SelfSubjectReview"),
    ("authentication.k8s.io/v1", "TokenReview"),
    ("authentication.k8s.io/v1", "TokenRequest"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
];

/// The meta.k8s.io messages of every group version: `DeleteOptions` (a delete's body), `Status`
/// (an answer that is not an object) and `ListMeta` (a list's metadata).
const META_MESSAGES: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
];

/// The kinds strategic merge patch has a schema for (`strategic_merge::is_known_kind`; Kubernetes
/// answers 415 to a strategic merge patch of a kind it has no Go type for): (apiVersion, kind),
/// in the order of the generated `KINDS`.
const STRATEGIC_MERGE_KINDS: &[(&str, &str)] = &[
    ("v1", "Pod"),
    ("v1", "PodTemplate"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("v1", "ReplicationController"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "Service"),
    ("v1", "Node"),
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "Endpoints"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("v1", "Event"),
    ("coordination.k8s.io/v1", "Lease"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Binding"),
    ("autoscaling/v1", "Scale"),
    ("v1", "LimitRange"),
    ("v1", "ResourceQuota"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
];

const GO_FIELDS_INPUT: &str = "xtask/codegen-inputs/kubernetes-v1.32-go-fields.txt";
const OPENAPI_INPUT: &str = "xtask/codegen-inputs/kubernetes-v1.32-openapi.json";
const PROTOBUF_OUTPUT: &str = "master/src/apiserver/protobuf/schema.rs";
const STRATEGIC_MERGE_OUTPUT: &str = "master/src/apiserver/strategic_merge/schema.rs";

/// How many lines `--check` shows from the first difference on.
const DIFF_LINES: usize = 6;

/// `cargo xtask codegen [--check | --extract <kubernetes checkout>]` in the repository `repo`.
pub fn run(args: &Args, repo: &Path) -> anyhow::Result<ExitCode> {
    if let Some(checkout) = &args.extract {
        extract(repo, checkout)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut stale = false;
    for (path, generated) in generate(repo)? {
        let full = repo.join(path);
        let current = match std::fs::read_to_string(&full) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            read => read.with_context(|| format!("reading {path}"))?,
        };
        if current == generated {
            eprintln!("{path} is current");
        } else if args.check {
            stale = true;
            eprintln!("{path} is not what `cargo xtask codegen` generates:");
            eprintln!("{}", first_difference(&current, &generated));
        } else {
            std::fs::write(&full, generated).with_context(|| format!("writing {path}"))?;
            eprintln!("wrote {path}");
        }
    }
    if stale {
        eprintln!("run `cargo xtask codegen` and commit the result");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Every generated file: (path in the repository, contents).
fn generate(repo: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    let read = |path: &str| {
        std::fs::read_to_string(repo.join(path)).with_context(|| format!("reading {path}"))
    };
    let go = go_types::read(&read(GO_FIELDS_INPUT)?).context(GO_FIELDS_INPUT)?;
    let openapi: Value = serde_json::from_str(&read(OPENAPI_INPUT)?).context(OPENAPI_INPUT)?;
    let definitions = openapi::Definitions::parse(&openapi).context(OPENAPI_INPUT)?;
    let (pb_version, pb_src) = crate_source(repo, "k8s-pb")?;
    let mut pb = k8s_pb::K8sPb::new(pb_src);

    let kinds: Vec<(&str, &str, String)> = PROTOBUF_KINDS
        .iter()
        .map(|&(api_version, kind)| (api_version, kind, definition(api_version, kind)))
        .collect();
    let header = format!(
        "// @generated by `cargo xtask codegen` (xtask/src/codegen/protobuf.rs) from k8s-pb \
         {pb_version} and\n// {GO_FIELDS_INPUT}; do not edit.\n"
    );
    let protobuf = protobuf::generate(
        &header,
        &mut pb,
        &go,
        &protobuf::Kinds {
            kinds: &kinds,
            meta: META_MESSAGES,
        },
    )
    .context(PROTOBUF_OUTPUT)?;

    let kinds: Vec<(&str, String)> = STRATEGIC_MERGE_KINDS
        .iter()
        .map(|&(api_version, kind)| (kind, definition(api_version, kind)))
        .collect();
    let header = format!(
        "// @generated by `cargo xtask codegen` (xtask/src/codegen/strategic_merge.rs) from\n\
         // {OPENAPI_INPUT}; do not edit.\n"
    );
    let strategic_merge =
        strategic_merge::generate(&header, &definitions, &kinds).context(STRATEGIC_MERGE_OUTPUT)?;

    Ok(vec![
        (PROTOBUF_OUTPUT, protobuf),
        (STRATEGIC_MERGE_OUTPUT, strategic_merge),
    ])
}

/// `--extract`: the vendored inputs, from a Kubernetes checkout.
fn extract(repo: &Path, checkout: &Path) -> anyhow::Result<()> {
    let spec_path = checkout.join("api/openapi-spec/swagger.json");
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(&spec_path)
            .with_context(|| format!("reading {}", spec_path.display()))?,
    )
    .with_context(|| spec_path.display().to_string())?;
    for (path, contents) in [
        (OPENAPI_INPUT, extract_openapi(&spec)?),
        (GO_FIELDS_INPUT, extract_go_fields(checkout, &spec)?),
    ] {
        std::fs::write(repo.join(path), contents).with_context(|| format!("writing {path}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}

/// The part of the OpenAPI spec the strategic-merge kinds reach.
fn extract_openapi(spec: &Value) -> anyhow::Result<String> {
    let roots: Vec<String> = STRATEGIC_MERGE_KINDS
        .iter()
        .map(|&(api_version, kind)| definition(api_version, kind))
        .collect();
    let about = "The definitions of Kubernetes release-1.32's api/openapi-spec/swagger.json that \
                 the strategic-merge kinds reach, with the properties that hold a definition or \
                 carry a patch strategy (see xtask/src/codegen/openapi.rs). Made by `cargo xtask \
                 codegen --extract <kubernetes checkout>`; do not edit.";
    openapi::to_text(&openapi::extract(spec, &roots, about)?)
}

/// The Go struct fields of the types the protobuf kinds reach (by the spec's references), and
/// of the structs embedded in them.
fn extract_go_fields(checkout: &Path, spec: &Value) -> anyhow::Result<String> {
    let roots: Vec<String> = PROTOBUF_KINDS
        .iter()
        .map(|&(api_version, kind)| definition(api_version, kind))
        .chain(META_MESSAGES.iter().map(|name| (*name).to_owned()))
        .collect();
    let reached = openapi::Definitions::parse(spec)?.reachable(&roots)?;
    let mut pending: Vec<String> = reached
        .into_iter()
        .filter(|name| !protobuf::SPECIAL.iter().any(|(special, _)| special == name))
        .collect();
    let mut sources: BTreeMap<PathBuf, Vec<go_types::GoStruct>> = BTreeMap::new();
    let mut structs = BTreeMap::new();
    while let Some(name) = pending.pop() {
        if structs.contains_key(&name) {
            continue;
        }
        let (package, short) = name
            .rsplit_once('.')
            .with_context(|| format!("{name} is not package-qualified"))?;
        let path = go_types_file(checkout, package)?;
        if !sources.contains_key(&path) {
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (for {name})", path.display()))?;
            let parsed =
                go_types::parse_source(&source).with_context(|| path.display().to_string())?;
            sources.insert(path.clone(), parsed);
        }
        let found = sources[&path]
            .iter()
            .find(|s| s.name == short)
            .with_context(|| format!("no struct {short} in {}", path.display()))?;
        // An embedded struct on the wire is a message of its own.
        for field in &found.fields {
            if field.inline() && field.number.is_some() {
                pending.push(format!("{package}.{}", field.type_name()));
            }
        }
        structs.insert(name, found.fields.clone());
    }
    let header = "The Go struct fields of the Kubernetes release-1.32 types the protobuf kinds reach\n\
                  (see xtask/src/codegen/go_types.rs): under each struct's OpenAPI name, one line\n\
                  per field: protobuf field number (- for none), json tag, Go type.\n\
                  Made by `cargo xtask codegen --extract <kubernetes checkout>` from\n\
                  staging/src/k8s.io/{api,apimachinery}/**/types.go; do not edit.";
    Ok(go_types::write(header, &structs))
}

/// The `types.go` of an API package in a Kubernetes checkout: `io.k8s.api.core.v1` is
/// `staging/src/k8s.io/api/core/v1/types.go`.
fn go_types_file(checkout: &Path, package: &str) -> anyhow::Result<PathBuf> {
    let (module, dir) = package
        .strip_prefix("io.k8s.")
        .and_then(|rest| rest.split_once('.'))
        .with_context(|| format!("{package} is not a Kubernetes API package"))?;
    Ok(checkout
        .join("staging/src/k8s.io")
        .join(module)
        .join(dir.replace('.', "/"))
        .join("types.go"))
}

/// The OpenAPI name of a kind: `io.k8s.api.apps.v1.Deployment` for `apps/v1` `Deployment`
/// (the core group is `core`; a group's name is its first label).
fn definition(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.split_once('/').unwrap_or(("core", api_version));
    let group = group.split('.').next().unwrap_or(group);
    format!("io.k8s.api.{group}.{version}.{kind}")
}

/// A Rust constant name for a Go type name: `CephFSVolumeSource` -> `CEPH_FS_VOLUME_SOURCE`.
/// A word starts at an upper-case letter after a lower-case letter or digit, and at the last
/// upper-case letter of a run followed by a lower-case one (`FSVolume` -> `FS`, `Volume`).
fn shouty_snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            let previous = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if previous.is_ascii_lowercase()
                || previous.is_ascii_digit()
                || (previous.is_ascii_uppercase() && next_is_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// (version, `src` directory) of a dependency, from `cargo metadata` (for the host platform,
/// whose packages a build has already downloaded).
fn crate_source(repo: &Path, name: &str) -> anyhow::Result<(String, PathBuf)> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = command_output(Command::new(rustc).arg("-vV"))?;
    let host = version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .context("`rustc -vV` names no host")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let metadata = command_output(
        Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--filter-platform",
                host,
            ])
            .current_dir(repo),
    )?;
    let metadata: Value = serde_json::from_str(&metadata).context("cargo metadata output")?;
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata lists no packages")?;
    let found: Vec<&Value> = packages.iter().filter(|p| p["name"] == name).collect();
    let [package] = found[..] else {
        bail!("cargo metadata lists {} packages named {name}", found.len());
    };
    let manifest = package["manifest_path"]
        .as_str()
        .context("a package without manifest_path")?;
    let dir = Path::new(manifest)
        .parent()
        .context("a manifest path without a directory")?;
    let version = package["version"].as_str().unwrap_or_default().to_owned();
    Ok((version, dir.join("src")))
}

fn command_output(command: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !output.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("output of {shown}"))
}

/// The first line where `current` and `generated` differ and the few after it, as `-` (checked
/// in) and `+` (generated) lines.
fn first_difference(current: &str, generated: &str) -> String {
    let current: Vec<&str> = current.lines().collect();
    let generated: Vec<&str> = generated.lines().collect();
    let first = current
        .iter()
        .zip(&generated)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = format!("  first difference at line {}:", first + 1);
    let range = first..first + DIFF_LINES;
    for line in current
        .get(range.start..range.end.min(current.len()))
        .unwrap_or_default()
    {
        out.push_str(format!("\n  - {line}").trim_end());
    }
    for line in generated
        .get(range.start..range.end.min(generated.len()))
        .unwrap_or_default()
    {
        out.push_str(format!("\n  + {line}").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_names_split_words_as_the_go_names_mean_them() {
        for (name, constant) in [
            ("Pod", "POD"),
            ("PodIP", "POD_IP"),
            ("CephFSVolumeSource", "CEPH_FS_VOLUME_SOURCE"),
            (
                "AWSElasticBlockStoreVolumeSource",
                "AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE",
            ),
            ("HTTPGetAction", "HTTP_GET_ACTION"),
            ("SELinuxOptions", "SE_LINUX_OPTIONS"),
            ("StorageOSVolumeSource", "STORAGE_OS_VOLUME_SOURCE"),
            ("DownwardAPIVolumeFile", "DOWNWARD_API_VOLUME_FILE"),
            ("FieldsV1", "FIELDS_V1"),
        ] {
            assert_eq!(shouty_snake_case(name), constant, "{name}");
        }
    }

    #[test]
    fn kinds_name_their_openapi_definitions() {
        assert_eq!(definition("v1", "Pod"), "io.k8s.api.core.v1.Pod");
        assert_eq!(
            definition("apps/v1", "Deployment"),
            "io.k8s.api.apps.v1.Deployment"
        );
        assert_eq!(
            definition("coordination.k8s.io/v1", "Lease"),
            "io.k8s.api.coordination.v1.Lease"
        );
        assert_eq!(
            definition("rbac.authorization.k8s.io/v1", "Role"),
            "io.k8s.api.rbac.v1.Role"
        );
    }

    #[test]
    fn go_sources_are_found_under_staging() {
        let checkout = Path::new("/k");
        assert_eq!(
            go_types_file(checkout, "io.k8s.api.core.v1").unwrap(),
            Path::new("/k/staging/src/k8s.io/api/core/v1/types.go")
        );
        assert_eq!(
            go_types_file(checkout, "io.k8s.apimachinery.pkg.apis.meta.v1").unwrap(),
            Path::new("/k/staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go")
        );
        assert!(go_types_file(checkout, "com.example.v1").is_err());
    }

    #[test]
    fn the_check_shows_where_a_file_is_stale() {
        let shown = first_difference("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(
            shown,
            "  first difference at line 2:\n  - b\n  - c\n  + B\n  + c"
        );
        let shown = first_difference("", "a\n");
        assert_eq!(shown, "  first difference at line 1:\n  + a");
    }
}
