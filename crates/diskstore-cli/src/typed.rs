//! Typed JSON: how one SQLite value is written in a dump (see `docs/dump-format.md`).
//!
//! | SQLite      | JSON                                                        |
//! |-------------|-------------------------------------------------------------|
//! | NULL        | `null`                                                      |
//! | INTEGER     | a number without `.` or exponent; `{"int": "<digits>"}` beyond ±(2^53−1) |
//! | REAL        | a number with `.` or exponent; `{"real": "inf" \| "-inf" \| "nan"}` |
//! | TEXT        | a string                                                    |
//! | BLOB        | `{"b64": "<standard base64>"}` (`{"hex": "…"}` is read too) |

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use diskstore::{Value, ValueRef};
use serde_json::{Map, Number, Value as Json};

/// The largest integer every JSON reader holds exactly (an IEEE double's 53 bits).
const SAFE_INT: i64 = (1 << 53) - 1;

fn tagged(tag: &str, text: String) -> Json {
    let mut m = Map::new();
    m.insert(tag.to_owned(), Json::String(text));
    Json::Object(m)
}

/// Writes one SQLite value as typed JSON.
pub fn encode(v: ValueRef<'_>) -> Json {
    match v {
        ValueRef::Null => Json::Null,
        ValueRef::Integer(i) if (-SAFE_INT..=SAFE_INT).contains(&i) => Json::Number(i.into()),
        ValueRef::Integer(i) => tagged("int", i.to_string()),
        ValueRef::Real(f) => match Number::from_f64(f) {
            Some(n) => Json::Number(n),
            None if f.is_nan() => tagged("real", "nan".into()),
            None if f > 0.0 => tagged("real", "inf".into()),
            None => tagged("real", "-inf".into()),
        },
        ValueRef::Text(s) => Json::String(s.to_owned()),
        ValueRef::Blob(b) => tagged("b64", B64.encode(b)),
    }
}

fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("hex text has an odd number of digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("invalid hex digits at {i}"))
        })
        .collect()
}

/// Reads one typed JSON value; the error says what is wrong with it.
pub fn decode(j: &Json) -> Result<Value, String> {
    match j {
        Json::Null => Ok(Value::Null),
        Json::String(s) => Ok(Value::Text(s.clone())),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Value::Integer(i))
            } else if n.is_u64() {
                Err(format!("integer {n} does not fit in 64 bits"))
            } else {
                n.as_f64()
                    .map(Value::Real)
                    .ok_or_else(|| format!("unreadable number {n}"))
            }
        }
        Json::Bool(_) => Err("true/false is not an SQLite value (write 1 or 0)".into()),
        Json::Array(_) => Err("an array is not an SQLite value".into()),
        Json::Object(m) => {
            let mut entries = m.iter();
            let (Some((tag, Json::String(text))), None) = (entries.next(), entries.next()) else {
                return Err(format!(
                    "expected one of {{\"b64\"|\"hex\"|\"int\"|\"real\": \"…\"}}, found {j}"
                ));
            };
            match tag.as_str() {
                "b64" => B64
                    .decode(text)
                    .map(Value::Blob)
                    .map_err(|e| format!("invalid base64: {e}")),
                "hex" => decode_hex(text).map(Value::Blob),
                "int" => text
                    .parse::<i64>()
                    .map(Value::Integer)
                    .map_err(|e| format!("invalid 64-bit integer {text:?}: {e}")),
                "real" => match text.as_str() {
                    "inf" | "+inf" => Ok(Value::Real(f64::INFINITY)),
                    "-inf" => Ok(Value::Real(f64::NEG_INFINITY)),
                    "nan" => Ok(Value::Real(f64::NAN)),
                    other => other
                        .parse::<f64>()
                        .map(Value::Real)
                        .map_err(|e| format!("invalid real {other:?}: {e}")),
                },
                other => Err(format!("unknown value tag {other:?}")),
            }
        }
    }
}

/// Reads typed JSON given as text (as on the command line).
pub fn parse(text: &str) -> Result<Value, String> {
    let j: Json = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    decode(&j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: Value) -> Value {
        let text = serde_json::to_string(&encode(v.as_ref())).unwrap();
        parse(&text).unwrap()
    }

    #[test]
    fn every_storage_class_round_trips_through_text() {
        for v in [
            Value::Null,
            Value::Integer(0),
            Value::Integer(-7),
            Value::Integer(i64::MAX),
            Value::Integer(i64::MIN),
            Value::Integer(SAFE_INT + 1),
            Value::Real(1.0),
            Value::Real(0.1),
            Value::Real(1e300),
            Value::Real(f64::MIN_POSITIVE),
            Value::Real(f64::INFINITY),
            Value::Real(f64::NEG_INFINITY),
            Value::Text(String::new()),
            Value::Text("é\n\"\u{0}".into()),
            Value::Blob(vec![]),
            Value::Blob((0..=255).collect()),
        ] {
            assert_eq!(round_trip(v.clone()), v);
        }
    }

    #[test]
    fn negative_zero_and_nan_keep_their_identity() {
        let Value::Real(z) = round_trip(Value::Real(-0.0)) else {
            panic!("not a real");
        };
        assert!(z == 0.0 && z.is_sign_negative());
        let Value::Real(n) = round_trip(Value::Real(f64::NAN)) else {
            panic!("not a real");
        };
        assert!(n.is_nan());
    }

    #[test]
    fn integers_and_reals_stay_apart() {
        assert_eq!(parse("3").unwrap(), Value::Integer(3));
        assert_eq!(parse("3.0").unwrap(), Value::Real(3.0));
        assert_eq!(parse("3e0").unwrap(), Value::Real(3.0));
        assert_eq!(
            encode(ValueRef::Integer(1 << 60)),
            serde_json::json!({"int": "1152921504606846976"})
        );
    }

    #[test]
    fn bad_values_are_explained() {
        assert!(parse("true").unwrap_err().contains("1 or 0"));
        assert!(
            parse("18446744073709551615")
                .unwrap_err()
                .contains("64 bits")
        );
        assert!(parse(r#"{"b64":"!!"}"#).unwrap_err().contains("base64"));
        assert!(parse(r#"{"zip":"x"}"#).unwrap_err().contains("zip"));
        assert!(parse(r#"{"b64":"x","hex":"00"}"#).is_err());
        assert_eq!(
            parse(r#"{"hex":"00ff"}"#).unwrap(),
            Value::Blob(vec![0, 255])
        );
        assert!(parse("[1]").is_err());
    }
}
