//! Token sampling: repetition penalty, then top-k, top-p, min-p, temperature, then a draw
//! from a seeded RNG (llama.cpp's default sampler chain order). `temperature <= 0` is greedy.

/// Sampling parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature; `<= 0` means greedy (argmax).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0 = all).
    pub top_k: u32,
    /// Keep the smallest set of tokens whose probability sums to at least `top_p` (1.0 = off).
    pub top_p: f32,
    /// Drop tokens with probability below `min_p * p_max` (0.0 = off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recently seen tokens by this (1.0 = off),
    /// as in CTRL (Keskar et al. 2019) and llama.cpp's `penalty_repeat`.
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    pub repeat_last_n: u32,
    /// RNG seed: same seed, same tokens.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0x5EED,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding (argmax, no penalty).
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 1,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            ..Default::default()
        }
    }
}

/// A sampler with its RNG state (xoshiro256** seeded by splitmix64).
#[derive(Clone, Debug)]
pub struct Sampler {
    /// Parameters.
    pub cfg: SamplerConfig,
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Index of the largest value; the first one on ties (like `torch.argmax`). NaN never wins.
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    let mut bv = f32::NEG_INFINITY;
    for (i, &v) in x.iter().enumerate() {
        if v > bv {
            bv = v;
            best = i;
        }
    }
    best
}

impl Sampler {
    /// A sampler seeded from `cfg.seed`.
    pub fn new(cfg: SamplerConfig) -> Sampler {
        let mut x = cfg.seed;
        Sampler {
            cfg,
            s: [
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
            ],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let r = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }

    /// Uniform f32 in [0, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Pick the next token from `logits: (vocab,)` (modified in place by the penalty), given
    /// the tokens so far `history` and scratch `cand: (vocab,)`, `probs: (vocab,)`.
    ///
    /// # Panics
    /// If `logits` is empty or the scratch buffers are shorter than `logits`.
    pub fn sample(
        &mut self,
        logits: &mut [f32],
        history: &[u32],
        cand: &mut [u32],
        probs: &mut [f32],
    ) -> u32 {
        let n = logits.len();
        let c = self.cfg;
        if c.repeat_penalty != 1.0 && c.repeat_penalty > 0.0 {
            let start = history.len().saturating_sub(c.repeat_last_n as usize);
            for (i, &t) in history[start..].iter().enumerate() {
                // penalize each distinct token once
                if history[start..start + i].contains(&t) {
                    continue;
                }
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 {
                        *l / c.repeat_penalty
                    } else {
                        *l * c.repeat_penalty
                    };
                }
            }
        }
        if c.temperature <= 0.0 || c.top_k == 1 {
            return argmax(logits) as u32;
        }
        let cand = &mut cand[..n];
        for (i, ci) in cand.iter_mut().enumerate() {
            *ci = i as u32;
        }
        let by_logit = |a: &u32, b: &u32| {
            logits[*b as usize]
                .total_cmp(&logits[*a as usize])
                .then(a.cmp(b))
        };
        let mut k = if c.top_k == 0 {
            n
        } else {
            (c.top_k as usize).min(n)
        };
        if k < n {
            cand.select_nth_unstable_by(k - 1, by_logit);
        }
        cand[..k].sort_unstable_by(by_logit);
        // softmax over the k candidates with temperature
        let m = logits[cand[0] as usize];
        let mut sum = 0.0f64;
        for i in 0..k {
            let p = libm::expf((logits[cand[i] as usize] - m) / c.temperature);
            probs[i] = p;
            sum += p as f64;
        }
        for p in &mut probs[..k] {
            *p = (*p as f64 / sum) as f32;
        }
        if c.top_p < 1.0 {
            let mut cum = 0.0f32;
            for i in 0..k {
                cum += probs[i];
                if cum >= c.top_p {
                    k = i + 1;
                    break;
                }
            }
        }
        if c.min_p > 0.0 {
            let thr = probs[0] * c.min_p;
            k = probs[..k].iter().take_while(|&&p| p >= thr).count().max(1);
        }
        let total: f32 = probs[..k].iter().sum();
        let mut r = self.next_f32() * total;
        for i in 0..k {
            r -= probs[i];
            if r < 0.0 {
                return cand[i];
            }
        }
        cand[k - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_max() {
        let mut l = [1.0f32, 3.0, 3.0, -1.0];
        let mut s = Sampler::new(SamplerConfig::greedy());
        assert_eq!(s.sample(&mut l, &[], &mut [0; 4], &mut [0.0; 4]), 1);
    }

    #[test]
    fn same_seed_same_tokens_and_top_k_respected() {
        let logits: [f32; 50] = core::array::from_fn(|i| (i as f32 * 0.37).sin() * 3.0);
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 5,
            top_p: 1.0,
            min_p: 0.0,
            seed: 7,
            ..Default::default()
        };
        let run = |cfg| {
            let mut s = Sampler::new(cfg);
            let mut out = [0u32; 64];
            for o in out.iter_mut() {
                let mut l = logits;
                *o = s.sample(&mut l, &[], &mut [0; 50], &mut [0.0; 50]);
            }
            out
        };
        let a = run(cfg);
        assert_eq!(a, run(cfg));
        let mut top5: [usize; 50] = core::array::from_fn(|i| i);
        top5.sort_by(|&x, &y| logits[y].total_cmp(&logits[x]));
        assert!(a.iter().all(|t| top5[..5].contains(&(*t as usize))));
        assert!(
            a.iter().any(|&t| t != a[0]),
            "temperature 1 over 5 candidates should vary"
        );
        assert_ne!(a, run(SamplerConfig { seed: 8, ..cfg }));
    }

    #[test]
    fn repetition_penalty_changes_greedy_choice() {
        let mut l = [2.0f32, 1.9, -1.0];
        let mut s = Sampler::new(SamplerConfig {
            repeat_penalty: 1.5,
            ..SamplerConfig::greedy()
        });
        assert_eq!(s.sample(&mut l, &[0], &mut [0; 3], &mut [0.0; 3]), 1);
    }

    #[test]
    fn min_p_and_top_p_cut_the_tail() {
        // one dominant token: top_p 0.5 and min_p 0.5 both leave only it
        for cfg in [
            SamplerConfig {
                temperature: 1.0,
                top_k: 0,
                top_p: 0.5,
                min_p: 0.0,
                seed: 1,
                ..Default::default()
            },
            SamplerConfig {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.5,
                seed: 1,
                ..Default::default()
            },
        ] {
            let mut s = Sampler::new(cfg);
            for _ in 0..20 {
                let mut l = [0.0f32, 5.0, 0.0, 0.0];
                assert_eq!(s.sample(&mut l, &[], &mut [0; 4], &mut [0.0; 4]), 1);
            }
        }
    }
}
