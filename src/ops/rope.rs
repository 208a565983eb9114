//! Rotary position embeddings, computed as ggml does (`ggml_rope_cache_init`): the angle for
//! dimension pair `i` is `pos * base^(-2i/n_rot)` built by repeated multiplication in f32,
//! divided by optional per-dimension frequency factors, with linear or YaRN scaling.

use crate::model::{RopeKind, RopeScaling};

/// RoPE for one base and scaling.
#[derive(Clone, Debug)]
pub struct Rope {
    kind: RopeKind,
    n_rot: usize,
    theta_scale: f32,
    freq_scale: f32,
    ext_factor: f32,
    mscale: f32,
    corr_dims: [f32; 2],
    freq_factors: Option<Vec<f32>>,
}

impl Rope {
    pub fn new(
        kind: RopeKind,
        n_rot: usize,
        base: f32,
        scaling: RopeScaling,
        freq_factors: Option<Vec<f32>>,
    ) -> Rope {
        let theta_scale = base.powf(-2.0 / n_rot as f32);
        let (freq_scale, ext_factor, corr_dims) = match scaling {
            RopeScaling::None => (1.0, 0.0, [0.0, 0.0]),
            RopeScaling::Linear { factor } => (1.0 / factor, 0.0, [0.0, 0.0]),
            RopeScaling::Yarn {
                factor,
                orig_ctx,
                beta_fast,
                beta_slow,
            } => {
                let corr_dim = |n_rot_b: f32| {
                    n_rot as f32 * (orig_ctx as f32 / (n_rot_b * 2.0 * std::f32::consts::PI)).ln()
                        / (2.0 * base.ln())
                };
                let start = corr_dim(beta_fast).floor().max(0.0);
                let end = corr_dim(beta_slow).ceil().min(n_rot as f32 - 1.0);
                (1.0 / factor, 1.0, [start, end])
            }
        };
        Rope {
            kind,
            n_rot,
            theta_scale,
            freq_scale,
            ext_factor,
            mscale: 1.0,
            corr_dims,
            freq_factors,
        }
    }

    /// cos and sin of every dimension pair at position `pos` (each `n_rot / 2` long).
    pub fn angles(&self, pos: usize, cos: &mut [f32], sin: &mut [f32]) {
        let mut theta = pos as f32;
        for i in 0..self.n_rot / 2 {
            let ff = self.freq_factors.as_ref().map_or(1.0, |f| f[i]);
            let theta_extrap = theta / ff;
            let theta_interp = self.freq_scale * theta_extrap;
            let (mut t, mut mscale) = (theta_interp, self.mscale);
            if self.ext_factor != 0.0 {
                let y = ((i as f32) - self.corr_dims[0])
                    / (self.corr_dims[1] - self.corr_dims[0]).max(0.001);
                let ramp_mix = (1.0 - y.clamp(0.0, 1.0)) * self.ext_factor;
                t = theta_interp * (1.0 - ramp_mix) + theta_extrap * ramp_mix;
                mscale *= 0.1f32.mul_add((1.0 / self.freq_scale).ln(), 1.0);
            }
            cos[i] = t.cos() * mscale;
            sin[i] = t.sin() * mscale;
            theta *= self.theta_scale;
        }
    }

    /// Rotate every head (`head_dim` wide) of one token's row `x` by the given angles.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
        for head in x.chunks_exact_mut(head_dim) {
            match self.kind {
                RopeKind::Normal => nib_simd::vec::rope_pairs(&mut head[..self.n_rot], cos, sin),
                RopeKind::Neox => nib_simd::vec::rope_halves(&mut head[..self.n_rot], cos, sin),
            }
        }
    }

    pub fn n_rot(&self) -> usize {
        self.n_rot
    }
}
