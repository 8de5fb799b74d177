//! [`CpuEngine`]: one execution instance of the native SwinV2 forward pass: its own rayon pool and its
//! own activation buffers, planned for `max_batch` at construction (no allocation per request).

use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::kernels::attention::{window_attention, WindowAttentionArgs};
use super::kernels::linear::{linear, Epilogue};
use super::kernels::norm::layer_norm_rows;
use super::kernels::{has_avx2_fma, SendPtr};
use super::model::{BasicLayer, PatchMerging, SwinTransformerBlock, SwinV2Model};
use crate::engine::{Engine, EngineDescription, EngineError, InferShape};

/// Activation buffers of one instance, sized for the largest stage at `max_batch`.
struct Buffers {
    /// Residual stream `[B*L, C]`.
    x: Vec<f32>,
    /// `[B*L, 3C]` qkv; also the gathered 2×2 neighbours of patch merging `[B*L/4, 4C]`.
    qkv: Vec<f32>,
    /// `[B*L, C]` attention output (before proj).
    attn: Vec<f32>,
    /// `[B*L, C]` proj / fc2 output before the post-norm.
    tmp: Vec<f32>,
    /// `[B*L, hidden]` MLP hidden; also the flattened patches `[B*L0, in_chans*p*p]`.
    hidden: Vec<f32>,
    /// `[B, num_features]` pooled features.
    pooled: Vec<f32>,
    /// One attention scratch per pool thread.
    attn_scratch: Vec<Mutex<Vec<f32>>>,
}

impl Buffers {
    fn plan(model: &SwinV2Model, max_batch: usize, threads: usize) -> Self {
        let cfg = &model.config;
        let (mut x, mut qkv, mut hidden, mut scratch) = (0, 0, 0, 0);
        for layer in &model.layers {
            let l = layer.input_resolution * layer.input_resolution;
            x = x.max(l * layer.dim);
            qkv = qkv.max(3 * l * layer.dim);
            for b in &layer.blocks {
                hidden = hidden.max(l * b.mlp.fc1.out_features);
                let n = b.window_size * b.window_size;
                scratch = scratch.max(WindowAttentionArgs::scratch_len(
                    n,
                    b.dim / b.attn.num_heads,
                ));
            }
        }
        let l0 = cfg.stage_resolution(0).pow(2);
        hidden = hidden.max(l0 * cfg.in_chans * cfg.patch_size * cfg.patch_size);
        let zeros = |n: usize| vec![0.0f32; n * max_batch];
        Self {
            x: zeros(x),
            qkv: zeros(qkv),
            attn: zeros(x),
            tmp: zeros(x),
            hidden: zeros(hidden),
            pooled: zeros(cfg.num_features()),
            attn_scratch: (0..threads)
                .map(|_| Mutex::new(vec![0.0; scratch]))
                .collect(),
        }
    }
}

/// Wall time per kind of operation and stage, summed over one forward pass ([`CpuEngine::profile`]).
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// `(stage, operation, milliseconds)` in first-seen order; stage `None` outside the stages.
    pub entries: Vec<(Option<usize>, &'static str, f64)>,
    stage: Option<usize>,
    last: Option<std::time::Instant>,
}

impl Profile {
    fn lap(&mut self, what: &'static str) {
        let now = std::time::Instant::now();
        let ms = self
            .last
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64() * 1e3);
        self.last = Some(now);
        let stage = self.stage;
        match self
            .entries
            .iter_mut()
            .find(|(s, w, _)| *s == stage && *w == what)
        {
            Some(e) => e.2 += ms,
            None => self.entries.push((stage, what, ms)),
        }
    }

    /// Milliseconds per operation summed over stages, in first-seen order.
    pub fn by_operation(&self) -> Vec<(&'static str, f64)> {
        let mut out: Vec<(&'static str, f64)> = vec![];
        for &(_, what, ms) in &self.entries {
            match out.iter_mut().find(|(w, _)| *w == what) {
                Some(e) => e.1 += ms,
                None => out.push((what, ms)),
            }
        }
        out
    }

    /// Milliseconds per stage (`None`: patch embed and head).
    pub fn by_stage(&self) -> Vec<(Option<usize>, f64)> {
        let mut out: Vec<(Option<usize>, f64)> = vec![];
        for &(stage, _, ms) in &self.entries {
            match out.iter_mut().find(|(s, _)| *s == stage) {
                Some(e) => e.1 += ms,
                None => out.push((stage, ms)),
            }
        }
        out
    }
}

/// Set the stage that following marks belong to, when profiling.
fn enter_stage(prof: &mut Option<Profile>, stage: Option<usize>) {
    if let Some(p) = prof {
        p.stage = stage;
    }
}

/// Record the time since the previous mark under `what`, when profiling.
fn mark(prof: &mut Option<Profile>, what: &'static str) {
    if let Some(p) = prof {
        p.lap(what);
    }
}

/// The CPU engine instance: implements [`Engine`] on a shared [`SwinV2Model`].
pub struct CpuEngine {
    model: Arc<SwinV2Model>,
    pool: rayon::ThreadPool,
    threads: usize,
    max_batch: usize,
    buffers: Buffers,
}

impl std::fmt::Debug for CpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuEngine")
            .field("model", &self.model.config.name())
            .field("threads", &self.threads)
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

impl CpuEngine {
    /// An instance with its own pool of `threads` threads and buffers for batches up to `max_batch`.
    pub fn new(
        model: Arc<SwinV2Model>,
        threads: usize,
        max_batch: usize,
    ) -> Result<Self, EngineError> {
        if threads == 0 || max_batch == 0 {
            return Err(EngineError::InvalidInput(format!(
                "threads ({threads}) and max_batch ({max_batch}) must be at least 1"
            )));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("swin-cpu-{i}"))
            .build()
            .map_err(|e| EngineError::Backend {
                backend: "cpu",
                message: format!("cannot start {threads} engine threads: {e}"),
            })?;
        let buffers = Buffers::plan(&model, max_batch, threads);
        Ok(Self {
            model,
            pool,
            threads,
            max_batch,
            buffers,
        })
    }

    /// Run one forward pass like [`Engine::infer`] and return the wall time spent per kind of
    /// operation (patch embed, qkv, attention, proj + norm1, fc1 + GELU, fc2 + norm2, merging, head).
    pub fn profile(
        &mut self,
        input: &[f32],
        batch: usize,
        logits: &mut [f32],
    ) -> Result<Profile, EngineError> {
        self.check(input, batch, logits)?;
        let model = &*self.model;
        let buffers = &mut self.buffers;
        let mut prof = Some(Profile::default());
        self.pool
            .install(|| forward(model, buffers, input, batch, logits, &mut prof));
        Ok(prof.unwrap_or_default())
    }

    /// Validate an `infer` call's arguments.
    fn check(&self, input: &[f32], batch: usize, logits: &[f32]) -> Result<(), EngineError> {
        let cfg = &self.model.config;
        InferShape {
            per_image: cfg.in_chans * cfg.img_size * cfg.img_size,
            num_classes: cfg.num_classes,
            max_batch: self.max_batch,
        }
        .check(input, batch, logits)
    }

    /// The model this instance runs.
    pub fn model(&self) -> &Arc<SwinV2Model> {
        &self.model
    }
}

impl Engine for CpuEngine {
    fn describe(&self) -> EngineDescription {
        EngineDescription {
            backend: "cpu",
            input_size: self.model.config.img_size,
            num_classes: self.model.config.num_classes,
            max_batch: self.max_batch,
            detail: format!(
                "threads={}, kernels={}, gemm={}",
                self.threads,
                if has_avx2_fma() { "avx2+fma" } else { "scalar" },
                gemm_isa()
            ),
        }
    }

    fn infer(
        &mut self,
        input: &[f32],
        batch: usize,
        logits: &mut [f32],
    ) -> Result<(), EngineError> {
        self.check(input, batch, logits)?;
        let model = &*self.model;
        let buffers = &mut self.buffers;
        self.pool
            .install(|| forward(model, buffers, input, batch, logits, &mut None));
        Ok(())
    }
}

/// Instruction set the `gemm` crate dispatches to on this CPU (its own run-time detection).
fn gemm_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::is_x86_feature_detected!("fma") {
            return "avx2+fma";
        }
    }
    "generic"
}

/// `SwinTransformerV2.forward` on `batch` images (inside the instance's pool).
fn forward(
    m: &SwinV2Model,
    buf: &mut Buffers,
    input: &[f32],
    batch: usize,
    logits: &mut [f32],
    prof: &mut Option<Profile>,
) {
    let cfg = &m.config;
    mark(prof, "start");
    // forward_features: patch_embed (+ ape)
    patch_embed(m, buf, input, batch);
    let l0 = cfg.stage_resolution(0).pow(2);
    if let Some(ape) = &m.absolute_pos_embed {
        buf.x[..batch * l0 * cfg.embed_dim]
            .par_chunks_mut(l0 * cfg.embed_dim)
            .for_each(|img| {
                for (v, &a) in img.iter_mut().zip(ape) {
                    *v += a;
                }
            });
    }
    mark(prof, "patch_embed");
    for (i, layer) in m.layers.iter().enumerate() {
        enter_stage(prof, Some(i));
        basic_layer(layer, buf, batch, prof);
    }
    enter_stage(prof, None);
    // norm, avgpool, head
    let nf = cfg.num_features();
    let last = m.layers.last().map_or(0, |l| l.input_resolution.pow(2));
    let x = &mut buf.x[..batch * last * nf];
    x.par_chunks_mut(nf * 64.min(last.max(1)))
        .for_each(|rows| layer_norm_rows(rows, &m.norm.weight, &m.norm.bias));
    for (b, pooled) in buf.pooled.chunks_exact_mut(nf).take(batch).enumerate() {
        pooled.fill(0.0);
        for row in x[b * last * nf..(b + 1) * last * nf].chunks_exact(nf) {
            for (p, &v) in pooled.iter_mut().zip(row) {
                *p += v;
            }
        }
        let inv = 1.0 / last as f32;
        pooled.iter_mut().for_each(|p| *p *= inv);
    }
    let head = &m.head;
    linear(
        &buf.pooled,
        batch,
        nf,
        &head.weight_t,
        head.out_features,
        logits,
        head.bias.as_deref().map_or(Epilogue::None, Epilogue::Bias),
    );
    mark(prof, "norm+pool+head");
}

/// `PatchEmbed.forward`: flatten each patch in (channel, row, col) order — the conv weight's order —
/// and run the projection as a GEMM, then the optional norm.
fn patch_embed(m: &SwinV2Model, buf: &mut Buffers, input: &[f32], batch: usize) {
    let pe = &m.patch_embed;
    let (p, s, cin) = (pe.patch_size, pe.img_size, pe.in_chans);
    let grid = s / p;
    let k = cin * p * p;
    let patches = &mut buf.hidden[..batch * grid * grid * k];
    patches
        .par_chunks_mut(grid * k)
        .enumerate()
        .for_each(|(row_id, dst)| {
            let (b, ph) = (row_id / grid, row_id % grid);
            let img = &input[b * cin * s * s..(b + 1) * cin * s * s];
            for pw in 0..grid {
                let patch = &mut dst[pw * k..(pw + 1) * k];
                for c in 0..cin {
                    for kh in 0..p {
                        let src = c * s * s + (ph * p + kh) * s + pw * p;
                        patch[(c * p + kh) * p..(c * p + kh + 1) * p]
                            .copy_from_slice(&img[src..src + p]);
                    }
                }
            }
        });
    let epilogue = match &pe.norm {
        Some(n) => Epilogue::BiasNorm {
            bias: pe.proj.bias.as_deref(),
            weight: &n.weight,
            norm_bias: &n.bias,
        },
        None => pe
            .proj
            .bias
            .as_deref()
            .map_or(Epilogue::None, Epilogue::Bias),
    };
    let rows = batch * grid * grid;
    linear(
        &buf.hidden[..rows * k],
        rows,
        k,
        &pe.proj.weight_t,
        pe.proj.out_features,
        &mut buf.x,
        epilogue,
    );
}

/// `BasicLayer.forward`.
fn basic_layer(layer: &BasicLayer, buf: &mut Buffers, batch: usize, prof: &mut Option<Profile>) {
    for block in &layer.blocks {
        swin_block(block, buf, batch, prof);
    }
    if let Some(d) = &layer.downsample {
        patch_merging(d, buf, batch);
        mark(prof, "patch_merging");
    }
}

/// `SwinTransformerBlock.forward`: `x = x + norm1(attn(x))`; `x = x + norm2(mlp(x))`.
fn swin_block(
    blk: &SwinTransformerBlock,
    buf: &mut Buffers,
    batch: usize,
    prof: &mut Option<Profile>,
) {
    let c = blk.dim;
    let tokens = blk.input_resolution * blk.input_resolution;
    let rows = batch * tokens;
    let attn = &blk.attn;
    // qkv = F.linear(x, qkv.weight, cat(q_bias, 0, v_bias))
    linear(
        &buf.x[..rows * c],
        rows,
        c,
        &attn.qkv.weight_t,
        3 * c,
        &mut buf.qkv,
        attn.qkv
            .bias
            .as_deref()
            .map_or(Epilogue::None, Epilogue::Bias),
    );
    mark(prof, "qkv");
    // roll, window partition, cosine attention with bias and mask, window reverse, roll back
    let args = WindowAttentionArgs {
        batch,
        tokens,
        dim: c,
        num_heads: attn.num_heads,
        window_tokens: blk.window_size * blk.window_size,
        token_index: &blk.token_index,
        logit_scale: &attn.logit_scale,
        bias: &attn.relative_position_bias,
        mask: blk.attn_mask.as_deref(),
    };
    window_attention(&args, &buf.qkv, &mut buf.attn, &buf.attn_scratch);
    mark(prof, "attention");
    // x = shortcut + norm1(proj(attn))
    let residual = SendPtr(buf.x.as_mut_ptr());
    linear(
        &buf.attn[..rows * c],
        rows,
        c,
        &attn.proj.weight_t,
        c,
        &mut buf.tmp,
        Epilogue::BiasNormResidual {
            bias: attn.proj.bias.as_deref().unwrap_or(&[]),
            weight: &blk.norm1.weight,
            norm_bias: &blk.norm1.bias,
            residual,
        },
    );
    mark(prof, "proj+norm1");
    // x = x + norm2(fc2(gelu(fc1(x))))
    let (fc1, fc2) = (&blk.mlp.fc1, &blk.mlp.fc2);
    linear(
        &buf.x[..rows * c],
        rows,
        c,
        &fc1.weight_t,
        fc1.out_features,
        &mut buf.hidden,
        Epilogue::BiasGelu(fc1.bias.as_deref().unwrap_or(&[])),
    );
    mark(prof, "fc1+gelu");
    let residual = SendPtr(buf.x.as_mut_ptr());
    linear(
        &buf.hidden[..rows * fc1.out_features],
        rows,
        fc1.out_features,
        &fc2.weight_t,
        c,
        &mut buf.tmp,
        Epilogue::BiasNormResidual {
            bias: fc2.bias.as_deref().unwrap_or(&[]),
            weight: &blk.norm2.weight,
            norm_bias: &blk.norm2.bias,
            residual,
        },
    );
    mark(prof, "fc2+norm2");
}

/// `PatchMerging.forward`: cat(x0 = [0::2, 0::2], x1 = [1::2, 0::2], x2 = [0::2, 1::2],
/// x3 = [1::2, 1::2]) → reduction → norm.
fn patch_merging(pm: &PatchMerging, buf: &mut Buffers, batch: usize) {
    let (r, c) = (pm.input_resolution, pm.dim);
    let half = r / 2;
    let x = &buf.x;
    let gathered = &mut buf.qkv[..batch * half * half * 4 * c];
    gathered
        .par_chunks_mut(half * 4 * c)
        .enumerate()
        .for_each(|(row_id, dst)| {
            let (b, i) = (row_id / half, row_id % half);
            let img = &x[b * r * r * c..(b + 1) * r * r * c];
            for j in 0..half {
                let out = &mut dst[j * 4 * c..(j + 1) * 4 * c];
                for (q, (dh, dw)) in [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().enumerate() {
                    let t = (2 * i + dh) * r + 2 * j + dw;
                    out[q * c..(q + 1) * c].copy_from_slice(&img[t * c..(t + 1) * c]);
                }
            }
        });
    let rows = batch * half * half;
    linear(
        &buf.qkv[..rows * 4 * c],
        rows,
        4 * c,
        &pm.reduction.weight_t,
        2 * c,
        &mut buf.x,
        Epilogue::BiasNorm {
            bias: None,
            weight: &pm.norm.weight,
            norm_bias: &pm.norm.bias,
        },
    );
}
