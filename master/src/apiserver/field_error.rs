//! A field-level validation error, as Kubernetes' `field.Error`.

use std::fmt;

/// Why a field is invalid; the names are Kubernetes' `CauseType`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `FieldValueRequired`: "Required value".
    Required,
    /// `FieldValueInvalid`: "Invalid value: "<value>": <detail>".
    Invalid(String),
    /// `FieldValueInvalid` of a value Kubernetes writes without quotes (numbers, and maps and
    /// structs in Go syntax): "Invalid value: <value>: <detail>".
    InvalidUnquoted(String),
    /// `FieldValueNotSupported`: "Unsupported value: <value>".
    NotSupported(String),
    /// `FieldValueDuplicate`: "Duplicate value: <value>".
    Duplicate(String),
    /// `FieldValueForbidden`: "Forbidden: <detail>".
    Forbidden,
    /// `FieldValueTooLong`: "Too long: <detail>".
    TooLong,
    /// `FieldValueTooMany`: "Too many: <count>: <detail>".
    TooMany(usize),
}

/// One invalid field: its path (`spec.containers[0].image`), what is wrong and a detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, Kubernetes style: `metadata.name`, `spec.containers[0].name`.
    pub field: String,
    /// What kind of error.
    pub kind: FieldErrorKind,
    /// Extra explanation (may be empty).
    pub detail: String,
}

impl FieldError {
    /// A required field is missing.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Required,
            detail: detail.into(),
        }
    }
    /// A field has a bad value.
    pub fn invalid(
        field: impl Into<String>,
        value: impl fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Invalid(value.to_string()),
            detail: detail.into(),
        }
    }
    /// A field has a bad value that Kubernetes writes without quotes: a number, or a map or
    /// struct in Go syntax (`map[string]string{"app":"web"}`).
    pub fn invalid_unquoted(
        field: impl Into<String>,
        value: impl fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::InvalidUnquoted(value.to_string()),
            detail: detail.into(),
        }
    }
    /// A value outside the supported set.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl fmt::Display,
        supported: &[&str],
    ) -> Self {
        let detail = format!(
            "supported values: {}",
            supported
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Self {
            field: field.into(),
            kind: FieldErrorKind::NotSupported(value.to_string()),
            detail,
        }
    }
    /// A value that appears twice where it must be unique.
    pub fn duplicate(field: impl Into<String>, value: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Duplicate(value.to_string()),
            detail: String::new(),
        }
    }
    /// A change or value that is not allowed.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Forbidden,
            detail: detail.into(),
        }
    }
    /// A value longer than allowed.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::TooLong,
            detail: format!("must have at most {max} bytes"),
        }
    }

    /// A list with more items than allowed.
    pub fn too_many(field: impl Into<String>, count: usize, max: usize) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::TooMany(count),
            detail: format!("must have at most {max} items"),
        }
    }

    /// Kubernetes' `CauseType` string for this error.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid(_) | FieldErrorKind::InvalidUnquoted(_) => "FieldValueInvalid",
            FieldErrorKind::NotSupported(_) => "FieldValueNotSupported",
            FieldErrorKind::Duplicate(_) => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany(_) => "FieldValueTooMany",
        }
    }

    /// The message without the field path, as in a `StatusCause`.
    pub fn message(&self) -> String {
        let head = match &self.kind {
            FieldErrorKind::Required => "Required value".to_string(),
            FieldErrorKind::Invalid(v) => format!("Invalid value: \"{v}\""),
            FieldErrorKind::InvalidUnquoted(v) => format!("Invalid value: {v}"),
            FieldErrorKind::NotSupported(v) => format!("Unsupported value: \"{v}\""),
            FieldErrorKind::Duplicate(v) => format!("Duplicate value: \"{v}\""),
            FieldErrorKind::Forbidden => "Forbidden".to_string(),
            FieldErrorKind::TooLong => "Too long".to_string(),
            FieldErrorKind::TooMany(n) => format!("Too many: {n}"),
        };
        if self.detail.is_empty() {
            head
        } else {
            format!("{head}: {}", self.detail)
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}
