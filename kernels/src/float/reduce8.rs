//! The 8-set reduction of the x86 row dots (AVX2 and AVX-512): scalar's [`reduce32`] of eight
//! sets of 32 partial sums at once.

use core::arch::x86_64::*;

#[allow(unused_imports)] // doc links
use super::scalar::reduce32;

/// Scalar's [`reduce32`] of 8 sets of 32 partial sums at once, set `i` in lane `i` (AVX2's
/// four 8-lane accumulators each): `v = (acc0 + acc1) + (acc2 + acc3)`, then a transposing
/// network that performs reduce32's additions lane for lane: halves `v[j] + v[j+4]`, then
/// pairs `(w0 + w2)`, `(w1 + w3)` (`shuffle_ps`), then their sum (`hadd_ps`).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn reduce8_accs(acc: &[[__m256; 4]; 8]) -> __m256 {
    let add = _mm256_add_ps;
    let v: [__m256; 8] =
        core::array::from_fn(|i| add(add(acc[i][0], acc[i][1]), add(acc[i][2], acc[i][3])));
    // [w_a | w_b]: w = low half + high half of v, for sets a and b
    let halves = |a, b| {
        add(
            _mm256_permute2f128_ps::<0x20>(v[a], v[b]),
            _mm256_permute2f128_ps::<0x31>(v[a], v[b]),
        )
    };
    // [w0 + w2, w1 + w3] of the sets of p, then of q, per 128-bit half
    let pairs = |p, q| {
        add(
            _mm256_shuffle_ps::<0x44>(p, q),
            _mm256_shuffle_ps::<0xEE>(p, q),
        )
    };
    let ua = pairs(halves(0, 4), halves(1, 5));
    let ub = pairs(halves(2, 6), halves(3, 7));
    _mm256_hadd_ps(ua, ub)
}
