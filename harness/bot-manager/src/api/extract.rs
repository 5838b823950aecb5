//! Extractors that answer bad input as FastAPI does: 422 with pydantic's list of errors
//! (`{"detail": [{"loc", "msg", "type", "ctx"?}]}`, the first invalid input), 413 for an
//! oversized body.
//!
//! No text with a NUL character gets past them, in a body or a path: Postgres stores no
//! NUL in `text` or `jsonb`, so such an input is refused here, as a 422 naming where it
//! is, under every profile (production answered it with a 500 carrying Postgres's error).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use protocol::Platform;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ApiError;

/// A JSON body; malformed or mistyped input is 422, an oversized body 413.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // As FastAPI: a body is read as JSON when the content type says JSON or says
        // nothing; anything else is bytes, which no model accepts.
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().map(is_json_content_type).unwrap_or(false))
            .unwrap_or(true);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large")
            } else {
                ApiError::new(rejection.status(), rejection.body_text())
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::validation(
                &["body"],
                "missing",
                "Field required",
                None,
            ));
        }
        if !json {
            return Err(not_an_object());
        }
        parse_body(&bytes).map(ApiJson)
    }
}

fn is_json_content_type(value: &str) -> bool {
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime.strip_prefix("application/")
        .is_some_and(|subtype| subtype == "json" || subtype.ends_with("+json"))
}

fn not_an_object() -> ApiError {
    ApiError::validation(
        &["body"],
        "model_attributes_type",
        "Input should be a valid dictionary or object to extract fields from",
        None,
    )
}

/// Deserialises a JSON body, answering the first problem as pydantic would.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|err| json_invalid(bytes, &err))?;
    if !json.is_object() {
        return Err(not_an_object());
    }
    if let Some(err) = nul_in(&json, &mut vec![json!("body")]) {
        return Err(err);
    }
    serde_path_to_error::deserialize(json).map_err(|err| body_error(bytes, &err))
}

/// pydantic's `value_error` for a text holding a NUL character, located at `loc`.
fn nul_error(loc: &[Value], what: &str) -> ApiError {
    ApiError::validation(
        loc,
        "value_error",
        format!("Value error, {what} must not contain a NUL character (\\u0000)"),
        Some(json!({"error": {}})),
    )
}

/// The first string (or object key) in `value` that holds a NUL, as a 422 located at its
/// path (`["body", "error_details", "trace", 2]`); `None` when there is none.
fn nul_in(value: &Value, loc: &mut Vec<Value>) -> Option<ApiError> {
    match value {
        Value::String(s) if s.contains('\0') => Some(nul_error(loc, "text")),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            loc.push(json!(i));
            let found = nul_in(item, loc);
            loc.pop();
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(nul_error(loc, "a key"));
            }
            loc.push(json!(key));
            let found = nul_in(item, loc);
            loc.pop();
            found
        }),
        _ => None,
    }
}

/// Syntax: pydantic's `json_invalid`, located at the character where decoding failed.
fn json_invalid(bytes: &[u8], err: &serde_json::Error) -> ApiError {
    ApiError::validation(
        &[json!("body"), json!(byte_offset(bytes, err))],
        "json_invalid",
        "JSON decode error",
        Some(json!({"error": message_of(err)})),
    )
}

fn body_error(bytes: &[u8], err: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = err.inner();
    if !inner.is_data() {
        return json_invalid(bytes, inner);
    }
    let mut loc = vec![json!("body")];
    for segment in err.path().iter() {
        use serde_path_to_error::Segment;
        match segment {
            Segment::Map { key } => loc.push(json!(key)),
            Segment::Seq { index } => loc.push(json!(index)),
            Segment::Enum { variant } => loc.push(json!(variant)),
            Segment::Unknown => {}
        }
    }
    let message = message_of(inner);
    if let Some(field) = between(&message, "missing field `", "`") {
        loc.push(json!(field));
        return ApiError::validation(&loc, "missing", "Field required", None);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let expected: Vec<String> = rest
            .split_once("expected ")
            .map(|(_, list)| {
                list.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(|v| format!("'{v}'"))
                    .collect()
            })
            .unwrap_or_default();
        let expected = one_of(&expected);
        return ApiError::validation(
            &loc,
            "enum",
            format!("Input should be {expected}"),
            Some(json!({"expected": expected})),
        );
    }
    if let Some(expected) = message.strip_prefix("invalid type: ").and_then(|m| {
        m.split_once(", expected ")
            .map(|(_, expected)| expected.to_owned())
    }) {
        let (kind, msg) = type_error(&expected);
        return ApiError::validation(&loc, kind, msg, None);
    }
    ApiError::validation(
        &loc,
        "value_error",
        format!("Value error, {message}"),
        Some(json!({"error": {}})),
    )
}

/// pydantic's error type and message for a value of the wrong JSON type.
fn type_error(expected: &str) -> (&'static str, String) {
    let integer = [
        "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "usize", "isize",
    ];
    if expected.contains("string") {
        ("string_type", "Input should be a valid string".into())
    } else if integer.contains(&expected) {
        ("int_type", "Input should be a valid integer".into())
    } else if expected.contains("boolean") {
        ("bool_type", "Input should be a valid boolean".into())
    } else if expected.contains("map") || expected.starts_with("struct") {
        ("dict_type", "Input should be a valid dictionary".into())
    } else if expected.contains("variant") {
        (
            "enum",
            "Input should be a valid enumeration member".to_owned(),
        )
    } else {
        ("value_error", format!("Value error, expected {expected}"))
    }
}

/// `'a', 'b' or 'c'`, pydantic's list of the values an enum accepts.
fn one_of(values: &[String]) -> String {
    match values {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(open)?;
    rest.split_once(close).map(|(inside, _)| inside)
}

/// serde_json's message without its ` at line L column C` suffix.
fn message_of(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rsplit_once(" at line ") {
        Some((message, _)) if err.line() > 0 => message.to_owned(),
        _ => text,
    }
}

/// The byte offset of a serde_json error's line and column (pydantic's `loc` for
/// `json_invalid` is the character position).
fn byte_offset(bytes: &[u8], err: &serde_json::Error) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if i + 1 == err.line() {
            return offset + err.column().saturating_sub(1);
        }
        offset += line.chars().count();
    }
    offset
}

/// The `{platform}/{native_meeting_id}` of `/bots/{platform}/{native_meeting_id}[/...]`,
/// percent-decoded as uvicorn decodes a path: an invalid UTF-8 sequence becomes U+FFFD
/// (production then finds no meeting), not a rejection. A platform that is not one is
/// pydantic's enum error at `["path", "platform"]`; a native id with a NUL character a
/// `value_error` at `["path", "native_meeting_id"]`.
pub struct MeetingPath {
    pub platform: Platform,
    pub native_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for MeetingPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut segments = parts.uri.path().trim_start_matches('/').split('/').skip(1);
        let mut next = || {
            let raw = segments.next().unwrap_or("");
            percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned()
        };
        let (platform, native_id) = (next(), next());
        let platform = parse_platform(&platform)?;
        if native_id.contains('\0') {
            return Err(nul_error(
                &[json!("path"), json!("native_meeting_id")],
                "a text",
            ));
        }
        Ok(MeetingPath {
            platform,
            native_id,
        })
    }
}

/// A `{platform}` path parameter; anything else is pydantic's enum error at
/// `["path", "platform"]`.
pub fn parse_platform(raw: &str) -> Result<Platform, ApiError> {
    raw.parse::<Platform>().map_err(|_| {
        let expected: Vec<String> = Platform::ALL
            .iter()
            .map(|p| format!("'{}'", p.as_str()))
            .collect();
        let expected = one_of(&expected);
        ApiError::validation(
            &["path", "platform"],
            "enum",
            format!("Input should be {expected}"),
            Some(json!({"expected": expected})),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{CreateBotRequest, StatusChangePayload};
    use serde_json::Value;

    fn detail<T: DeserializeOwned + std::fmt::Debug>(body: &str) -> Value {
        let err = parse_body::<T>(body.as_bytes()).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        err.detail
    }

    #[test]
    fn a_missing_field_is_located_in_the_body() {
        let d = detail::<CreateBotRequest>(r#"{"platform": "zoom"}"#);
        assert_eq!(
            d,
            json!([{"type": "missing", "loc": ["body", "native_meeting_id"], "msg": "Field required"}])
        );
    }

    #[test]
    fn an_unknown_enum_value_names_the_accepted_ones() {
        let d = detail::<CreateBotRequest>(r#"{"platform": "webex", "native_meeting_id": "1"}"#);
        assert_eq!(d[0]["loc"], json!(["body", "platform"]));
        assert_eq!(d[0]["type"], "enum");
        assert_eq!(
            d[0]["msg"],
            "Input should be 'google_meet', 'zoom' or 'teams'"
        );
        assert_eq!(d[0]["ctx"]["expected"], "'google_meet', 'zoom' or 'teams'");
        let d = detail::<StatusChangePayload>(r#"{"connection_id": "u", "status": "paused"}"#);
        assert_eq!(d[0]["loc"], json!(["body", "status"]));
    }

    #[test]
    fn a_wrong_type_and_broken_json_are_pydantic_errors() {
        let d = detail::<StatusChangePayload>(r#"{"connection_id": 5, "status": "active"}"#);
        assert_eq!(d[0]["loc"], json!(["body", "connection_id"]));
        assert_eq!(d[0]["type"], "string_type");
        let d = detail::<StatusChangePayload>(r#"{"connection_id": "#);
        assert_eq!(d[0]["type"], "json_invalid");
        assert_eq!(d[0]["loc"][0], "body");
        assert!(d[0]["loc"][1].is_u64(), "{d}");
        let d = detail::<StatusChangePayload>(r#"[1, 2]"#);
        assert_eq!(d[0]["type"], "model_attributes_type");
        assert_eq!(d[0]["loc"], json!(["body"]));
    }

    // Pins issue 12: a NUL reached Postgres, which refused it with a 500 carrying its
    // own error text. It is refused where it is, before any handler runs.
    #[test]
    fn a_nul_anywhere_in_a_body_is_refused_where_it_is() {
        let d = detail::<CreateBotRequest>(
            r#"{"platform": "zoom", "native_meeting_id": "123456789", "passcode": "a\u0000b"}"#,
        );
        assert_eq!(d[0]["loc"], json!(["body", "passcode"]));
        assert_eq!(d[0]["type"], "value_error");
        assert!(d[0]["msg"].as_str().unwrap().contains("NUL"), "{d}");
        let d = detail::<StatusChangePayload>(
            r#"{"connection_id": "u", "status": "failed", "error_details": {"trace": ["ok", "x\u0000"]}}"#,
        );
        assert_eq!(d[0]["loc"], json!(["body", "error_details", "trace", 1]));
        let d = detail::<StatusChangePayload>(
            r#"{"connection_id": "u", "status": "failed", "error_details": {"k\u0000": 1}}"#,
        );
        assert_eq!(d[0]["loc"], json!(["body", "error_details"]));
        assert!(d[0]["msg"].as_str().unwrap().contains("key"), "{d}");
    }

    #[test]
    fn an_unknown_platform_in_the_path_is_located_there() {
        let err = parse_platform("webex").unwrap_err();
        assert_eq!(err.detail[0]["loc"], json!(["path", "platform"]));
        assert_eq!(err.detail[0]["type"], "enum");
    }
}
