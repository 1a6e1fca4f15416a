//! Reading request JSON into typed inputs the way the published schemas describe them.
//!
//! `serde_json::from_value` is lenient where an API must not be: a derived struct also accepts
//! a JSON array of its fields in order, so `"animatic": []` silently meant "all defaults" while
//! `/openapi.json` promised an object. [`decode`] reads through [`Strict`], a deserializer over
//! a borrowed [`Value`] that takes structs only from objects, and reads a whole float (`7.0`,
//! `1e3`) as the integer it is, since JSON has one number type and many clients and
//! schema-driven generators write integers that way. The error names the field the client
//! wrote (`script.cuts[2].duration_s`).

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, Error as _, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Number, Value};

/// Why a JSON input does not fit its type: `path` is where (`.` for the whole body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InputError {
    /// The field as the client wrote it (`cuts[2].duration_s`), `.` for the value itself.
    pub path: String,
    /// serde's words for what was wrong there.
    pub message: String,
}

impl InputError {
    /// The field to name in an error body: the path, or `whole` for the value itself.
    pub fn field_or<'a>(&'a self, whole: &'a str) -> &'a str {
        if self.path == "." {
            whole
        } else {
            &self.path
        }
    }
}

/// Reads `v` into `T` strictly (see the module docs).
pub fn decode<T: DeserializeOwned>(v: &Value) -> Result<T, InputError> {
    serde_path_to_error::deserialize(Strict(v)).map_err(|e| InputError {
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

/// A deserializer over a borrowed JSON value that refuses structs written as arrays and reads
/// whole floats as integers; everything else behaves as `serde_json`'s own.
#[derive(Clone, Copy)]
pub struct Strict<'a>(pub &'a Value);

type E = serde_json::Error;

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (_, Some(i), _) => Unexpected::Signed(i),
            (_, _, Some(f)) => Unexpected::Float(f),
            _ => Unexpected::Other("number"),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// Visits a number, whole floats as integers.
fn visit_number<'de, V: Visitor<'de>>(n: &Number, visitor: V) -> Result<V::Value, E> {
    if let Some(u) = n.as_u64() {
        return visitor.visit_u64(u);
    }
    if let Some(i) = n.as_i64() {
        return visitor.visit_i64(i);
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f.is_finite() && f.fract() == 0.0 {
        // Exclusive upper bounds: 2^64 and 2^63 are the first floats past each range.
        if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
            return visitor.visit_u64(f as u64);
        }
        if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
            return visitor.visit_i64(f as i64);
        }
    }
    visitor.visit_f64(f)
}

fn visit_array<'de, V: Visitor<'de>>(a: &[Value], visitor: V) -> Result<V::Value, E> {
    let mut seq = Seq(a.iter());
    let out = visitor.visit_seq(&mut seq)?;
    match seq.0.len() {
        0 => Ok(out),
        left => Err(E::invalid_length(
            a.len(),
            &format!("{} elements", a.len() - left).as_str(),
        )),
    }
}

fn visit_object<'de, V: Visitor<'de>>(o: &Map<String, Value>, visitor: V) -> Result<V::Value, E> {
    let mut map = Fields {
        iter: o.iter(),
        value: None,
    };
    visitor.visit_map(&mut map)
}

impl<'de> de::Deserializer<'de> for Strict<'_> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => visit_number(n, visitor),
            Value::String(s) => visitor.visit_str(s),
            Value::Array(a) => visit_array(a, visitor),
            Value::Object(o) => visit_object(o, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            other => Err(E::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    /// The point of this type: a struct is an object, never an array of its fields.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.0 {
            Value::Object(o) => visit_object(o, visitor),
            other => Err(E::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.0 {
            Value::String(s) => {
                visitor.visit_enum(IntoDeserializer::<E>::into_deserializer(s.as_str()))
            }
            Value::Object(o) if o.len() == 1 => match o.iter().next() {
                Some((variant, value)) => visitor.visit_enum(Variant { variant, value }),
                None => Err(E::invalid_value(Unexpected::Map, &"a map with one key")),
            },
            Value::Object(_) => Err(E::invalid_value(Unexpected::Map, &"a map with one key")),
            other => Err(E::invalid_type(
                unexpected(other),
                &"a string or a map with one key",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        seq tuple tuple_struct map identifier
    }
}

struct Seq<'a>(std::slice::Iter<'a, Value>);

impl<'de> SeqAccess<'de> for Seq<'_> {
    type Error = E;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, E> {
        self.0
            .next()
            .map(|v| seed.deserialize(Strict(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Fields<'a> {
    iter: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = E;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, E> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(IntoDeserializer::<E>::into_deserializer(k.as_str()))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, E> {
        match self.value.take() {
            Some(v) => seed.deserialize(Strict(v)),
            None => Err(E::custom("a map value was asked for before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// `{"variant": value}`, an externally tagged enum.
struct Variant<'a> {
    variant: &'a str,
    value: &'a Value,
}

impl<'de, 'a> EnumAccess<'de> for Variant<'a> {
    type Error = E;
    type Variant = Strict<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Strict<'a>), E> {
        let v = seed.deserialize(IntoDeserializer::<E>::into_deserializer(self.variant))?;
        Ok((v, Strict(self.value)))
    }
}

impl<'de> VariantAccess<'de> for Strict<'_> {
    type Error = E;

    fn unit_variant(self) -> Result<(), E> {
        match self.0 {
            Value::Null => Ok(()),
            other => Err(E::invalid_type(unexpected(other), &"a unit variant")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, E> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, E> {
        match self.0 {
            Value::Array(a) => visit_array(a, visitor),
            other => Err(E::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Animatic {
        #[serde(default)]
        fps: Option<u32>,
        #[serde(default)]
        formats: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Fast,
        Sized { w: u32 },
        Pair(u8, u8),
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "op", rename_all = "snake_case")]
    enum Op {
        Move { to: usize },
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        #[serde(default)]
        animatic: Animatic,
        #[serde(default)]
        cuts: Vec<Animatic>,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        ops: Vec<Op>,
        #[serde(default)]
        extra: Value,
        #[serde(default)]
        ratio: f32,
    }

    #[test]
    fn a_struct_written_as_an_array_is_refused_where_serde_json_takes_it() {
        let v = json!({"animatic": []});
        assert!(
            serde_json::from_value::<Body>(v.clone()).is_ok(),
            "serde_json's leniency"
        );
        let e = decode::<Body>(&v).unwrap_err();
        assert_eq!(e.path, "animatic");
        assert!(e.message.contains("invalid type: sequence"), "{e}");
        // Nested inside an array and behind Option too.
        let e = decode::<Body>(&json!({"cuts": [{}, [1]]})).unwrap_err();
        assert_eq!(e.path, "cuts[1]");
        let e = decode::<Body>(&json!({"mode": {"sized": [3]}})).unwrap_err();
        assert!(e.path.starts_with("mode"), "{e}");
        assert_eq!(decode::<Body>(&json!([])).unwrap_err().path, ".");
    }

    #[test]
    fn what_the_schemas_allow_reads_as_before() {
        let v = json!({
            "animatic": {"fps": 12.0, "formats": ["mp4"]},
            "cuts": [{"fps": null}],
            "mode": {"pair": [1, 2]},
            "ops": [{"op": "move", "to": 3}],
            "extra": {"any": [1, 2.5, "x", null, true]},
            "ratio": 2,
        });
        let b: Body = decode(&v).unwrap();
        assert_eq!(b.animatic.fps, Some(12));
        assert_eq!(b.cuts, vec![Animatic::default()]);
        assert_eq!(b.mode, Some(Mode::Pair(1, 2)));
        assert_eq!(b.ops, vec![Op::Move { to: 3 }]);
        assert_eq!(b.extra, json!({"any": [1, 2.5, "x", null, true]}));
        assert_eq!(b.ratio, 2.0);
        assert_eq!(decode::<Mode>(&json!("fast")).unwrap(), Mode::Fast);
        assert_eq!(
            decode::<Mode>(&json!({"sized": {"w": 1e3}})).unwrap(),
            Mode::Sized { w: 1000 }
        );
    }

    #[test]
    fn numbers_read_as_json_means_them() {
        assert_eq!(decode::<u64>(&json!(7.0)).unwrap(), 7);
        assert_eq!(decode::<i64>(&json!(-3.0)).unwrap(), -3);
        assert!(decode::<u32>(&json!(7.5)).is_err());
        assert!(decode::<u8>(&json!(300)).is_err());
        assert!(
            decode::<u64>(&json!(1.8446744073709552e19)).is_err(),
            "2^64 is past u64"
        );
        assert_eq!(decode::<Value>(&json!(2.0)).unwrap(), json!(2));
        assert_eq!(decode::<Value>(&json!(0.5)).unwrap(), json!(0.5));
    }

    #[test]
    fn unknown_fields_missing_fields_and_leftovers_name_the_place() {
        let e = decode::<Body>(&json!({"animatic": {"fsp": 3}})).unwrap_err();
        assert_eq!(e.path, "animatic.fsp");
        let e = decode::<Body>(&json!({"mode": {"pair": [1, 2, 3]}})).unwrap_err();
        assert!(e.message.contains("invalid length 3"), "{e}");
        let e = decode::<Body>(&json!({"mode": {"fast": null, "sized": {}}})).unwrap_err();
        assert!(e.message.contains("one key"), "{e}");
        assert!(decode::<Body>(&json!({"mode": "fast"})).is_ok());
        assert!(decode::<Body>(&json!({"mode": {"fast": 1}})).is_err());
        assert_eq!(
            InputError {
                path: ".".into(),
                message: String::new()
            }
            .field_or("body"),
            "body"
        );
    }

    #[test]
    fn any_value_survives_a_round_trip() {
        let v = json!({"a": [{"b": null, "c": [true, -1, 1.5, "é"]}], "d": {}, "e": []});
        assert_eq!(decode::<Value>(&v).unwrap(), v);
    }
}
