//! Request extractors: strict JSON and query strings that name the offending field, the
//! authenticated caller, and ids in paths.

use std::marker::PhantomData;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{
    context::AppContext,
    domain::{
        access::Caller,
        validate::{Expected, FieldErrors, Message},
    },
    error::{AppError, Refusal},
    service,
};

/// A JSON body. Malformed JSON is 400; well-formed JSON of the wrong shape (missing or unknown
/// field, wrong type) is 422 naming the field, in words of the catalogue, never the parser's.
/// Empty or blank strings count as absent (`null`): phones send them from untouched inputs.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = is_json(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(not_json());
            }
            parse_json(&read_body(bytes).await?).map(Json)
        })
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
}

fn not_json() -> AppError {
    AppError::refused(
        Refusal::UnsupportedMediaType,
        "请以 JSON 格式提交（Content-Type: application/json）",
        "send the body as Content-Type: application/json",
    )
}

async fn read_body(bytes: <web::Bytes as FromRequest>::Future) -> Result<web::Bytes, AppError> {
    bytes.await.map_err(|e| {
        if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::refused(
                Refusal::PayloadTooLarge,
                "请求内容超过了允许的大小",
                "the request body exceeds the configured limit",
            )
        } else {
            tracing::debug!(error = %e, "request body not read");
            AppError::refused(
                Refusal::BadRequest,
                "请求内容未能完整读取，请重试",
                "the request body could not be read; send it again",
            )
        }
    })
}

/// Parses a JSON body into `T`, errors named by field. A blank string where the field is
/// optional counts as absent; where a value is required it stays, and the service says it
/// must not be empty together with every other problem of the form.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        AppError::refused(
            Refusal::BadRequest,
            format!("请求内容不是有效的 JSON（第 {line} 行第 {column} 列附近）"),
            format!("the body is not valid JSON (near line {line}, column {column})"),
        )
    })?;
    let mut blanks = Vec::new();
    blank_strings(&value, String::new(), &mut blanks);
    let mut kept: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        // Each required field sent blank costs one more parse: bounded, so a body of thousands
        // of blank strings cannot make a caller spend the server's CPU. Past the bound the
        // blanks stay as sent and the services report them as empty.
        if kept.len() >= MAX_BLANK_RETRIES {
            return serde_path_to_error::deserialize(value).map_err(|err| {
                field_error(Source::Body, &err.path().to_string(), &err.into_inner().to_string(), None)
            });
        }
        let mut attempt = value.clone();
        for path in blanks.iter().filter(|p| !kept.contains(*p)) {
            if let Some(slot) = pointer_mut(&mut attempt, path) {
                *slot = serde_json::Value::Null;
            }
        }
        match serde_path_to_error::deserialize(attempt) {
            Ok(parsed) => return Ok(parsed),
            Err(err) => {
                let path = err.path().to_string();
                let message = err.into_inner().to_string();
                // A required value sent blank: keep the blank string and try again.
                if message.starts_with("invalid type: null") && blanks.contains(&path) && !kept.contains(&path) {
                    kept.insert(path);
                    continue;
                }
                return Err(field_error(Source::Body, &path, &message, None));
            }
        }
    }
}

/// How many required fields sent blank one body may cost a parse each.
const MAX_BLANK_RETRIES: usize = 16;

/// The paths (as `serde_path_to_error` writes them: `a.b[0].c`) of blank strings in `value`.
fn blank_strings(value: &serde_json::Value, path: String, found: &mut Vec<String>) {
    use serde_json::Value;
    match value {
        Value::String(text) if text.trim().is_empty() => found.push(path),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                blank_strings(item, format!("{path}[{i}]"), found);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                blank_strings(item, at, found);
            }
        }
        _ => {}
    }
}

/// The value at a path written by [`blank_strings`].
fn pointer_mut<'a>(value: &'a mut serde_json::Value, path: &str) -> Option<&'a mut serde_json::Value> {
    let mut pointer = String::new();
    for part in path.split('.') {
        let (key, indices) = part.split_once('[').map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            pointer.push('/');
            pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
        }
        for index in indices.split('[').filter(|i| !i.is_empty()) {
            pointer.push('/');
            pointer.push_str(index.trim_end_matches(']'));
        }
    }
    value.pointer_mut(&pointer)
}

/// Query parameters, strictly: unknown or ill-typed ones are 422 naming the parameter. An
/// empty parameter (`?status=`) counts as absent.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
        std::future::ready(serde_path_to_error::deserialize(deserializer).map(Query).map_err(|err| {
            let path = err.path().to_string();
            // The parser's message leaves the value out ("invalid digit found in string"):
            // what was sent tells a negative number from a word.
            let sent = pairs.iter().find(|(name, _)| *name == path).map(|(_, value)| value.as_str());
            field_error(Source::Query, &path, &err.into_inner().to_string(), sent)
        }))
    }
}

/// Where a refused value came from: the JSON body or the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Body,
    Query,
}

/// Names the field (serde reports a missing, unknown or repeated one only in its message) and
/// says what is wrong in words of the catalogue. The parser's own text is the one place its
/// wording is read; none of it reaches the client. `sent` is the value as the client sent it,
/// where the parser's message leaves it out (query strings).
fn field_error(source: Source, path: &str, parser_message: &str, sent: Option<&str>) -> AppError {
    let whole = match source {
        Source::Body => "body",
        Source::Query => "query",
    };
    let quoted = parser_message.split('`').nth(1);
    let at = |name: &str| if path.is_empty() || path == "." { name.to_owned() } else { format!("{path}.{name}") };
    // Unknown and repeated keys: the path may already end in the key.
    let key = || {
        let named = quoted.is_some_and(|name| path == name || path.ends_with(&format!(".{name}")));
        if named { path.to_owned() } else { at(quoted.unwrap_or(whole)) }
    };
    let (field, message) = if parser_message.starts_with("missing field") {
        (at(quoted.unwrap_or(whole)), Message::Required)
    } else if parser_message.starts_with("unknown field") {
        (key(), Message::UnknownField)
    } else if parser_message.starts_with("duplicate field") {
        // `?status=new&status=closed`: which one was meant is the client's to say.
        let message = match source {
            Source::Query => {
                Message::said("查询参数重复，只能给出一次", "is given more than once in the query; give it once")
            }
            Source::Body => Message::said("重复出现，只能给出一次", "appears more than once; give it once"),
        };
        (key(), message)
    } else {
        let field = if path.is_empty() || path == "." { whole.to_owned() } else { path.to_owned() };
        (field, describe(parser_message, sent))
    };
    AppError::Validation(FieldErrors::single(&field, message))
}

fn describe(parser_message: &str, sent: Option<&str>) -> Message {
    if parser_message.starts_with("invalid type: null") {
        return Message::Empty;
    }
    // A whole number the type cannot hold (-1 where only 0 and up fit, or too many digits) is
    // still an integer: "must be an integer" would be wrong. A JSON error quotes the value; a
    // query string's does not, so the value sent is passed in.
    let json_integer = parser_message.strip_prefix("invalid value: integer `").and_then(|rest| rest.split('`').next());
    let integer_refused = json_integer.is_some() || parser_message.contains("digit found in string");
    let negative = |value: &str| {
        value
            .trim()
            .strip_prefix('-')
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
    };
    if integer_refused && json_integer.or(sent).is_some_and(negative) {
        return Message::said("不能为负数", "must not be negative");
    }
    if json_integer.is_some()
        || parser_message.contains("number too large")
        || parser_message.contains("number too small")
    {
        return Message::said("数值超出允许范围", "is out of the allowed range");
    }
    if parser_message.starts_with("unknown variant") {
        // "unknown variant `x`, expected one of `a`, `b`" or "…, expected `a`"
        let words = parser_message
            .split_once("expected")
            .map(|(_, list)| list.split('`').skip(1).step_by(2).map(str::to_owned).collect())
            .unwrap_or_default();
        return Message::OneOf(words);
    }
    let expected = parser_message.rsplit_once("expected ").map(|(_, e)| e.trim()).unwrap_or_default();
    let kind = if matches!(expected, "f32" | "f64") || parser_message.starts_with("invalid float literal") {
        Some(Expected::Number)
    } else if expected.starts_with(['i', 'u']) && expected[1..].chars().all(|c| c.is_ascii_digit() || c == 's')
        || expected == "usize"
        || expected == "isize"
        || parser_message.contains("digit found in string")
        || parser_message.contains("parse integer")
        || parser_message.contains("number too large")
    {
        Some(Expected::Integer)
    } else if expected.starts_with("a string") {
        Some(Expected::Text)
    } else if expected.starts_with("a boolean") || parser_message.contains("`true` or `false`") {
        Some(Expected::Boolean)
    } else if expected.starts_with("a sequence") || expected.starts_with("an array") {
        Some(Expected::List)
    } else if expected.starts_with("struct") || expected.starts_with("a map") {
        Some(Expected::Object)
    } else if parser_message.contains("UUID") {
        Some(Expected::Id)
    } else if expected.contains("date and time") {
        Some(Expected::Time)
    } else {
        None
    };
    kind.map_or(Message::Malformed, Message::Expected)
}

/// The caller, allowed `P`'s permission, and the JSON body — read only once the caller is known
/// to be allowed: a caller who may not use a route gets 403 whatever body it sent, never a 422
/// that tells them how to shape a request they may not make. (Separate `Caller` and `Json`
/// arguments are extracted side by side, so a malformed body could answer first.)
pub struct Permitted<P, T>(pub Caller, pub T, pub PhantomData<P>);

impl<P: may::Permission + 'static, T: DeserializeOwned + 'static> FromRequest for Permitted<P, T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        let is_json = is_json(req);
        // Created now, awaited after the role check: the body is not read before.
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let caller = caller.await?;
            service::require(&caller, P::PERMISSION)?;
            if !is_json {
                return Err(not_json());
            }
            let body = parse_json(&read_body(bytes).await?)?;
            Ok(Permitted(caller, body, PhantomData))
        })
    }
}

/// Type-level names of the permissions a route with a body requires, for [`Permitted`].
/// The caller, allowed `P`, and the query string parsed as `T` — in that order, so a caller
/// whose role may not make the request gets 403 whatever its query string, exactly as
/// [`Permitted`] does for bodies.
pub struct PermittedQuery<P, T>(pub Caller, pub T, pub PhantomData<P>);

impl<P: may::Permission + 'static, T: DeserializeOwned + 'static> FromRequest for PermittedQuery<P, T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        // Parsed now (it is synchronous), reported only after the role check.
        let query = Query::<T>::from_request(req, payload).into_inner();
        Box::pin(async move {
            let caller = caller.await?;
            service::require(&caller, P::PERMISSION)?;
            let Query(query) = query?;
            Ok(PermittedQuery(caller, query, PhantomData))
        })
    }
}

pub mod may {
    use crate::domain::access::Permission as P;

    pub trait Permission {
        const PERMISSION: P;
    }

    macro_rules! markers {
        ($($name:ident),* $(,)?) => {$(
            pub struct $name;
            impl Permission for $name {
                const PERMISSION: P = P::$name;
            }
        )*};
    }

    markers!(
        ReadReports,
        ReadAudit,
        ReadUsers,
        ReadRouting,
        ManageReferenceData,
        ManageUsers,
        FileTicket,
        DispatchTicket,
        HandleDispatch,
        RateTicket,
        Supervise,
        Operate,
        ErasePersonalData,
        UploadFile,
    );
}

/// A UUID path segment; anything else names no resource, so 404.
pub struct PathId(pub Uuid);

impl FromRequest for PathId {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let segment = req.match_info().get("id").unwrap_or_default();
        std::future::ready(Uuid::parse_str(segment).map(PathId).map_err(|_| {
            AppError::refused(
                Refusal::NotFound,
                format!("“{segment}”不是本接口的编号"),
                format!("`{segment}` is not an id of this API"),
            )
        }))
    }
}

/// The authenticated caller; 401 without a live bearer token.
impl FromRequest for Caller {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let ctx = req.app_data::<web::Data<AppContext>>().cloned();
        let ip = ctx.as_ref().and_then(|ctx| client_ip(req, ctx.settings.security.trust_forwarded_for));
        Box::pin(async move {
            let ctx = ctx.ok_or_else(|| AppError::Internal("application context missing".into()))?;
            let token = token.ok_or_else(|| {
                AppError::refused(
                    Refusal::Unauthenticated,
                    "请先登录：发送 Authorization: Bearer <令牌>，令牌由 POST /api/v1/auth/token 获取",
                    "send Authorization: Bearer <token>; get one from POST /api/v1/auth/token",
                )
            })?;
            let caller = service::auth::authenticate(&ctx, &token).await?;
            Ok(Caller { ip: ip.map(|ip| ip.to_string()), ..caller })
        })
    }
}

pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// `If-Match: "<version>-<states>"` (the ETag of a read) or `"<version>"` on ticket writes. Absent or `*`: no precondition.
pub struct IfMatch(pub Option<i32>);

impl FromRequest for IfMatch {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = match req.headers().get(header::IF_MATCH) {
            None => Ok(IfMatch(None)),
            Some(value) => {
                let text = value.to_str().unwrap_or_default().trim();
                let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
                if text == "*" {
                    Ok(IfMatch(None))
                } else {
                    // `"7-1a2b3c4d"` as a read gives it (version, then clock states), or `"7"`.
                    let version = tag.split_once('-').map_or(tag, |(version, _)| version);
                    version.parse::<i32>().map(|v| IfMatch(Some(v))).map_err(|_| {
                        AppError::refused(
                            Refusal::BadRequest,
                            "If-Match 应为工单的 ETag，如 \"3\"",
                            "If-Match must be the ETag of the ticket, like \"3\"",
                        )
                    })
                }
            }
        };
        std::future::ready(parsed)
    }
}

/// The optional `Idempotency-Key` header of filing.
pub struct IdempotencyKey(pub Option<String>);

impl FromRequest for IdempotencyKey {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = match req.headers().get("idempotency-key") {
            None => Ok(None),
            Some(value) => value.to_str().map(|v| Some(v.to_owned())).map_err(|_| {
                AppError::invalid("Idempotency-Key", Message::said("只能含可见的 ASCII 字符", "must be visible ASCII"))
            }),
        };
        std::future::ready(key.map(IdempotencyKey))
    }
}

/// The client's address: the peer, or with `security.trust_forwarded_for` the last
/// X-Forwarded-For entry — the one the proxy in front of us added. Earlier entries are
/// whatever the client sent (a proxy that appends keeps them), so trusting the first would let
/// a client pick its address and step around every per-address limit.
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<std::net::IpAddr> {
    if trust_forwarded_for
        && let Some(forwarded) = req.headers().get_all("x-forwarded-for").last().and_then(|v| v.to_str().ok())
        && let Some(last) = forwarded.rsplit(',').next().and_then(|ip| ip.trim().parse().ok())
    {
        return Some(last);
    }
    req.peer_addr().map(|addr| addr.ip())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::domain::validate::Lang;

    /// Behind a proxy that appends (nginx `$proxy_add_x_forwarded_for`), only the last entry
    /// is the proxy's own word; anything before it is whatever the client sent.
    #[test]
    fn the_client_address_is_the_entry_the_trusted_proxy_added() {
        let peer: std::net::SocketAddr = "10.0.0.2:40000".parse().expect("peer");
        let request = |header: Option<&str>| {
            let mut req = actix_web::test::TestRequest::default().peer_addr(peer);
            if let Some(value) = header {
                req = req.insert_header(("x-forwarded-for", value));
            }
            req.to_http_request()
        };
        let ip = |text: &str| Some(text.parse::<std::net::IpAddr>().expect("ip"));
        let spoofed = request(Some("203.0.113.9, 198.51.100.7"));
        assert_eq!(client_ip(&spoofed, true), ip("198.51.100.7"), "a client-chosen first entry is not trusted");
        assert_eq!(client_ip(&request(Some("198.51.100.7")), true), ip("198.51.100.7"));
        assert_eq!(client_ip(&spoofed, false), ip("10.0.0.2"), "without trust, the peer");
        assert_eq!(client_ip(&request(Some("not an address")), true), ip("10.0.0.2"), "garbage: the peer");
        assert_eq!(client_ip(&request(None), true), ip("10.0.0.2"));
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Form {
        title: String,
        comment: Option<String>,
        location: Option<Spot>,
        tags: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Spot {
        lat: f64,
        lon: f64,
    }

    fn refusal(body: &str) -> (String, String) {
        match parse_json::<Form>(body.as_bytes()) {
            Err(AppError::Validation(fields)) => {
                let (field, message) = fields.0.into_iter().next().expect("one field");
                (field, message.text(Lang::Zh))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn blank_optional_strings_are_absent_and_blank_required_ones_stay() {
        let form: Form = parse_json(br#"{"title": " ", "comment": "", "tags": ["", "a"]}"#).expect("parsed");
        assert_eq!(form.title, " ", "a required text stays for the service to refuse with the rest");
        assert_eq!(form.comment, None);
        assert_eq!(form.tags, Some(vec![String::new(), "a".into()]));
        let form: Form =
            parse_json(r#"{"title": "t", "comment": "  好  ", "location": {"lat": 1, "lon": 2.5}}"#.as_bytes())
                .expect("parsed");
        assert_eq!(form.comment.as_deref(), Some("  好  "));
        assert!(form.location.is_some_and(|spot| spot.lat == 1.0 && spot.lon == 2.5), "an integer is a number");
    }

    #[test]
    fn parser_errors_name_the_field_in_plain_words() {
        assert_eq!(
            refusal(r#"{"title": "t", "location": {"lat": "38.41", "lon": 112.7}}"#),
            ("location.lat".into(), "应为数字".into())
        );
        assert_eq!(refusal(r#"{"title": "t", "location": {"lat": 38.41}}"#), ("location.lon".into(), "必填".into()));
        assert_eq!(refusal(r#"{"title": "t", "colour": 1}"#), ("colour".into(), "不是本接口的字段".into()));
        assert_eq!(refusal(r#"{"title": 5}"#), ("title".into(), "应为文本".into()));
        assert_eq!(refusal(r#"{}"#), ("title".into(), "必填".into()));
        let Err(AppError::Refused { kind: Refusal::BadRequest, message }) = parse_json::<Form>(b"{\"title\": ") else {
            panic!("not JSON is 400");
        };
        assert!(message.text(Lang::Zh).contains("不是有效的 JSON"), "{message}");
    }

    #[derive(Debug, Deserialize)]
    struct Counted {
        #[allow(dead_code)]
        count: u8,
    }

    /// -1 is a whole number: where the type holds none below 0, that is what the client hears.
    #[test]
    fn a_whole_number_out_of_the_type_is_not_called_a_non_integer() {
        let said = |body: &str| match parse_json::<Counted>(body.as_bytes()) {
            Err(AppError::Validation(fields)) => {
                let (field, message) = fields.0.into_iter().next().expect("one field");
                (field, message.text(Lang::Zh), message.text(Lang::En))
            }
            other => panic!("{other:?}"),
        };
        let said_as = |zh: &str, en: &str| ("count".to_owned(), zh.to_owned(), en.to_owned());
        assert_eq!(said(r#"{"count": -1}"#), said_as("不能为负数", "must not be negative"));
        assert_eq!(said(r#"{"count": 300}"#), said_as("数值超出允许范围", "is out of the allowed range"));
        assert_eq!(said(r#"{"count": "x"}"#), said_as("应为整数", "must be a whole number"));
    }
}
