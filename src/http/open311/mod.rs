//! Open311 GeoReport v2 at `/open311/v2`: every endpoint in JSON and XML by extension.
//! Not problem details: GeoReport clients read errors as `[{"code", "description"}]` (JSON) or
//! `<errors><error>…</error></errors>` (XML), with the matching HTTP status. Outside
//! `/api/v1` and its OpenAPI document; the GeoReport v2 specification is the contract.

pub mod media;
pub mod xml;

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    context::AppContext,
    domain::{calendar::parse_instant, validate::Lang},
    error::{AppError, AppResult, Refusal},
    http::{extract::client_ip, problem::preferred_language},
    service::open311::{self as service, NewRequest, Open311Status, RequestFilter},
};

/// The two formats, by the path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    fn of(extension: &str) -> Self {
        if extension == "xml" { Self::Xml } else { Self::Json }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json; charset=utf-8",
            Self::Xml => "text/xml; charset=utf-8",
        }
    }
}

/// The parameters of a query string or a form body. Parameters GeoReport clients add of their
/// own (`api_key` on reads, paging) are ignored rather than refused; but the ones we read are
/// read strictly: broken percent-encoding (a `%` without two hex digits after it, or bytes
/// that are not UTF-8) and a parameter given twice are refused naming it, never stored as
/// sent or decided by taking the first.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(text: &[u8]) -> AppResult<Self> {
        let mut pairs = Vec::new();
        for piece in text.split(|b| *b == b'&').filter(|piece| !piece.is_empty()) {
            let (name, value) = match piece.iter().position(|b| *b == b'=') {
                Some(at) => (&piece[..at], &piece[at + 1..]),
                None => (piece, &b""[..]),
            };
            let name = percent_decoded(name).ok_or_else(|| broken_encoding(&String::from_utf8_lossy(name)))?;
            let value = percent_decoded(value).ok_or_else(|| broken_encoding(&name))?;
            pairs.push((name, value));
        }
        Ok(Self(pairs))
    }

    /// The one value of `name` (blank counts as absent); 400 when it is given more than once.
    fn get(&self, name: &str) -> AppResult<Option<&str>> {
        let mut values = self.0.iter().filter(|(k, _)| k == name);
        let first = values.next();
        if values.next().is_some() {
            return Err(repeated(name));
        }
        Ok(first.map(|(_, v)| v.trim()).filter(|v| !v.is_empty()))
    }

    /// A comma-separated list (also when the parameter is repeated).
    fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// `application/x-www-form-urlencoded` decoding that refuses what it cannot decode: `None` for a
/// `%` not followed by two hex digits, or for bytes that are not UTF-8.
fn percent_decoded(text: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let high = (*bytes.next()? as char).to_digit(16)?;
                let low = (*bytes.next()? as char).to_digit(16)?;
                out.push(u8::try_from(high * 16 + low).ok()?);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

fn broken_encoding(name: &str) -> AppError {
    // The name as sent, shortened: it is echoed back.
    let name: String = name.chars().take(64).collect();
    AppError::refused(
        Refusal::BadRequest,
        format!("参数 {name} 的百分号编码无效：% 后应为两位十六进制数字，解码后应为 UTF-8 文本"),
        format!(
            "the parameter {name} is not valid percent-encoding: % takes two hex digits, and the result must be UTF-8"
        ),
    )
}

fn repeated(name: &str) -> AppError {
    AppError::refused(
        Refusal::BadRequest,
        format!("参数 {name} 出现了不止一次；每个参数只能给一次"),
        format!("the parameter {name} is given more than once; give it once"),
    )
}

fn lang(req: &HttpRequest) -> Lang {
    preferred_language(req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}

fn ok(status: StatusCode, format: Format, json_body: &Value, xml_body: impl FnOnce(&Value) -> String) -> HttpResponse {
    let body = match format {
        Format::Json => json_body.to_string(),
        Format::Xml => xml_body(json_body),
    };
    HttpResponse::build(status).content_type(format.content_type()).body(body)
}

fn to_value(value: &impl Serialize) -> AppResult<Value> {
    serde_json::to_value(value).map_err(|e| AppError::internal_from("rendering an Open311 answer", e))
}

/// An error as GeoReport says it. A refused form field is a 400 here (422 in `/api/v1`).
fn error_response(err: &AppError, format: Format, lang: Lang) -> HttpResponse {
    use actix_web::ResponseError;
    let status = match err.status_code() {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        status => status,
    };
    if status.is_server_error() && !matches!(err, AppError::Unavailable(_)) {
        tracing::error!(error = %err.chain(), "Open311 request failed");
    }
    let description = err.problem(lang).detail;
    let code = status.as_u16();
    let json_body = json!([{"code": code, "description": description}]);
    let mut response = ok(status, format, &json_body, |v| xml::list("errors", "error", v));
    if let Some(secs) = err.retry_after()
        && let Ok(value) = header::HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn answer(req: &HttpRequest, format: Format, result: AppResult<HttpResponse>) -> HttpResponse {
    result.unwrap_or_else(|err| error_response(&err, format, lang(req)))
}

/// `discovery`: where the endpoint is and what it speaks.
pub async fn discovery(req: HttpRequest, format: web::Path<String>) -> HttpResponse {
    let format = Format::of(&format);
    let info = req.connection_info();
    let url = format!("{}://{}/open311/v2", info.scheme(), info.host());
    let body = json!({
        "changeset": "2026-11-29T00:00:00+08:00",
        "contact": "本市 12345 政务服务便民热线",
        "key_service": "API 密钥由系统管理员发放（POST /api/v1/api-keys）",
        "endpoints": [{
            "specification": "http://wiki.open311.org/GeoReport_v2",
            "url": url,
            "changeset": "2026-11-29T00:00:00+08:00",
            "type": "production",
            "formats": ["application/json", "text/xml"],
        }],
    });
    ok(StatusCode::OK, format, &body, |v| xml::document("discovery", v))
}

pub async fn services(req: HttpRequest, ctx: web::Data<AppContext>, format: web::Path<String>) -> HttpResponse {
    let format = Format::of(&format);
    let result = async {
        let params = Params::parse(req.query_string().as_bytes())?;
        service::jurisdiction(&ctx, params.get("jurisdiction_id")?).await?;
        let body = to_value(&service::services(&ctx).await?)?;
        Ok(ok(StatusCode::OK, format, &body, |v| xml::list("services", "service", v)))
    }
    .await;
    answer(&req, format, result)
}

pub async fn service_definition(
    req: HttpRequest,
    ctx: web::Data<AppContext>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (code, format) = path.into_inner();
    let format = Format::of(&format);
    let result = async {
        let params = Params::parse(req.query_string().as_bytes())?;
        service::jurisdiction(&ctx, params.get("jurisdiction_id")?).await?;
        let body = to_value(&service::service_definition(&ctx, &code).await?)?;
        Ok(ok(StatusCode::OK, format, &body, |v| xml::document("service_definition", v)))
    }
    .await;
    answer(&req, format, result)
}

fn requests_xml(value: &Value) -> String {
    xml::list("service_requests", "request", value)
}

pub async fn search(req: HttpRequest, ctx: web::Data<AppContext>, format: web::Path<String>) -> HttpResponse {
    let format = Format::of(&format);
    let result = async {
        let params = Params::parse(req.query_string().as_bytes())?;
        let root = service::jurisdiction(&ctx, params.get("jurisdiction_id")?).await?;
        let filter = filter_of(&ctx, &params)?;
        let body = to_value(&service::search(&ctx, &root, filter).await?)?;
        Ok(ok(StatusCode::OK, format, &body, requests_xml))
    }
    .await;
    answer(&req, format, result)
}

fn filter_of(ctx: &AppContext, params: &Params) -> AppResult<RequestFilter> {
    let offset = ctx.calendar().offset();
    let time = |name: &str| -> AppResult<Option<chrono::DateTime<chrono::Utc>>> {
        params
            .get(name)?
            .map(|text| {
                parse_instant(text, offset).map_err(|_| {
                    AppError::refused(
                        Refusal::BadRequest,
                        format!("{name} 应为 W3C 时间，如 2026-11-27T09:00:00+08:00"),
                        format!("{name} must be a W3C datetime like 2026-11-27T09:00:00+08:00"),
                    )
                })
            })
            .transpose()
    };
    let status = match params.get("status")? {
        None => None,
        Some(text) => Some(Open311Status::parse(text).ok_or_else(|| {
            AppError::refused(Refusal::BadRequest, "status 应为 open 或 closed", "status must be open or closed")
        })?),
    };
    let (start, end) = (time("start_date")?, time("end_date")?);
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(AppError::refused(
            Refusal::BadRequest,
            "start_date 不能晚于 end_date",
            "start_date must not be after end_date",
        ));
    }
    Ok(RequestFilter {
        ids: params.list("service_request_id"),
        service_codes: params.list("service_code"),
        start,
        end,
        status,
    })
}

pub async fn one(req: HttpRequest, ctx: web::Data<AppContext>, path: web::Path<(String, String)>) -> HttpResponse {
    let (id, format) = path.into_inner();
    let format = Format::of(&format);
    let result = async {
        let params = Params::parse(req.query_string().as_bytes())?;
        let root = service::jurisdiction(&ctx, params.get("jurisdiction_id")?).await?;
        let body = to_value(&vec![service::one(&ctx, &root, &id).await?])?;
        Ok(ok(StatusCode::OK, format, &body, requests_xml))
    }
    .await;
    answer(&req, format, result)
}

pub async fn token(req: HttpRequest, ctx: web::Data<AppContext>, path: web::Path<(String, String)>) -> HttpResponse {
    let (token, format) = path.into_inner();
    let format = Format::of(&format);
    let result = async {
        let params = Params::parse(req.query_string().as_bytes())?;
        let root = service::jurisdiction(&ctx, params.get("jurisdiction_id")?).await?;
        let (token, number) = service::resolve_token(&ctx, &root, &token).await?;
        let body = json!([{"service_request_id": number, "token": token}]);
        Ok(ok(StatusCode::OK, format, &body, requests_xml))
    }
    .await;
    answer(&req, format, result)
}

/// POST requests: form-encoded, as GeoReport says.
pub async fn create(
    req: HttpRequest,
    ctx: web::Data<AppContext>,
    format: web::Path<String>,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    let format = Format::of(&format);
    let result = async {
        let body = body.map_err(|e| {
            if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::refused(Refusal::PayloadTooLarge, "请求内容超过了允许的大小", "the request body is too large")
            } else {
                AppError::refused(
                    Refusal::BadRequest,
                    "请求内容未能完整读取，请重试",
                    "the request body could not be read",
                )
            }
        })?;
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let form_encoded = content_type
            .parse::<mime::Mime>()
            .is_ok_and(|m| m.type_() == mime::APPLICATION && m.subtype() == mime::WWW_FORM_URLENCODED);
        if !form_encoded && !body.is_empty() {
            return Err(AppError::refused(
                Refusal::BadRequest,
                "请以表单编码提交（Content-Type: application/x-www-form-urlencoded）",
                "send the form as Content-Type: application/x-www-form-urlencoded",
            ));
        }
        let form = Params::parse(&body)?;
        let query = Params::parse(req.query_string().as_bytes())?;
        // A field may come in the form or the query string, once.
        let field = |name: &str| -> AppResult<Option<String>> {
            match (form.get(name)?, query.get(name)?) {
                (Some(_), Some(_)) => Err(repeated(name)),
                (from_form, from_query) => Ok(from_form.or(from_query).map(str::to_owned)),
            }
        };
        let attributes = form
            .0
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("attribute[")
                    .and_then(|rest| rest.strip_suffix(']'))
                    .map(|code| (code.to_owned(), v.clone()))
            })
            .collect();
        let input = NewRequest {
            jurisdiction_id: field("jurisdiction_id")?,
            api_key: field("api_key")?,
            service_code: field("service_code")?,
            lat: field("lat")?,
            long: field("long")?,
            address_string: field("address_string")?,
            description: field("description")?,
            first_name: field("first_name")?,
            last_name: field("last_name")?,
            phone: field("phone")?,
            media_url: field("media_url")?,
            account_id: field("account_id")?,
            attributes,
        };
        let ip = client_ip(&req, ctx.settings.security.trust_forwarded_for);
        let created = service::create(&ctx, input, ip).await?;
        let body = to_value(&vec![created])?;
        Ok(ok(StatusCode::CREATED, format, &body, requests_xml))
    }
    .await;
    answer(&req, format, result)
}

/// Anything else under `/open311/v2`: an Open311 404 (JSON unless the path ends in `.xml`).
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let format = if req.path().ends_with(".xml") { Format::Xml } else { Format::Json };
    let err = AppError::refused(
        Refusal::NotFound,
        format!("{} 处没有 Open311 资源（路径应以 .json 或 .xml 结尾）", req.path()),
        format!("no Open311 resource at {} (paths end in .json or .xml)", req.path()),
    );
    error_response(&err, format, lang(&req))
}

/// A method the resource does not have: an Open311 405.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let format = if req.path().ends_with(".xml") { Format::Xml } else { Format::Json };
    let err = AppError::refused(
        Refusal::MethodNotAllowed,
        format!("{} 不支持 {} 方法", req.path(), req.method()),
        format!("{} is not supported on {}", req.method(), req.path()),
    );
    error_response(&err, format, lang(&req))
}

/// Routes under `/open311/v2`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::web::{get, post};
    const FORMAT: &str = "{format:json|xml}";
    let resource = |path: String| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(
        web::scope("/open311/v2")
            .service(resource(format!("/discovery.{FORMAT}")).route(get().to(discovery)))
            .service(resource(format!("/services.{FORMAT}")).route(get().to(services)))
            .service(resource(format!("/services/{{service_code}}.{FORMAT}")).route(get().to(service_definition)))
            .service(resource(format!("/requests.{FORMAT}")).route(get().to(search)).route(post().to(create)))
            .service(resource(format!("/requests/{{service_request_id}}.{FORMAT}")).route(get().to(one)))
            .service(resource(format!("/tokens/{{token}}.{FORMAT}")).route(get().to(token)))
            .service(resource("/media/{token}.jpg".to_owned()).route(get().to(media::thumbnail)))
            .default_service(web::to(not_found)),
    );
}
