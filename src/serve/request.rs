//! Request bodies: JSON in, checked settings out. The body must be UTF-8 and a JSON object
//! ([`parse_object`]); its fields are checked by the validator `nib batch` shares
//! ([`crate::request`]), whose errors become OpenAI-shaped 400s naming the field.

use super::error::ApiError;
pub use crate::request::{
    opt_bool, opt_f32, opt_i64, opt_str, parse_gen, parse_messages, parse_prompt, FieldError,
    GenRequest, Object, Prompt,
};
use serde_json::Value;

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> ApiError {
        let mut a = ApiError::bad_request(e.code, e.message);
        a.param = e.param;
        a
    }
}

/// Parse a request body: UTF-8, JSON, an object.
pub fn parse_object(body: &[u8]) -> Result<Object, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_encoding",
            format!("the request body is not valid UTF-8 ({e})"),
        )
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty; send a JSON object",
        ));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ApiError::bad_request(
            "invalid_json",
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(
            "invalid_json",
            format!("could not parse the JSON body of the request: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_must_be_utf8_json_object() {
        assert_eq!(
            parse_object(b"\xff\xfe").unwrap_err().code,
            Some("invalid_encoding")
        );
        assert_eq!(parse_object(b"{").unwrap_err().code, Some("invalid_json"));
        assert_eq!(parse_object(b"[1]").unwrap_err().code, Some("invalid_json"));
        assert_eq!(parse_object(b"").unwrap_err().code, Some("invalid_json"));
        assert!(parse_object(br#"{"a": 1}"#).is_ok());
    }

    #[test]
    fn field_errors_become_400s_naming_the_field() {
        let o = parse_object(br#"{"temperature": "hot"}"#).unwrap();
        let e: ApiError = parse_gen(&o).unwrap_err().into();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(e.code, Some("invalid_type"));
        assert_eq!(e.param.as_deref(), Some("temperature"));
    }
}
