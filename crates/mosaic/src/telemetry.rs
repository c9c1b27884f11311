//! Logs and traces: the one `tracing` subscriber the binary installs.
//!
//! Logs go to stderr, human-readable or JSON (`MOSAIC_LOG_FORMAT=json`),
//! filtered by `RUST_LOG` (default `info`). `MOSAIC_LOG_SPANS=close` adds a
//! line for every closing span with its busy and idle time, which turns the
//! pipeline's spans (auth, metadata, records, formulas, query, store) into
//! per-request timings in the log. Spans go to an OpenTelemetry collector
//! over OTLP/HTTP when `MOSAIC_OTLP_ENDPOINT` is set and the binary was
//! built with the `otlp` feature.

use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where spans are exported (an OTLP/HTTP collector, e.g.
/// `http://127.0.0.1:4318`).
pub const OTLP_ENDPOINT_VAR: &str = "MOSAIC_OTLP_ENDPOINT";

/// Keeps the exporter alive; flushes buffered spans when shut down.
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered (called once the server has stopped).
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(p) = self.provider {
            let _ = p.shutdown();
        }
    }
}

/// Installs the subscriber. `export` asks for span export (the `serve`
/// command): with `MOSAIC_OTLP_ENDPOINT` set it connects the exporter, or
/// fails clearly when this binary cannot export.
pub fn init(export: bool) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let span_events = match std::env::var("MOSAIC_LOG_SPANS").as_deref() {
        Err(_) | Ok("") | Ok("none") => FmtSpan::NONE,
        Ok("close") => FmtSpan::CLOSE,
        Ok(other) => {
            return Err(format!(
                "MOSAIC_LOG_SPANS must be `close` or `none`, not `{}`",
                other.chars().take(40).collect::<String>()
            ))
        }
    };
    let json = std::env::var("MOSAIC_LOG_FORMAT").is_ok_and(|v| v == "json");
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_span_events(span_events);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    let endpoint = std::env::var(OTLP_ENDPOINT_VAR)
        .ok()
        .filter(|v| !v.is_empty() && export);
    let Some(endpoint) = endpoint else {
        registry.init();
        return Ok(Telemetry {
            #[cfg(feature = "otlp")]
            provider: None,
        });
    };
    #[cfg(feature = "otlp")]
    {
        let (provider, layer) = otlp::layer(&endpoint)?;
        registry.with(layer).init();
        Ok(Telemetry {
            provider: Some(provider),
        })
    }
    #[cfg(not(feature = "otlp"))]
    {
        drop(registry);
        Err(format!(
            "{OTLP_ENDPOINT_VAR} is set ({}) but this mosaic binary was built without span export; \
             rebuild it with `cargo build --release -p mosaic --features otlp`, or unset {OTLP_ENDPOINT_VAR}",
            endpoint.chars().take(200).collect::<String>()
        ))
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry::trace::TracerProvider;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    /// The OTLP/HTTP path of traces, appended to a collector's base URL.
    const TRACES_PATH: &str = "/v1/traces";

    /// A batch exporter to the collector at `endpoint` and the layer that
    /// feeds it every span the filter lets through.
    pub fn layer<S>(
        endpoint: &str,
    ) -> Result<
        (
            SdkTracerProvider,
            tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        ),
        String,
    >
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let base = endpoint.trim_end_matches('/');
        let url = if base.ends_with(TRACES_PATH) {
            base.to_string()
        } else {
            format!("{base}{TRACES_PATH}")
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .build()
            .map_err(|e| format!("cannot set up span export to {endpoint}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("mosaic")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("mosaic");
        Ok((provider, tracing_opentelemetry::layer().with_tracer(tracer)))
    }
}
