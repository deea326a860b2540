//! Kubernetes' protobuf encoding of request bodies (`application/vnd.kubernetes.protobuf`),
//! decoded into the JSON form of the same object.
//!
//! kubectl's typed commands (`create namespace|deployment|service|configmap|secret|
//! serviceaccount`) send their objects this way. A body is the magic `k8s\0` followed by a
//! `runtime.Unknown` envelope: `typeMeta` (apiVersion, kind), `raw` (the object's message as
//! laid out in Kubernetes' `generated.proto`), `contentEncoding` and `contentType`.
//!
//! The object is read by one generic protobuf wire reader driven by a static table of the
//! messages (`schema.rs`): per message, each field's number, JSON name and kind. The JSON built
//! is what Kubernetes itself writes for the decoded object (Go's `encoding/json`): JSON field
//! names, `Quantity` as a string, `IntOrString` as a number or a string, `Time` as RFC 3339
//! seconds and `MicroTime` with 6 fractional digits (a zero time as `null`), bytes as base64,
//! maps as objects, embedded structs (`ProbeHandler`, `VolumeSource`, `LocalObjectReference`,
//! ...) inlined into their parent, and `FieldsV1` as the JSON it carries.
//!
//! Zero values: Go's protobuf encoder writes every non-pointer field even when it is zero,
//! while its JSON encoder leaves out zero `omitempty` fields. The table marks those fields
//! (`omitempty`) so that an empty `namespace` or a zero `hostPort` on the wire is left out,
//! while pointer fields (`replicas: 0`, `terminationGracePeriodSeconds: 0`,
//! `automountServiceAccountToken: false`) and required fields are kept as sent.
//!
//! Unknown field numbers are skipped, as protobuf readers do. Anything else that does not fit
//! the schema (truncated varints, lengths past the end, wrong wire types, an unknown kind) is a
//! [`ProtobufError`]; no input panics.
//!
//! `schema.rs` was generated once from three sources and is kept by hand since (one line per
//! field): field numbers and message types from the `k8s-pb` crate (prost code generated from
//! Kubernetes' `generated.proto`), JSON names, optional fields and inlined structs from
//! `k8s-openapi`, and Go's pointer fields from k8s.io/api's `zz_generated.deepcopy.go`.

// A generated table, one field per line: rustfmt would spread the lines out.
#[rustfmt::skip]
mod schema;
#[cfg(test)]
mod tests;

use base64::Engine;
use chrono::{DateTime, Datelike};
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use serde_json::{Map, Value};

/// The media type of Kubernetes' protobuf encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4 bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// Deeper than any message nesting in the schema; a guard, never reached by valid input.
const MAX_DEPTH: usize = 64;

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix seconds; written as JSON `null`.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// Why a protobuf request body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with the magic bytes `k8s\0`.
    #[error("not a Kubernetes protobuf body: it must start with the bytes \"k8s\\x00\"")]
    MissingMagic,
    /// The envelope carries a compressed (or otherwise encoded) object.
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedEncoding(String),
    /// The envelope names a kind this server does not decode from protobuf.
    #[error("decoding {kind:?} of {api_version:?} from protobuf is not supported")]
    UnsupportedKind {
        /// `typeMeta.apiVersion` of the envelope.
        api_version: String,
        /// `typeMeta.kind` of the envelope.
        kind: String,
    },
    /// The bytes are not valid protobuf for the message they should hold.
    #[error("malformed protobuf at {at}: {reason}")]
    Malformed {
        /// The message (and field) being read, e.g. `io.k8s.api.core.v1.PodSpec.containers`.
        at: String,
        /// What was wrong.
        reason: String,
    },
}

/// Decode an `application/vnd.kubernetes.protobuf` request body into the object's JSON form,
/// with `apiVersion` and `kind` taken from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let Envelope {
        api_version,
        kind,
        raw,
        content_encoding,
    } = read_envelope(envelope)?;
    if !content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(content_encoding));
    }
    let Some(message) = message_for(&api_version, &kind) else {
        return Err(ProtobufError::UnsupportedKind { api_version, kind });
    };
    let mut object = Map::new();
    object.insert("apiVersion".to_owned(), Value::String(api_version));
    object.insert("kind".to_owned(), Value::String(kind));
    read_message(message, raw, &mut object, 0)?;
    Ok(Value::Object(object))
}

/// The message of a top-level kind. `DeleteOptions` is registered in every group version.
fn message_for(api_version: &str, kind: &str) -> Option<&'static Message> {
    if kind == "DeleteOptions" {
        return Some(&schema::DELETE_OPTIONS);
    }
    schema::KINDS
        .iter()
        .find(|(version, name, _)| *version == api_version && *name == kind)
        .map(|(_, _, message)| *message)
}

// ---- the schema's vocabulary (the table itself is in schema.rs) ------------------------

/// One protobuf message of the schema.
#[derive(Debug)]
struct Message {
    /// The OpenAPI name, for error messages (`io.k8s.api.core.v1.Pod`).
    name: &'static str,
    fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
struct Field {
    number: u32,
    /// The JSON name; empty for [`Shape::Inline`].
    json: &'static str,
    kind: Kind,
    shape: Shape,
}

/// What a field holds: its wire form and its JSON form.
#[derive(Debug)]
enum Kind {
    String,
    Bool,
    Int32,
    Int64,
    /// Base64 in JSON.
    Bytes,
    /// `resource.Quantity` {1: string} -> its string.
    Quantity,
    /// `intstr.IntOrString` {1: type, 2: intVal, 3: strVal} -> a number or a string.
    IntOrString,
    /// `metav1.Time` {1: seconds, 2: nanos} -> RFC 3339 in whole seconds.
    Time,
    /// `metav1.MicroTime` {1: seconds, 2: nanos} -> RFC 3339 with microseconds.
    MicroTime,
    /// `metav1.FieldsV1` / `runtime.RawExtension` {1: raw JSON bytes} -> that JSON.
    RawJson,
    Message(&'static Message),
    /// `map<string, V>`: repeated entries {1: key, 2: value} -> a JSON object.
    Map(&'static Kind),
}

/// How a field's occurrences combine, and when the field is left out of the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One value, written even when zero: Go pointers and required fields.
    Single,
    /// One value, left out when zero: Go value fields tagged `omitempty`.
    OmitEmpty,
    /// A list.
    Repeated,
    /// An embedded struct whose fields are written into the parent (`json:",inline"`).
    Inline,
}

/// A field written as sent, zero or not.
const fn field(number: u32, json: &'static str, kind: Kind) -> Field {
    Field {
        number,
        json,
        kind,
        shape: Shape::Single,
    }
}

/// A field left out of the JSON when zero (`""`, `0`, `false`).
const fn omitempty(number: u32, json: &'static str, kind: Kind) -> Field {
    Field {
        number,
        json,
        kind,
        shape: Shape::OmitEmpty,
    }
}

/// A repeated field (a JSON array).
const fn repeated(number: u32, json: &'static str, kind: Kind) -> Field {
    Field {
        number,
        json,
        kind,
        shape: Shape::Repeated,
    }
}

/// An embedded message whose fields belong to the parent's JSON object.
const fn inline(number: u32, message: &'static Message) -> Field {
    Field {
        number,
        json: "",
        kind: Kind::Message(message),
        shape: Shape::Inline,
    }
}

// ---- the wire reader -------------------------------------------------------------------

/// Where in the body the reader is, for error messages.
#[derive(Debug, Clone, Copy)]
struct Site {
    message: &'static str,
    field: &'static str,
}

impl Site {
    fn error(self, reason: impl std::fmt::Display) -> ProtobufError {
        let at = if self.field.is_empty() {
            self.message.to_owned()
        } else {
            format!("{}.{}", self.message, self.field)
        };
        ProtobufError::Malformed {
            at,
            reason: reason.to_string(),
        }
    }
}

fn read_key(buf: &mut &[u8], site: Site) -> Result<(u32, WireType), ProtobufError> {
    decode_key(buf).map_err(|e| site.error(e))
}

fn read_varint(buf: &mut &[u8], site: Site) -> Result<u64, ProtobufError> {
    decode_varint(buf).map_err(|e| site.error(e))
}

/// A length-delimited payload.
fn read_bytes<'a>(buf: &mut &'a [u8], site: Site) -> Result<&'a [u8], ProtobufError> {
    let len = read_varint(buf, site)?;
    let Some(len) = usize::try_from(len).ok().filter(|&len| len <= buf.len()) else {
        return Err(site.error(format!(
            "length {len} runs past the end ({} bytes left)",
            buf.len()
        )));
    };
    let (payload, rest) = buf.split_at(len);
    *buf = rest;
    Ok(payload)
}

fn read_string(buf: &mut &[u8], site: Site) -> Result<String, ProtobufError> {
    // Go strings may hold any bytes; its JSON encoder writes invalid UTF-8 as U+FFFD.
    Ok(String::from_utf8_lossy(read_bytes(buf, site)?).into_owned())
}

fn skip(wire: WireType, number: u32, buf: &mut &[u8], site: Site) -> Result<(), ProtobufError> {
    skip_field(wire, number, buf, DecodeContext::default()).map_err(|e| site.error(e))
}

fn expect(wire: WireType, expected: WireType, site: Site) -> Result<(), ProtobufError> {
    if wire == expected {
        Ok(())
    } else {
        Err(site.error(format!("wire type {wire:?}, expected {expected:?}")))
    }
}

/// The `runtime.Unknown` envelope.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

fn read_envelope(mut buf: &[u8]) -> Result<Envelope<'_>, ProtobufError> {
    let site = |field| Site {
        message: "runtime.Unknown",
        field,
    };
    let mut envelope = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
    };
    while !buf.is_empty() {
        let (number, wire) = read_key(&mut buf, site(""))?;
        match number {
            1 => {
                expect(wire, WireType::LengthDelimited, site("typeMeta"))?;
                let mut type_meta = read_bytes(&mut buf, site("typeMeta"))?;
                while !type_meta.is_empty() {
                    let (number, wire) = read_key(&mut type_meta, site("typeMeta"))?;
                    match number {
                        1 => {
                            expect(wire, WireType::LengthDelimited, site("typeMeta.apiVersion"))?;
                            envelope.api_version =
                                read_string(&mut type_meta, site("typeMeta.apiVersion"))?;
                        }
                        2 => {
                            expect(wire, WireType::LengthDelimited, site("typeMeta.kind"))?;
                            envelope.kind = read_string(&mut type_meta, site("typeMeta.kind"))?;
                        }
                        _ => skip(wire, number, &mut type_meta, site("typeMeta"))?,
                    }
                }
            }
            2 => {
                expect(wire, WireType::LengthDelimited, site("raw"))?;
                envelope.raw = read_bytes(&mut buf, site("raw"))?;
            }
            3 => {
                expect(wire, WireType::LengthDelimited, site("contentEncoding"))?;
                envelope.content_encoding = read_string(&mut buf, site("contentEncoding"))?;
            }
            _ => skip(wire, number, &mut buf, site(""))?,
        }
    }
    Ok(envelope)
}

/// Read the fields of `message` from `buf` into `out`. Repeated occurrences of a field merge
/// as protobuf defines: lists and maps grow, messages merge, the last scalar wins.
fn read_message(
    message: &'static Message,
    mut buf: &[u8],
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), ProtobufError> {
    let site = Site {
        message: message.name,
        field: "",
    };
    if depth > MAX_DEPTH {
        return Err(site.error("messages nested too deeply"));
    }
    while !buf.is_empty() {
        let (number, wire) = read_key(&mut buf, site)?;
        match message.fields.iter().find(|field| field.number == number) {
            Some(field) => read_field(message, field, wire, &mut buf, out, depth)?,
            None => skip(wire, number, &mut buf, site)?,
        }
    }
    Ok(())
}

fn read_field(
    message: &'static Message,
    field: &'static Field,
    wire: WireType,
    buf: &mut &[u8],
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), ProtobufError> {
    let site = Site {
        message: message.name,
        field: field.json,
    };
    match (field.shape, &field.kind) {
        (Shape::Inline, Kind::Message(inner)) => {
            expect(wire, WireType::LengthDelimited, site)?;
            let payload = read_bytes(buf, site)?;
            read_message(inner, payload, out, depth + 1)
        }
        (_, Kind::Map(value_kind)) => {
            expect(wire, WireType::LengthDelimited, site)?;
            let entry = read_bytes(buf, site)?;
            let (key, value) = read_map_entry(value_kind, entry, site, depth)?;
            let mut map = match out.remove(field.json) {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            map.insert(key, value);
            out.insert(field.json.to_owned(), Value::Object(map));
            Ok(())
        }
        (Shape::Repeated, kind) => {
            let mut list = match out.remove(field.json) {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            };
            if wire == WireType::LengthDelimited && kind.is_varint() {
                // A packed list of numbers.
                let mut packed = read_bytes(buf, site)?;
                while !packed.is_empty() {
                    list.push(kind.varint_value(read_varint(&mut packed, site)?));
                }
            } else {
                list.push(read_value(kind, wire, buf, site, depth)?);
            }
            out.insert(field.json.to_owned(), Value::Array(list));
            Ok(())
        }
        (_, Kind::Message(inner)) => {
            expect(wire, WireType::LengthDelimited, site)?;
            let payload = read_bytes(buf, site)?;
            let mut object = match out.remove(field.json) {
                Some(Value::Object(object)) => object,
                _ => Map::new(),
            };
            read_message(inner, payload, &mut object, depth + 1)?;
            out.insert(field.json.to_owned(), Value::Object(object));
            Ok(())
        }
        (shape, kind) => {
            let value = read_value(kind, wire, buf, site, depth)?;
            if shape == Shape::OmitEmpty && is_zero(&value) {
                out.remove(field.json);
            } else {
                out.insert(field.json.to_owned(), value);
            }
            Ok(())
        }
    }
}

/// One value of `kind` (a list element, a map value or a single field).
fn read_value(
    kind: &Kind,
    wire: WireType,
    buf: &mut &[u8],
    site: Site,
    depth: usize,
) -> Result<Value, ProtobufError> {
    if kind.is_varint() {
        expect(wire, WireType::Varint, site)?;
        return Ok(kind.varint_value(read_varint(buf, site)?));
    }
    expect(wire, WireType::LengthDelimited, site)?;
    let payload = read_bytes(buf, site)?;
    payload_value(kind, payload, site, depth)
}

/// The value of a length-delimited kind from its payload (empty: the kind's zero value).
fn payload_value(
    kind: &Kind,
    payload: &[u8],
    site: Site,
    depth: usize,
) -> Result<Value, ProtobufError> {
    match kind {
        Kind::String => Ok(Value::String(String::from_utf8_lossy(payload).into_owned())),
        Kind::Bytes => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(payload),
        )),
        Kind::Quantity => read_quantity(payload, site),
        Kind::IntOrString => read_int_or_string(payload, site),
        Kind::Time => read_time(payload, false, site),
        Kind::MicroTime => read_time(payload, true, site),
        Kind::RawJson => read_raw_json(payload, site),
        Kind::Message(inner) => {
            let mut object = Map::new();
            read_message(inner, payload, &mut object, depth + 1)?;
            Ok(Value::Object(object))
        }
        Kind::Map(_) => Err(site.error("a map cannot hold maps")),
        Kind::Bool | Kind::Int32 | Kind::Int64 => Err(site.error("not a length-delimited kind")),
    }
}

impl Kind {
    /// Kinds encoded as a varint (and packable in lists).
    fn is_varint(&self) -> bool {
        matches!(self, Kind::Bool | Kind::Int32 | Kind::Int64)
    }

    /// The JSON value of a varint of this kind; protobuf truncates `int32` to 32 bits.
    fn varint_value(&self, varint: u64) -> Value {
        match self {
            Kind::Bool => Value::Bool(varint != 0),
            Kind::Int32 => Value::from(varint as i32),
            _ => Value::from(varint as i64),
        }
    }
}

/// A map entry {1: key, 2: value}; a missing value is the kind's zero value.
fn read_map_entry(
    value_kind: &Kind,
    mut entry: &[u8],
    site: Site,
    depth: usize,
) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = None;
    while !entry.is_empty() {
        let (number, wire) = read_key(&mut entry, site)?;
        match number {
            1 => {
                expect(wire, WireType::LengthDelimited, site)?;
                key = read_string(&mut entry, site)?;
            }
            2 => value = Some(read_value(value_kind, wire, &mut entry, site, depth)?),
            _ => skip(wire, number, &mut entry, site)?,
        }
    }
    let value = match value {
        Some(value) => value,
        None if value_kind.is_varint() => value_kind.varint_value(0),
        None => read_value(
            value_kind,
            WireType::LengthDelimited,
            &mut [0u8].as_slice(),
            site,
            depth,
        )?,
    };
    Ok((key, value))
}

/// `resource.Quantity`: its string (`"0"` when absent, as Go's zero Quantity).
fn read_quantity(mut buf: &[u8], site: Site) -> Result<Value, ProtobufError> {
    let mut quantity = None;
    while !buf.is_empty() {
        let (number, wire) = read_key(&mut buf, site)?;
        if number == 1 {
            expect(wire, WireType::LengthDelimited, site)?;
            quantity = Some(read_string(&mut buf, site)?);
        } else {
            skip(wire, number, &mut buf, site)?;
        }
    }
    Ok(Value::String(quantity.unwrap_or_else(|| "0".to_owned())))
}

/// `intstr.IntOrString`: `intVal` when `type` is 0, `strVal` when it is 1.
fn read_int_or_string(mut buf: &[u8], site: Site) -> Result<Value, ProtobufError> {
    let (mut kind, mut int, mut string) = (0i64, 0i32, String::new());
    while !buf.is_empty() {
        let (number, wire) = read_key(&mut buf, site)?;
        match number {
            1 | 2 => {
                expect(wire, WireType::Varint, site)?;
                let varint = read_varint(&mut buf, site)?;
                if number == 1 {
                    kind = varint as i64;
                } else {
                    int = varint as i32;
                }
            }
            3 => {
                expect(wire, WireType::LengthDelimited, site)?;
                string = read_string(&mut buf, site)?;
            }
            _ => skip(wire, number, &mut buf, site)?,
        }
    }
    match kind {
        0 => Ok(Value::from(int)),
        1 => Ok(Value::String(string)),
        other => Err(site.error(format!(
            "IntOrString type {other} is neither 0 (int) nor 1 (string)"
        ))),
    }
}

/// `metav1.Time` (whole seconds) or `metav1.MicroTime` (microseconds), in UTC; an empty
/// message is Go's zero time, written as `null`.
fn read_time(mut buf: &[u8], micro: bool, site: Site) -> Result<Value, ProtobufError> {
    if buf.is_empty() {
        return Ok(Value::Null);
    }
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while !buf.is_empty() {
        let (number, wire) = read_key(&mut buf, site)?;
        match number {
            1 | 2 => {
                expect(wire, WireType::Varint, site)?;
                let varint = read_varint(&mut buf, site)?;
                if number == 1 {
                    seconds = varint as i64;
                } else {
                    nanos = varint as i32;
                }
            }
            _ => skip(wire, number, &mut buf, site)?,
        }
    }
    if !micro {
        // Kubernetes reads Time at whole seconds, as its JSON form holds.
        nanos = 0;
    }
    if seconds == GO_ZERO_TIME_SECONDS && nanos == 0 {
        return Ok(Value::Null);
    }
    // Go normalises nanoseconds outside [0, 1e9) into the seconds.
    let total = i128::from(seconds) * NANOS_PER_SECOND + i128::from(nanos);
    let time = i64::try_from(total.div_euclid(NANOS_PER_SECOND))
        .ok()
        .zip(u32::try_from(total.rem_euclid(NANOS_PER_SECOND)).ok())
        .and_then(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos))
        .filter(|time| (0..=9999).contains(&time.year()))
        .ok_or_else(|| site.error(format!("time {seconds}s {nanos}ns is out of range")))?;
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(Value::String(time.format(format).to_string()))
}

/// `metav1.FieldsV1` / `runtime.RawExtension`: the JSON document in field 1.
fn read_raw_json(mut buf: &[u8], site: Site) -> Result<Value, ProtobufError> {
    let mut raw: &[u8] = &[];
    while !buf.is_empty() {
        let (number, wire) = read_key(&mut buf, site)?;
        if number == 1 {
            expect(wire, WireType::LengthDelimited, site)?;
            raw = read_bytes(&mut buf, site)?;
        } else {
            skip(wire, number, &mut buf, site)?;
        }
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| site.error(format!("embedded JSON: {e}")))
}

/// Go's zero values, which `omitempty` leaves out.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(string) => string.is_empty(),
        Value::Bool(boolean) => !boolean,
        Value::Number(number) => number.as_i64() == Some(0),
        _ => false,
    }
}
