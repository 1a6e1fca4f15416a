//! JSON Schema validation of answers, and lenient extraction of JSON from model text.

use serde_json::Value;

use crate::LlmError;

/// A compiled schema.
pub struct Validator {
    inner: jsonschema::Validator,
}

impl Validator {
    /// Compiles `schema` (draft 2020-12 unless `$schema` says otherwise).
    pub fn new(schema: &Value) -> Result<Self, LlmError> {
        let inner =
            jsonschema::validator_for(schema).map_err(|e| LlmError::Schema(e.to_string()))?;
        Ok(Self { inner })
    }

    /// `Ok` when valid; else the first few violations, each with its JSON path, in words a
    /// model can act on.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let errors: Vec<String> = self
            .inner
            .iter_errors(value)
            .take(5)
            .map(|e| {
                let path = e.instance_path().to_string();
                let at = if path.is_empty() {
                    "/".to_owned()
                } else {
                    path
                };
                format!("at {at}: {e}")
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// The JSON value in a model's answer: the whole text, else inside a Markdown code fence,
/// else the outermost `{...}`. Models served by others often wrap JSON in prose or fences.
pub fn extract_json(text: &str) -> Result<Value, String> {
    let t = text.trim();
    let first_err = match serde_json::from_str::<Value>(t) {
        Ok(v) => return Ok(v),
        Err(e) => e.to_string(),
    };
    if let Some(start) = t.find("```") {
        let body = &t[start + 3..];
        let body = body.strip_prefix("json").unwrap_or(body);
        if let Some(end) = body.find("```") {
            if let Ok(v) = serde_json::from_str::<Value>(body[..end].trim()) {
                return Ok(v);
            }
        }
    }
    if let (Some(a), Some(b)) = (t.find('{'), t.rfind('}')) {
        if a < b {
            if let Ok(v) = serde_json::from_str::<Value>(&t[a..=b]) {
                return Ok(v);
            }
        }
    }
    Err(format!("the answer is not valid JSON ({first_err})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_from_fences_and_prose() {
        assert_eq!(extract_json(" {\"a\":1} ").unwrap(), json!({"a":1}));
        assert_eq!(
            extract_json("Here:\n```json\n{\"a\": [1]}\n```\nDone").unwrap(),
            json!({"a":[1]})
        );
        assert_eq!(
            extract_json("Sure! {\"a\": 2} hope it helps").unwrap(),
            json!({"a":2})
        );
        assert!(extract_json("{\"a\": ").is_err());
    }

    #[test]
    fn violations_name_the_path() {
        let v = Validator::new(&json!({
            "type": "object",
            "properties": {"title": {"type": "string", "maxLength": 3}},
            "required": ["title"]
        }))
        .unwrap();
        assert!(v.check(&json!({"title": "한글제"})).is_ok());
        let e = v.check(&json!({"title": "한글제목"})).unwrap_err();
        assert!(e.contains("/title"), "{e}");
        assert!(v.check(&json!({})).unwrap_err().contains("title"));
    }
}
