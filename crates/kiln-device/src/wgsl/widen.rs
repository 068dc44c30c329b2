//! Wide storage access for software adapters: vec4 arrays read and written as `vec2<u64>`.

/// Unpacks four floats from two 64-bit words, and packs them back (see [`widen`]).
const WIDE_HELPERS: [(&str, &str); 2] = [
    (
        "fn w4(",
        "fn w4(x: vec2<u64>) -> vec4<f32> {\n    return vec4<f32>(\n        bitcast<f32>(u32(x.x & 0xfffffffflu)),\n        \
         bitcast<f32>(u32(x.x >> 32u)),\n        bitcast<f32>(u32(x.y & 0xfffffffflu)),\n        \
         bitcast<f32>(u32(x.y >> 32u)),\n    );\n}\n",
    ),
    (
        "fn pack4(",
        "fn pack4(v: vec4<f32>) -> vec2<u64> {\n    return vec2<u64>(\n        \
         u64(bitcast<u32>(v.x)) | (u64(bitcast<u32>(v.y)) << 32u),\n        \
         u64(bitcast<u32>(v.z)) | (u64(bitcast<u32>(v.w)) << 32u),\n    );\n}\n",
    ),
];

/// `src` with every storage array of `vec4<f32>` read and written as `vec2<u64>`: a read
/// `x[e]` becomes `w4(x[e])`, a statement `x[e] = v;` becomes `x[e] = pack4(v);`, and the two
/// helpers are added. On llvmpipe a storage access is a loop over the lanes per component, and
/// a 64-bit component carries two floats, so this halves the loop iterations per float (see
/// PERFORMANCE.md). Needs `SHADER_INT64`. Every access of such an array must be an index
/// expression `x[...]`, and a write a statement of its own line (true of kiln's kernels).
pub(crate) fn widen(src: &str) -> String {
    let names: Vec<&str> = src
        .lines()
        .filter(|l| l.contains("var<storage") && l.trim_end().ends_with(": array<vec4<f32>>;"))
        .filter_map(|l| l.rsplit_once(": array<vec4<f32>>;")?.0.rsplit(' ').next())
        .collect();
    if names.is_empty() {
        return src.to_string();
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    // Wraps each `name[...]` of `text` in w4( ).
    let reads = |text: &str| -> String {
        let mut out = String::with_capacity(text.len() + 16);
        let mut rest = text;
        'scan: while !rest.is_empty() {
            for n in &names {
                let prev_ok = out.chars().last().is_none_or(|c| !is_ident(c));
                if prev_ok && rest.starts_with(n) && rest[n.len()..].starts_with('[') {
                    let mut depth = 0;
                    for (j, c) in rest.char_indices().skip(n.len()) {
                        depth += match c {
                            '[' => 1,
                            ']' => -1,
                            _ => 0,
                        };
                        if depth == 0 {
                            out.push_str(&format!("w4({})", &rest[..=j]));
                            rest = &rest[j + 1..];
                            continue 'scan;
                        }
                    }
                }
            }
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    };
    let mut out = String::new();
    for (marker, text) in WIDE_HELPERS {
        if !src.contains(marker) {
            out.push_str(text);
        }
    }
    for line in src.lines() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let write = names.iter().find(|n| body.starts_with(&format!("{n}["))).and_then(|_| {
            let eq = body.find("] = ")?;
            let end = body.rfind(';')?;
            Some((&body[..eq + 1], &body[eq + 4..end], &body[end..]))
        });
        if line.contains("var<storage") && line.trim_end().ends_with(": array<vec4<f32>>;") {
            out.push_str(&line.replace(": array<vec4<f32>>;", ": array<vec2<u64>>;"));
        } else if let Some((target, value, tail)) = write {
            out.push_str(&format!("{indent}{target} = pack4({}){tail}", reads(value)));
        } else {
            out.push_str(&reads(line));
        }
        out.push('\n');
    }
    out
}
