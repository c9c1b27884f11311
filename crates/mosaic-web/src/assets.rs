//! Static assets embedded in the binary and served under a URL that holds
//! a hash of their content (`/static/app.3f9a1c2e.css`): a new build with
//! changed CSS gets a new URL, so every copy may be cached forever.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// `Cache-Control` of a fingerprinted asset.
pub const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// Hex digits of the content hash in an asset's name.
const HASH_DIGITS: usize = 8;

struct Asset {
    stem: &'static str,
    ext: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    name: String,
}

fn asset(
    stem: &'static str,
    ext: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
) -> Asset {
    let hash = hex::encode(Sha256::digest(bytes));
    Asset {
        stem,
        ext,
        content_type,
        bytes,
        name: format!("{stem}.{}.{ext}", &hash[..HASH_DIGITS]),
    }
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    vec![
        asset(
            "app",
            "css",
            "text/css; charset=utf-8",
            include_bytes!("../assets/app.css"),
        ),
        asset(
            "app",
            "js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/app.js"),
        ),
        asset(
            "icon",
            "svg",
            "image/svg+xml",
            include_bytes!("../assets/icon.svg"),
        ),
    ]
});

/// The URL path of an embedded asset by stem and extension
/// (`asset_path("app", "css")` → `/static/app.3f9a1c2e.css`).
pub fn asset_path(stem: &str, ext: &str) -> String {
    ASSETS
        .iter()
        .find(|a| a.stem == stem && a.ext == ext)
        .map(|a| format!("/static/{}", a.name))
        .unwrap_or_default()
}

/// `GET /static/{file}`: an embedded asset by its fingerprinted name.
pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(ASSET_CACHE_CONTROL),
                ),
                (
                    header::HeaderName::from_static("x-content-type-options"),
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            a.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_carry_their_content_hash() {
        let css = asset_path("app", "css");
        assert!(
            css.starts_with("/static/app.") && css.ends_with(".css"),
            "{css}"
        );
        let hash = &css["/static/app.".len()..css.len() - 4];
        assert_eq!(hash.len(), HASH_DIGITS);
        assert!(css.contains(
            &hex::encode(Sha256::digest(include_bytes!("../assets/app.css")))[..HASH_DIGITS]
        ));
    }
}
