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
//! Each is `SERVICE_UNAVAILABLE` to the caller. An answer that arrives
//! but is not the JSON object the prompt asked for is not a failure of the
//! service: it is returned as unusable, and the AI tier answers
//! `valid: false` (after a repair round).
//!
//! Completions are asked for as a stream (`"stream": true`); a service
//! that answers with one JSON document instead is read the same. Each
//! instance runs at most `concurrency` completions at once; up to
//! `queue_capacity` requests wait for a slot (`llm_queue_length`), more are
//! refused with `REQUEST_LIMIT_EXCEEDED`. Time to the first token is
//! `llm_time_to_first_token_seconds`.

use super::config::LlmConfig;
use crate::clock::Clock;
use crate::resilience::{
    retry_http, BreakerSettings, BreakerState, CallKind, CircuitBreaker, HttpFailure, HttpOutcome,
};
use mosaic_store::guard::Admitted;
use mosaic_store::CallGuard;
use mosaic_types::{timeouts, MosaicError, MosaicResult};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

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

/// What a caller following an AI request live is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AiEvent {
    /// A step begins: `queued`, `asking`, `checking`, `repairing`.
    Stage(&'static str),
    /// Text of the LLM's answer as it arrives.
    Delta(String),
}

/// Where [`AiEvent`]s go; the default sends nowhere.
#[derive(Debug, Clone, Default)]
pub struct Progress(Option<mpsc::UnboundedSender<AiEvent>>);

impl Progress {
    /// Progress sent to `tx` (a closed receiver is ignored).
    pub fn to(tx: mpsc::UnboundedSender<AiEvent>) -> Progress {
        Progress(Some(tx))
    }

    pub fn stage(&self, s: &'static str) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(AiEvent::Stage(s));
        }
    }

    fn delta(&self, d: &str) {
        if let (Some(tx), false) = (&self.0, d.is_empty()) {
            let _ = tx.send(AiEvent::Delta(d.to_string()));
        }
    }
}

/// One answer of the LLM service: its text, the JSON object in it (or why
/// there is none usable) and the tokens it cost.
#[derive(Debug, Clone)]
pub struct Completion {
    pub content: String,
    pub object: Result<Map<String, Value>, String>,
    pub tokens: u64,
}

/// The LLM service behind its breaker.
pub struct LlmClient {
    config: LlmConfig,
    endpoint: String,
    http: reqwest::Client,
    breaker: Arc<CircuitBreaker>,
    slots: Semaphore,
    waiting: AtomicUsize,
    quota: super::quota::Quota,
}

impl LlmClient {
    /// A client with the seed's breaker settings (3 failures in 60 s, open
    /// 60 s, 1 probe) on `clock`; the tenants' quotas are counted in
    /// `tier`'s Redis when it has one (fleet-wide), else by this instance.
    pub fn new(
        config: LlmConfig,
        settings: BreakerSettings,
        clock: Arc<dyn Clock>,
        tier: Arc<mosaic_cache::CacheTier>,
    ) -> MosaicResult<LlmClient> {
        let breaker = Arc::new(CircuitBreaker::new(LLM, settings, clock.clone()));
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(timeouts::HTTP_CONNECT_TIMEOUT.min(config.timeout))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| MosaicError::internal(format!("LLM HTTP client: {e}")))?;
        // Exported from start-up: an idle queue reads 0, and the
        // time-to-first-token histogram exists before the first request.
        metrics::gauge!("llm_queue_length").set(0.0);
        metrics::describe_histogram!(
            "llm_time_to_first_token_seconds",
            metrics::Unit::Seconds,
            "Time from sending a completion to its first token"
        );
        let _ = metrics::histogram!("llm_time_to_first_token_seconds");
        let quota = super::quota::Quota::shared(
            config.requests_per_day,
            config.tokens_per_day,
            clock,
            tier,
        );
        Ok(LlmClient {
            endpoint: config.endpoint(),
            slots: Semaphore::new(config.concurrency.max(1)),
            waiting: AtomicUsize::new(0),
            quota,
            config,
            http,
            breaker,
        })
    }

    /// The tenants' daily AI quotas.
    pub fn quota(&self) -> &super::quota::Quota {
        &self.quota
    }

    /// Requests waiting for a completion slot now.
    pub fn queue_length(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
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

    /// Asks for one JSON object and returns the completion: the object,
    /// or why the answer is unusable. Temperature 0: the same prompt should
    /// get the same answer. Waits for a completion slot in the instance's
    /// bounded queue; a full queue is `REQUEST_LIMIT_EXCEEDED`.
    pub async fn complete_json(
        &self,
        prompt: &Prompt,
        progress: &Progress,
    ) -> MosaicResult<Completion> {
        let body = json!({
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            "temperature": 0,
            "stream": true,
        });
        let _slot = self.slot(progress).await?;
        retry_http(CallKind::NonIdempotent, || {
            self.attempt(&body, prompt, progress)
        })
        .await
    }

    /// A completion slot, waiting in the bounded queue for one.
    async fn slot(&self, progress: &Progress) -> MosaicResult<tokio::sync::SemaphorePermit<'_>> {
        if let Ok(p) = self.slots.try_acquire() {
            return Ok(p);
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.config.queue_capacity {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            metrics::counter!("llm_requests_total", "outcome" => "queue_full").increment(1);
            return Err(queue_full(self.config.queue_capacity));
        }
        metrics::gauge!("llm_queue_length").set((waiting + 1) as f64);
        progress.stage("queued");
        let permit = self.slots.acquire().await;
        let left = self.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
        metrics::gauge!("llm_queue_length").set(left as f64);
        permit.map_err(|_| MosaicError::unavailable("the LLM queue is closed"))
    }

    /// One attempt through the breaker. Dropped before it ends (the
    /// request's deadline passed), it frees its probe slot.
    async fn attempt(
        &self,
        body: &Value,
        prompt: &Prompt,
        progress: &Progress,
    ) -> Result<Completion, HttpFailure> {
        let guard = self.breaker.clone() as Arc<dyn CallGuard>;
        let Ok(admitted) = Admitted::ask(Some(&guard)) else {
            metrics::counter!("llm_requests_total", "outcome" => "refused").increment(1);
            return Err(HttpFailure {
                outcome: None,
                error: self.unavailable(),
            });
        };
        let started = Instant::now();
        progress.stage("asking");
        let (outcome, answer) = self.exchange(body, prompt, progress, started).await;
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

    /// Sends the request and reads the answer (a stream of events or one
    /// JSON document): how the exchange ended (for the retry policy) and
    /// the completion or the failure.
    async fn exchange(
        &self,
        body: &Value,
        prompt: &Prompt,
        progress: &Progress,
        started: Instant,
    ) -> (Option<HttpOutcome>, MosaicResult<Completion>) {
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
        let streamed = status.is_success()
            && res
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
        let read = if streamed {
            read_stream(res, MAX_ANSWER_BYTES, progress, started).await
        } else {
            read_capped(res, MAX_ANSWER_BYTES).await.map(|b| {
                first_token(started);
                Answer::Whole(b)
            })
        };
        let answer = match read {
            Ok(a) => a,
            Err(ReadFailure::TooLarge) => {
                return (
                    Some(outcome),
                    Ok(unusable_completion(
                        String::new(),
                        format!("the answer exceeds {MAX_ANSWER_BYTES} bytes"),
                        prompt,
                    )),
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
        let result = match answer {
            Answer::Streamed { content, tokens } => Ok(completion_of(content, tokens, prompt)),
            Answer::Whole(bytes) if status.is_server_error() => {
                let _ = bytes;
                Err(MosaicError::unavailable(format!(
                    "The LLM service failed (HTTP {}); retry later.",
                    status.as_u16()
                )))
            }
            Answer::Whole(bytes) if status.is_client_error() => {
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
            }
            Answer::Whole(_) if !status.is_success() => Err(MosaicError::unavailable(format!(
                "The LLM service answered HTTP {}; retry later.",
                status.as_u16()
            ))),
            Answer::Whole(bytes) => {
                let c = parse_answer(&bytes, prompt);
                progress.delta(&c.content);
                Ok(c)
            }
        };
        (Some(outcome), result)
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

/// A response body: a stream's text and token count, or a whole document.
enum Answer {
    Streamed {
        content: String,
        tokens: Option<u64>,
    },
    Whole(Vec<u8>),
}

fn first_token(started: Instant) {
    metrics::histogram!("llm_time_to_first_token_seconds").record(started.elapsed().as_secs_f64());
}

/// Reads a chat-completions event stream (`data: {chunk}` lines up to
/// `data: [DONE]`), passing each piece of text on as it arrives; at most
/// `max` bytes.
async fn read_stream(
    mut res: reqwest::Response,
    max: usize,
    progress: &Progress,
    started: Instant,
) -> Result<Answer, ReadFailure> {
    let (mut buf, mut total, mut content, mut tokens) = (Vec::new(), 0usize, String::new(), None);
    let mut first = true;
    'read: while let Some(chunk) = res.chunk().await.map_err(ReadFailure::Http)? {
        total += chunk.len();
        if total > max {
            return Err(ReadFailure::TooLarge);
        }
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim().strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                break 'read;
            }
            let Ok(v) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if let Some(t) = v.pointer("/usage/total_tokens").and_then(Value::as_u64) {
                tokens = Some(t);
            }
            let piece = v
                .pointer("/choices/0/delta/content")
                .or_else(|| v.pointer("/choices/0/message/content"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !piece.is_empty() {
                if first {
                    first_token(started);
                    first = false;
                }
                progress.delta(piece);
                content.push_str(piece);
            }
        }
    }
    Ok(Answer::Streamed { content, tokens })
}

/// Tokens of a prompt and answer when the service does not say: about
/// four characters a token.
fn estimate_tokens(prompt: &Prompt, content: &str) -> u64 {
    ((prompt.system.len() + prompt.user.len() + content.len()) as u64).div_ceil(4)
}

fn completion_of(content: String, tokens: Option<u64>, prompt: &Prompt) -> Completion {
    let object = json_object_in(&content).ok_or_else(|| {
        if content.trim().is_empty() {
            "the answer is empty".to_string()
        } else {
            "the message is not a JSON object".to_string()
        }
    });
    Completion {
        tokens: tokens.unwrap_or_else(|| estimate_tokens(prompt, &content)),
        content,
        object,
    }
}

fn unusable_completion(content: String, why: String, prompt: &Prompt) -> Completion {
    Completion {
        tokens: estimate_tokens(prompt, &content),
        content,
        object: Err(why),
    }
}

fn queue_full(capacity: usize) -> MosaicError {
    MosaicError::new(
        mosaic_types::ErrorCode::REQUEST_LIMIT_EXCEEDED,
        format!(
            "The AI features are busy: {capacity} requests are already waiting for the LLM on this server; retry in a few seconds."
        ),
    )
}

/// How long a client refused because the LLM queue is full should wait.
pub const QUEUE_FULL_RETRY_AFTER: Duration = Duration::from_secs(5);

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

/// A whole chat-completions document: `choices[0].message.content`, read
/// as one JSON object (or why it cannot be used).
pub fn parse_answer(body: &[u8], prompt: &Prompt) -> Completion {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return unusable_completion(String::new(), "the response is not JSON".into(), prompt);
    };
    let tokens = v.pointer("/usage/total_tokens").and_then(Value::as_u64);
    match v
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
    {
        Some(content) => completion_of(content.to_string(), tokens, prompt),
        None => unusable_completion(
            String::new(),
            "no choices[0].message.content".into(),
            prompt,
        ),
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

    fn answer(content: &str) -> Vec<u8> {
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})
            .to_string()
            .into_bytes()
    }

    fn prompt() -> Prompt {
        Prompt {
            system: "s".into(),
            user: "u".into(),
        }
    }

    #[test]
    fn the_object_is_read_from_the_message_with_or_without_fences() {
        for content in [
            r#"{"formula": "Amount__c * 2", "confidence": 0.9}"#,
            "```json\n{\"formula\": \"Amount__c * 2\"}\n```",
            "Here it is: {\"formula\": \"Amount__c * 2\"} — hope it helps",
        ] {
            let c = parse_answer(&answer(content), &prompt());
            assert_eq!(c.object.expect(content)["formula"], "Amount__c * 2");
        }
    }

    #[test]
    fn anything_else_is_unusable_not_a_failure() {
        let cases: Vec<Vec<u8>> = vec![
            b"<html>502</html>".to_vec(),
            json!({"choices": []}).to_string().into_bytes(),
            json!({"choices": [{"message": {"content": 7}}]})
                .to_string()
                .into_bytes(),
            answer("I cannot help with that."),
            answer("[1, 2]"),
            answer("  "),
        ];
        for body in cases {
            let c = parse_answer(&body, &prompt());
            assert!(c.object.is_err(), "{}", String::from_utf8_lossy(&body));
            assert!(c.tokens > 0);
        }
    }

    #[test]
    fn tokens_come_from_usage_or_are_estimated() {
        let body =
            json!({"choices": [{"message": {"content": "{}"}}], "usage": {"total_tokens": 77}});
        assert_eq!(
            parse_answer(body.to_string().as_bytes(), &prompt()).tokens,
            77
        );
        let c = completion_of("x".repeat(40), None, &prompt());
        assert_eq!(c.tokens, 11);
    }
}
