//! Resource quota accounting, as Kubernetes' `k8s.io/apiserver/pkg/quota/v1` does it: what an
//! object uses of a namespace's quotas ([`evaluator`]), and the arithmetic on resource lists
//! (here) that the API server's quota admission and the resourcequota controller share.
//!
//! Amounts are [`ParsedQuantity`]s: exact, compared by value, written back in Kubernetes'
//! canonical form (`status.used` reads `1536Mi`, `500m`, `3`), and bounded so that no sum
//! overflows.

pub mod evaluator;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::{ParsedQuantity, QuantityError};

/// Amounts by resource name (`pods`, `requests.cpu`, `count/deployments.apps`), as
/// `spec.hard`, `status.hard` and `status.used` hold them.
pub type ResourceList = BTreeMap<String, ParsedQuantity>;

/// A quantity quota cannot count with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: quantity {quantity:?}: {reason}")]
pub struct QuotaError {
    /// The resource name.
    pub resource: String,
    /// The quantity as written.
    pub quantity: String,
    /// Why it does not parse.
    pub reason: QuantityError,
}

/// Parses an API resource list (absent: empty).
pub fn parse(list: Option<&BTreeMap<String, Quantity>>) -> Result<ResourceList, QuotaError> {
    list.into_iter()
        .flatten()
        .map(|(name, q)| {
            ParsedQuantity::parse(&q.0)
                .map(|parsed| (name.clone(), parsed))
                .map_err(|reason| QuotaError {
                    resource: name.clone(),
                    quantity: q.0.clone(),
                    reason,
                })
        })
        .collect()
}

/// The API form of a resource list, each quantity in its canonical form.
pub fn to_quantities(list: &ResourceList) -> BTreeMap<String, Quantity> {
    list.iter()
        .map(|(name, q)| (name.clone(), Quantity(q.to_string())))
        .collect()
}

/// `a + b` for every resource in either (`quota.Add`).
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut sum = a.clone();
    for (name, q) in b {
        sum.entry(name.clone())
            .or_insert_with(ParsedQuantity::zero)
            .add(q);
    }
    sum
}

/// `a - b` for every resource in either, where a negative difference is zero
/// (`quota.SubtractWithNonNegativeResult`): what an update adds to the usage.
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    for (name, q) in a {
        let mut difference = *q;
        if let Some(other) = b.get(name) {
            difference.sub(other);
        }
        let value = if difference.is_negative() || difference.is_zero() {
            ParsedQuantity::zero()
        } else {
            difference
        };
        out.insert(name.clone(), value);
    }
    for name in b.keys() {
        out.entry(name.clone()).or_insert_with(ParsedQuantity::zero);
    }
    out
}

/// The entries of `list` whose names are in `names` (`quota.Mask`).
pub fn mask<'a>(list: &ResourceList, names: impl IntoIterator<Item = &'a str>) -> ResourceList {
    names
        .into_iter()
        .filter_map(|name| list.get(name).map(|q| (name.to_owned(), *q)))
        .collect()
}

/// The resources of `hard` that `used` goes over, sorted (`quota.LessThanOrEqual`'s second
/// answer; empty when `used` fits).
pub fn exceeded(used: &ResourceList, hard: &ResourceList) -> Vec<String> {
    hard.iter()
        .filter(|(name, limit)| used.get(*name).is_some_and(|u| u > *limit))
        .map(|(name, _)| name.clone())
        .collect()
}

/// `list` without its zero entries (`quota.RemoveZeros`).
pub fn remove_zeros(list: &ResourceList) -> ResourceList {
    list.iter()
        .filter(|(_, q)| !q.is_zero())
        .map(|(name, q)| (name.clone(), *q))
        .collect()
}

/// The resources with a negative amount, sorted (`quota.IsNegative`).
pub fn negative(list: &ResourceList) -> Vec<String> {
    list.iter()
        .filter(|(_, q)| q.is_negative())
        .map(|(name, _)| name.clone())
        .collect()
}

/// `name=value` pairs sorted by name and joined by commas, as quota messages print a list
/// (`pods=1,requests.cpu=500m`).
pub fn pretty_print(list: &ResourceList) -> String {
    list.iter()
        .map(|(name, q)| format!("{name}={q}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn list(entries: &[(&str, &str)]) -> ResourceList {
        entries
            .iter()
            .map(|(name, q)| ((*name).to_owned(), ParsedQuantity::parse(q).expect(q)))
            .collect()
    }

    #[test]
    fn lists_add_subtract_and_mask_as_kubernetes() {
        let used = list(&[("pods", "2"), ("requests.memory", "256Mi")]);
        let request = list(&[
            ("pods", "1"),
            ("requests.memory", "1Gi"),
            ("count/pods", "1"),
        ]);
        let sum = add(&used, &request);
        assert_eq!(
            pretty_print(&sum),
            "count/pods=1,pods=3,requests.memory=1280Mi"
        );
        assert_eq!(
            pretty_print(&mask(&sum, ["pods", "secrets"])),
            "pods=3",
            "names the list lacks are left out"
        );
        let delta = subtract_non_negative(
            &list(&[("services.nodeports", "3"), ("services", "1")]),
            &list(&[("services.nodeports", "1"), ("services", "1"), ("x", "2")]),
        );
        assert_eq!(pretty_print(&delta), "services=0,services.nodeports=2,x=0");
        assert_eq!(pretty_print(&remove_zeros(&delta)), "services.nodeports=2");
        assert_eq!(negative(&list(&[("a", "-1"), ("b", "0")])), ["a"]);
    }

    #[test]
    fn exceeded_names_what_goes_over_the_hard_limits() {
        let hard = list(&[("pods", "2"), ("requests.cpu", "1"), ("secrets", "1")]);
        assert!(exceeded(&list(&[("pods", "2"), ("requests.cpu", "1")]), &hard).is_empty());
        assert_eq!(
            exceeded(
                &list(&[("pods", "3"), ("requests.cpu", "1001m"), ("services", "9")]),
                &hard
            ),
            ["pods", "requests.cpu"]
        );
    }

    #[test]
    fn api_lists_parse_and_print_canonically() {
        let api: BTreeMap<String, Quantity> = [
            ("cpu".to_owned(), Quantity("1000m".into())),
            ("memory".to_owned(), Quantity("1.5Gi".into())),
        ]
        .into();
        let parsed = parse(Some(&api)).expect("parses");
        assert_eq!(
            to_quantities(&parsed),
            BTreeMap::from([
                ("cpu".to_owned(), Quantity("1".into())),
                ("memory".to_owned(), Quantity("1536Mi".into())),
            ])
        );
        assert!(parse(None).expect("empty").is_empty());
        let bad: BTreeMap<String, Quantity> = [("pods".to_owned(), Quantity("lots".into()))].into();
        let err = parse(Some(&bad)).expect_err("does not parse");
        assert_eq!(err.resource, "pods");
        assert_eq!(err.reason, QuantityError::Format);
    }
}
