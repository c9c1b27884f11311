//! Files in Salesforce's shapes (decision 0034): `ContentVersion` create
//! by multipart (`entity_content` JSON and `VersionData` binary, streamed,
//! past the 8 MiB JSON limit) or by JSON with base64 `VersionData`;
//! `ContentVersion/{id}/VersionData` download with `Range` and `ETag`;
//! `ContentDocumentLink` create/delete and `ContentDocument` delete
//! (dispatched from the Data API's generic routes).

use crate::auth::{caller_of_token, Auth};
use crate::data::version;
use crate::error::ApiError;
use crate::extract::{parse_json, PathParams};
use crate::routes::RouteSpec;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use futures_util::{StreamExt, TryStreamExt};
use mosaic_runtime::records::Caller;
use mosaic_types::{ErrorCode, MosaicError};
use serde_json::{json, Map, Value};

/// Largest JSON `ContentVersion` create: Salesforce's 37.5 MB of base64
/// `VersionData`, plus room for the other fields.
pub const MAX_JSON_UPLOAD_BYTES: usize = 37_500_000 + 64 * 1024;
/// Largest `entity_content` part of a multipart upload.
pub const MAX_ENTITY_CONTENT_BYTES: u64 = 64 * 1024;
/// Multipart framing (boundaries, part headers) allowed beyond the file.
const MULTIPART_OVERHEAD_BYTES: u64 = 1024 * 1024;

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    vec![RouteSpec::new(
        Method::GET,
        "/services/data/{version}/sobjects/ContentVersion/{id}/VersionData",
        Access::Permission,
        "files.version_data",
        "Download a file version's content (Range, ETag); visible to whoever can see a record it is linked to",
        get(version_data),
    )]
}

fn is(object: &str, name: &str) -> bool {
    object.eq_ignore_ascii_case(name)
}

/// Whether the Data API's generic create/delete hands `object` to this
/// module.
pub(crate) fn handles(object: &str) -> bool {
    use mosaic_runtime::files::*;
    [CONTENT_VERSION, CONTENT_DOCUMENT_LINK, CONTENT_DOCUMENT]
        .iter()
        .any(|n| is(object, n))
}

fn created(id: &str) -> Response {
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "success": true, "errors": []})),
    )
        .into_response()
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `POST sobjects/{ContentVersion|ContentDocumentLink|ContentDocument}`.
pub(crate) async fn create(
    s: &AppState,
    c: &Caller,
    object: &str,
    req: Request,
) -> Result<Response, ApiError> {
    use mosaic_runtime::files::*;
    if is(object, CONTENT_VERSION) {
        return match media_type(req.headers()).as_str() {
            "multipart/form-data" => create_version_multipart(s, c, req).await,
            "application/json" => create_version_json(s, c, req).await,
            _ => Err(ApiError::new(
                ErrorCode::UNSUPPORTED_MEDIA_TYPE,
                "ContentVersion takes multipart/form-data (entity_content, VersionData) or application/json with base64 VersionData",
            )),
        };
    }
    if is(object, CONTENT_DOCUMENT_LINK) {
        let crate::extract::JsonBody(body) =
            <crate::extract::JsonBody<Map<String, Value>> as axum::extract::FromRequest<
                AppState,
            >>::from_request(req, s)
            .await?;
        let id = s.platform.create_content_link(c, &body).await?;
        return Ok(created(&id));
    }
    Err(MosaicError::new(
        ErrorCode::INVALID_INPUT,
        "a ContentDocument is created with its first ContentVersion",
    )
    .into())
}

/// Fields of the file objects only the platform writes (a PATCH through
/// the generic route must not repoint a version at other content).
const PLATFORM_WRITTEN: [&str; 9] = [
    "Checksum",
    "ContentSize",
    "ContentDocumentId",
    "LinkedEntityId",
    "FileType",
    "FileExtension",
    "IsLatest",
    "VersionNumber",
    "LatestPublishedVersionId",
];

/// Refuses a generic update of a file object's platform-written fields.
pub(crate) fn check_update(object: &str, body: &Map<String, Value>) -> Result<(), ApiError> {
    if !handles(object) {
        return Ok(());
    }
    match body
        .keys()
        .find(|k| PLATFORM_WRITTEN.iter().any(|f| f.eq_ignore_ascii_case(k)))
    {
        Some(k) => Err(MosaicError::field(
            ErrorCode::INVALID_FIELD_FOR_INSERT_UPDATE,
            k.clone(),
            format!("Unable to create/update fields: {k}. It is written by the platform."),
        )
        .into()),
        None => Ok(()),
    }
}

/// `DELETE sobjects/{ContentDocument|ContentDocumentLink}/{id}`.
pub(crate) async fn delete(
    s: &AppState,
    c: &Caller,
    object: &str,
    id: &str,
) -> Result<StatusCode, ApiError> {
    use mosaic_runtime::files::*;
    if is(object, CONTENT_DOCUMENT) {
        s.platform.delete_content_document(c, id).await?;
    } else if is(object, CONTENT_DOCUMENT_LINK) {
        s.platform.delete_content_link(c, id).await?;
    } else {
        return Err(MosaicError::new(
            ErrorCode::INVALID_INPUT,
            "a ContentVersion is deleted with its ContentDocument",
        )
        .into());
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn create_version_json(s: &AppState, c: &Caller, req: Request) -> Result<Response, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::REQUEST_TOO_LARGE,
            format!(
                "a JSON ContentVersion body may be at most {MAX_JSON_UPLOAD_BYTES} bytes; send larger files as multipart/form-data"
            ),
        )
    };
    let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_UPLOAD_BYTES)
        .await
        .map_err(|_| too_large())?;
    let mut body: Map<String, Value> = parse_json(&bytes)?;
    drop(bytes);
    let data = match body.remove("VersionData") {
        Some(Value::String(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| {
                MosaicError::field(
                    ErrorCode::INVALID_TYPE_ON_FIELD_IN_RECORD,
                    "VersionData",
                    format!("VersionData: not valid base64: {e}"),
                )
            })?,
        Some(_) => {
            return Err(MosaicError::field(
                ErrorCode::INVALID_TYPE_ON_FIELD_IN_RECORD,
                "VersionData",
                "VersionData: expected a base64 string",
            )
            .into())
        }
        None => {
            return Err(MosaicError::field(
                ErrorCode::REQUIRED_FIELD_MISSING,
                "VersionData",
                "Required fields are missing: [VersionData]",
            )
            .into())
        }
    };
    let stream = futures_util::stream::once(async move { Ok(bytes::Bytes::from(data)) }).boxed();
    let id = s.platform.create_content_version(c, &body, stream).await?;
    Ok(created(&id))
}

async fn create_version_multipart(
    s: &AppState,
    c: &Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let bad = |msg: String| ApiError::new(ErrorCode::INVALID_INPUT, msg);
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| bad("multipart/form-data without a boundary".into()))?;
    let max_file = s.platform.config.files.max_file_bytes;
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["entity_content", "VersionData"])
        .size_limit(
            multer::SizeLimit::new()
                .whole_stream(max_file.saturating_add(MULTIPART_OVERHEAD_BYTES))
                .for_field("entity_content", MAX_ENTITY_CONTENT_BYTES),
        );
    let mut parts = multer::Multipart::with_constraints(
        req.into_body().into_data_stream(),
        boundary,
        constraints,
    );
    let multipart_error = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { .. } => ApiError::new(
            ErrorCode::REQUEST_TOO_LARGE,
            format!("the file exceeds the limit of {max_file} bytes"),
        ),
        multer::Error::FieldSizeExceeded { field_name, .. } => ApiError::new(
            ErrorCode::REQUEST_TOO_LARGE,
            format!(
                "the part {} exceeds {MAX_ENTITY_CONTENT_BYTES} bytes",
                field_name.unwrap_or_default()
            ),
        ),
        e => bad(format!("malformed multipart body: {e}")),
    };
    let first = parts
        .next_field()
        .await
        .map_err(multipart_error)?
        .ok_or_else(|| bad("the multipart body has no entity_content part".into()))?;
    if first.name() != Some("entity_content") {
        return Err(bad(
            "the first part must be entity_content (the version's fields as JSON)".into(),
        ));
    }
    let entity = first.bytes().await.map_err(multipart_error)?;
    let entity: Map<String, Value> = parse_json(&entity)?;
    let data = parts
        .next_field()
        .await
        .map_err(multipart_error)?
        .ok_or_else(|| bad("the multipart body has no VersionData part".into()))?;
    if data.name() != Some("VersionData") {
        return Err(bad("the second part must be VersionData (the file)".into()));
    }
    let stream = data
        .map_err(move |e| match e {
            multer::Error::StreamSizeExceeded { .. } => std::io::Error::other(MosaicError::new(
                ErrorCode::REQUEST_TOO_LARGE,
                format!("the file exceeds the limit of {max_file} bytes"),
            )),
            e => std::io::Error::other(e.to_string()),
        })
        .boxed();
    let id = s
        .platform
        .create_content_version(c, &entity, stream)
        .await?;
    Ok(created(&id))
}

/// The caller of a download: a bearer token, or the web app's session
/// cookie (links on record pages).
async fn download_caller(s: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let unauthorized =
        || ApiError::new(ErrorCode::INVALID_SESSION_ID, "Session expired or invalid");
    if headers.contains_key(header::AUTHORIZATION) {
        let mut parts = axum::http::Request::new(()).into_parts().0;
        parts.headers = headers.clone();
        let Auth(c) =
            <Auth as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, s)
                .await?;
        return Ok(c);
    }
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == mosaic_web::SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
        .ok_or_else(unauthorized)?;
    caller_of_token(s, &token).await
}

/// A `Range: bytes=…` header against a body of `size` bytes: `Ok(None)`
/// for no (or an ignorable) header, `Err` when unsatisfiable.
fn parse_range(value: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Several ranges: served whole, as RFC 9110 allows.
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size
        } else {
            let last: u64 = b.parse().map_err(|_| ())?;
            if last < start {
                return Err(());
            }
            last.saturating_add(1).min(size)
        };
        start..end
    };
    if range.start >= size {
        return Err(());
    }
    Ok(Some(range))
}

async fn version_data(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    version(&v)?;
    let c = download_caller(&s, &headers).await?;
    let content = s.platform.content_version(&c, &id).await?;
    let etag = format!("\"{}\"", content.sha256);
    let matches_etag = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut out = HeaderMap::new();
    let hv = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    out.insert(header::ETAG, hv(&etag));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if matches_etag {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(r) => match parse_range(r, content.size) {
            Ok(r) => r,
            Err(()) => {
                out.insert(
                    header::CONTENT_RANGE,
                    hv(&format!("bytes */{}", content.size)),
                );
                return Ok((StatusCode::RANGE_NOT_SATISFIABLE, out).into_response());
            }
        },
    };
    let partial = range.is_some();
    let body = s
        .platform
        .open_content(&c.tenant_id, &content, range)
        .await?;
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content.content_type),
    );
    out.insert(
        header::CONTENT_DISPOSITION,
        hv(&content_disposition(&content.file_name)),
    );
    out.insert(
        header::CONTENT_LENGTH,
        hv(&(body.range.end - body.range.start).to_string()),
    );
    let status = if partial {
        out.insert(
            header::CONTENT_RANGE,
            hv(&format!(
                "bytes {}-{}/{}",
                body.range.start,
                body.range.end.saturating_sub(1),
                body.total_size
            )),
        );
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    Ok((status, out, Body::from_stream(body.stream)).into_response())
}

/// `attachment` with the file's name: an ASCII fallback and the exact
/// name in RFC 5987 form.
fn content_disposition(path: &str) -> String {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let ascii: String = name
        .chars()
        .map(|ch| {
            if ch.is_ascii_graphic() && ch != '"' && ch != '\\' || ch == ' ' {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some(0..10)));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=-5", 100), Ok(Some(95..100)));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some(50..100)));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=9-3", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }

    #[test]
    fn disposition_is_an_attachment_with_a_safe_name() {
        assert_eq!(
            content_disposition("C:\\docs\\a\"b.pdf"),
            "attachment; filename=\"a_b.pdf\"; filename*=UTF-8''a%22b.pdf"
        );
    }
}
