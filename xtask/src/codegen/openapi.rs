//! Kubernetes' OpenAPI spec (`api/openapi-spec/swagger.json`): which definition each property
//! holds and its `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`.
//!
//! [`extract`] keeps, from the definitions the given roots reach, the properties that hold
//! another definition or carry a patch strategy, with only the keys read here; that subset is
//! the vendored input, and [`Definitions::parse`] reads it (or the whole spec) back.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use serde_json::{Map, Value};

const REF_PREFIX: &str = "#/definitions/";
const PATCH_STRATEGY: &str = "x-kubernetes-patch-strategy";
const PATCH_MERGE_KEY: &str = "x-kubernetes-patch-merge-key";

/// One property of a definition, as far as the tables need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Property {
    /// The definition it holds: itself (`$ref`), as list elements or as map values.
    pub holds: Option<String>,
    /// `type: array`.
    pub list: bool,
    /// A map (`additionalProperties`) of [`Property::holds`].
    pub map: bool,
    /// `x-kubernetes-patch-strategy`: `merge`, `retainKeys`, `merge,retainKeys`.
    pub patch_strategy: Option<String>,
    /// `x-kubernetes-patch-merge-key`.
    pub patch_merge_key: Option<String>,
}

/// The definitions by name (`io.k8s.api.core.v1.PodSpec`), each with its properties by JSON
/// name.
#[derive(Debug, Default)]
pub struct Definitions(pub BTreeMap<String, BTreeMap<String, Property>>);

impl Definitions {
    /// Reads the `definitions` of a swagger document (the whole spec or the vendored subset).
    pub fn parse(document: &Value) -> anyhow::Result<Self> {
        let definitions = document["definitions"]
            .as_object()
            .context("no `definitions` object")?;
        let mut parsed = BTreeMap::new();
        for (name, definition) in definitions {
            let mut properties = BTreeMap::new();
            if let Some(props) = definition.get("properties").and_then(Value::as_object) {
                for (json, property) in props {
                    let property =
                        parse_property(property).with_context(|| format!("{name}.{json}"))?;
                    properties.insert(json.clone(), property);
                }
            }
            parsed.insert(name.clone(), properties);
        }
        Ok(Definitions(parsed))
    }

    /// The properties of definition `name`.
    pub fn get(&self, name: &str) -> anyhow::Result<&BTreeMap<String, Property>> {
        self.0
            .get(name)
            .with_context(|| format!("no definition {name} in the OpenAPI spec"))
    }

    /// `roots` and every definition they hold, directly or further down.
    pub fn reachable(&self, roots: &[String]) -> anyhow::Result<BTreeSet<String>> {
        let mut seen = BTreeSet::new();
        let mut pending = roots.to_vec();
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            pending.extend(self.get(&name)?.values().filter_map(|p| p.holds.clone()));
        }
        Ok(seen)
    }
}

fn parse_property(property: &Value) -> anyhow::Result<Property> {
    let reference = |value: &Value| -> anyhow::Result<Option<String>> {
        match value.get("$ref") {
            None => Ok(None),
            Some(reference) => {
                let reference = reference.as_str().context("$ref is not a string")?;
                let name = reference
                    .strip_prefix(REF_PREFIX)
                    .with_context(|| format!("$ref {reference:?} is not a definition"))?;
                Ok(Some(name.to_owned()))
            }
        }
    };
    let list = property.get("type").and_then(Value::as_str) == Some("array");
    let items = property.get("items");
    let values = property.get("additionalProperties");
    let holds = match (reference(property)?, items, values) {
        (Some(held), _, _) => Some(held),
        (None, Some(items), _) => reference(items)?,
        (None, None, Some(values)) => reference(values)?,
        (None, None, None) => None,
    };
    let text = |key: &str| property.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(Property {
        map: values.is_some() && holds.is_some(),
        holds,
        list,
        patch_strategy: text(PATCH_STRATEGY),
        patch_merge_key: text(PATCH_MERGE_KEY),
    })
}

/// The subset of `spec` the strategic-merge table is made from: the definitions `roots` reach,
/// each with the properties that hold a definition or carry a patch strategy, each property
/// with only `$ref`, `type`, `items`, `additionalProperties` and the patch extensions.
/// `about` says where it came from. Keys are sorted, so the output does not depend on the
/// input's order.
pub fn extract(spec: &Value, roots: &[String], about: &str) -> anyhow::Result<Value> {
    let definitions = Definitions::parse(spec)?;
    let source = spec["definitions"]
        .as_object()
        .context("no `definitions` object")?;
    let mut kept = BTreeMap::new();
    for name in definitions.reachable(roots)? {
        let mut properties = BTreeMap::new();
        let all = source[&name]
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (json, property) in all {
            let parsed = &definitions.0[&name][&json];
            if parsed.holds.is_none() && parsed.patch_strategy.is_none() {
                continue;
            }
            properties.insert(json, Value::Object(trim_property(&property)?));
        }
        let mut definition = Map::new();
        definition.insert("properties".to_owned(), sorted(properties));
        kept.insert(name, Value::Object(definition));
    }
    let mut document = Map::new();
    document.insert("about".to_owned(), Value::String(about.to_owned()));
    document.insert("definitions".to_owned(), sorted(kept));
    Ok(Value::Object(document))
}

/// An [`extract`] as text: valid JSON with one line per definition and per property, so that a
/// change in the spec is a change of the lines it touches.
pub fn to_text(extract: &Value) -> anyhow::Result<String> {
    let json = |value: &Value| serde_json::to_string(value).map_err(anyhow::Error::from);
    let about = extract.get("about").context("no `about`")?;
    let definitions = extract["definitions"]
        .as_object()
        .context("no `definitions` object")?;
    let mut out = format!("{{\n  \"about\": {},\n  \"definitions\": {{", json(about)?);
    for (d, (name, definition)) in definitions.iter().enumerate() {
        let properties = definition["properties"]
            .as_object()
            .with_context(|| format!("{name}: no `properties` object"))?;
        let comma = if d == 0 { "" } else { "," };
        out.push_str(&format!(
            "{comma}\n    {}: {{\"properties\": {{",
            json(&Value::String(name.clone()))?
        ));
        for (p, (json_name, property)) in properties.iter().enumerate() {
            let comma = if p == 0 { "" } else { "," };
            out.push_str(&format!(
                "{comma}\n      {}: {}",
                json(&Value::String(json_name.clone()))?,
                json(property)?
            ));
        }
        if !properties.is_empty() {
            out.push_str("\n    ");
        }
        out.push_str("}}");
    }
    out.push_str("\n  }\n}\n");
    Ok(out)
}

/// A property with only the keys [`parse_property`] reads.
fn trim_property(property: &Value) -> anyhow::Result<Map<String, Value>> {
    let object = property
        .as_object()
        .context("a property that is not an object")?;
    let mut kept = BTreeMap::new();
    for (key, value) in object {
        let value = match key.as_str() {
            "$ref" | "type" | PATCH_STRATEGY | PATCH_MERGE_KEY => value.clone(),
            "items" | "additionalProperties" => match value.get("$ref") {
                Some(reference) => {
                    let mut inner = Map::new();
                    inner.insert("$ref".to_owned(), reference.clone());
                    Value::Object(inner)
                }
                None => continue,
            },
            _ => continue,
        };
        kept.insert(key.clone(), value);
    }
    if kept.is_empty() {
        bail!("nothing to keep");
    }
    Ok(kept.into_iter().collect())
}

/// A JSON object with `entries` in key order, whatever order serde_json's `Map` keeps.
fn sorted(entries: BTreeMap<String, Value>) -> Value {
    Value::Object(entries.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({"definitions": {
            "io.k8s.api.core.v1.Pod": {
                "description": "Pod is a collection of containers.",
                "properties": {
                    "kind": {"type": "string", "description": "Kind is..."},
                    "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                    "spec": {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"}
                },
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}]
            },
            "io.k8s.api.core.v1.PodSpec": {
                "properties": {
                    "containers": {
                        "type": "array",
                        "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Container"},
                        "x-kubernetes-list-map-keys": ["name"],
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-patch-merge-key": "name",
                        "x-kubernetes-patch-strategy": "merge"
                    },
                    "overhead": {
                        "type": "object",
                        "additionalProperties": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"}
                    },
                    "hostname": {"type": "string"}
                }
            },
            "io.k8s.api.core.v1.Container": {"properties": {"name": {"type": "string"}}},
            "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
                "properties": {
                    "finalizers": {
                        "type": "array",
                        "items": {"type": "string", "default": ""},
                        "x-kubernetes-patch-strategy": "merge"
                    }
                }
            },
            "io.k8s.api.core.v1.Service": {"properties": {}}
        }})
    }

    #[test]
    fn properties_say_what_they_hold_and_how_they_patch() {
        let definitions = Definitions::parse(&spec()).unwrap();
        let spec = definitions.get("io.k8s.api.core.v1.PodSpec").unwrap();
        assert_eq!(
            spec["containers"],
            Property {
                holds: Some("io.k8s.api.core.v1.Container".to_owned()),
                list: true,
                map: false,
                patch_strategy: Some("merge".to_owned()),
                patch_merge_key: Some("name".to_owned()),
            }
        );
        assert!(spec["overhead"].map && !spec["overhead"].list);
        assert_eq!(spec["hostname"], Property::default());
        let meta = definitions
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .unwrap();
        assert!(meta["finalizers"].list && meta["finalizers"].holds.is_none());
        assert!(definitions.get("io.k8s.api.core.v1.Missing").is_err());
    }

    #[test]
    fn reachable_follows_refs_items_and_map_values() {
        let definitions = Definitions::parse(&spec()).unwrap();
        let reached = definitions
            .reachable(&["io.k8s.api.core.v1.Pod".to_owned()])
            .unwrap();
        let reached: Vec<_> = reached.iter().map(String::as_str).collect();
        assert_eq!(
            reached,
            [
                "io.k8s.api.core.v1.Container",
                "io.k8s.api.core.v1.Pod",
                "io.k8s.api.core.v1.PodSpec",
                "io.k8s.apimachinery.pkg.api.resource.Quantity",
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            ]
        );
    }

    #[test]
    fn the_extract_keeps_what_the_table_reads_from_what_the_roots_reach() {
        let extract = extract(&spec(), &["io.k8s.api.core.v1.Pod".to_owned()], "a test").unwrap();
        assert_eq!(
            extract,
            json!({
                "about": "a test",
                "definitions": {
                    "io.k8s.api.core.v1.Container": {"properties": {}},
                    "io.k8s.api.core.v1.Pod": {"properties": {
                        "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                        "spec": {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"}
                    }},
                    "io.k8s.api.core.v1.PodSpec": {"properties": {
                        "containers": {
                            "type": "array",
                            "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Container"},
                            "x-kubernetes-patch-merge-key": "name",
                            "x-kubernetes-patch-strategy": "merge"
                        },
                        "overhead": {
                            "type": "object",
                            "additionalProperties": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"}
                        }
                    }},
                    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"properties": {}},
                    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"properties": {
                        "finalizers": {"type": "array", "x-kubernetes-patch-strategy": "merge"}
                    }}
                }
            })
        );
        // Its text is JSON of the same content, a line per property.
        let text = to_text(&extract).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), extract);
        assert!(text.contains(
            "\n    \"io.k8s.api.core.v1.Pod\": {\"properties\": {\n      \"metadata\": {\"$ref\":"
        ));
        assert!(text.contains("\n    \"io.k8s.api.core.v1.Container\": {\"properties\": {}},\n"));
        // The extract reads back as the same properties.
        let reread = Definitions::parse(&extract).unwrap();
        let full = Definitions::parse(&spec()).unwrap();
        assert_eq!(
            reread.0["io.k8s.api.core.v1.PodSpec"]["containers"],
            full.0["io.k8s.api.core.v1.PodSpec"]["containers"]
        );
    }

    #[test]
    fn a_ref_outside_the_definitions_is_an_error() {
        let spec = json!({"definitions": {"A": {"properties": {"b": {"$ref": "#/components/B"}}}}});
        let err = Definitions::parse(&spec).unwrap_err();
        assert!(format!("{err:#}").contains("A.b"), "{err:#}");
    }
}
