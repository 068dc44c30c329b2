//! The `kiln` command on the PyTorch fixtures: names, shapes and totals; statistics; histograms;
//! diffs; and a clear error (exit 1, no panic) for a file that is not safetensors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir()).output().unwrap()
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name).display().to_string()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn inspect_lists_names_shapes_and_totals() {
    let o = kiln(&["inspect", &fixture("custom.safetensors")]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for line in ["bn.num_batches_tracked  []", "encoder.weight          [8, 6]", "head.2.weight           [2, 4]"] {
        assert!(t.contains(line), "missing {line:?} in\n{t}");
    }
    assert!(t.contains("I64") && t.contains("encoder subtotal"));
    // 126 parameter elements + 17 buffer elements.
    assert!(t.contains("total: 12 tensors, 143 elements, 576 bytes"), "{t}");
    let o = kiln(&["inspect", &fixture("seq_float16.safetensors"), "--stats"]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("F16") && t.contains("norm"), "{t}");
}

#[test]
fn inspect_draws_histograms() {
    let dir = std::env::temp_dir().join(format!("kiln-cli-hist-{}", std::process::id()));
    let o = kiln(&["inspect", &fixture("seq.safetensors"), "--hist", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for n in ["0.weight", "0.bias", "2.weight", "2.bias"] {
        let svg = std::fs::read_to_string(dir.join(format!("{n}.hist.svg"))).unwrap();
        assert!(svg.contains("<svg"));
        assert!(dir.join(format!("{n}.hist.png")).exists());
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn diff_reports_dtype_and_value_differences() {
    let o = kiln(&["diff", &fixture("seq.safetensors"), &fixture("seq_float16.safetensors")]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("F32 vs F16") && t.contains("4 common tensors, 4 differ"), "{t}");
    let o = kiln(&["diff", &fixture("seq.safetensors"), &fixture("tied.safetensors")]);
    let t = text(&o);
    assert!(t.contains("only in") && t.contains("a.weight") && t.contains("0.weight"), "{t}");
    let o = kiln(&["diff", &fixture("seq.safetensors"), &fixture("seq.safetensors")]);
    assert!(text(&o).contains("4 common tensors, 0 differ"));
}

#[test]
fn bad_files_are_errors_not_panics() {
    let junk = std::env::temp_dir().join(format!("kiln-cli-junk-{}.safetensors", std::process::id()));
    for bytes in
        [&b"not a safetensors file at all"[..], &[0xff; 8][..], &[8, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'][..], &[][..]]
    {
        std::fs::write(&junk, bytes).unwrap();
        let o = kiln(&["inspect", junk.to_str().unwrap()]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains("error:") && !t.contains("panicked"), "{t}");
    }
    let o = kiln(&["inspect", "/no/such/file.safetensors"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("/no/such/file.safetensors"));
    assert_eq!(kiln(&["frobnicate"]).status.code(), Some(2));
    std::fs::remove_file(&junk).ok();
}

#[test]
fn devices_lists_adapters() {
    let o = kiln(&["devices"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// On a headless machine (no XDG_RUNTIME_DIR, no display) listing and opening adapters prints
/// only kiln's own output: Mesa's window-system code is never reached.
#[test]
fn devices_is_quiet_without_a_display() {
    let o = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("devices")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!err.contains("XDG_RUNTIME_DIR") && !err.contains("error"), "{err}");
}
