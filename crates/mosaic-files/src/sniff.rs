//! The content type a download is served with, sniffed from the file's
//! first bytes — never the uploader's claim, and never a type a browser
//! would render as a page or run scripts from (HTML, SVG, XML): those are
//! served as `text/plain` or `application/octet-stream`, and always as an
//! attachment with `nosniff`.

/// What the first bytes of a file say it is: `(content type, FileType)`,
/// `FileType` in Salesforce's vocabulary (`PNG`, `PDF`, `TEXT`, …).
pub fn sniff(head: &[u8]) -> (&'static str, &'static str) {
    if let Some(kind) = infer::get(head) {
        let mime = kind.mime_type();
        let file_type = match mime {
            "image/png" => "PNG",
            "image/jpeg" => "JPG",
            "image/gif" => "GIF",
            "image/webp" => "WEBP",
            "application/pdf" => "PDF",
            "application/zip" => "ZIP",
            "application/gzip" => "GZIP",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "WORD_X",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "EXCEL_X",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
                "POWER_POINT_X"
            }
            "audio/mpeg" => "MP3",
            "video/mp4" => "MP4",
            _ => "UNKNOWN",
        };
        if is_safe(mime) {
            return (mime, file_type);
        }
        // HTML, SVG, XML: served as the text they are, below.
    }
    if std::str::from_utf8(trim_partial_utf8(head)).is_ok() && !head.contains(&0) {
        ("text/plain; charset=utf-8", "TEXT")
    } else {
        ("application/octet-stream", "UNKNOWN")
    }
}

/// The content type a stored `FileType` is served with.
pub fn mime_of(file_type: &str) -> &'static str {
    match file_type {
        "PNG" => "image/png",
        "JPG" => "image/jpeg",
        "GIF" => "image/gif",
        "WEBP" => "image/webp",
        "PDF" => "application/pdf",
        "ZIP" => "application/zip",
        "GZIP" => "application/gzip",
        "WORD_X" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "EXCEL_X" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "POWER_POINT_X" => {
            "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        }
        "MP3" => "audio/mpeg",
        "MP4" => "video/mp4",
        "TEXT" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Types a browser never renders as an active document.
fn is_safe(mime: &str) -> bool {
    !(mime.contains("html") || mime.contains("svg") || mime.contains("xml"))
}

/// The head cut at a byte boundary may end inside a UTF-8 sequence.
fn trim_partial_utf8(head: &[u8]) -> &[u8] {
    match std::str::from_utf8(head) {
        Ok(_) => head,
        Err(e) if e.error_len().is_none() => &head[..e.valid_up_to()],
        Err(_) => head,
    }
}

#[cfg(test)]
mod tests {
    use super::sniff;

    #[test]
    fn known_types_and_never_active_content() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n0000").0, "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n").1, "PDF");
        assert_eq!(
            sniff(b"<html><script>alert(1)</script>").0,
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>").0,
            "text/plain; charset=utf-8"
        );
        assert_eq!(sniff(&[0, 1, 2, 3, 255]).0, "application/octet-stream");
        assert_eq!(sniff("día".as_bytes()).1, "TEXT");
    }
}
