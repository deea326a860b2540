//! `master/src/apiserver/strategic_merge/schema.rs`: the table strategic merge patch walks, made
//! from the OpenAPI spec's `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key`.
//!
//! A list property whose strategy includes `merge` merges by its merge key when it holds
//! objects and is a set when it holds scalars; every other list is atomic, and as Kubernetes
//! does not look inside an atomic list, neither does the table (`retainKeys` alone tells the
//! client to send `$retainKeys`, which the patch honours wherever it appears). The table keeps
//! only the types from which a merging list can be reached, and of each only the fields on the
//! way: anywhere else the patch treats maps as maps and lists as atomic, which is what a
//! missing entry means.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};

use super::openapi::{Definitions, Property};
use super::shouty_snake_case;

/// How a list that merges patches (the master's `ListStrategy` other than `Atomic`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Merge {
    /// Objects merge on this key.
    ByKey(String),
    /// Scalars are unioned.
    Set,
}

impl Merge {
    /// How `property` merges; `None` for an atomic list or a field that is not a list.
    fn of(property: &Property) -> anyhow::Result<Option<Merge>> {
        let merges = property
            .patch_strategy
            .as_deref()
            .is_some_and(|strategy| strategy.split(',').any(|s| s == "merge"));
        Ok(
            match (
                merges,
                property.list,
                &property.holds,
                &property.patch_merge_key,
            ) {
                (false, _, _, _) => None,
                (true, false, _, _) => bail!("patch strategy merge on a field that is not a list"),
                (true, true, _, Some(key)) => Some(Merge::ByKey(key.clone())),
                (true, true, None, None) => Some(Merge::Set),
                (true, true, Some(_), None) => {
                    bail!("a merging list of objects without a merge key")
                }
            },
        )
    }

    /// The `ListStrategy` expression, and the variant to import.
    fn render(&self) -> (String, &'static str) {
        match self {
            Merge::ByKey(key) => (format!("MergeByKey(\"{key}\")"), "MergeByKey"),
            Merge::Set => ("Set".to_owned(), "Set"),
        }
    }
}

/// One field of a type, as the table needs it.
struct Field {
    json: String,
    list: bool,
    merge: Option<Merge>,
    /// The type it holds (itself, each element or each map value).
    holds: Option<String>,
    map: bool,
}

impl Field {
    /// Whether the field is a way to a merging list, given the types that lead to one.
    fn leads(&self, leads: &BTreeSet<&str>) -> bool {
        self.merge.is_some() || self.object().is_some_and(|held| leads.contains(held))
    }

    /// The type of a field that holds one object (not a list or a map).
    fn object(&self) -> Option<&str> {
        self.holds.as_deref().filter(|_| !self.list && !self.map)
    }

    /// The type the table follows this field to: the object it holds or the elements of a
    /// merging list, when they lead to a merging list. (Kubernetes does not look inside an
    /// atomic list, or a map here: see [`leading_types`].)
    fn child<'a>(&'a self, leads: &BTreeSet<&str>) -> Option<&'a str> {
        let held = if self.merge.is_some() {
            self.holds.as_deref()
        } else {
            self.object()
        };
        held.filter(|held| leads.contains(held))
    }
}

/// The types in the table: the kinds' and those their fields lead to.
fn emitted<'a>(
    kinds: &'a [(&str, String)],
    types: &'a BTreeMap<String, Vec<Field>>,
    leads: &BTreeSet<&str>,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut pending: Vec<&str> = kinds.iter().map(|(_, name)| name.as_str()).collect();
    while let Some(name) = pending.pop() {
        if seen.insert(name) {
            let fields = types.get(name).map(Vec::as_slice).unwrap_or_default();
            pending.extend(fields.iter().filter_map(|field| field.child(leads)));
        }
    }
    seen
}

/// The generated `schema.rs` for `kinds`: (kind, definition) in table order.
pub fn generate(
    header: &str,
    definitions: &Definitions,
    kinds: &[(&str, String)],
) -> anyhow::Result<String> {
    let roots: Vec<String> = kinds.iter().map(|(_, name)| name.clone()).collect();
    let types = types(definitions, &roots)?;
    let leads = leading_types(&types)?;
    render(header, kinds, &types, &leads)
}

/// The fields of every type the roots reach.
fn types(
    definitions: &Definitions,
    roots: &[String],
) -> anyhow::Result<BTreeMap<String, Vec<Field>>> {
    let mut types = BTreeMap::new();
    for name in definitions.reachable(roots)? {
        let mut fields = Vec::new();
        for (json, property) in definitions.get(&name)? {
            let merge = Merge::of(property).with_context(|| format!("{name}.{json}"))?;
            fields.push(Field {
                json: json.clone(),
                list: property.list,
                merge,
                holds: property.holds.clone(),
                map: property.map,
            });
        }
        types.insert(name, fields);
    }
    Ok(types)
}

/// The types from which a merging list can be reached (to a fixed point).
fn leading_types(types: &BTreeMap<String, Vec<Field>>) -> anyhow::Result<BTreeSet<&str>> {
    let mut leads: BTreeSet<&str> = BTreeSet::new();
    loop {
        let before = leads.len();
        for (name, fields) in types {
            if fields.iter().any(|field| field.leads(&leads)) {
                leads.insert(name);
            }
        }
        if leads.len() == before {
            break;
        }
    }
    for (name, fields) in types {
        for field in fields {
            if field.map
                && field
                    .holds
                    .as_deref()
                    .is_some_and(|held| leads.contains(held))
            {
                bail!(
                    "{name}.{}: a map of types with merging lists is beyond the table",
                    field.json
                );
            }
        }
    }
    Ok(leads)
}

/// The file: the kinds, then each root or leading type with its fields on the way.
fn render(
    header: &str,
    kinds: &[(&str, String)],
    types: &BTreeMap<String, Vec<Field>>,
    leads: &BTreeSet<&str>,
) -> anyhow::Result<String> {
    let mut constants: BTreeMap<String, &str> = BTreeMap::new();
    for name in emitted(kinds, types, leads) {
        let constant = constant_name(name);
        if let Some(other) = constants.insert(constant.clone(), name)
            && other != name
        {
            bail!("{name} and {other} would both be {constant}");
        }
    }

    let mut used: BTreeSet<&str> = BTreeSet::new();
    let mut body = String::new();
    for (constant, name) in &constants {
        body.push_str(&format!(
            "\n/// `{name}`\nstatic {constant}: Type = Type {{\n    fields: &[\n"
        ));
        for field in &types[*name] {
            let line = match (&field.merge, field.child(leads)) {
                (Some(merge), child) => {
                    let (strategy, variant) = merge.render();
                    used.insert("list");
                    used.insert(variant);
                    let element = child.map_or("None".to_owned(), |child| {
                        format!("Some(&{})", constant_name(child))
                    });
                    format!("list(\"{}\", {strategy}, {element})", field.json)
                }
                (None, Some(child)) => {
                    used.insert("object");
                    format!("object(\"{}\", &{})", field.json, constant_name(child))
                }
                (None, None) => continue,
            };
            body.push_str(&format!("        {line},\n"));
        }
        body.push_str("    ],\n};\n");
    }

    let mut out = String::new();
    out.push_str(header);
    out.push_str(
        "//! The table of Kubernetes' patch strategies: the types of the kinds strategic merge\n\
         //! patch knows, each with the fields that are merging lists or lead to one (see the\n\
         //! parent module). `object` is a field holding such a type, `list` a list with its\n\
         //! strategy and the type of its elements when they lead further.\n\n",
    );
    let strategies: Vec<&str> = ["MergeByKey", "Set"]
        .into_iter()
        .filter(|s| used.contains(s))
        .collect();
    if !strategies.is_empty() {
        out.push_str(&format!(
            "use super::ListStrategy::{{{}}};\n",
            strategies.join(", ")
        ));
    }
    let helpers: Vec<&str> = ["Type", "list", "object"]
        .into_iter()
        .filter(|s| *s == "Type" || used.contains(s))
        .collect();
    out.push_str(&format!("use super::{{{}}};\n\n", helpers.join(", ")));
    out.push_str(
        "/// The kinds with a schema: (kind, its type).\n\
         pub(super) static KINDS: &[(&str, &Type)] = &[\n",
    );
    for (kind, name) in kinds {
        out.push_str(&format!("    (\"{kind}\", &{}),\n", constant_name(name)));
    }
    out.push_str("];\n");
    out.push_str(&body);
    Ok(out)
}

/// `POD_SPEC` for `io.k8s.api.core.v1.PodSpec`.
fn constant_name(name: &str) -> String {
    shouty_snake_case(name.rsplit_once('.').map_or(name, |(_, short)| short))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definitions() -> Definitions {
        Definitions::parse(&json!({"definitions": {
            "io.k8s.api.core.v1.Pod": {"properties": {
                "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                "spec": {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"},
                "status": {"$ref": "#/definitions/io.k8s.api.core.v1.PodStatus"}
            }},
            "io.k8s.api.core.v1.PodSpec": {"properties": {
                "containers": {
                    "type": "array",
                    "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Container"},
                    "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-patch-strategy": "merge"
                },
                "volumes": {
                    "type": "array",
                    "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Volume"},
                    "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-patch-strategy": "merge,retainKeys"
                },
                "tolerations": {"type": "array", "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Toleration"}},
                "affinity": {"$ref": "#/definitions/io.k8s.api.core.v1.Toleration"}
            }},
            "io.k8s.api.core.v1.PodStatus": {"properties": {
                "containerStatuses": {"type": "array", "items": {"$ref": "#/definitions/io.k8s.api.core.v1.ContainerStatus"}}
            }},
            "io.k8s.api.core.v1.ContainerStatus": {"properties": {
                "volumeMounts": {"type": "array", "x-kubernetes-patch-strategy": "merge"}
            }},
            "io.k8s.api.core.v1.Container": {"properties": {
                "env": {
                    "type": "array",
                    "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Toleration"},
                    "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-patch-strategy": "merge"
                }
            }},
            "io.k8s.api.core.v1.Volume": {"properties": {}},
            "io.k8s.api.core.v1.Toleration": {"properties": {}},
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"properties": {
                "finalizers": {"type": "array", "x-kubernetes-patch-strategy": "merge"}
            }},
            "io.k8s.api.core.v1.ConfigMap": {"properties": {
                "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
            }}
        }}))
        .unwrap()
    }

    #[test]
    fn the_table_keeps_the_ways_to_merging_lists() {
        let kinds = [
            ("Pod", "io.k8s.api.core.v1.Pod".to_owned()),
            ("ConfigMap", "io.k8s.api.core.v1.ConfigMap".to_owned()),
        ];
        let schema = generate("// header\n", &definitions(), &kinds).unwrap();
        // Left out: `tolerations` (atomic) and `affinity` (nothing merges below it), and the
        // pod's `status`, whose only way to a merging list is through an atomic list.
        let expected = r#"// header
//! The table of Kubernetes' patch strategies: the types of the kinds strategic merge
//! patch knows, each with the fields that are merging lists or lead to one (see the
//! parent module). `object` is a field holding such a type, `list` a list with its
//! strategy and the type of its elements when they lead further.

use super::ListStrategy::{MergeByKey, Set};
use super::{Type, list, object};

/// The kinds with a schema: (kind, its type).
pub(super) static KINDS: &[(&str, &Type)] = &[
    ("Pod", &POD),
    ("ConfigMap", &CONFIG_MAP),
];

/// `io.k8s.api.core.v1.ConfigMap`
static CONFIG_MAP: Type = Type {
    fields: &[
        object("metadata", &OBJECT_META),
    ],
};

/// `io.k8s.api.core.v1.Container`
static CONTAINER: Type = Type {
    fields: &[
        list("env", MergeByKey("name"), None),
    ],
};

/// `io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta`
static OBJECT_META: Type = Type {
    fields: &[
        list("finalizers", Set, None),
    ],
};

/// `io.k8s.api.core.v1.Pod`
static POD: Type = Type {
    fields: &[
        object("metadata", &OBJECT_META),
        object("spec", &POD_SPEC),
    ],
};

/// `io.k8s.api.core.v1.PodSpec`
static POD_SPEC: Type = Type {
    fields: &[
        list("containers", MergeByKey("name"), Some(&CONTAINER)),
        list("volumes", MergeByKey("name"), None),
    ],
};
"#;
        assert_eq!(schema, expected);
    }

    #[test]
    fn strategies_follow_the_patch_extensions() {
        let property = |strategy: Option<&str>, key: Option<&str>, holds: Option<&str>| Property {
            holds: holds.map(str::to_owned),
            list: true,
            map: false,
            patch_strategy: strategy.map(str::to_owned),
            patch_merge_key: key.map(str::to_owned),
        };
        let of = |p: Property| Merge::of(&p).map_err(|e| e.to_string());
        assert_eq!(of(property(None, None, Some("T"))), Ok(None));
        assert_eq!(of(property(Some("retainKeys"), None, Some("T"))), Ok(None));
        assert_eq!(
            of(property(Some("merge,retainKeys"), Some("name"), Some("T"))),
            Ok(Some(Merge::ByKey("name".to_owned())))
        );
        assert_eq!(
            of(property(Some("merge"), None, None)),
            Ok(Some(Merge::Set))
        );
        assert!(of(property(Some("merge"), None, Some("T"))).is_err());
        let mut not_a_list = property(Some("merge"), None, None);
        not_a_list.list = false;
        assert!(of(not_a_list).is_err());
    }
}
