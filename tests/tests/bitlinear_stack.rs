//! Batched BitLinear over stacked matrices (Q|K|V, gate|up) against an independent computation:
//! exact integer dot products of the decoded codes with the int8 inputs, then
//! `acc / (weight_scale * s_a)` per matrix and token (shared/fixtures/README.md, "Bit-exact
//! evaluation order"). The stacks are taller than one row slab of `bitlinear_stack` (2048
//! rows), with matrix boundaries inside slabs, and the column count is not a multiple of
//! either layout's block.

use tern_core::exec::{Exec, SingleThread};
use tern_core::forward::{TernaryStack, bitlinear_stack};
use tern_kernels::layout::TernaryLayout;
use tern_linux::pool::ThreadPool;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn stacked_batch_matches_exact_integer_sums_across_row_slabs() {
    let kernels = tern_linux::cpu::kernels().unwrap();
    let pool = ThreadPool::new(2);
    let mut rng = Rng(0x243f_6a88_85a3_08d3);
    // three matrices; their boundaries (900, 2000) fall inside slabs for every token count
    let segs = [(900usize, 0.75f32), (1100, 1.5), (1300, 3.0)];
    let rows: usize = segs.iter().map(|s| s.0).sum();
    for layout in TernaryLayout::ALL {
        let cols = 300;
        let rb = layout.layout().row_bytes(cols).unwrap();
        let codes: Vec<i8> = (0..rows * cols)
            .map(|_| (rng.next() % 3) as i8 - 1)
            .collect();
        let mut data = vec![0u8; rows * rb];
        for r in 0..rows {
            layout.encode_row(
                &codes[r * cols..(r + 1) * cols],
                &mut data[r * rb..(r + 1) * rb],
            );
        }
        let st = TernaryStack {
            layout,
            data: &data,
            cols,
            segs: &segs,
        };
        for n in [1usize, 20, 40, 64, 70] {
            let xq: Vec<i8> = (0..n * cols).map(|_| rng.next() as u8 as i8).collect();
            let s_a: Vec<f32> = (0..n).map(|t| 0.5 + t as f32 / 8.0).collect();
            let mut want = vec![0f32; n * rows];
            for t in 0..n {
                let mut r = 0;
                for &(sr, ws) in &segs {
                    for _ in 0..sr {
                        let acc: i32 = (0..cols)
                            .map(|c| codes[r * cols + c] as i32 * xq[t * cols + c] as i32)
                            .sum();
                        want[t * rows + r] = acc as f32 / (ws * s_a[t]);
                        r += 1;
                    }
                }
            }
            for exec in [&SingleThread as &dyn Exec, &pool] {
                let mut acc = vec![0i32; rows * n];
                let mut out = vec![f32::NAN; n * rows];
                bitlinear_stack(kernels, exec, &st, &xq, &s_a, &mut acc, &mut out);
                for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        g.to_bits() == w.to_bits(),
                        "{layout:?}, {n} tokens, {} threads: token {}, row {}: {g} against {w}",
                        exec.threads(),
                        i / rows,
                        i % rows
                    );
                }
            }
        }
    }
}
