//! Every WGSL module kiln can hand to wgpu, translated by naga's backends as wgpu 30's hals drive
//! them: SPIR-V (Vulkan), MSL (Metal), HLSL (DX12: shader model 5.1 with FXC, 6.0 with DXC) and
//! GLSL ES 3.10 (GL), per compute entry point, after the pipeline's override constants are
//! applied. A kernel that validates as WGSL can still fail to translate for one backend; this is
//! where that shows, on any machine.
//!
//! The options follow wgpu-hal 30 (`vulkan/device.rs`, `metal/device.rs`, `dx12/device.rs`,
//! `gles/device.rs`): bindings mapped as each hal maps a bind group layout (no faked bindings:
//! a missing one fails), bounds checks as the hals ask for them, no zero-initialised workgroup
//! memory (kiln's pipeline option). Kernels that need subgroups or 64-bit integers (the
//! software adapter's `vec2<u64>` loads, the subgroup matmul kernels) are translated for the
//! backends that offer those features (Vulkan with SPIR-V 1.3, Metal with MSL 2.3, DX12 with
//! shader model 6.0) and never for GL, which offers neither: `kernel_support` keeps them from
//! any adapter without the features (tested in `context.rs`).

use std::collections::{BTreeMap, HashMap};

use naga::back::{glsl, hlsl, msl, spv};
use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
use naga::valid::{Capabilities as Caps, ModuleInfo, ValidationFlags, Validator};
use naga::{AddressSpace, ResourceBinding, ShaderStage, StorageAccess};

use super::Family;
use super::fused::tests::{sample_epilogues, sample_plans};
use crate::kernels::matmul::reachable_kernels;
use crate::op::{BinaryOp, UnaryOp};
use crate::wgsl::matmul::MatmulKernel;

/// One module kiln can compile, with the override constants its pipelines are created with.
struct Shader {
    what: String,
    source: String,
    overrides: Vec<Vec<(&'static str, f64)>>,
}

impl Shader {
    fn new(what: impl Into<String>, source: impl Into<String>) -> Shader {
        Shader { what: what.into(), source: source.into(), overrides: vec![vec![]] }
    }
}

/// Every module: the families (each override value their launchers pass), the families a
/// software adapter compiles widened, every matmul kernel the picker can choose (widened too),
/// fused elementwise kernels with every op and index map in both widths, and a matmul epilogue
/// on every subgroup kernel.
fn catalogue() -> Vec<Shader> {
    let mut out = Vec::new();
    for fam in Family::ALL {
        let overrides: Vec<Vec<(&'static str, f64)>> = match fam {
            Family::Unary => UnaryOp::ALL.iter().map(|&o| vec![("OP", o as u32 as f64)]).collect(),
            Family::Binary => BinaryOp::ALL.iter().map(|&o| vec![("OP", o as u32 as f64)]).collect(),
            Family::Softmax => vec![vec![("LOG", 0.0)], vec![("LOG", 1.0)]],
            _ => vec![vec![]],
        };
        let source = fam.source().into_owned();
        if matches!(fam, Family::Unary | Family::Binary | Family::Reduce | Family::Optim) {
            out.push(Shader {
                what: format!("widened {}", fam.file()),
                source: super::widen(&source),
                overrides: overrides.clone(),
            });
        }
        out.push(Shader { what: fam.file().to_string(), source, overrides });
    }
    for k in reachable_kernels() {
        let src = match k {
            MatmulKernel::Rows(r) => r.source(),
            MatmulKernel::Tiles(t) => t.source(),
            MatmulKernel::Scalar(_) => continue, // matmul.wgsl, above
        };
        let wide = super::widen(&src);
        if wide != src {
            out.push(Shader::new(format!("widened {}", k.name()), wide));
        }
        out.push(Shader::new(k.name(), src));
    }
    // Fused chains with every op and index map, and an epilogue on every subgroup kernel.
    let mut plans = sample_plans();
    for k in reachable_kernels() {
        if let MatmulKernel::Rows(head) = k {
            for plan in sample_epilogues(head) {
                plans.push((
                    format!("{} with an epilogue{}", head.name(), if plan.four { " (vec4)" } else { "" }),
                    plan,
                ));
            }
        }
    }
    for (what, plan) in plans {
        let src = plan.source();
        out.push(Shader::new(format!("widened {what}"), super::widen(&src)));
        out.push(Shader::new(what, src));
    }
    out
}

/// A bound global's class, as the hals' bind group layouts see it.
#[derive(Clone, Copy, PartialEq)]
enum Class {
    Uniform,
    ReadOnly,
    ReadWrite,
}

/// The bind group layout kiln creates for a module: every bound global in (group, binding)
/// order (two views of one binding share it).
fn layout(m: &naga::Module) -> BTreeMap<ResourceBinding, Class> {
    let mut l = BTreeMap::new();
    for (_, v) in m.global_variables.iter() {
        let Some(b) = v.binding else { continue };
        let class = match v.space {
            AddressSpace::Uniform => Class::Uniform,
            AddressSpace::Storage { access } if access.contains(StorageAccess::STORE) => Class::ReadWrite,
            AddressSpace::Storage { .. } => Class::ReadOnly,
            s => panic!("{b:?}: address space {s:?} is not one kiln binds"),
        };
        let prev = l.insert(b, class);
        assert!(prev.is_none_or(|p| p == class), "{b:?} bound with two classes");
    }
    l
}

fn policies(p: BoundsCheckPolicy) -> BoundsCheckPolicies {
    BoundsCheckPolicies { index: p, buffer: p, image_load: p, binding_array: BoundsCheckPolicy::Unchecked }
}

/// The smallest of kiln's optional capabilities under which `module` validates.
fn needs(module: &naga::Module) -> Option<(Caps, ModuleInfo)> {
    [Caps::empty(), Caps::SUBGROUP, Caps::SHADER_INT64, Caps::SUBGROUP | Caps::SHADER_INT64].into_iter().find_map(|c| {
        Validator::new(ValidationFlags::all(), c | Caps::SHADER_FLOAT16_IN_FLOAT32)
            .validate(module)
            .ok()
            .map(|i| (c, i))
    })
}

/// Translates every compute entry point of `shader` under each of its override sets with every
/// backend that may be given it; the backends it was translated for.
fn translate(shader: &Shader, out: &mut Vec<Output>) -> Result<Vec<&'static str>, String> {
    let src = &shader.source;
    let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
    let (caps, info) = needs(&module).ok_or("validates under none of kiln's capabilities")?;
    let plain = caps.is_empty();
    let l = layout(&module);

    // Vulkan (wgpu-hal vulkan/adapter.rs, device.rs): SPIR-V 1.0, 1.3 with subgroups.
    use spv::Capability as K;
    let mut spv_caps = vec![
        K::Shader,
        K::Matrix,
        K::Sampled1D,
        K::Image1D,
        K::ImageQuery,
        K::DerivativeControl,
        K::StorageImageExtendedFormats,
        K::SampledCubeArray,
        K::SampleRateShading,
    ];
    if caps.contains(Caps::SUBGROUP) {
        spv_caps.extend([
            K::GroupNonUniform,
            K::GroupNonUniformVote,
            K::GroupNonUniformArithmetic,
            K::GroupNonUniformBallot,
            K::GroupNonUniformShuffle,
            K::GroupNonUniformShuffleRelative,
            K::GroupNonUniformQuad,
        ]);
    }
    if caps.contains(Caps::SHADER_INT64) {
        spv_caps.push(K::Int64);
    }
    let spv_options = spv::Options {
        lang_version: if caps.contains(Caps::SUBGROUP) { (1, 3) } else { (1, 0) },
        flags: spv::WriterFlags::LABEL_VARYINGS | spv::WriterFlags::FORCE_POINT_SIZE,
        fake_missing_bindings: false,
        binding_map: l
            .keys()
            .map(|&b| (b, spv::BindingInfo { descriptor_set: b.group, binding: b.binding, binding_array_size: None }))
            .collect(),
        capabilities: Some(spv_caps.into_iter().collect()),
        bounds_check_policies: policies(BoundsCheckPolicy::Restrict),
        zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
        force_loop_bounding: true,
        ..spv::Options::default()
    };

    // Metal (metal/device.rs): buffers in layout order, then the sizes buffer.
    let mut resources = msl::EntryPointResources::default();
    for (i, (&b, &c)) in l.iter().enumerate() {
        resources
            .resources
            .insert(b, msl::BindTarget { buffer: Some(i as u8), mutable: c == Class::ReadWrite, ..Default::default() });
    }
    if l.values().any(|&c| c != Class::Uniform) {
        resources.sizes_buffer = Some(l.len() as u8);
    }

    // DX12 (dx12/device.rs): registers counted per class in space 0; the special constants
    // on the next constant buffer.
    let (mut nb, mut nt, mut nu) = (0u32, 0u32, 0u32);
    let mut hlsl_map = hlsl::BindingMap::default();
    for (&b, &c) in &l {
        let r = match c {
            Class::Uniform => &mut nb,
            Class::ReadOnly => &mut nt,
            Class::ReadWrite => &mut nu,
        };
        hlsl_map.insert(b, hlsl::BindTarget { space: 0, register: *r, ..Default::default() });
        *r += 1;
    }
    let models: &[hlsl::ShaderModel] =
        if plain { &[hlsl::ShaderModel::V5_1, hlsl::ShaderModel::V6_0] } else { &[hlsl::ShaderModel::V6_0] };

    // GL (gles/device.rs): one binding counter per class; ES 3.10; GL offers neither subgroups
    // nor 64-bit integers.
    let (mut ng_u, mut ng_s) = (0u8, 0u8);
    let mut glsl_map = glsl::BindingMap::default();
    for (&b, &c) in &l {
        let n = if c == Class::Uniform { &mut ng_u } else { &mut ng_s };
        glsl_map.insert(b, *n);
        *n += 1;
    }
    let glsl_options = glsl::Options {
        version: glsl::Version::Embedded { version: 310, is_webgl: false },
        writer_flags: glsl::WriterFlags::ADJUST_COORDINATE_SPACE | glsl::WriterFlags::FORCE_POINT_SIZE,
        binding_map: glsl_map,
        zero_initialize_workgroup_memory: false,
    };

    let computes: Vec<&str> =
        module.entry_points.iter().filter(|e| e.stage == ShaderStage::Compute).map(|e| e.name.as_str()).collect();
    if computes.is_empty() {
        return Err("no compute entry point".into());
    }
    for constants in &shader.overrides {
        let pc: naga::back::PipelineConstants = constants.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        for &name in &computes {
            let err = |what: &str, e: String| format!("{name} {constants:?} [{what}]: {e}");
            let (m, i) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((ShaderStage::Compute, name)),
                &pc,
            )
            .map_err(|e| err("overrides", e.to_string()))?;
            let spv_pipeline = spv::PipelineOptions { shader_stage: ShaderStage::Compute, entry_point: name.into() };
            let words =
                spv::write_vec(&m, &i, &spv_options, Some(&spv_pipeline)).map_err(|e| err("SPIR-V", e.to_string()))?;
            let label = format!("{} {name} {constants:?}", shader.what);
            out.push(Output::Spirv(label.clone(), words, spv_options.lang_version));

            for version in if plain { [(2, 0), (2, 3)] } else { [(2, 3), (3, 1)] } {
                let options = msl::Options {
                    lang_version: version,
                    per_entry_point_map: BTreeMap::from([(name.to_string(), resources.clone())]),
                    fake_missing_bindings: false,
                    bounds_check_policies: policies(BoundsCheckPolicy::Restrict),
                    zero_initialize_workgroup_memory: false,
                    force_loop_bounding: true,
                    ..msl::Options::default()
                };
                let pipeline = msl::PipelineOptions {
                    entry_point: Some((ShaderStage::Compute, name.into())),
                    ..msl::PipelineOptions::default()
                };
                let what = format!("MSL {}.{}", version.0, version.1);
                let (_, ti) = msl::write_string(&m, &i, &options, &pipeline).map_err(|e| err(&what, e.to_string()))?;
                for r in ti.entry_point_names {
                    r.map_err(|e| err(&what, e.to_string()))?;
                }
            }

            for &model in models {
                let options = hlsl::Options {
                    shader_model: model,
                    binding_map: hlsl_map.clone(),
                    fake_missing_bindings: false,
                    special_constants_binding: Some(hlsl::BindTarget { space: 0, register: nb, ..Default::default() }),
                    zero_initialize_workgroup_memory: false,
                    restrict_indexing: true,
                    force_loop_bounding: true,
                    ..hlsl::Options::default()
                };
                let pipeline = hlsl::PipelineOptions { entry_point: Some((ShaderStage::Compute, name.into())) };
                let mut text = String::new();
                let what = format!("HLSL {}", model.to_str());
                let ri = hlsl::Writer::new(&mut text, &options, &pipeline)
                    .write(&m, &i, None)
                    .map_err(|e| err(&what, e.to_string()))?;
                for r in ri.entry_point_names {
                    r.map_err(|e| err(&what, e.to_string()))?;
                }
            }

            if plain {
                let pipeline = glsl::PipelineOptions {
                    shader_stage: ShaderStage::Compute,
                    entry_point: name.into(),
                    multiview: None,
                };
                let mut text = String::new();
                glsl::Writer::new(&mut text, &m, &i, &glsl_options, &pipeline, policies(BoundsCheckPolicy::Unchecked))
                    .and_then(|mut w| w.write())
                    .map_err(|e| err("GLSL ES 3.10", e.to_string()))?;
                out.push(Output::Glsl(label, text));
            }
        }
    }
    Ok(if plain { vec!["spv", "msl", "hlsl", "glsl"] } else { vec!["spv", "msl", "hlsl"] })
}

/// A translation an external compiler can check: SPIR-V (with its version) or GLSL.
enum Output {
    Spirv(String, Vec<u32>, (u8, u8)),
    Glsl(String, String),
}

/// Runs `tool args.. file` on `bytes` written to a temporary file; `None` when the tool is not
/// installed, else its complaint if it refused.
fn external_check(tool: &str, args: &[&str], file: &std::path::Path, bytes: &[u8]) -> Option<Result<(), String>> {
    std::fs::write(file, bytes).unwrap();
    let out = std::process::Command::new(tool).args(args).arg(file).output().ok()?;
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    })
}

/// Where the tools are installed (Debian's `spirv-tools`, `glslang-tools`; CI installs them):
/// every SPIR-V translation passes `spirv-val` for the Vulkan version wgpu would target, and
/// every GLSL one compiles with `glslangValidator` as a GLSL ES 3.10 compute shader.
/// `KILN_REQUIRE_SHADER_TOOLS=1` makes a missing tool a failure.
fn check_with_external_tools(outputs: &[Output]) {
    let dir = std::env::temp_dir().join(format!("kiln-translate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let required = std::env::var("KILN_REQUIRE_SHADER_TOOLS").as_deref() == Ok("1");
    let (mut missing, mut failures, mut checked) = (Vec::new(), Vec::new(), 0);
    for o in outputs {
        let (tool, result, label) = match o {
            Output::Spirv(label, words, version) => {
                let env = if *version >= (1, 3) { "vulkan1.1" } else { "vulkan1.0" };
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                ("spirv-val", external_check("spirv-val", &["--target-env", env], &dir.join("k.spv"), &bytes), label)
            }
            Output::Glsl(label, text) => (
                "glslangValidator",
                external_check("glslangValidator", &["-S", "comp"], &dir.join("k.comp"), text.as_bytes()),
                label,
            ),
        };
        match result {
            None => {
                if !missing.contains(&tool) {
                    missing.push(tool);
                }
            }
            Some(Ok(())) => checked += 1,
            Some(Err(e)) => failures.push(format!("{label} [{tool}]: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{checked} translations checked by external tools; not installed: {missing:?}");
    assert!(!required || missing.is_empty(), "KILN_REQUIRE_SHADER_TOOLS=1 but {missing:?} not installed");
    assert!(failures.is_empty(), "{} refused:\n{}", failures.len(), failures[..failures.len().min(5)].join("\n"));
}

#[test]
fn every_kernel_translates_for_every_backend_that_may_run_it() {
    let all = catalogue();
    let mut failures = Vec::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut outputs = Vec::new();
    for s in &all {
        match translate(s, &mut outputs) {
            Ok(backends) => {
                for b in backends {
                    *counts.entry(b).or_default() += 1;
                }
            }
            Err(e) => failures.push(format!("{}: {e}", s.what)),
        }
    }
    assert!(failures.is_empty(), "{} of {} modules fail:\n{}", failures.len(), all.len(), failures.join("\n"));
    // Everything goes to Vulkan, Metal and DX12; GL gets the kernels without subgroups or
    // 64-bit integers, which are every family and every kernel an adapter without them runs.
    assert_eq!((counts["spv"], counts["msl"], counts["hlsl"]), (all.len(), all.len(), all.len()));
    eprintln!("{} modules translated: {counts:?}", all.len());
    let plain_families = Family::ALL.len();
    assert!(counts["glsl"] >= plain_families + 5 + 4, "{counts:?}");
    check_with_external_tools(&outputs);
}

/// The exclusions above are needed, and the harness can fail: GL's GLSL refuses the software
/// adapter's 64-bit loads (naga's SPIR-V writer does not check for the Int64 capability: there
/// the driver would refuse, and wgpu offers SHADER_INT64 only where the device has it).
#[test]
fn the_translators_refuse_what_a_backend_lacks() {
    let src = super::widen(&Family::Unary.source());
    let module = naga::front::wgsl::parse_str(&src).unwrap();
    let (caps, info) = needs(&module).unwrap();
    assert_eq!(caps, Caps::SHADER_INT64);
    let mut glsl_refused = 0;
    for ep in &module.entry_points {
        let name = ep.name.clone();
        let (m, i) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((ShaderStage::Compute, name.as_str())),
            &Default::default(),
        )
        .unwrap();
        let options = glsl::Options {
            version: glsl::Version::Embedded { version: 310, is_webgl: false },
            ..glsl::Options::default()
        };
        let pipeline = glsl::PipelineOptions { shader_stage: ShaderStage::Compute, entry_point: name, multiview: None };
        let mut text = String::new();
        let r = glsl::Writer::new(&mut text, &m, &i, &options, &pipeline, policies(BoundsCheckPolicy::Unchecked))
            .and_then(|mut w| w.write());
        glsl_refused += r.is_err() as usize;
    }
    // The vec4 entry points read vec2<u64>; the scalar ones do not.
    assert!(glsl_refused > 0 && glsl_refused < module.entry_points.len(), "{glsl_refused}");
}
