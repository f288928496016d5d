//! Scalar (reference) absmax int8 activation quantizer.

/// Smallest absmax used (transformers clamps `max|x|` to `min=1e-5`).
pub const ABSMAX_EPS: f32 = 1e-5;

/// Quantize one token's activations `x: (n,)` to int8 `q: (n,)` by absmax and return the
/// activation scale `s_a` (so that `x ≈ q / s_a`).
///
/// Exactly, in float32: `s_a = 127 * (1 / max(max|x|, 1e-5))` (two roundings, as torch
/// evaluates `127 / t`), `q = clamp(round_half_even(x * s_a), -128, 127)`.
/// NaN inputs are ignored by the absmax and quantize to 0.
///
/// # Panics
/// If `q.len() != x.len()` (a caller bug, checked by the safe wrappers of every variant).
pub fn quantize_row_i8_absmax(x: &[f32], q: &mut [i8]) -> f32 {
    assert_eq!(
        x.len(),
        q.len(),
        "quantize_row_i8_absmax: x and q lengths differ"
    );
    let mut amax = 0.0f32;
    for &v in x {
        amax = amax.max(v.abs());
    }
    let s_a = 127.0f32 * (1.0f32 / amax.max(ABSMAX_EPS));
    for (qi, &v) in q.iter_mut().zip(x) {
        // rintf rounds half to even under the default rounding mode; `as i8` saturates
        // (and maps NaN to 0) after the explicit clamp to the int8 range.
        *qi = libm::rintf(v * s_a).clamp(-128.0, 127.0) as i8;
    }
    s_a
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ties_round_to_even_and_clamp() {
        // absmax 127 -> s_a = 127 * (1/127); x * s_a lands on k + 0.5 for these inputs.
        let x = [127.0f32, 0.5, 1.5, 2.5, -0.5, -127.0];
        let mut q = [0i8; 6];
        let s = quantize_row_i8_absmax(&x, &mut q);
        assert_eq!(s, 127.0f32 * (1.0f32 / 127.0));
        assert_eq!(q[0], 127);
        assert_eq!(q[5], -127);
        // independent check of each value with std's round_ties_even semantics
        for i in 0..6 {
            let v = x[i] * s;
            let r = if (v - v.trunc()).abs() == 0.5 {
                let t = v.trunc();
                if (t as i64) % 2 == 0 {
                    t
                } else {
                    t + v.signum()
                }
            } else {
                (v + 0.5 * v.signum()).trunc()
            };
            assert_eq!(q[i] as f32, r.clamp(-128.0, 127.0), "i={i} v={v}");
        }
    }
    #[test]
    fn zero_row_uses_eps() {
        let x = [0.0f32; 4];
        let mut q = [1i8; 4];
        let s = quantize_row_i8_absmax(&x, &mut q);
        assert_eq!(s, 127.0 * (1.0 / 1e-5f32));
        assert_eq!(q, [0; 4]);
    }
}
