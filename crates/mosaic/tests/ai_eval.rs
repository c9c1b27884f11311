//! The AI evaluation harness checks itself: `mosaic ai-eval --stub` replays
//! the recorded answers of `eval/ai/recorded.jsonl`, all of them the
//! expected answer except seven deliberately wrong ones (three formulas
//! giving other values, two queries returning other rows, a workflow with
//! other actions, a plan missing a field), so the exact pass counts below
//! hold only when every kind of scoring works.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mosaic");

#[test]
fn the_stub_run_scores_the_recorded_answers_exactly() {
    let set = concat!(env!("CARGO_MANIFEST_DIR"), "/../../eval/ai");
    let out = Command::new(BIN)
        .args(["ai-eval", "--stub", "--set", set])
        .env_remove("MOSAIC_LLM_API_KEY")
        .output()
        .expect("run mosaic ai-eval");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ai-eval failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "formula: 57/60 passed (95.0%)",
        "query: 48/50 passed (96.0%)",
        "workflow: 19/20 passed (95.0%)",
        "schema: 19/20 passed (95.0%)",
        "overall: 143/150 passed (95.3%)",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("latency of 150 AI calls: p50 "),
        "no latency line in:\n{stdout}"
    );
    let failed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("failed "))
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        failed,
        ["f03", "f21", "f46", "q02", "q31", "w08", "s12"],
        "{stdout}"
    );
}

#[test]
fn an_llm_url_or_the_stub_is_required() {
    let out = Command::new(BIN)
        .args(["ai-eval"])
        .output()
        .expect("run mosaic ai-eval");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--llm-url"));
}
