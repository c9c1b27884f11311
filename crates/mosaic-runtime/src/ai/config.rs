//! Where the LLM service is, which model answers, and how long a completion
//! may take. The API key is a secret: it is never printed, logged or
//! echoed in an error.

use mosaic_types::{timeouts, ErrorCode, MosaicError, MosaicResult};
use std::time::Duration;

/// The model asked when none is configured (`--llm-model`, `MOSAIC_LLM_MODEL`).
pub const DEFAULT_LLM_MODEL: &str = "gpt-4o-mini";

/// The path completions are posted to, below the configured base URL.
pub const CHAT_COMPLETIONS_PATH: &str = "/v1/chat/completions";

/// The LLM service: an OpenAI-compatible chat-completions API.
#[derive(Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// Base URL (`https://api.openai.com`, `http://127.0.0.1:11434`);
    /// completions go to `{url}/v1/chat/completions`. No trailing slash.
    pub url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when set (`MOSAIC_LLM_API_KEY`).
    pub api_key: Option<String>,
    /// Limit of one completion, connection included
    /// (`MOSAIC_LLM_TIMEOUT_MS`; default [`timeouts::LLM_REQUEST_TIMEOUT`]).
    pub timeout: Duration,
    /// Completions this instance runs at once (`MOSAIC_LLM_CONCURRENCY`).
    pub concurrency: usize,
    /// Requests waiting for a completion slot before more are refused
    /// with 429 (`MOSAIC_LLM_QUEUE_CAPACITY`).
    pub queue_capacity: usize,
    /// AI requests one tenant may make per UTC day (`MOSAIC_AI_REQUESTS_PER_DAY`; 0: no limit).
    pub requests_per_day: u64,
    /// LLM tokens one tenant may use per UTC day (`MOSAIC_AI_TOKENS_PER_DAY`; 0: no limit).
    pub tokens_per_day: u64,
}

/// Completions run at once per instance, by default.
pub const DEFAULT_LLM_CONCURRENCY: usize = 8;
/// Requests that may wait for a completion slot, by default: twice the
/// queue length the scaling alert fires at (50).
pub const DEFAULT_LLM_QUEUE_CAPACITY: usize = 100;
/// AI requests per tenant and UTC day, by default.
pub const DEFAULT_AI_REQUESTS_PER_DAY: u64 = 1_000;
/// LLM tokens (prompt and answer) per tenant and UTC day, by default.
pub const DEFAULT_AI_TOKENS_PER_DAY: u64 = 2_000_000;

impl LlmConfig {
    /// The service at `url` with the default model and timeout and no key.
    /// A URL that is not `http(s)://host…` is refused with an error naming
    /// the option.
    pub fn new(url: &str) -> MosaicResult<LlmConfig> {
        let url = url.trim().trim_end_matches('/');
        let bad = |why: String| {
            MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "llm_url",
                format!("--llm-url / MOSAIC_LLM_URL: {why}"),
            )
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            bad(format!(
                "not a URL ({e}); give the service's base URL, such as https://api.openai.com"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(format!(
                "the scheme must be http or https, not '{}'",
                parsed.scheme()
            )));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("the URL names no host".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials in the URL are refused (it is logged); give the key in MOSAIC_LLM_API_KEY".into(),
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad(
                "the base URL takes no query or fragment (completions go to <url>/v1/chat/completions)".into(),
            ));
        }
        Ok(LlmConfig {
            url: url.to_string(),
            model: DEFAULT_LLM_MODEL.to_string(),
            api_key: None,
            timeout: timeouts::LLM_REQUEST_TIMEOUT,
            concurrency: DEFAULT_LLM_CONCURRENCY,
            queue_capacity: DEFAULT_LLM_QUEUE_CAPACITY,
            requests_per_day: DEFAULT_AI_REQUESTS_PER_DAY,
            tokens_per_day: DEFAULT_AI_TOKENS_PER_DAY,
        })
    }

    /// The model to ask; an empty name is refused with an error naming the option.
    pub fn with_model(mut self, model: &str) -> MosaicResult<LlmConfig> {
        let model = model.trim();
        if model.is_empty() {
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "llm_model",
                "--llm-model / MOSAIC_LLM_MODEL: the model name is empty",
            ));
        }
        self.model = model.to_string();
        Ok(self)
    }

    /// The chat-completions endpoint.
    pub fn endpoint(&self) -> String {
        format!("{}{CHAT_COMPLETIONS_PATH}", self.url)
    }
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .field("queue_capacity", &self.queue_capacity)
            .field("requests_per_day", &self.requests_per_day)
            .field("tokens_per_day", &self.tokens_per_day)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_name_the_option() {
        let c = LlmConfig::new(" http://127.0.0.1:11434/ ").unwrap();
        assert_eq!(c.endpoint(), "http://127.0.0.1:11434/v1/chat/completions");
        assert_eq!(c.model, DEFAULT_LLM_MODEL);
        assert_eq!(c.timeout, timeouts::LLM_REQUEST_TIMEOUT);
        for bad in [
            "",
            "localhost:8000",
            "ftp://x.test",
            "http://",
            "https://x.test/?a=1",
            "https://me:secret@x.test",
        ] {
            let e = LlmConfig::new(bad).unwrap_err();
            assert!(
                e.message.starts_with("--llm-url / MOSAIC_LLM_URL: "),
                "{bad}: {}",
                e.message
            );
            assert_eq!(e.fields, ["llm_url"]);
        }
        assert!(c.clone().with_model("  ").is_err());
        assert_eq!(c.with_model("llama3").unwrap().model, "llama3");
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let mut c = LlmConfig::new("https://llm.test").unwrap();
        c.api_key = Some("sk-very-secret".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
