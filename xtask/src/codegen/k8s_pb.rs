//! The protobuf messages of Kubernetes' `generated.proto`, read from the `k8s-pb` crate (prost
//! code, one module per API package): each message's fields in declaration order with their
//! numbers, protobuf types and labels (`#[prost(string, optional, tag = "1")]`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use syn::{Fields, GenericArgument, Item, LitStr, PathArguments, Token, Type};

/// A message named by its API package and prost struct name (`io.k8s.api.core.v1`,
/// `CephFsVolumeSource`: prost renames `CephFSVolumeSource`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MessageRef {
    pub package: String,
    pub name: String,
}

impl MessageRef {
    /// The name Kubernetes' OpenAPI would give it if prost had kept the case:
    /// `io.k8s.apimachinery.pkg.api.resource.Quantity`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.package, self.name)
    }
}

/// What one value of a field holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueType {
    String,
    Bool,
    Int32,
    Int64,
    Bytes,
    Message(MessageRef),
    /// A protobuf type the table has no kind for (`double`, ...); an error only if reached.
    Other(String),
}

/// How often a field occurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    Optional,
    Repeated,
    /// `map<string, V>`, with V the field's [`ValueType`].
    Map,
}

/// One field of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The Rust field name (`r#type` for `type`), for error messages.
    pub name: String,
    pub number: u32,
    pub value: ValueType,
    pub label: Label,
}

/// One message: its prost struct name and fields in declaration order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub name: String,
    pub fields: Vec<Field>,
}

/// The crate's messages, parsed one API package (module) at a time as they are asked for.
pub struct K8sPb {
    src: PathBuf,
    packages: BTreeMap<String, Vec<Message>>,
}

impl K8sPb {
    /// The crate whose `src/` is at `src`.
    pub fn new(src: PathBuf) -> Self {
        K8sPb {
            src,
            packages: BTreeMap::new(),
        }
    }

    /// Messages of `package` parsed from `source` rather than read from the crate.
    #[cfg(test)]
    pub fn with_module(package: &str, source: &str) -> anyhow::Result<Self> {
        let mut pb = K8sPb::new(PathBuf::new());
        let module: Vec<&str> = package.trim_start_matches("io.k8s.").split('.').collect();
        pb.packages
            .insert(package.to_owned(), parse_module(source, &module)?);
        Ok(pb)
    }

    /// The messages of an API package (`io.k8s.api.core.v1` is `src/api/core/v1/mod.rs`).
    pub fn package(&mut self, package: &str) -> anyhow::Result<&[Message]> {
        if !self.packages.contains_key(package) {
            let module: Vec<&str> = package
                .strip_prefix("io.k8s.")
                .with_context(|| format!("{package} is not a Kubernetes API package"))?
                .split('.')
                .collect();
            let path = module_file(&self.src, &module);
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let messages =
                parse_module(&source, &module).with_context(|| format!("{}", path.display()))?;
            self.packages.insert(package.to_owned(), messages);
        }
        Ok(&self.packages[package])
    }
}

fn module_file(src: &Path, module: &[&str]) -> PathBuf {
    let mut path = src.to_path_buf();
    path.extend(module);
    path.join("mod.rs")
}

/// The messages of one prost module whose path in the crate is `module` (`["api", "core",
/// "v1"]`): every struct with `#[prost(...)]` fields.
pub fn parse_module(source: &str, module: &[&str]) -> anyhow::Result<Vec<Message>> {
    let file = syn::parse_file(source)?;
    let mut messages = Vec::new();
    for item in file.items {
        let Item::Struct(item) = item else { continue };
        let Fields::Named(named) = item.fields else {
            continue;
        };
        let name = item.ident.to_string();
        let mut fields = Vec::new();
        for field in named.named {
            let Some(attr) = field.attrs.iter().find(|a| a.path().is_ident("prost")) else {
                continue;
            };
            let field_name = field.ident.map(|i| i.to_string()).unwrap_or_default();
            let parsed = parse_field(attr, &field.ty, module)
                .with_context(|| format!("{name}.{field_name}"))?;
            fields.push(Field {
                name: field_name,
                ..parsed
            });
        }
        messages.push(Message { name, fields });
    }
    Ok(messages)
}

/// One field from its `#[prost(...)]` attribute and Rust type.
fn parse_field(attr: &syn::Attribute, ty: &Type, module: &[&str]) -> anyhow::Result<Field> {
    let mut scalar: Option<String> = None;
    let mut map_value: Option<String> = None;
    let mut label = Label::Optional;
    let mut number = None;
    attr.parse_nested_meta(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let value = if meta.input.peek(Token![=]) {
            Some(meta.value()?.parse::<LitStr>()?.value())
        } else {
            None
        };
        match (key.as_str(), value) {
            ("tag", Some(tag)) => number = Some(tag),
            ("optional" | "required", None) => label = Label::Optional,
            ("repeated", None) => label = Label::Repeated,
            ("btree_map" | "hash_map", Some(types)) => {
                label = Label::Map;
                map_value = Some(types);
            }
            // How the value is held or encoded, not what it is.
            ("packed" | "boxed", _) => {}
            // The protobuf type comes first (`bytes = "vec"` says how bytes are held).
            (_, _) if scalar.is_none() => scalar = Some(key),
            (_, _) => return Err(meta.error("unknown prost attribute")),
        }
        Ok(())
    })?;
    let number: u32 = number
        .context("no tag")?
        .parse()
        .context("tag is not a number")?;
    let type_name = match map_value {
        Some(types) => {
            let (key, value) = types
                .split_once(',')
                .with_context(|| format!("map types {types:?}"))?;
            if key.trim() != "string" {
                bail!("a map keyed by {key}: Kubernetes' maps are keyed by strings");
            }
            value.trim().to_owned()
        }
        None => scalar.context("no protobuf type")?,
    };
    let value = match type_name.as_str() {
        "string" => ValueType::String,
        "bool" => ValueType::Bool,
        "int32" => ValueType::Int32,
        "int64" => ValueType::Int64,
        "bytes" => ValueType::Bytes,
        "message" => ValueType::Message(message_ref(ty, module)?),
        other => ValueType::Other(other.to_owned()),
    };
    Ok(Field {
        name: String::new(),
        number,
        value,
        label,
    })
}

/// The message a field's Rust type holds (inside `Option`, `Vec`, `Box` or as a map's value),
/// resolved from the module the field is in: `super::super::super::apimachinery::pkg::apis::
/// meta::v1::ObjectMeta` in `api::core::v1` is `io.k8s.apimachinery.pkg.apis.meta.v1`.
fn message_ref(ty: &Type, module: &[&str]) -> anyhow::Result<MessageRef> {
    let Type::Path(path) = ty else {
        bail!("a message field whose type is not a path");
    };
    let last = path.path.segments.last().context("an empty type path")?;
    if let PathArguments::AngleBracketed(args) = &last.arguments {
        let inner = args.args.iter().rev().find_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        });
        return message_ref(
            inner.context("generic type without a type argument")?,
            module,
        );
    }
    let segments: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let (name, prefix) = segments.split_last().context("an empty type path")?;
    let mut package: Vec<String> = module.iter().map(|s| s.to_string()).collect();
    for segment in prefix {
        if segment == "super" {
            package.pop().context("`super` above the crate root")?;
        } else {
            package.push(segment.clone());
        }
    }
    Ok(MessageRef {
        package: format!("io.k8s.{}", package.join(".")),
        name: name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &str = r#"
// This file is @generated by prost-build.
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct ServicePort {
    /// The name of this port within the service.
    #[prost(string, optional, tag = "1")]
    pub name: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(int32, optional, tag = "3")]
    pub port: ::core::option::Option<i32>,
    #[prost(message, optional, tag = "4")]
    pub target_port:
        ::core::option::Option<super::super::super::apimachinery::pkg::util::intstr::IntOrString>,
    #[prost(string, optional, tag = "1")]
    pub r#type: ::core::option::Option<::prost::alloc::string::String>,
}
pub struct PodSpec {
    #[prost(message, repeated, tag = "2")]
    pub containers: ::prost::alloc::vec::Vec<Container>,
    #[prost(btree_map = "string, message", tag = "32")]
    pub overhead: ::prost::alloc::collections::BTreeMap<
        ::prost::alloc::string::String,
        super::super::super::apimachinery::pkg::api::resource::Quantity,
    >,
    #[prost(int64, repeated, packed = "false", tag = "4")]
    pub supplemental_groups: ::prost::alloc::vec::Vec<i64>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub raw: ::core::option::Option<::prost::alloc::vec::Vec<u8>>,
    #[prost(double, optional, tag = "6")]
    pub ratio: ::core::option::Option<f64>,
    #[prost(message, optional, boxed, tag = "7")]
    pub nested: ::core::option::Option<::prost::alloc::boxed::Box<PodSpec>>,
}
impl crate::Resource for ServicePort {
    const KIND: &'static str = "ServicePort";
}
"#;

    fn message(package: &str, name: &str) -> ValueType {
        ValueType::Message(MessageRef {
            package: package.to_owned(),
            name: name.to_owned(),
        })
    }

    #[test]
    fn prost_fields_give_numbers_types_and_labels() {
        let messages = parse_module(MODULE, &["api", "core", "v1"]).unwrap();
        assert_eq!(messages.len(), 2);
        let port = &messages[0];
        assert_eq!(port.name, "ServicePort");
        let summary: Vec<_> = port
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.number, f.value.clone(), f.label))
            .collect();
        assert_eq!(
            summary,
            [
                ("name", 1, ValueType::String, Label::Optional),
                ("port", 3, ValueType::Int32, Label::Optional),
                (
                    "target_port",
                    4,
                    message("io.k8s.apimachinery.pkg.util.intstr", "IntOrString"),
                    Label::Optional
                ),
                ("r#type", 1, ValueType::String, Label::Optional),
            ]
        );
        let spec = &messages[1].fields;
        assert_eq!(
            (spec[0].value.clone(), spec[0].label),
            (message("io.k8s.api.core.v1", "Container"), Label::Repeated)
        );
        assert_eq!(
            (spec[1].value.clone(), spec[1].label),
            (
                message("io.k8s.apimachinery.pkg.api.resource", "Quantity"),
                Label::Map
            )
        );
        assert_eq!(
            (spec[2].value.clone(), spec[2].label),
            (ValueType::Int64, Label::Repeated)
        );
        assert_eq!(spec[3].value, ValueType::Bytes);
        assert_eq!(spec[4].value, ValueType::Other("double".to_owned()));
        assert_eq!(spec[5].value, message("io.k8s.api.core.v1", "PodSpec"));
    }

    #[test]
    fn a_field_without_a_tag_is_an_error() {
        let source = "pub struct A {\n#[prost(string, optional)]\npub a: Option<String>,\n}";
        let err = parse_module(source, &["api", "core", "v1"]).unwrap_err();
        assert!(format!("{err:#}").contains("A.a: no tag"), "{err:#}");
    }
}
