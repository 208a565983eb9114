//! `nib batch` through the binary: results for every id exactly once across a kill and a
//! restart, a truncated last line redone, malformed lines reported and skipped.

mod common;

use common::{model_path, SMOLLM2};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("batch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn batch(input: &Path, output: &Path) -> Command {
    let mut c = common::nib();
    c.args(["batch", "-c", "256", "--temp", "0", "-m"])
        .arg(model_path(SMOLLM2))
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

const IDS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

fn requests() -> String {
    let mut s = String::new();
    for (i, id) in IDS.iter().enumerate() {
        let line = if i % 2 == 0 {
            serde_json::json!({"id": id, "prompt": format!("Count: {i},"), "max_tokens": 2})
        } else {
            serde_json::json!({"id": id, "messages": [{"role": "user", "content": format!("Say {i}")}], "max_tokens": 2, "seed": 5, "temperature": 0.7})
        };
        s.push_str(&format!("{line}\n"));
    }
    s
}

/// The output's lines, parsed, counted by id. Panics on a line that is not JSON.
fn results(output: &Path) -> (Vec<Value>, HashMap<String, usize>) {
    let text = std::fs::read_to_string(output).unwrap();
    assert!(
        text.ends_with('\n'),
        "the output ends with a complete line: {text:?}"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let mut count = HashMap::new();
    for v in &lines {
        *count
            .entry(v["id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    (lines, count)
}

fn check_complete(output: &Path) {
    let (lines, count) = results(output);
    for id in IDS {
        assert_eq!(count.get(id), Some(&1), "id {id} appears once: {count:?}");
    }
    assert_eq!(lines.len(), IDS.len());
    for v in &lines {
        assert!(v.get("error").is_none(), "{v}");
        assert!(v["text"].is_string(), "{v}");
        assert_eq!(
            v["tokens"].as_array().unwrap().len(),
            v["usage"]["completion_tokens"].as_u64().unwrap() as usize
        );
        assert!(
            v["usage"]["completion_tokens"].as_u64().unwrap() <= 2,
            "{v}"
        );
        assert!(
            ["stop", "length"].contains(&v["finish_reason"].as_str().unwrap()),
            "{v}"
        );
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{v}");
        assert!(v["timings"]["predicted_ms"].is_number(), "{v}");
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn batch_killed_and_restarted_writes_every_id_once() {
    let dir = scratch("kill");
    let (input, output) = (dir.join("prompts.jsonl"), dir.join("results.jsonl"));
    std::fs::write(&input, requests()).unwrap();

    // Kill the first run as soon as a result is written (it may have finished by then).
    let mut child = batch(&input, &output).spawn().unwrap();
    let t0 = Instant::now();
    loop {
        let written = std::fs::read_to_string(&output).unwrap_or_default();
        if written.contains('\n') || child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no result after 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().unwrap();
    let (_, first) = results(&output);
    assert!(
        !first.is_empty() && first.values().all(|&n| n == 1),
        "{first:?}"
    );

    // As if the next write had been cut by the kill.
    let mut text = std::fs::read_to_string(&output).unwrap();
    text.push_str("{\"id\":\"f\",\"text\":\"half a li");
    std::fs::write(&output, text).unwrap();

    let out = batch(&input, &output).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("incomplete last line"), "{err}");
    assert!(
        err.contains(&format!("{} already in", first.len())),
        "{err}"
    );
    check_complete(&output);

    // A third run has nothing to do and does not load the model.
    let out = batch(&input, &output).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("6 already in") && !err.contains("loaded"),
        "{err}"
    );
    check_complete(&output);
}

#[test]
fn batch_reports_malformed_lines_and_records_refused_requests() {
    let dir = scratch("malformed");
    let (input, output) = (dir.join("prompts.jsonl"), dir.join("results.jsonl"));
    let lines = [
        r#"{"id": "ok", "prompt": "Hello", "max_tokens": 1}"#,
        r#"this is not JSON"#,
        r#"{"prompt": "no id"}"#,
        "",
        r#"{"id": "hot", "prompt": "x", "temperature": "very"}"#,
        r#"{"id": "ok", "prompt": "again", "max_tokens": 1}"#,
        r#"{"id": 7, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "colour": "blue"}"#,
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = batch(&input, &output).output().unwrap();
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "malformed lines make the exit status an error: {err}"
    );
    assert!(err.contains("line 2: not JSON"), "{err}");
    assert!(err.contains("line 3: no \"id\""), "{err}");
    assert!(err.contains("line 6: id \"ok\" repeats line 1"), "{err}");
    assert!(err.contains("line 7: unknown field \"colour\""), "{err}");
    assert!(
        err.contains("3 malformed lines skipped, 1 request failed"),
        "{err}"
    );
    let text = std::fs::read_to_string(&output).unwrap();
    let got: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 3, "{text}");
    let by_id = |id: Value| {
        got.iter()
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {text}"))
    };
    assert!(by_id("hot".into())["error"]
        .as_str()
        .unwrap()
        .contains("'temperature' must be a number"));
    assert_eq!(by_id("ok".into())["usage"]["completion_tokens"], 1);
    assert_eq!(by_id(7.into())["usage"]["completion_tokens"], 1);
}

#[test]
fn a_second_batch_on_a_locked_output_fails_at_once() {
    // Two runs on one output used to both run every request and duplicate every id. The output
    // is locked (flock) for the run: a second run is refused before it loads anything.
    let dir = scratch("lock");
    let (input, output) = (dir.join("prompts.jsonl"), dir.join("results.jsonl"));
    std::fs::write(&input, requests()).unwrap();
    std::fs::write(&output, "").unwrap();
    let held = std::fs::File::open(&output).unwrap();
    // SAFETY: flock on a descriptor `held` owns for the rest of the test.
    let r = unsafe {
        libc::flock(
            std::os::unix::io::AsRawFd::as_raw_fd(&held),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    assert_eq!(r, 0);
    let t0 = Instant::now();
    let out = batch(&input, &output).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("in use by another nib batch"),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "");
    // Released, the same run goes through; a torn last line left by a kill is cut and redone.
    drop(held);
    std::fs::write(&output, "{\"id\":\"a\",\"text\":\"tor").unwrap();
    let out = batch(&input, &output).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("cut an incomplete last line"), "{err}");
    check_complete(&output);
}

#[test]
fn invalid_utf8_in_the_input_is_refused_with_its_offset() {
    // As `nib run -f` and `nib tokenize -f/--stdin` refuse it: one error naming the byte offset.
    let dir = scratch("utf8");
    let (input, output) = (dir.join("prompts.jsonl"), dir.join("results.jsonl"));
    std::fs::write(&input, b"{\"id\": 1, \"prompt\": \"ab\xffc\"}\n").unwrap();
    let out = batch(&input, &output).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not valid UTF-8: byte 0xff at offset 23"),
        "{err}"
    );
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, b"hello \xc3(").unwrap();
    let model = model_path(SMOLLM2);
    for args in [
        vec![
            "run",
            "-n",
            "1",
            "-f",
            bad.to_str().unwrap(),
            "-m",
            model.to_str().unwrap(),
        ],
        vec![
            "tokenize",
            "-f",
            bad.to_str().unwrap(),
            "-m",
            model.to_str().unwrap(),
        ],
        vec!["tokenize", "--stdin", "-m", model.to_str().unwrap()],
    ] {
        let out = common::nib()
            .args(&args)
            .stdin(std::fs::File::open(&bad).unwrap())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("not valid UTF-8: byte 0xc3 at offset 6"),
            "{args:?}: {err}"
        );
    }
}
