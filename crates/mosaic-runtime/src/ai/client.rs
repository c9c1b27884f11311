//! The LLM client: one chat completion (OpenAI-compatible wire format) whose
//! answer must be one JSON object. Every attempt asks the `llm` circuit
//! breaker first and reports to it how the call went; each has the
//! configured timeout; a failed attempt is tried again only when the
//! request never left (the non-idempotent retry policy), since a completion
//! that was sent may have been computed — and paid for — already.
//!
//! What counts as a failure of the LLM service: a refused or lost
//! connection, a timeout, a 5xx, a 4xx (the service refusing our request:
//! a wrong key or model; logged, since only an operator can fix it) and an
//! answer that is not the JSON object the prompt asked for. Each is
//! `SERVICE_UNAVAILABLE` to the caller.

use super::config::LlmConfig;
use crate::clock::Clock;
use crate::resilience::{
    retry_http, BreakerSettings, BreakerState, CallKind, CircuitBreaker, HttpFailure, HttpOutcome,
};
use mosaic_store::guard::Admitted;
use mosaic_store::CallGuard;
use mosaic_types::{timeouts, MosaicError, MosaicResult};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Dependency name of the LLM service (its breaker, `/readyz`, metrics).
pub const LLM: &str = "llm";

/// Largest response body read from the LLM service.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Characters of the LLM service's own error text written to the log.
const LOGGED_REASON_CHARS: usize = 300;

/// One prompt: what to answer and how (system), and the request (user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub system: String,
    pub user: String,
}

/// The LLM service behind its breaker.
pub struct LlmClient {
    config: LlmConfig,
    endpoint: String,
    http: reqwest::Client,
    breaker: Arc<CircuitBreaker>,
}

impl LlmClient {
    /// A client with the seed's breaker settings (3 failures in 60 s, open
    /// 60 s, 1 probe) on `clock`.
    pub fn new(
        config: LlmConfig,
        settings: BreakerSettings,
        clock: Arc<dyn Clock>,
    ) -> MosaicResult<LlmClient> {
        let breaker = Arc::new(CircuitBreaker::new(LLM, settings, clock));
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(timeouts::HTTP_CONNECT_TIMEOUT.min(config.timeout))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| MosaicError::internal(format!("LLM HTTP client: {e}")))?;
        Ok(LlmClient {
            endpoint: config.endpoint(),
            config,
            http,
            breaker,
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// Refuses at once while the breaker is open (degradation level 1),
    /// without calling the service or taking a half-open probe slot.
    pub fn refuse_if_open(&self) -> MosaicResult<()> {
        if self.breaker.state() == BreakerState::Open {
            metrics::counter!("llm_requests_total", "outcome" => "refused").increment(1);
            return Err(self.unavailable());
        }
        Ok(())
    }

    /// How long a client turned away because of the LLM service should
    /// wait: the breaker's open time left (a second when half-open);
    /// `None` while it is closed.
    pub fn retry_after(&self) -> Option<Duration> {
        self.breaker.retry_after()
    }

    fn unavailable(&self) -> MosaicError {
        let left = self.breaker.retry_after().unwrap_or(Duration::ZERO);
        MosaicError::unavailable(format!(
            "The AI features are unavailable for now: the LLM service is failing (circuit breaker open); retry in {} s. Everything else works as usual.",
            crate::resilience::breaker::retry_after_secs(left)
        ))
    }

    /// Asks for one JSON object with a non-empty string at `key` (the
    /// formula or the query) and returns it. Temperature 0: the same
    /// prompt should get the same answer.
    pub async fn complete_json(
        &self,
        prompt: &Prompt,
        key: &str,
    ) -> MosaicResult<Map<String, Value>> {
        let body = json!({
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            "temperature": 0,
        });
        retry_http(CallKind::NonIdempotent, || self.attempt(&body, key)).await
    }

    /// One attempt through the breaker. Dropped before it ends (the
    /// request's deadline passed), it frees its probe slot.
    async fn attempt(&self, body: &Value, key: &str) -> Result<Map<String, Value>, HttpFailure> {
        let guard = self.breaker.clone() as Arc<dyn CallGuard>;
        let Ok(admitted) = Admitted::ask(Some(&guard)) else {
            metrics::counter!("llm_requests_total", "outcome" => "refused").increment(1);
            return Err(HttpFailure {
                outcome: None,
                error: self.unavailable(),
            });
        };
        let started = Instant::now();
        let (outcome, answer) = self.exchange(body, key).await;
        metrics::histogram!("llm_request_duration_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("llm_requests_total", "outcome" => if answer.is_ok() { "answered" } else { "failed" })
            .increment(1);
        if let Err(e) = &answer {
            tracing::warn!(dependency = LLM, error = %e.message, "LLM call failed");
        }
        // Every error here is SERVICE_UNAVAILABLE: a failure to the breaker.
        admitted
            .finish(answer)
            .map_err(|error| HttpFailure { outcome, error })
    }

    /// Sends the request and reads the answer: how the exchange ended (for
    /// the retry policy) and the JSON object or the failure.
    async fn exchange(
        &self,
        body: &Value,
        key: &str,
    ) -> (Option<HttpOutcome>, MosaicResult<Map<String, Value>>) {
        let mut req = self.http.post(&self.endpoint).json(body);
        if let Some(k) = &self.config.api_key {
            req = req.bearer_auth(k);
        }
        let sent = req.send().await;
        let outcome = HttpOutcome::of(&sent);
        let res = match sent {
            Ok(res) => res,
            Err(e) => return (Some(outcome), Err(self.transport_failure(e, outcome))),
        };
        let status = res.status();
        let bytes = match read_capped(res, MAX_ANSWER_BYTES).await {
            Ok(b) => b,
            Err(ReadFailure::TooLarge) => {
                return (
                    Some(outcome),
                    Err(unusable(format!(
                        "the answer exceeds {MAX_ANSWER_BYTES} bytes"
                    ))),
                )
            }
            Err(ReadFailure::Http(e)) => {
                let outcome = if e.is_timeout() {
                    HttpOutcome::Timeout
                } else {
                    HttpOutcome::ConnectionLost
                };
                return (Some(outcome), Err(self.transport_failure(e, outcome)));
            }
        };
        let answer = if status.is_server_error() {
            Err(MosaicError::unavailable(format!(
                "The LLM service failed (HTTP {}); retry later.",
                status.as_u16()
            )))
        } else if status.is_client_error() {
            tracing::warn!(
                dependency = LLM,
                status = status.as_u16(),
                reason = %self.reason_of(&bytes),
                "the LLM service refused Mosaic's request: check --llm-url, --llm-model and MOSAIC_LLM_API_KEY"
            );
            Err(MosaicError::unavailable(format!(
                "The LLM service refused the request (HTTP {}); the server log says why.",
                status.as_u16()
            )))
        } else if !status.is_success() {
            Err(unusable(format!("HTTP {}", status.as_u16())))
        } else {
            parse_answer(&bytes, key)
        };
        (Some(outcome), answer)
    }

    fn transport_failure(&self, e: reqwest::Error, outcome: HttpOutcome) -> MosaicError {
        let e = e.without_url();
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        MosaicError::unavailable(match outcome {
            HttpOutcome::Timeout => format!(
                "The LLM service did not answer within {} ms; retry later.",
                self.config.timeout.as_millis()
            ),
            HttpOutcome::NotSent => {
                format!("The LLM service could not be reached ({detail}); retry later.")
            }
            _ => format!("The connection to the LLM service broke ({detail}); retry later."),
        })
    }

    /// The service's own words about a refusal, short and without the key.
    fn reason_of(&self, body: &[u8]) -> String {
        let text = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        let mut text: String = text.chars().take(LOGGED_REASON_CHARS).collect();
        if let Some(k) = self.config.api_key.as_deref().filter(|k| !k.is_empty()) {
            text = text.replace(k, "<redacted>");
        }
        text
    }
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("config", &self.config)
            .field("breaker", &self.breaker)
            .finish()
    }
}

enum ReadFailure {
    TooLarge,
    Http(reqwest::Error),
}

/// The response body, at most `max` bytes.
async fn read_capped(mut res: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadFailure> {
    if res.content_length().is_some_and(|n| n > max as u64) {
        return Err(ReadFailure::TooLarge);
    }
    let mut out = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(ReadFailure::Http)? {
        if out.len() + chunk.len() > max {
            return Err(ReadFailure::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn unusable(why: impl std::fmt::Display) -> MosaicError {
    MosaicError::unavailable(format!(
        "The LLM service answered something unusable ({why}); retry later."
    ))
}

/// `choices[0].message.content` of a chat-completions answer, read as one
/// JSON object holding a non-empty string at `key`.
pub fn parse_answer(body: &[u8], key: &str) -> MosaicResult<Map<String, Value>> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| unusable("the response is not JSON"))?;
    let content = v
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| unusable("no choices[0].message.content"))?;
    let obj =
        json_object_in(content).ok_or_else(|| unusable("the message is not a JSON object"))?;
    match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(obj),
        _ => Err(unusable(format!("the JSON object has no \"{key}\" text"))),
    }
}

/// The JSON object a message holds: the whole message, or the part inside
/// a Markdown code fence, or from its first `{` to its last `}` (models
/// often wrap the object in prose or fences despite being asked not to).
fn json_object_in(content: &str) -> Option<Map<String, Value>> {
    let t = content.trim();
    let fenced = t
        .strip_prefix("```")
        .and_then(|rest| rest.split_once('\n'))
        .map(|(_, body)| body.trim_end().trim_end_matches("```"));
    let candidates = [
        Some(t),
        fenced,
        t.find('{')
            .zip(t.rfind('}'))
            .filter(|(a, b)| a < b)
            .map(|(a, b)| &t[a..=b]),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|c| match serde_json::from_str::<Value>(c.trim()) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosaic_types::ErrorCode;

    fn answer(content: &str) -> Vec<u8> {
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn the_object_is_read_from_the_message_with_or_without_fences() {
        for content in [
            r#"{"formula": "Amount__c * 2", "confidence": 0.9}"#,
            "```json\n{\"formula\": \"Amount__c * 2\"}\n```",
            "Here it is: {\"formula\": \"Amount__c * 2\"} — hope it helps",
        ] {
            let m = parse_answer(&answer(content), "formula").expect(content);
            assert_eq!(m["formula"], "Amount__c * 2");
        }
    }

    #[test]
    fn anything_else_is_unusable() {
        let cases: Vec<Vec<u8>> = vec![
            b"<html>502</html>".to_vec(),
            json!({"choices": []}).to_string().into_bytes(),
            json!({"choices": [{"message": {"content": 7}}]})
                .to_string()
                .into_bytes(),
            answer("I cannot help with that."),
            answer("[1, 2]"),
            answer(r#"{"explanation": "no formula"}"#),
            answer(r#"{"formula": "   "}"#),
            answer(r#"{"formula": 12}"#),
        ];
        for body in cases {
            let e = parse_answer(&body, "formula").unwrap_err();
            assert_eq!(e.code, ErrorCode::SERVICE_UNAVAILABLE);
            assert!(e.message.contains("unusable"), "{}", e.message);
        }
    }
}
