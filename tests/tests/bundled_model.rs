//! The bundled demo model reproduces from `tern-pack synth` (same bytes), and parses.

use std::path::Path;

use tern_pack::synth::{SynthShape, synth_model};

#[test]
fn bundled_model_reproduces_from_synth() {
    let m = synth_model(SynthShape::Tiny, 42, Path::new("bytes")).unwrap();
    let mut buf = Vec::new();
    m.write(&mut buf, |_| {}).unwrap();
    let bundled = tern_linux::model_file::BUNDLED_MODEL;
    assert_eq!(
        buf.len(),
        bundled.len(),
        "regenerate with: tern-pack synth --shape tiny --seed 42 --vocab bytes -o platforms/linux/assets/demo-synthetic.tern"
    );
    assert!(
        buf == bundled,
        "bundled model bytes differ from a fresh synth (regenerate it)"
    );
    let model = tern_core::format::Model::parse(bundled).unwrap();
    model.verify_checksums().unwrap();
    assert_eq!(model.file.header.config.vocab_size, 258);
}
