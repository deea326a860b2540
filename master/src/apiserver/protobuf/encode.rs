//! The writer: an object's JSON form into Kubernetes' protobuf encoding, for clients that ask
//! for `application/vnd.kubernetes.protobuf` (client-go and everything built on it).
//!
//! The same table as the reader drives it ([`Message`]), the other way round: each field of
//! the message is looked up in the JSON object by its JSON name (the fields of an
//! [`Shape::Inline`] struct in the parent object) and written under its number, in the table's
//! order. What the JSON leaves out (an `omitempty` zero, an unset pointer, `null`) is not
//! written, which Go's reader takes as the zero value, as it does for Go's own encoding of it;
//! a `null` time is Go's zero time, written as the empty message Go writes for it.
//! JSON fields the table lacks are not written: the v1.32 messages have no place for them.
//!
//! A response body is the magic `k8s\0` and a `runtime.Unknown` envelope around the message
//! ([`envelope`]); a list is the kind's `...List` message (`metadata` 1, `items` 2, as every
//! list type of Kubernetes); a watch stream is length-prefixed `WatchEvent` messages
//! ([`watch_event`]), each object in its own envelope, as kube-apiserver's protobuf watch
//! encoder writes them.

use base64::Engine;
use chrono::{DateTime, Timelike};
use prost::encoding::{WireType, encode_key, encode_varint};
use serde_json::{Map, Value};

use super::{Field, Kind, MAGIC, MAX_DEPTH, Message, ProtobufError, Shape, Site, message_for};

/// An object's message (no envelope), from its JSON form with `apiVersion` and `kind`.
pub fn message(object: &Value) -> Result<Vec<u8>, ProtobufError> {
    let (api_version, kind) = type_meta(object)?;
    let message = message_for(api_version, kind).ok_or_else(|| ProtobufError::UnsupportedKind {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
    })?;
    let mut out = Vec::new();
    write_message(message, as_object(object, message.name, "")?, &mut out, 0)?;
    Ok(out)
}

/// A whole response body for an object (a kind of the table, or a `Status`).
pub fn body(object: &Value) -> Result<Vec<u8>, ProtobufError> {
    let raw = message(object)?;
    let (api_version, kind) = type_meta(object)?;
    let mut out = Vec::with_capacity(raw.len() + 32);
    envelope(api_version, kind, &raw, &mut out);
    Ok(out)
}

/// A list response body: `{kind}List` of `api_version` with the list's `metadata` (JSON
/// `ListMeta`) and the items' messages (from [`message`]).
pub fn list<'a>(
    api_version: &str,
    kind: &str,
    metadata: &Value,
    items: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, ProtobufError> {
    let mut raw = Vec::new();
    nested(1, &mut raw, |out| {
        write_message(
            &super::schema::LIST_META,
            as_object(metadata, "ListMeta", "")?,
            out,
            0,
        )
    })?;
    for item in items {
        write_bytes(2, item, &mut raw);
    }
    let mut out = Vec::with_capacity(raw.len() + 32);
    envelope(api_version, &format!("{kind}List"), &raw, &mut out);
    Ok(out)
}

/// Appends `k8s\0` and the `runtime.Unknown` envelope around an object's message (`raw`).
pub fn envelope(api_version: &str, kind: &str, raw: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    // typeMeta {1: apiVersion, 2: kind}, raw, contentEncoding, contentType (Go writes the
    // last two even when empty).
    let type_meta_len = string_len(1, api_version) + string_len(2, kind);
    encode_key(1, WireType::LengthDelimited, out);
    encode_varint(type_meta_len as u64, out);
    write_bytes(1, api_version.as_bytes(), out);
    write_bytes(2, kind.as_bytes(), out);
    write_bytes(2, raw, out);
    write_bytes(3, b"", out);
    write_bytes(4, b"", out);
}

/// Appends one frame of a protobuf watch stream: the 4-byte big-endian length, then a
/// `WatchEvent` {1: type, 2: RawExtension {1: the object's envelope}}.
pub fn watch_event(event: &str, api_version: &str, kind: &str, raw: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    write_bytes(1, event.as_bytes(), out);
    let mut object = Vec::with_capacity(raw.len() + 32);
    envelope(api_version, kind, raw, &mut object);
    encode_key(2, WireType::LengthDelimited, out);
    encode_varint(bytes_len(1, object.len()) as u64, out);
    write_bytes(1, &object, out);
    // A frame is far below 4 GiB (bodies are capped long before); saturate rather than wrap.
    let len = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// `apiVersion` and `kind` of an object.
fn type_meta(object: &Value) -> Result<(&str, &str), ProtobufError> {
    let get = |field| object.get(field).and_then(Value::as_str).unwrap_or("");
    Ok((get("apiVersion"), get("kind")))
}

fn as_object<'a>(
    value: &'a Value,
    message: &'static str,
    field: &'static str,
) -> Result<&'a Map<String, Value>, ProtobufError> {
    value.as_object().ok_or_else(|| {
        Site { message, field }.unencodable(format!("expected an object, not {value}"))
    })
}

fn write_message(
    message: &'static Message,
    object: &Map<String, Value>,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        let site = Site {
            message: message.name,
            field: "",
        };
        return Err(site.unencodable("objects nested too deeply"));
    }
    for field in message.fields {
        let site = Site {
            message: message.name,
            field: field.json,
        };
        if let (Shape::Inline, Kind::Message(inner)) = (field.shape, &field.kind) {
            nested(field.number, out, |out| {
                write_message(inner, object, out, depth + 1)
            })?;
            continue;
        }
        match object.get(field.json) {
            None => {}
            // Go's zero time, which its JSON writes as `null`: an empty message.
            Some(Value::Null) if matches!(field.kind, Kind::Time | Kind::MicroTime) => {
                nested(field.number, out, |_| Ok(()))?;
            }
            Some(Value::Null) => {}
            Some(value) => write_field(field, value, out, site, depth)?,
        }
    }
    Ok(())
}

fn write_field(
    field: &'static Field,
    value: &Value,
    out: &mut Vec<u8>,
    site: Site,
    depth: usize,
) -> Result<(), ProtobufError> {
    match (&field.kind, field.shape) {
        (Kind::Map(value_kind), _) => {
            let map = value
                .as_object()
                .ok_or_else(|| site.unencodable(format!("expected an object, not {value}")))?;
            for (key, value) in map {
                nested(field.number, out, |entry| {
                    write_bytes(1, key.as_bytes(), entry);
                    if !value.is_null() {
                        write_value(2, value_kind, value, entry, site, depth)?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        }
        (kind, Shape::Repeated) => {
            let list = value
                .as_array()
                .ok_or_else(|| site.unencodable(format!("expected a list, not {value}")))?;
            for item in list.iter().filter(|item| !item.is_null()) {
                write_value(field.number, kind, item, out, site, depth)?;
            }
            Ok(())
        }
        (kind, _) => write_value(field.number, kind, value, out, site, depth),
    }
}

/// One value of `kind` under field `number` (a list element, a map value or a single field).
fn write_value(
    number: u32,
    kind: &Kind,
    value: &Value,
    out: &mut Vec<u8>,
    site: Site,
    depth: usize,
) -> Result<(), ProtobufError> {
    let wrong = || site.unencodable(format!("{value} is not {}", kind.json_form()));
    match kind {
        Kind::String => write_bytes(number, value.as_str().ok_or_else(wrong)?.as_bytes(), out),
        Kind::Bool => write_varint(number, u64::from(value.as_bool().ok_or_else(wrong)?), out),
        Kind::Int32 => {
            let int = integer(value).ok_or_else(wrong)?;
            i32::try_from(int)
                .map_err(|_| site.unencodable(format!("{int} is out of int32 range")))?;
            // Negative int32s are sign-extended to 64 bits on the wire.
            write_varint(number, int as u64, out);
        }
        Kind::Int64 => write_varint(number, integer(value).ok_or_else(wrong)? as u64, out),
        Kind::Bytes => {
            let encoded = value.as_str().ok_or_else(wrong)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| site.unencodable(format!("bytes are not base64: {e}")))?;
            write_bytes(number, &bytes, out);
        }
        Kind::Quantity => {
            let quantity = match value {
                Value::String(quantity) => quantity.clone(),
                Value::Number(number) => number.to_string(),
                _ => return Err(wrong()),
            };
            nested(number, out, |out| {
                write_bytes(1, quantity.as_bytes(), out);
                Ok(())
            })?;
        }
        Kind::IntOrString => nested(number, out, |out| {
            match value {
                Value::String(string) => {
                    write_varint(1, 1, out);
                    write_bytes(3, string.as_bytes(), out);
                }
                _ => {
                    let int = integer(value).ok_or_else(wrong)?;
                    let int = i32::try_from(int)
                        .map_err(|_| site.unencodable(format!("{int} is out of int32 range")))?;
                    write_varint(1, 0, out);
                    write_varint(2, int as u64, out);
                }
            }
            Ok(())
        })?,
        Kind::Time | Kind::MicroTime => {
            let text = value.as_str().ok_or_else(wrong)?;
            let time = DateTime::parse_from_rfc3339(text)
                .map_err(|e| site.unencodable(format!("time {text:?}: {e}")))?;
            let nanos = if matches!(kind, Kind::MicroTime) {
                // MicroTime keeps microseconds.
                time.nanosecond() / 1000 * 1000
            } else {
                0
            };
            nested(number, out, |out| {
                write_varint(1, time.timestamp() as u64, out);
                if nanos != 0 {
                    write_varint(2, u64::from(nanos), out);
                }
                Ok(())
            })?;
        }
        Kind::RawJson => {
            let raw = serde_json::to_vec(value).map_err(|e| site.unencodable(e))?;
            nested(number, out, |out| {
                write_bytes(1, &raw, out);
                Ok(())
            })?;
        }
        Kind::StringList => {
            let items = value.as_array().ok_or_else(wrong)?;
            nested(number, out, |out| {
                for item in items {
                    write_bytes(1, item.as_str().ok_or_else(wrong)?.as_bytes(), out);
                }
                Ok(())
            })?;
        }
        Kind::Message(inner) => {
            let object = value.as_object().ok_or_else(wrong)?;
            nested(number, out, |out| {
                write_message(inner, object, out, depth + 1)
            })?;
        }
        Kind::Map(_) => return Err(site.unencodable("a map cannot hold maps")),
    }
    Ok(())
}

/// A JSON number as an integer (`2.0` counts; JSON has one number type).
fn integer(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// Writes a length-delimited field whose payload `fill` appends, the length put in front of
/// it afterwards.
fn nested(
    number: u32,
    out: &mut Vec<u8>,
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), ProtobufError>,
) -> Result<(), ProtobufError> {
    encode_key(number, WireType::LengthDelimited, out);
    let start = out.len();
    fill(out)?;
    let mut len = Vec::with_capacity(10);
    encode_varint((out.len() - start) as u64, &mut len);
    out.splice(start..start, len);
    Ok(())
}

fn write_varint(number: u32, value: u64, out: &mut Vec<u8>) {
    encode_key(number, WireType::Varint, out);
    encode_varint(value, out);
}

fn write_bytes(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// The encoded length of a length-delimited field holding `len` bytes.
fn bytes_len(number: u32, len: usize) -> usize {
    prost::encoding::key_len(number) + prost::encoding::encoded_len_varint(len as u64) + len
}

fn string_len(number: u32, string: &str) -> usize {
    bytes_len(number, string.len())
}

impl Kind {
    /// What the JSON form of this kind is, for error messages.
    fn json_form(&self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Bool => "a boolean",
            Kind::Int32 | Kind::Int64 => "an integer",
            Kind::Bytes => "base64 bytes",
            Kind::Quantity => "a quantity",
            Kind::IntOrString => "an integer or a string",
            Kind::Time | Kind::MicroTime => "a time",
            Kind::RawJson => "JSON",
            Kind::StringList => "a list of strings",
            Kind::Message(_) | Kind::Map(_) => "an object",
        }
    }
}
