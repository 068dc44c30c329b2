//! Fuzz target: kiln's safetensors loader on arbitrary bytes must return Ok or an error, never
//! panic, hang or allocate from an unchecked length. See RELIABILITY.md for how to run it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dev = kiln_core::Device::cpu();
    if let Ok(sd) = kiln_core::io::from_safetensors_bytes(data, &dev) {
        for (_, t) in sd.iter() {
            let _ = t.to_vec();
        }
    }
});
