//! Turning a response body into entries: Cloudflare's API JSON or a plain-text list.

use std::borrow::Cow;

use cf_allow_diff::Family;
use serde::Deserialize;
use serde_json::Value;

use crate::error::Problem;
use crate::validate::{Entry, Position};

/// A body's entries, and the API's `result.etag` when the body was API JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub entries: Vec<Entry<'a>>,
    pub api_etag: Option<String>,
}

/// Where a body came from, for messages: `HTTP 200` plus the content type, or `file`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Context {
    /// The HTTP status code; `None` for files and the cache.
    pub status: Option<u16>,
    /// The media type without parameters, lower case.
    pub content_type: Option<String>,
}

impl Context {
    fn detail(&self, with_type: bool) -> String {
        let mut detail = match self.status {
            Some(code) => format!("HTTP {code}"),
            None => "file".to_string(),
        };
        if with_type {
            if let Some(ct) = &self.content_type {
                detail.push_str(", ");
                detail.push_str(ct);
            }
        }
        detail
    }
}

/// Recognises HTML, JSON and text bodies and extracts their entries.
pub(crate) fn parse_body<'a>(body: &'a [u8], ctx: &Context) -> Result<Parsed<'a>, Problem> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::Empty {
            detail: ctx.detail(false),
        });
    }
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    let content_type = ctx.content_type.as_deref().unwrap_or("");
    if content_type == "text/html" || content_type == "application/xhtml+xml" || first == Some(b'<')
    {
        return Err(Problem::Html {
            detail: ctx.detail(true),
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| Problem::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let looks_like_json = matches!(first, Some(b'{') | Some(b'['));
    if looks_like_json || content_type == "application/json" || content_type.ends_with("+json") {
        parse_api_json(text)
    } else {
        Ok(Parsed {
            entries: parse_text(text),
            api_etag: None,
        })
    }
}

/// One CIDR per line; `#` starts a comment; blank lines and CRLF line ends are fine.
pub(crate) fn parse_text(text: &str) -> Vec<Entry<'_>> {
    // At most one entry per line: counting the lines first spares the vector's regrowth.
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    let mut entries = Vec::with_capacity(lines);
    entries.extend(text.lines().enumerate().filter_map(|(i, line)| {
        let content = line.split('#').next().unwrap_or("").trim();
        (!content.is_empty()).then(|| Entry {
            position: Position::Line(i + 1),
            text: Cow::Borrowed(content),
            expected: None,
        })
    }));
    entries
}

/// The part of the API answer cf-allow reads; other fields are ignored.
#[derive(Deserialize)]
struct ApiResult {
    ipv4_cidrs: Vec<String>,
    ipv6_cidrs: Vec<String>,
    #[serde(default)]
    etag: Option<String>,
}

/// Cloudflare's `{"result":{…},"success":true,"errors":[],"messages":[]}`.
fn parse_api_json(text: &str) -> Result<Parsed<'static>, Problem> {
    // Duplicate keys are ambiguous (serde_json keeps the last one): refuse them.
    serde_json::from_str::<UniqueKeys>(text).map_err(|e| Problem::BadJson(e.to_string()))?;
    let doc: Value = serde_json::from_str(text).map_err(|e| Problem::BadJson(e.to_string()))?;
    let Value::Object(doc) = doc else {
        return Err(Problem::NotIpList("not a JSON object".into()));
    };
    let success = match doc.get("success") {
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(Problem::NotIpList(
                "\"success\" is not true or false".into(),
            ))
        }
        None => return Err(Problem::NotIpList("no \"success\" field".into())),
    };
    let errors = match doc.get("errors") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(errors)) => errors.iter().map(describe_api_error).collect(),
        Some(_) => return Err(Problem::NotIpList("\"errors\" is not a list".into())),
    };
    if !success || !errors.is_empty() {
        let mut what = format!("success: {success}");
        if !errors.is_empty() {
            what.push_str("; errors: ");
            what.push_str(&errors.join(", "));
        }
        return Err(Problem::ApiFailure(what));
    }
    let result = doc
        .get("result")
        .ok_or_else(|| Problem::NotIpList("no \"result\" field".into()))?;
    let result =
        ApiResult::deserialize(result).map_err(|e| Problem::NotIpList(format!("result: {e}")))?;
    let entries = numbered(result.ipv4_cidrs, "ipv4_cidrs", Family::Ipv4)
        .chain(numbered(result.ipv6_cidrs, "ipv6_cidrs", Family::Ipv6))
        .collect();
    Ok(Parsed {
        entries,
        api_etag: result.etag.filter(|e| !e.is_empty()),
    })
}

fn numbered(
    list: Vec<String>,
    field: &'static str,
    family: Family,
) -> impl Iterator<Item = Entry<'static>> {
    list.into_iter().enumerate().map(move |(i, text)| Entry {
        position: Position::Field(field, i + 1),
        // Kept as it is when there is nothing to trim (the usual case).
        text: match text.trim() {
            trimmed if trimmed.len() == text.len() => Cow::Owned(text),
            trimmed => Cow::Owned(trimmed.to_owned()),
        },
        expected: Some(family),
    })
}

/// `10000 Authentication error` from `{"code":10000,"message":"Authentication error"}`.
fn describe_api_error(error: &Value) -> String {
    let code = error.get("code").map(|c| c.to_string());
    let message = error.get("message").and_then(Value::as_str);
    match (code, message) {
        (Some(code), Some(message)) => format!("{code} {message}"),
        (None, Some(message)) => message.to_string(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(ct: &str) -> Context {
        Context {
            status: Some(200),
            content_type: Some(ct.into()),
        }
    }

    fn texts<'a>(p: &'a Parsed<'_>) -> Vec<&'a str> {
        p.entries.iter().map(|e| e.text.as_ref()).collect()
    }

    #[test]
    fn text_lists_allow_comments_crlf_and_no_final_newline() {
        let body =
            b"# Cloudflare\r\n173.245.48.0/20\r\n\r\n  103.21.244.0/22 # edge\r\n131.0.72.0/22";
        let p = parse_body(body, &http("text/plain")).expect("parses");
        assert_eq!(
            texts(&p),
            ["173.245.48.0/20", "103.21.244.0/22", "131.0.72.0/22"]
        );
        assert_eq!(p.entries[2].position.to_string(), "line 5");
    }

    #[test]
    fn api_json_yields_both_lists_and_the_etag() {
        let body = br#"{"result":{"ipv4_cidrs":["173.245.48.0/20"],"ipv6_cidrs":["2400:cb00::/32"],"etag":"abc","jdcloud_cidrs":[]},"success":true,"errors":[],"messages":[]}"#;
        let p = parse_body(body, &http("application/json")).expect("parses");
        assert_eq!(texts(&p), ["173.245.48.0/20", "2400:cb00::/32"]);
        assert_eq!(p.api_etag.as_deref(), Some("abc"));
        assert_eq!(p.entries[1].position.to_string(), "ipv6_cidrs entry 1");
    }

    #[test]
    fn bad_bodies_are_named() {
        let html = parse_body(b"<!DOCTYPE html><p>hi", &http("text/plain")).unwrap_err();
        assert_eq!(
            html.to_string(),
            "returned an HTML page (HTTP 200, text/plain), not a list of CIDRs"
        );
        let empty = parse_body(b" \r\n", &http("text/plain")).unwrap_err();
        assert_eq!(empty.to_string(), "returned an empty body (HTTP 200)");
        let utf8 = parse_body(b"1.2.3.0/24\n\xff\xfe", &http("text/plain")).unwrap_err();
        assert_eq!(utf8, Problem::NotUtf8 { offset: 11 });
        let shape = parse_body(
            br#"{"success":true,"result":{"ipv4":[]}}"#,
            &http("application/json"),
        )
        .unwrap_err();
        assert!(
            shape.to_string().contains("missing field `ipv4_cidrs`"),
            "{shape}"
        );
        let failed = parse_body(
            br#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"result":null}"#,
            &http("application/json"),
        )
        .unwrap_err();
        assert_eq!(
            failed.to_string(),
            "reported an API failure (success: false; errors: 10000 Authentication error)"
        );
    }
}

/// A JSON document in which no object repeats a key (`"success": false, "success": true`).
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
            fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
            fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
            fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
            fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
            fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
                Ok(UniqueKeys)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<UniqueKeys, A::Error> {
                while seq.next_element::<UniqueKeys>()?.is_some() {}
                Ok(UniqueKeys)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!(
                            "the key {key:?} appears twice in one object (ambiguous)"
                        )));
                    }
                    map.next_value::<UniqueKeys>()?;
                }
                Ok(UniqueKeys)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod unique_key_tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for text in [
            r#"{"success": false, "success": true}"#,
            r#"{"result": {"ipv4_cidrs": []}, "result": {"ipv4_cidrs": ["192.0.2.0/24"]}}"#,
            r#"{"a": [{"x": 1, "x": 2}]}"#,
        ] {
            let err = serde_json::from_str::<UniqueKeys>(text)
                .err()
                .map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains("appears twice")),
                "{text}: {err:?}"
            );
        }
        assert!(serde_json::from_str::<UniqueKeys>(r#"{"a": {"x": 1}, "b": {"x": 2}}"#).is_ok());
    }
}
