//! Loading errors and limits: clear messages, never a panic.

mod common;

use nib::gguf::{Gguf, GgufWriter, MetaValue};
use nib::model::{Context, KvType, LoadOptions, Model};
use std::process::Command;
use std::sync::Arc;

fn write_model(
    dir: &common::Scratch,
    arch: &str,
    drop_tensor: Option<&str>,
    bad_shape: Option<&str>,
) -> std::path::PathBuf {
    let vocab = Gguf::open(common::model_path(common::SMOLLM2)).unwrap();
    let src = common::model_path(common::SMOLLM2);
    let g = Gguf::open(&src).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        let k = k.replacen("llama.", &format!("{arch}."), 1);
        w.set(&k, vocab.to_owned_value(v)).unwrap();
    }
    w.set("general.architecture", MetaValue::str(arch)).unwrap();
    for t in g.tensors() {
        if Some(t.name.as_str()) == drop_tensor {
            continue;
        }
        let mut dims = t.dims.clone();
        if Some(t.name.as_str()) == bad_shape {
            dims[0] *= 2;
            w.add_tensor(
                &t.name,
                t.ty,
                &dims,
                [g.tensor_data(t), g.tensor_data(t)].concat(),
            )
            .unwrap();
        } else {
            w.add_tensor(&t.name, t.ty, &dims, g.tensor_data(t).to_vec())
                .unwrap();
        }
    }
    let path = dir.path(&format!(
        "{arch}-{}.gguf",
        drop_tensor.or(bad_shape).unwrap_or("ok").replace('.', "_")
    ));
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

fn load_err(path: &std::path::Path) -> String {
    format!(
        "{:#}",
        Model::load(path, &LoadOptions::default()).unwrap_err()
    )
}

/// `nib ARGS -m MODEL`, which must fail in one line with exit code 1: its standard error.
fn cli_error(args: &[&str], model: &std::path::Path) -> String {
    let out = common::nib()
        .args(args)
        .arg("-m")
        .arg(model)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_unsupported_architecture_is_named_with_the_supported_ones() {
    let dir = common::Scratch::new("model-arch");
    let path = write_model(&dir, "mamba", None, None);
    let e = load_err(&path);
    assert!(
        e.contains("\"mamba\"") && e.contains("llama, gemma3, qwen2, qwen3"),
        "{e}"
    );
    // Through the CLI: one line, exit code 1.
    let err = cli_error(&["run", "-p", "hi"], &path);
    assert!(err.contains("mamba") && err.starts_with("error: "), "{err}");
}

#[test]
fn a_missing_or_misshapen_tensor_is_named() {
    let dir = common::Scratch::new("model-tensors");
    // The tensor left out, the tensor given a wrong shape, what the error says besides its name.
    for (drop, misshape, says) in [
        (Some("blk.3.ffn_up.weight"), None, "missing"),
        (None, Some("blk.0.attn_q.weight"), "shape"),
        (Some("output_norm.weight"), None, ""),
    ] {
        let e = load_err(&write_model(&dir, "llama", drop, misshape));
        let name = drop.or(misshape).unwrap();
        assert!(e.contains(name) && e.contains(says), "{e}");
    }
}

#[test]
fn a_missing_hyperparameter_is_named() {
    let dir = common::Scratch::new("model-keys");
    let g = Gguf::open(common::model_path(common::SMOLLM2)).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        if k != "llama.block_count" {
            w.set(k, g.to_owned_value(v)).unwrap();
        }
    }
    let path = dir.path("no-block-count.gguf");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    let e = load_err(&path);
    assert!(e.contains("llama.block_count"), "{e}");
}

#[test]
fn prompts_and_tokens_beyond_the_context_are_refused() {
    let model = common::load_model(&common::model_path(common::SMOLLM2));
    let mut ctx = Context::new(Arc::clone(&model), 16, 8, KvType::F16).unwrap();
    let e = ctx
        .eval(&[1; 17], nib::model::Logits::Last)
        .unwrap_err()
        .to_string();
    assert!(e.contains("context"), "{e}");
    let e = ctx
        .eval(&[u32::MAX], nib::model::Logits::Last)
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside the vocabulary"), "{e}");
    // The CLI says so in one line.
    let long = "word ".repeat(200);
    let err = cli_error(
        &["run", "-c", "64", "-n", "4", "-p", &long],
        &common::model_path(common::SMOLLM2),
    );
    assert!(err.contains("error: ") && err.contains("context"), "{err}");
}

#[test]
fn running_without_a_model_says_how_to_fetch_one() {
    let out = common::nib()
        .args(["run", "-p", "hi"])
        .env("NIB_MODELS", "/nonexistent")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("tools/fetch-models.sh") && err.contains("/nonexistent"),
        "{err}"
    );
}

#[test]
fn loading_maps_the_file_instead_of_reading_it() {
    // Peak RSS after opening gemma (253 MB) stays a small fraction of the file: the data section
    // is mapped, not read. Measured with GNU time on `nib inspect`.
    let time = std::path::Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "/usr/bin/time is missing: apt-get install time (tools/test.sh does)"
    );
    let out = Command::new(time)
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_nib"))
        .arg("inspect")
        .arg(common::model_path(common::GEMMA3))
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let kb: u64 = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("GNU time's report");
    assert!(
        kb < 50_000,
        "nib inspect of a 253 MB model peaked at {kb} kB"
    );
}

#[test]
fn interleaved_weights_give_the_logits_of_the_file_layout() {
    // Q4_0 matrices are interleaved eight rows at a time, and those of the other 32-element
    // formats block by block in fours, at load where the kernels have a tile for that (copied
    // out of a mapped file, rearranged in place when read into memory); every logit must stay
    // the same as with the file's layout (`--no-interleave`), for a prompt batch and decode steps.
    use nib::model::Logits;
    use nib::synth::{write_synthetic, Shape, SynthSpec};
    use nib_simd::{GgmlType, Layout};
    let dir = common::Scratch::new("interleave");
    let vocab = Gguf::open(common::model_path(common::SMOLLM2)).unwrap();
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q5_1] {
        let path = dir.path(&format!("llama-tiny-{ty}.gguf"));
        let spec = SynthSpec {
            arch: nib::model::Arch::Llama,
            shape: Shape::preset("tiny").unwrap(),
            weight_type: ty,
            seed: 3,
            n_ctx_train: 4096,
            sliding_window: 0,
        };
        write_synthetic(&spec, &vocab, &path).unwrap();
        // The layout this CPU's kernels read fastest (GGUF's rows where they have no
        // interleaved tile for the type).
        let t = nib_simd::kernels().get(ty).unwrap();
        let il = t.interleaved.map_or(Layout::Rows, |i| i.layout);
        let run = |opts: LoadOptions, want: Layout| -> Vec<f32> {
            let model = Arc::new(Model::load(&path, &opts).unwrap());
            let l = &model.layers[1];
            for w in [
                &l.wq,
                &l.wk,
                &l.wv,
                &l.wo,
                &l.w_gate,
                &l.w_up,
                &l.w_down,
                &model.output,
            ] {
                assert_eq!(w.layout, want, "{} with {opts:?}", w.name);
            }
            assert_eq!(model.tok_embd.layout, Layout::Rows);
            let mut ctx = Context::new(model, 64, 16, KvType::F16).unwrap();
            let prompt: Vec<u32> = (0..12).map(|i| 100 + 37 * i).collect();
            let mut all = ctx.eval(&prompt, Logits::All).unwrap().to_vec();
            for t in [5, 6, 7] {
                all.extend(ctx.eval(&[t], Logits::Last).unwrap());
            }
            all
        };
        let plain = run(
            LoadOptions {
                no_interleave: true,
                ..Default::default()
            },
            Layout::Rows,
        );
        let mapped = run(LoadOptions::default(), il);
        let read = run(
            LoadOptions {
                no_mmap: true,
                ..Default::default()
            },
            il,
        );
        for (name, got) in [("mapped", &mapped), ("read", &read)] {
            assert_eq!(got.len(), plain.len());
            let diff = plain
                .iter()
                .zip(got.iter())
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(diff, None, "{ty} {name}: first differing logit");
        }
    }
}

/// The metadata of `model` (no tensors) with `key` set to `value` (or removed when `None`),
/// written under `dir`: enough for the hyperparameter checks, which come before any tensor.
fn with_key(
    dir: &common::Scratch,
    model: &str,
    key: &str,
    value: Option<MetaValue>,
) -> std::path::PathBuf {
    let g = Gguf::open(common::model_path(model)).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        if k != key {
            w.set(k, g.to_owned_value(v)).unwrap();
        }
    }
    if let Some(v) = value {
        w.set(key, v).unwrap();
    }
    let path = dir.path(&format!("{model}-{key}.gguf"));
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

#[test]
fn hyperparameters_out_of_bounds_are_refused_before_anything_is_sized() {
    // Each would have sized an allocation or a loop from the value (a 4-billion-layer Vec, a
    // 2-billion-entry sliding-window table) or divided by it; each must be an error naming the
    // key and the value, found before any tensor is looked at.
    let dir = common::Scratch::new("model-hparams");
    let u = MetaValue::U32;
    let f = MetaValue::F32;
    let (s, g) = (common::SMOLLM2, common::GEMMA3);
    for (model, key, value, says) in [
        (s, "llama.block_count", u(u32::MAX), "4294967295"),
        (s, "llama.block_count", u(0), "= 0"),
        (s, "llama.block_count", u(513), "513"),
        (g, "gemma3.block_count", u(1 << 31), "2147483648"),
        (s, "llama.embedding_length", u(0), "= 0"),
        (s, "llama.embedding_length", u(u32::MAX), "4294967295"),
        (s, "llama.feed_forward_length", u(u32::MAX), "4294967295"),
        (s, "llama.attention.head_count", u(0), "= 0"),
        (s, "llama.attention.head_count", u(1 << 20), "1048576"),
        (s, "llama.attention.head_count_kv", u(0), "= 0"),
        (s, "llama.attention.head_count_kv", u(4), "does not divide"),
        (s, "llama.attention.head_count_kv", u(18), "= 18"),
        (s, "llama.context_length", u(0), "= 0"),
        (s, "llama.vocab_size", u(u32::MAX), "4294967295"),
        (s, "llama.rope.dimension_count", u(0), "= 0"),
        (s, "llama.rope.dimension_count", u(63), "= 63"),
        (s, "llama.rope.dimension_count", u(1 << 30), "1073741824"),
        (s, "llama.attention.key_length", u(1 << 20), "1048576"),
        (
            s,
            "llama.attention.layer_norm_rms_epsilon",
            f(f32::NAN),
            "NaN",
        ),
        (s, "llama.rope.freq_base", f(-1.0), "-1"),
        (s, "llama.rope.freq_base", f(f32::INFINITY), "inf"),
        (s, "llama.expert_count", u(1 << 20), "1048576"),
        (s, "llama.expert_count", u(8), "mixture-of-experts"),
        (
            g,
            "gemma3.attention.sliding_window",
            u(u32::MAX),
            "4294967295",
        ),
        (
            g,
            "gemma3.attention.sliding_window_pattern",
            u(1 << 31),
            "2147483648",
        ),
    ] {
        let path = with_key(&dir, model, key, Some(value));
        let e = load_err(&path);
        assert!(
            e.contains(key) && e.contains(says) && !e.contains("missing"),
            "{key}: {e}"
        );
    }
}

#[test]
fn a_huge_block_count_is_one_line_and_exit_code_1_from_the_cli() {
    // SmolLM2 with block_count (4 bytes at offset 486) patched to 0xffffffff used to pass
    // `nib inspect` and abort `nib run` on a huge allocation.
    let dir = common::Scratch::new("model-block-count");
    let path = dir.path("blocks.gguf");
    let mut bytes = std::fs::read(common::model_path(common::SMOLLM2)).unwrap();
    assert_eq!(bytes[486..490], 30u32.to_le_bytes());
    bytes[486..490].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = cli_error(&["run", "-n", "1", "-p", "hi"], &path);
    assert!(
        err.starts_with("error: ")
            && err.contains("llama.block_count = 4294967295")
            && err.trim_end().lines().count() == 1,
        "{err}"
    );
}

#[test]
fn rope_dimension_count_zero_is_refused_at_load() {
    // It used to load and then panic on the first prompt ("chunk size must be non-zero").
    let dir = common::Scratch::new("model-rope0");
    let path = with_key(
        &dir,
        common::SMOLLM2,
        "llama.rope.dimension_count",
        Some(MetaValue::U32(0)),
    );
    let err = cli_error(&["run", "-n", "1", "-p", "hi"], &path);
    assert!(
        err.starts_with("error: ") && err.contains("llama.rope.dimension_count = 0"),
        "{err}"
    );
}

#[test]
fn only_regular_files_are_opened_as_models() {
    // A FIFO used to block `open` forever; a directory or a socket cannot be read as a model.
    // Each is refused by its type, in one line, before anything is opened.
    let dir = common::Scratch::new("model-filetype");
    let fifo = dir.path("fifo.gguf");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let sock = dir.path("sock.gguf");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let subdir = dir.path("dir.gguf");
    std::fs::create_dir(&subdir).unwrap();
    for (path, kind) in [(&fifo, "FIFO"), (&sock, "socket"), (&subdir, "directory")] {
        for no_mmap in [false, true] {
            let opts = LoadOptions {
                no_mmap,
                ..Default::default()
            };
            let e = format!("{:#}", Model::load(path, &opts).unwrap_err());
            assert!(e.contains(kind) && e.contains("not a model file"), "{e}");
        }
        // The CLI, under a deadline: a hang is a failure, not a stuck test.
        for args in [&["inspect"][..], &["run", "-p", "hi", "-m"][..]] {
            let mut child = common::nib()
                .args(args)
                .arg(path)
                .stderr(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let t0 = std::time::Instant::now();
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                if t0.elapsed() > std::time::Duration::from_secs(20) {
                    child.kill().unwrap();
                    panic!("nib {args:?} {} hung", path.display());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert_eq!(status.code(), Some(1), "{err}");
            assert!(err.starts_with("error: ") && err.contains(kind), "{err}");
        }
    }
}

#[test]
fn inspect_shows_a_file_with_bad_hyperparameters_and_says_why_it_cannot_load() {
    let dir = common::Scratch::new("model-inspect");
    let path = with_key(
        &dir,
        common::SMOLLM2,
        "llama.block_count",
        Some(MetaValue::U32(u32::MAX)),
    );
    let out = common::nib().arg("inspect").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("cannot be loaded") && err.contains("llama.block_count = 4294967295"),
        "{err}"
    );
}
