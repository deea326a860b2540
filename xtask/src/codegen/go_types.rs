//! The Go struct fields of Kubernetes' API types: what the protobuf table needs from Go.
//!
//! Go's JSON encoder reads a field's `json` tag (its name, `omitempty`, `,inline`) and its
//! type (a pointer is written whenever it is set, zero or not); the `protobuf` tag numbers the
//! field on the wire. [`parse_source`] reads them from a `types.go` (for `--extract`), and
//! [`write`] / [`read`] keep them in the vendored input, one struct per block:
//!
//! ```text
//! io.k8s.api.core.v1.Probe
//!   1 ,inline ProbeHandler
//!   2 initialDelaySeconds,omitempty int32
//!   7 terminationGracePeriodSeconds,omitempty *int64
//! ```
//!
//! Each field line is indented by two spaces: the protobuf field number (`-` when the field has none), the `json` tag
//! and the Go type.

use std::collections::BTreeMap;

use anyhow::{Context, bail};

/// One field of a Go struct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoField {
    /// The `protobuf` tag's field number; `None` for fields not on the wire (`TypeMeta`).
    pub number: Option<u32>,
    /// The `json` tag: `name,omitempty`, `,inline`, ...
    pub json: String,
    /// The Go type as written: `*int64`, `[]Container`, `metav1.ObjectMeta`.
    pub ty: String,
}

impl GoField {
    /// The JSON field name (empty for an inlined struct).
    pub fn json_name(&self) -> &str {
        self.json.split(',').next().unwrap_or_default()
    }

    fn has_option(&self, option: &str) -> bool {
        self.json.split(',').skip(1).any(|o| o == option)
    }

    /// Left out of the JSON when zero (`json:"...,omitempty"`).
    pub fn omitempty(&self) -> bool {
        self.has_option("omitempty")
    }

    /// An embedded struct whose fields are written into the parent (`json:",inline"`).
    pub fn inline(&self) -> bool {
        self.has_option("inline")
    }

    /// A pointer: written whenever set, even to a zero value.
    pub fn pointer(&self) -> bool {
        self.ty.starts_with('*')
    }

    /// The struct type's name without pointer or package: `ProbeHandler` for `*v1.ProbeHandler`.
    pub fn type_name(&self) -> &str {
        let ty = self.ty.trim_start_matches('*');
        ty.rsplit('.').next().unwrap_or(ty)
    }
}

/// One Go struct: its name in its package and its fields in declaration order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoStruct {
    pub name: String,
    pub fields: Vec<GoField>,
}

/// The structs declared in a Go source file (`type X struct { ... }`), with their tagged fields.
pub fn parse_source(source: &str) -> anyhow::Result<Vec<GoStruct>> {
    let mut structs = Vec::new();
    let mut current: Option<GoStruct> = None;
    let mut in_block_comment = false;
    for (index, line) in source.lines().enumerate() {
        let line = line.trim();
        if in_block_comment {
            in_block_comment = !line.contains("*/");
            continue;
        }
        let Some(open) = current.as_mut() else {
            if let Some(name) = struct_start(line) {
                let empty = GoStruct {
                    name: name.to_owned(),
                    fields: Vec::new(),
                };
                if line.ends_with("{}") {
                    structs.push(empty);
                } else {
                    current = Some(empty);
                }
            }
            continue;
        };
        if line == "}" {
            structs.extend(current.take());
        } else if line.starts_with("/*") {
            in_block_comment = !line.contains("*/");
        } else if !line.is_empty() && !line.starts_with("//") {
            let field = parse_field(line)
                .with_context(|| format!("line {}: field of {}: {line}", index + 1, open.name))?;
            open.fields.push(field);
        }
    }
    if let Some(open) = current {
        bail!("struct {} is not closed", open.name);
    }
    Ok(structs)
}

/// `type Name struct {` (or `struct{}`) -> `Name`.
fn struct_start(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("type ")?;
    let (name, rest) = rest.split_once(' ')?;
    let rest = rest.trim_start();
    (rest.starts_with("struct {") || rest.starts_with("struct{")).then_some(name)
}

/// `Name Type `json:"..." protobuf:"..."`` or an embedded `Type `json:",inline"``.
fn parse_field(line: &str) -> anyhow::Result<GoField> {
    let (declaration, rest) = line
        .split_once('`')
        .context("a field without a struct tag")?;
    let (tag, _) = rest.split_once('`').context("an unterminated struct tag")?;
    let ty = match declaration.split_whitespace().collect::<Vec<_>>()[..] {
        [embedded] => embedded,
        [_name, ty] => ty,
        _ => bail!("not one field name and one type"),
    };
    let json = tag_value(tag, "json")?.context("no json tag")?;
    let number =
        match tag_value(tag, "protobuf")? {
            None | Some("-") => None,
            Some(protobuf) => {
                let number = protobuf.split(',').nth(1).unwrap_or_default();
                Some(number.parse().with_context(|| {
                    format!("protobuf tag {protobuf:?}: field number {number:?}")
                })?)
            }
        };
    Ok(GoField {
        number,
        json: json.to_owned(),
        ty: ty.to_owned(),
    })
}

/// The value of `key` in a Go struct tag (`json:"name,omitempty" protobuf:"bytes,1,opt"`).
fn tag_value<'a>(tag: &'a str, key: &str) -> anyhow::Result<Option<&'a str>> {
    let mut rest = tag.trim();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once(":\"")
            .with_context(|| format!("malformed struct tag {tag:?}"))?;
        let (value, after) = after
            .split_once('"')
            .with_context(|| format!("unterminated value in struct tag {tag:?}"))?;
        if name == key {
            return Ok(Some(value));
        }
        rest = after.trim_start();
    }
    Ok(None)
}

/// The vendored form: the header (`#` lines), then each struct under its OpenAPI name.
pub fn write(header: &str, structs: &BTreeMap<String, Vec<GoField>>) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(format!("# {line}").trim_end());
        out.push('\n');
    }
    for (name, fields) in structs {
        out.push('\n');
        out.push_str(name);
        out.push('\n');
        for field in fields {
            let number = field.number.map_or("-".to_owned(), |n| n.to_string());
            out.push_str(&format!("  {number} {} {}\n", field.json, field.ty));
        }
    }
    out
}

/// Reads what [`write`] wrote: the fields of each struct by OpenAPI name.
pub fn read(text: &str) -> anyhow::Result<BTreeMap<String, Vec<GoField>>> {
    let mut structs = BTreeMap::new();
    let mut current: Option<(String, Vec<GoField>)> = None;
    for (index, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", index + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(field) = line.strip_prefix("  ") {
            let Some((_, fields)) = current.as_mut() else {
                bail!("{}: a field before any struct", at());
            };
            let [number, json, ty] = field.split(' ').collect::<Vec<_>>()[..] else {
                bail!("{}: not `<number> <json tag> <type>`", at());
            };
            let number = match number {
                "-" => None,
                number => Some(number.parse().with_context(at)?),
            };
            fields.push(GoField {
                number,
                json: json.to_owned(),
                ty: ty.to_owned(),
            });
        } else {
            structs.extend(current.replace((line.to_owned(), Vec::new())));
        }
    }
    structs.extend(current);
    Ok(structs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"
// Probe describes a health check.
type Probe struct {
	// The action taken to determine the health of a container
	ProbeHandler `json:",inline" protobuf:"bytes,1,opt,name=handler"`
	// +optional
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty" protobuf:"varint,2,opt,name=initialDelaySeconds"`
	/*
		A block comment, as core/v1 has one.
	*/
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty" protobuf:"varint,7,opt,name=terminationGracePeriodSeconds"`
}

type Patch struct{}

// A type that is not a struct is skipped.
type Protocol string

type Pod struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`
	Name string `json:"name" protobuf:"bytes,3,opt,name=name"` // a trailing comment
}
"#;

    #[test]
    fn structs_and_their_tagged_fields_are_read_from_go() {
        let structs = parse_source(SOURCE).unwrap();
        let names: Vec<_> = structs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Probe", "Patch", "Pod"]);
        let probe = &structs[0].fields;
        assert_eq!(
            probe[0],
            GoField {
                number: Some(1),
                json: ",inline".to_owned(),
                ty: "ProbeHandler".to_owned()
            }
        );
        assert!(probe[0].inline() && probe[0].json_name().is_empty());
        assert_eq!(probe[1].json_name(), "initialDelaySeconds");
        assert!(probe[1].omitempty() && !probe[1].pointer());
        assert_eq!(probe[2].number, Some(7));
        assert!(probe[2].pointer());
        assert!(structs[1].fields.is_empty());
        let pod = &structs[2].fields;
        assert_eq!(pod[0].number, None, "TypeMeta is not on the wire");
        assert_eq!(pod[1].type_name(), "ObjectMeta");
        assert_eq!((pod[2].json_name(), pod[2].omitempty()), ("name", false));
    }

    #[test]
    fn untagged_fields_and_open_structs_are_errors() {
        let err = parse_source("type A struct {\n\tName string\n}\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("without a struct tag"),
            "{err:#}"
        );
        let err = parse_source("type A struct {\n\tName string `json:\"name\"`\n").unwrap_err();
        assert!(err.to_string().contains("not closed"), "{err}");
        let err = parse_source("type A struct {\n\tN int `protobuf:\"varint,x\"`\n}").unwrap_err();
        assert!(format!("{err:#}").contains("no json tag"), "{err:#}");
    }

    #[test]
    fn the_vendored_form_reads_back_what_was_written() {
        let mut structs = BTreeMap::new();
        for parsed in parse_source(SOURCE).unwrap() {
            structs.insert(format!("io.k8s.api.core.v1.{}", parsed.name), parsed.fields);
        }
        let text = write("Made by a test.\n\nSecond paragraph.", &structs);
        assert!(text.starts_with("# Made by a test.\n#\n# Second paragraph.\n\nio.k8s"));
        assert!(text.contains(
            "\nio.k8s.api.core.v1.Probe\n  1 ,inline ProbeHandler\n  2 initialDelaySeconds,omitempty int32\n"
        ));
        assert_eq!(read(&text).unwrap(), structs);
    }

    #[test]
    fn malformed_vendored_lines_are_errors() {
        assert!(
            read("  1 name string\n").is_err(),
            "a field before a struct"
        );
        assert!(read("A\n  1 name\n").is_err(), "a missing column");
        assert!(read("A\n  x name string\n").is_err(), "a bad number");
    }
}
