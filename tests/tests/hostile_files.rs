//! Hostile safetensors files: every malformed file is refused with an error naming the path —
//! no panic, no allocation from an untrusted length — and a model asked to load one is
//! unchanged.

use kiln::io::{load_safetensors, save_safetensors};
use kiln::nn::{Linear, ReLU, Sequential};
use kiln::prelude::*;
use kiln::train::Checkpoint;
use kiln_tests::fixture;

/// A safetensors file from a JSON header and a data section.
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let good = std::fs::read(fixture("seq.safetensors")).unwrap();
    let f32x2 = [0u8; 8];
    let mut non_utf8 = file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, &f32x2);
    non_utf8[12] = 0xff;
    vec![
        ("empty", vec![]),
        ("seven bytes", vec![1, 2, 3, 4, 5, 6, 7]),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("truncated data", good[..good.len() - 4].to_vec()),
        ("header length past the end", {
            let mut v = good.clone();
            v[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
            v
        }),
        ("header length u64::MAX", {
            let mut v = good.clone();
            v[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            v
        }),
        ("header not JSON", file("this is not json", &[])),
        ("non-UTF-8 header", non_utf8),
        ("offsets out of range", file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}}"#, &f32x2)),
        ("offsets reversed", file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, &f32x2)),
        (
            "overlapping offsets",
            file(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &f32x2,
            ),
        ),
        (
            "shape product overflows",
            file(r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#, &f32x2),
        ),
        ("shape does not match the data", file(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, &f32x2)),
        ("unknown dtype", file(r#"{"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}}"#, &f32x2)),
        ("unsupported dtype", file(r#"{"a":{"dtype":"BOOL","shape":[8],"data_offsets":[0,8]}}"#, &f32x2)),
        (
            "duplicate keys",
            file(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &f32x2,
            ),
        ),
        ("negative shape", file(r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, &f32x2)),
        ("enormous header", file(&format!("{{\"__metadata__\":{{\"x\":\"{}\"}}}}", "y".repeat(120 << 20)), &[])),
    ]
}

#[test]
fn malformed_files_are_refused_and_change_nothing() {
    let dev = Device::cpu();
    let dir = std::env::temp_dir().join(format!("kiln-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model =
        Sequential::new().push(Linear::new(5, 7, &dev).unwrap()).push(ReLU).push(Linear::new(7, 3, &dev).unwrap());
    let before: Vec<Vec<f32>> = model.state_dict().iter().map(|(_, t)| t.to_vec().unwrap()).collect();
    let mut refused = 0;
    for (name, bytes) in cases() {
        let path = dir.join(format!("{}.safetensors", name.replace(' ', "_")));
        std::fs::write(&path, &bytes).unwrap();
        let r = load_safetensors(&path, &dev);
        match r {
            Err(e) => {
                assert!(
                    e.to_string().contains(&path.display().to_string()) || e.to_string().contains("load_safetensors"),
                    "{name}: {e}"
                );
                refused += 1;
            }
            Ok(sd) => {
                // A structurally valid file (the duplicate-key case may parse, keeping one) must
                // still not load into a model it does not fit.
                assert!(model.load_state_dict(&sd, true).is_err(), "{name}: loaded into the model");
            }
        }
        assert!(Checkpoint::load(&path, &dev).is_err(), "{name}: accepted as a checkpoint");
    }
    assert!(refused >= cases().len() - 1, "only {refused} refused");
    let after: Vec<Vec<f32>> = model.state_dict().iter().map(|(_, t)| t.to_vec().unwrap()).collect();
    assert_eq!(before, after);
    // And a good file next to them still loads.
    let good = dir.join("good.safetensors");
    save_safetensors(&good, &model.state_dict()).unwrap();
    model.load_state_dict(&load_safetensors(&good, &dev).unwrap(), true).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

mod mutations {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random corruptions of a valid file (byte flips, truncation, a rewritten header
        /// length): the loader returns Ok or an error, never panics, never allocates from a
        /// corrupt length.
        #[test]
        fn corrupted_files_never_panic(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
            header_len in prop::option::of(any::<u64>()),
        ) {
            let mut bytes = std::fs::read(fixture("custom.safetensors")).unwrap();
            for (i, b) in flips {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            if let Some(n) = header_len {
                bytes[..8].copy_from_slice(&n.to_le_bytes());
            }
            if truncate {
                let c = cut.index(bytes.len());
                bytes.truncate(c);
            }
            let dev = Device::cpu();
            if let Ok(sd) = kiln::io::from_safetensors_bytes(&bytes, &dev) {
                for (_, t) in sd.iter() {
                    let _ = t.to_vec();
                }
            }
        }
    }
}

/// CI replays the fuzzing corpus (fuzz/corpus/load_safetensors, kept by `cargo fuzz`): every
/// input is refused or loaded, never a panic.
#[test]
fn fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/load_safetensors");
    let dev = Device::cpu();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(sd) = kiln::io::from_safetensors_bytes(&bytes, &dev) {
            for (_, t) in sd.iter() {
                let _ = t.to_vec();
            }
        }
        n += 1;
    }
    assert!(n >= 4, "the corpus has {n} inputs");
}
