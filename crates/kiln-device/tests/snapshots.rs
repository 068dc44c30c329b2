//! Readable snapshots of two generated kernels (`tests/snapshots/`): a subgroup kernel of the
//! software adapter and a vec4 tile of real GPUs, as their generators write them. A change to a
//! generator shows in review as a diff of these files. On a mismatch the test writes the new text
//! next to the snapshot as `<name>.wgsl.new`: read it, and if it is what you meant, rename it
//! over the snapshot.

use kiln_device::wgsl::matmul_rows::{RowForm, RowKernel};
use kiln_device::wgsl::matmul_tiles::{TileForm, TileKernel};

fn check(name: &str, text: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("{name}.wgsl"));
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != text {
        let new = path.with_extension("wgsl.new");
        std::fs::write(&new, text).unwrap();
        panic!("{} differs from its generator's output, written to {}", path.display(), new.display());
    }
}

#[test]
fn generated_kernels_match_their_snapshots() {
    let rows = RowKernel::new(RowForm::Nn, 4, 1);
    check(&rows.name(), &rows.source());
    let tile = TileKernel::new(TileForm::Tn, 8);
    check(&tile.name(), &tile.source());
}
