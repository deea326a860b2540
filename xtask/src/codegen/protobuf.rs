//! `master/src/apiserver/protobuf/schema.rs`: the protobuf messages of the kinds the API server
//! decodes from protobuf, one line per field (see that module for how the table is read).
//!
//! Each message of `k8s-pb` reached from the kinds is joined, field by field on the protobuf
//! field number, with its Go struct: the number, order and protobuf type come from `k8s-pb`,
//! the JSON name, `omitempty`, `,inline` and pointer-ness from the Go field. A field is
//!
//! - `repeated` when protobuf repeats it (a map is a `field` of `Kind::Map`);
//! - `inline` when its Go field is an embedded struct (`json:",inline"`);
//! - `omitempty` when Go's JSON encoder leaves it out when zero: a value (not a pointer) of a
//!   scalar kind with `omitempty` in its tag. `IntOrString` counts as a scalar here although
//!   Go writes its zero (`0`): the API server treats a zero `targetPort` as unset;
//! - `field` otherwise: pointers, fields without `omitempty`, and structs, which Go's
//!   `omitempty` never leaves out.
//!
//! Fields that `k8s-pb` has and the Go types lack are newer than the Go types' Kubernetes
//! version; they are left out, as that version's API server skips them as unknown fields.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};

use super::go_types::GoField;
use super::k8s_pb::{K8sPb, Label, MessageRef, ValueType};
use super::shouty_snake_case;

/// Messages with a kind of their own (their JSON is not their fields), by `k8s-pb` name.
pub const SPECIAL: &[(&str, &str)] = &[
    (
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        "Kind::Quantity",
    ),
    (
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "Kind::IntOrString",
    ),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.Time", "Kind::Time"),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
        "Kind::MicroTime",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
        "Kind::RawJson",
    ),
    (
        "io.k8s.apimachinery.pkg.runtime.RawExtension",
        "Kind::RawJson",
    ),
    (
        "io.k8s.api.authentication.v1.ExtraValue",
        "Kind::StringList",
    ),
    ("io.k8s.api.authorization.v1.ExtraValue", "Kind::StringList"),
    ("io.k8s.api.certificates.v1.ExtraValue", "Kind::StringList"),
];

/// The kinds whose zero `omitempty` leaves out (and `IntOrString`, see the module doc).
const OMITTABLE: &[&str] = &[
    "Kind::String",
    "Kind::Bool",
    "Kind::Int32",
    "Kind::Int64",
    "Kind::Bytes",
    "Kind::IntOrString",
];

/// What the table is made for.
pub struct Kinds<'a> {
    /// (apiVersion, kind, Go struct by OpenAPI name) of each top-level kind, in table order.
    pub kinds: &'a [(&'a str, &'a str, String)],
    /// Messages of every group version (`DeleteOptions`, `Status`, `ListMeta`), exported on
    /// their own.
    pub meta: &'a [&'a str],
}

/// One message of the table.
struct Message {
    /// The Go struct's OpenAPI name.
    name: String,
    lines: Vec<String>,
}

/// The generated `schema.rs`.
pub fn generate(
    header: &str,
    pb: &mut K8sPb,
    go: &BTreeMap<String, Vec<GoField>>,
    kinds: &Kinds,
) -> anyhow::Result<String> {
    let mut table = Table::new(go);
    let roots = kinds
        .kinds
        .iter()
        .map(|(_, _, name)| name.as_str())
        .chain(kinds.meta.iter().copied());
    let mut pending: Vec<String> = roots.map(str::to_owned).collect();
    while let Some(name) = pending.pop() {
        let constant = table.constant(&name)?;
        if table.messages.contains_key(&constant) {
            continue;
        }
        let message = table
            .message(pb, &name, &mut pending)
            .with_context(|| format!("the protobuf message of {name}"))?;
        table.messages.insert(constant, message);
    }
    table.render(header, kinds)
}

struct Table<'a> {
    go: &'a BTreeMap<String, Vec<GoField>>,
    /// Go structs by (package, lower-case name without `_`), to find the struct of a `k8s-pb`
    /// message whatever case prost gave it.
    by_package_and_name: BTreeMap<(String, String), String>,
    /// By constant name, which orders the output.
    messages: BTreeMap<String, Message>,
    used: BTreeSet<&'static str>,
}

impl<'a> Table<'a> {
    fn new(go: &'a BTreeMap<String, Vec<GoField>>) -> Self {
        let by_package_and_name = go
            .keys()
            .filter_map(|name| {
                let (package, short) = name.rsplit_once('.')?;
                Some(((package.to_owned(), normalized(short)), name.clone()))
            })
            .collect();
        Table {
            go,
            by_package_and_name,
            messages: BTreeMap::new(),
            used: BTreeSet::new(),
        }
    }

    /// The Rust constant of a Go struct: `CEPH_FS_VOLUME_SOURCE` for
    /// `io.k8s.api.core.v1.CephFSVolumeSource`; a struct of another API group carries its
    /// group and version (`DISCOVERY_V1_ENDPOINT_PORT`), as names repeat across groups. Two
    /// structs with one constant are an error.
    fn constant(&self, name: &str) -> anyhow::Result<String> {
        let (package, short) = name.rsplit_once('.').unwrap_or(("", name));
        let constant = match package
            .strip_prefix("io.k8s.api.")
            .filter(|group| *group != "core.v1")
        {
            Some(group) => format!(
                "{}_{}",
                group.replace('.', "_").to_uppercase(),
                shouty_snake_case(short)
            ),
            None => shouty_snake_case(short),
        };
        if let Some(other) = self.messages.get(&constant)
            && other.name != name
        {
            bail!("{name} and {} would both be {constant}", other.name);
        }
        Ok(constant)
    }

    /// The Go struct (OpenAPI name) of a `k8s-pb` message.
    fn go_struct(&self, message: &MessageRef) -> anyhow::Result<&str> {
        self.by_package_and_name
            .get(&(message.package.clone(), normalized(&message.name)))
            .map(String::as_str)
            .with_context(|| {
                format!(
                    "k8s-pb message {} has no Go struct in the vendored Go fields \
                     (run `cargo xtask codegen --extract`)",
                    message.full_name()
                )
            })
    }

    /// The lines of the message of Go struct `name`; the structs its fields hold go to
    /// `pending`.
    fn message(
        &mut self,
        pb: &mut K8sPb,
        name: &str,
        pending: &mut Vec<String>,
    ) -> anyhow::Result<Message> {
        let go_fields = self
            .go
            .get(name)
            .context("not in the vendored Go fields (run `cargo xtask codegen --extract`)")?;
        let (package, short) = name
            .rsplit_once('.')
            .context("not a package-qualified name")?;
        let messages = pb.package(package)?;
        let message = messages
            .iter()
            .find(|m| normalized(&m.name) == normalized(short))
            .with_context(|| format!("k8s-pb has no message {short} in {package}"))?;
        for go_field in go_fields {
            if let Some(number) = go_field.number
                && !message.fields.iter().any(|f| f.number == number)
            {
                bail!("Go field {} ({number}) is not in k8s-pb", go_field.json);
            }
        }
        let mut lines = Vec::new();
        for field in &message.fields {
            let Some(go_field) = go_fields.iter().find(|g| g.number == Some(field.number)) else {
                continue; // newer than the Go types
            };
            let line = self
                .line(field.number, &field.value, field.label, go_field, pending)
                .with_context(|| format!("field {} ({})", field.name, field.number))?;
            lines.push(line);
        }
        Ok(Message {
            name: name.to_owned(),
            lines,
        })
    }

    fn line(
        &mut self,
        number: u32,
        value: &ValueType,
        label: Label,
        go_field: &GoField,
        pending: &mut Vec<String>,
    ) -> anyhow::Result<String> {
        let json = go_field.json_name();
        if go_field.inline() {
            let ValueType::Message(message) = value else {
                bail!("an inlined field that is not a message");
            };
            let inlined = self.go_struct(message)?.to_owned();
            let constant = self.constant(&inlined)?;
            pending.push(inlined);
            return Ok(self.helper("inline", format!("{number}, &{constant}")));
        }
        let kind = self.kind(value, pending)?;
        let (helper, kind) = match label {
            Label::Repeated => ("repeated", kind),
            Label::Map => ("field", format!("Kind::Map(&{kind})")),
            Label::Optional if go_field.pointer() => ("field", kind),
            Label::Optional if go_field.omitempty() && OMITTABLE.contains(&kind.as_str()) => {
                ("omitempty", kind)
            }
            Label::Optional => ("field", kind),
        };
        Ok(self.helper(helper, format!("{number}, \"{json}\", {kind}")))
    }

    fn helper(&mut self, helper: &'static str, arguments: String) -> String {
        self.used.insert(helper);
        format!("        {helper}({arguments}),")
    }

    /// The `Kind` expression of a value type; a message goes to `pending`.
    fn kind(&mut self, value: &ValueType, pending: &mut Vec<String>) -> anyhow::Result<String> {
        Ok(match value {
            ValueType::String => "Kind::String".to_owned(),
            ValueType::Bool => "Kind::Bool".to_owned(),
            ValueType::Int32 => "Kind::Int32".to_owned(),
            ValueType::Int64 => "Kind::Int64".to_owned(),
            ValueType::Bytes => "Kind::Bytes".to_owned(),
            ValueType::Other(other) => bail!("protobuf type {other} has no Kind"),
            ValueType::Message(message) => {
                let full_name = message.full_name();
                if let Some((_, kind)) = SPECIAL.iter().find(|(name, _)| *name == full_name) {
                    return Ok((*kind).to_owned());
                }
                let name = self.go_struct(message)?.to_owned();
                let constant = self.constant(&name)?;
                pending.push(name);
                format!("Kind::Message(&{constant})")
            }
        })
    }

    fn render(&self, header: &str, kinds: &Kinds) -> anyhow::Result<String> {
        let mut out = String::new();
        out.push_str(header);
        out.push_str(
            "//! The protobuf messages of the kinds served, with their JSON names (see the parent\n\
             //! module for how this table was made and how it is read). One line per field:\n\
             //! `field` is written as sent, `omitempty` is left out when zero, `repeated` is a list,\n\
             //! `inline` is an embedded struct whose fields belong to the parent object.\n\n",
        );
        let helpers = ["field", "inline", "omitempty", "repeated"]
            .into_iter()
            .filter(|helper| self.used.contains(helper));
        let imports: Vec<&str> = ["Kind", "Message"].into_iter().chain(helpers).collect();
        out.push_str(&format!("use super::{{{}}};\n\n", imports.join(", ")));
        out.push_str(
            "/// The top-level kinds a protobuf request body may carry: (apiVersion, kind, message).\n\
             pub(super) static KINDS: &[(&str, &str, &Message)] = &[\n",
        );
        for (api_version, kind, name) in kinds.kinds {
            let constant = self.constant(name)?;
            out.push_str(&format!(
                "    (\"{api_version}\", \"{kind}\", &{constant}),\n"
            ));
        }
        out.push_str("];\n");
        let public = kinds
            .meta
            .iter()
            .map(|name| self.constant(name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (constant, message) in &self.messages {
            let visibility = if public.contains(constant) {
                "pub(super) "
            } else {
                ""
            };
            out.push_str(&format!(
                "\n{visibility}static {constant}: Message = Message {{\n    name: \"{}\",\n    fields: &[\n",
                message.name
            ));
            for line in &message.lines {
                out.push_str(line);
                out.push('\n');
            }
            out.push_str("    ],\n};\n");
        }
        Ok(out)
    }
}

/// A name compared without case or `_`: prost's `CephFsVolumeSource` is Go's
/// `CephFSVolumeSource`.
fn normalized(name: &str) -> String {
    name.replace('_', "").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::go_types;

    const PB_CORE: &str = r#"
pub struct Volume {
    #[prost(string, optional, tag = "1")]
    pub name: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(message, optional, tag = "2")]
    pub volume_source: ::core::option::Option<VolumeSource>,
}
pub struct VolumeSource {
    #[prost(message, optional, tag = "1")]
    pub host_path: ::core::option::Option<HostPathVolumeSource>,
    #[prost(message, optional, tag = "2")]
    pub empty_dir: ::core::option::Option<EmptyDirVolumeSource>,
    #[prost(message, optional, tag = "99")]
    pub from_the_future: ::core::option::Option<FutureVolumeSource>,
}
pub struct HostPathVolumeSource {
    #[prost(string, optional, tag = "1")]
    pub path: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(string, optional, tag = "2")]
    pub r#type: ::core::option::Option<::prost::alloc::string::String>,
}
pub struct EmptyDirVolumeSource {
    #[prost(string, optional, tag = "1")]
    pub medium: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(message, optional, tag = "2")]
    pub size_limit:
        ::core::option::Option<super::super::super::apimachinery::pkg::api::resource::Quantity>,
    #[prost(btree_map = "string, string", tag = "3")]
    pub labels: ::prost::alloc::collections::BTreeMap<
        ::prost::alloc::string::String,
        ::prost::alloc::string::String,
    >,
    #[prost(string, repeated, tag = "4")]
    pub tags: ::prost::alloc::vec::Vec<::prost::alloc::string::String>,
    #[prost(message, optional, tag = "5")]
    pub port: ::core::option::Option<super::super::super::apimachinery::pkg::util::intstr::IntOrString>,
}
"#;

    const GO_FIELDS: &str = "
io.k8s.api.core.v1.EmptyDirVolumeSource
  1 medium,omitempty StorageMedium
  2 sizeLimit,omitempty *resource.Quantity
  3 labels,omitempty map[string]string
  4 tags,omitempty []string
  5 port,omitempty intstr.IntOrString

io.k8s.api.core.v1.HostPathVolumeSource
  1 path string
  2 type,omitempty *HostPathType

io.k8s.api.core.v1.Volume
  1 name string
  2 ,inline VolumeSource

io.k8s.api.core.v1.VolumeSource
  1 hostPath,omitempty *HostPathVolumeSource
  2 emptyDir,omitempty *EmptyDirVolumeSource
";

    fn pb() -> K8sPb {
        K8sPb::with_module("io.k8s.api.core.v1", PB_CORE).unwrap()
    }

    #[test]
    fn messages_join_k8s_pb_and_go_on_field_numbers() {
        let mut pb = pb();
        let go = go_types::read(GO_FIELDS).unwrap();
        let kinds = [("v1", "Volume", "io.k8s.api.core.v1.Volume".to_owned())];
        let kinds = Kinds {
            kinds: &kinds,
            meta: &["io.k8s.api.core.v1.HostPathVolumeSource"],
        };
        let schema = generate("// header\n", &mut pb, &go, &kinds).unwrap();
        let expected = r#"// header
//! The protobuf messages of the kinds served, with their JSON names (see the parent
//! module for how this table was made and how it is read). One line per field:
//! `field` is written as sent, `omitempty` is left out when zero, `repeated` is a list,
//! `inline` is an embedded struct whose fields belong to the parent object.

use super::{Kind, Message, field, inline, omitempty, repeated};

/// The top-level kinds a protobuf request body may carry: (apiVersion, kind, message).
pub(super) static KINDS: &[(&str, &str, &Message)] = &[
    ("v1", "Volume", &VOLUME),
];

static EMPTY_DIR_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.EmptyDirVolumeSource",
    fields: &[
        omitempty(1, "medium", Kind::String),
        field(2, "sizeLimit", Kind::Quantity),
        field(3, "labels", Kind::Map(&Kind::String)),
        repeated(4, "tags", Kind::String),
        omitempty(5, "port", Kind::IntOrString),
    ],
};

pub(super) static HOST_PATH_VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.HostPathVolumeSource",
    fields: &[
        field(1, "path", Kind::String),
        field(2, "type", Kind::String),
    ],
};

static VOLUME: Message = Message {
    name: "io.k8s.api.core.v1.Volume",
    fields: &[
        field(1, "name", Kind::String),
        inline(2, &VOLUME_SOURCE),
    ],
};

static VOLUME_SOURCE: Message = Message {
    name: "io.k8s.api.core.v1.VolumeSource",
    fields: &[
        field(1, "hostPath", Kind::Message(&HOST_PATH_VOLUME_SOURCE)),
        field(2, "emptyDir", Kind::Message(&EMPTY_DIR_VOLUME_SOURCE)),
    ],
};
"#;
        assert_eq!(schema, expected);
    }

    #[test]
    fn a_go_field_missing_from_k8s_pb_is_an_error() {
        let mut pb = pb();
        let go = go_types::read(
            "io.k8s.api.core.v1.HostPathVolumeSource\n  1 path string\n  3 extra string\n",
        )
        .unwrap();
        let kinds = Kinds {
            kinds: &[],
            meta: &["io.k8s.api.core.v1.HostPathVolumeSource"],
        };
        let err = generate("", &mut pb, &go, &kinds).unwrap_err();
        assert!(
            format!("{err:#}").contains("Go field extra (3) is not in k8s-pb"),
            "{err:#}"
        );
    }

    #[test]
    fn a_message_without_go_fields_is_an_error() {
        let mut pb = pb();
        let go = go_types::read(
            "io.k8s.api.core.v1.Volume\n  1 name string\n  2 ,inline VolumeSource\n",
        )
        .unwrap();
        let kinds = [("v1", "Volume", "io.k8s.api.core.v1.Volume".to_owned())];
        let kinds = Kinds {
            kinds: &kinds,
            meta: &["io.k8s.api.core.v1.Volume"],
        };
        let err = generate("", &mut pb, &go, &kinds).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("k8s-pb message io.k8s.api.core.v1.VolumeSource has no Go struct"),
            "{err:#}"
        );
    }
}
