//! RFC 9457 problem details for every failure, and the one place errors are logged.

use actix_web::{
    HttpResponse, ResponseError,
    body::{BoxBody, EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{StatusCode, header},
    middleware::{ErrorHandlerResponse, Next},
};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::{
    domain::validate::Lang,
    error::{AppError, Refusal},
};

/// A problem-details body. `errors` names each invalid field on 422.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, String>>,
}

pub fn problem_response(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> HttpResponse {
    respond(
        status,
        Problem {
            kind: type_uri(slug),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
        },
    )
}

fn respond(status: StatusCode, problem: Problem) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    builder.content_type("application/problem+json");
    if status == StatusCode::UNAUTHORIZED {
        builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    builder.json(problem)
}

fn type_uri(slug: &str) -> String {
    format!("urn:gridwhistle:problem:{slug}")
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) | AppError::InternalCause { .. } | AppError::Database(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            AppError::Refused { kind, .. } => match kind {
                Refusal::BadRequest => StatusCode::BAD_REQUEST,
                Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
                Refusal::Forbidden => StatusCode::FORBIDDEN,
                Refusal::NotFound => StatusCode::NOT_FOUND,
                Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
                Refusal::Conflict => StatusCode::CONFLICT,
                Refusal::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
                Refusal::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                Refusal::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    /// The Chinese document; [`localise`] says it again in English when the client asks.
    fn error_response(&self) -> HttpResponse {
        if matches!(self, AppError::Internal(_) | AppError::InternalCause { .. } | AppError::Database(_)) {
            // Logged once, with the cause chain; the client learns nothing internal.
            tracing::error!(error = %self.chain(), "request failed");
        }
        let status = self.status_code();
        let mut response = respond(status, self.problem(Lang::Zh));
        // A limit, or a busy database (pool exhausted, deadlock, serialization failure) that
        // clears within moments: the client is told when to try the same request again.
        if let Some(secs) = self.retry_after()
            && let Ok(value) = header::HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl AppError {
    /// The problem document in `lang`. The `type` and `title` are stable English, the same in
    /// every language, for logs and client code; `detail` and `errors` are for people.
    pub fn problem(&self, lang: Lang) -> Problem {
        let status = self.status_code();
        let (slug, title) = match self {
            AppError::BadRequest(_) => ("bad-request", "Malformed request"),
            AppError::Validation(_) => ("validation", "Invalid fields"),
            AppError::Unauthenticated(_) => ("unauthenticated", "Authentication required"),
            AppError::Forbidden(_) => ("forbidden", "Not allowed"),
            AppError::NotFound(_) => ("not-found", "Not found"),
            AppError::Conflict(_) => ("conflict", "Conflict"),
            AppError::PreconditionFailed(_) => ("precondition-failed", "Stale version"),
            AppError::PayloadTooLarge(_) => ("payload-too-large", "Request body too large"),
            AppError::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            AppError::Limited { .. } => ("too-many-requests", "Too many requests"),
            AppError::Unavailable(_) => ("unavailable", "Service busy"),
            AppError::Internal(_) | AppError::InternalCause { .. } | AppError::Database(_) => {
                ("internal", "Internal error")
            }
            AppError::Refused { kind, .. } => match kind {
                Refusal::BadRequest => ("bad-request", "Malformed request"),
                Refusal::Unauthenticated => ("unauthenticated", "Authentication required"),
                Refusal::Forbidden => ("forbidden", "Not allowed"),
                Refusal::NotFound => ("not-found", "Not found"),
                Refusal::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
                Refusal::Conflict => ("conflict", "Conflict"),
                Refusal::PreconditionFailed => ("precondition-failed", "Stale version"),
                Refusal::PayloadTooLarge => ("payload-too-large", "Request body too large"),
                Refusal::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
                Refusal::Unavailable => ("unavailable", "Service busy"),
            },
        };
        let zh = lang == Lang::Zh;
        let (detail, errors) = match self {
            AppError::Validation(fields) => {
                let sentences: Vec<String> = fields
                    .0
                    .iter()
                    .map(|(field, message)| {
                        if zh {
                            format!("字段 {field}：{}", message.text(lang))
                        } else {
                            format!("{field}: {}", message.text(lang))
                        }
                    })
                    .collect();
                let detail = if zh { sentences.join("；") } else { sentences.join("; ") };
                let errors = fields.0.iter().map(|(field, message)| (field.clone(), message.text(lang))).collect();
                (detail, Some(errors))
            }
            AppError::Internal(_) | AppError::InternalCause { .. } | AppError::Database(_) => {
                let detail = if zh {
                    "服务器未能完成请求，已记录，请稍后再试"
                } else {
                    "the server could not complete the request; it has been logged"
                };
                (detail.to_owned(), None)
            }
            AppError::Refused { message, .. } => (message.text(lang), None),
            AppError::Limited { limit, retry_after_secs } => (limit.text(lang, *retry_after_secs), None),
            // Not yet translated: a Chinese gist of the kind, with the English specifics.
            other if zh => (format!("{}（{other}）", gist_zh(status)), None),
            other => (other.to_string(), None),
        };
        Problem { kind: type_uri(slug), title: title.into(), status: status.as_u16(), detail, errors }
    }
}

/// What a status means, in Chinese, for the errors not yet said in both languages.
fn gist_zh(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "请求格式不正确",
        StatusCode::UNAUTHORIZED => "请先登录",
        StatusCode::FORBIDDEN => "无权执行此操作",
        StatusCode::NOT_FOUND => "未找到",
        StatusCode::CONFLICT => "与当前状态冲突",
        StatusCode::PRECONDITION_FAILED => "数据已被他人修改，请刷新后重试",
        StatusCode::PAYLOAD_TOO_LARGE => "请求内容过大",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "请以 JSON 格式提交",
        StatusCode::TOO_MANY_REQUESTS => "已达到使用限制，请按 Retry-After 所示的时间后重试",
        StatusCode::SERVICE_UNAVAILABLE => "服务繁忙，请稍后重试",
        _ => "请求未能完成",
    }
}

/// The language the client prefers among those we speak: the highest `q` of `zh*` and `en*`
/// in `Accept-Language`; Chinese when neither is named or both weigh the same.
pub fn preferred_language(accept_language: Option<&str>) -> Lang {
    let Some(header) = accept_language else { return Lang::Zh };
    let (mut zh, mut en) = (None::<f32>, None::<f32>);
    for range in header.split(',') {
        let mut parts = range.split(';');
        let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
            .next()
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or_default();
        let slot = match primary {
            "zh" => &mut zh,
            "en" => &mut en,
            _ => continue,
        };
        *slot = Some(slot.map_or(q, |seen: f32| seen.max(q)));
    }
    match (zh, en) {
        (_, Some(en)) if en > 0.0 && en > zh.unwrap_or(0.0) => Lang::En,
        _ => Lang::Zh,
    }
}

/// Says an error document again in English when `Accept-Language` prefers English; every
/// problem document answers in Chinese otherwise. Wrap it outside the router and the error
/// handlers: `middleware::from_fn(problem::localise)`.
pub async fn localise<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let lang = preferred_language(req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let res = next.call(req).await?.map_into_boxed_body();
    let english = match res.response().error().and_then(|e| e.as_error::<AppError>()) {
        Some(error) if lang == Lang::En => serde_json::to_vec(&error.problem(Lang::En)).ok(),
        _ => None,
    };
    let is_problem = res.response().error().is_some_and(|e| e.as_error::<AppError>().is_some());
    let mut res = match english {
        Some(body) => res.map_body(|_, _| BoxBody::new(body)),
        None => res,
    };
    if is_problem {
        let said = if lang == Lang::En { "en" } else { "zh" };
        res.headers_mut().insert(header::CONTENT_LANGUAGE, header::HeaderValue::from_static(said));
        res.headers_mut().insert(header::VARY, header::HeaderValue::from_static("Accept-Language"));
    }
    Ok(res)
}

/// The router answers a wrong method with an empty 405; give it a problem body too.
pub fn method_not_allowed<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // Open311 says its 405 itself, as an Open311 error array.
    if res.request().path().starts_with("/open311/") {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, _) = res.into_parts();
    let response = HttpResponse::from_error(AppError::refused(
        Refusal::MethodNotAllowed,
        format!("{} 不支持 {} 方法", req.path(), req.method()),
        format!("{} is not supported on {}", req.method(), req.path()),
    ));
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, response).map_body(|_, body| EitherBody::right(body))))
}

pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    HttpResponse::from_error(AppError::refused(
        Refusal::NotFound,
        format!("{} 处没有资源", req.path()),
        format!("no resource at {}", req.path()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::validate::{FieldErrors, Message},
        error::Limit,
    };

    #[test]
    fn the_best_of_chinese_and_english_by_q_value() {
        for (header, expected) in [
            (None, Lang::Zh),
            (Some("en"), Lang::En),
            (Some("en-US,en;q=0.9"), Lang::En),
            (Some("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh),
            (Some("en;q=0.5, zh;q=0.9"), Lang::Zh),
            (Some("zh;q=0.3, en"), Lang::En),
            (Some("zh, en"), Lang::Zh),
            (Some("en;q=0"), Lang::Zh),
            (Some("fr, de;q=0.5"), Lang::Zh),
            (Some("*"), Lang::Zh),
        ] {
            assert_eq!(preferred_language(header), expected, "{header:?}");
        }
    }

    #[test]
    fn every_kind_of_error_has_a_chinese_detail() {
        let chinese = |text: &str| text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        let errors = [
            AppError::Validation(FieldErrors::single("title", Message::Empty)),
            AppError::Conflict("untranslated".into()),
            AppError::not_found("thing"),
            AppError::internal("secret detail"),
            AppError::refused(Refusal::Forbidden, "不行", "no"),
            AppError::too_many_requests(Limit::UploadsInProgress { max: 2 }, 2),
        ];
        for error in errors {
            let problem = error.problem(Lang::Zh);
            assert!(chinese(&problem.detail), "{}", problem.detail);
            assert!(!problem.detail.contains("secret"), "internal details stay in the log");
            assert!(!chinese(&error.problem(Lang::En).detail), "{}", error.problem(Lang::En).detail);
        }
    }

    /// Each 429 names its limit and its number in Chinese and in English, says that
    /// Retry-After tells when to retry, and sends Retry-After; only rates are "too frequent".
    #[test]
    fn every_limit_says_which_it_is_and_when_to_retry() {
        let chinese = |text: &str| text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        for (limit, number, zh_words, en_words) in [
            (Limit::LoginsFromAddress { per_minute: 6 }, "6", "登录过于频繁", "logins from this address"),
            (Limit::FilingsPerUser { per_minute: 2 }, "2", "提交诉求过于频繁", "tickets filed"),
            (Limit::Open311FromAddress { per_minute: 3 }, "3", "Open311 请求过于频繁", "Open311 requests"),
            (Limit::AccountLocked { failures: 5 }, "5", "账号已暂时锁定", "account is locked"),
            (Limit::UploadsInProgress { max: 2 }, "2", "同时进行的上传过多", "uploads in progress"),
            (Limit::StreamsOpen { max: 5 }, "5", "打开的事件流过多", "event streams open"),
        ] {
            let error = AppError::too_many_requests(limit, 7);
            let (zh, en) = (error.problem(Lang::Zh), error.problem(Lang::En));
            assert_eq!((zh.status, zh.kind.as_str()), (429, "urn:gridwhistle:problem:too-many-requests"));
            assert!(chinese(&zh.detail) && zh.detail.contains(zh_words) && zh.detail.contains(number), "{}", zh.detail);
            assert!(zh.detail.contains("7 秒后重试（见 Retry-After）"), "{}", zh.detail);
            assert!(
                !chinese(&en.detail) && en.detail.contains(en_words) && en.detail.contains(number),
                "{}",
                en.detail
            );
            assert!(en.detail.contains("retry in 7 seconds, as Retry-After says"), "{}", en.detail);
            let is_rate = matches!(
                limit,
                Limit::LoginsFromAddress { .. } | Limit::FilingsPerUser { .. } | Limit::Open311FromAddress { .. }
            );
            assert_eq!(zh.detail.contains("频繁"), is_rate, "work in progress is not a rate: {}", zh.detail);
            let response = error.error_response();
            assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("7"));
        }
        let locked = AppError::too_many_requests(Limit::AccountLocked { failures: 5 }, 900);
        assert!(locked.problem(Lang::Zh).detail.contains("请在 15 分钟后重试"), "{}", locked.problem(Lang::Zh).detail);
        assert!(locked.problem(Lang::En).detail.contains("retry in 15 minutes"), "{}", locked.problem(Lang::En).detail);
    }
}
