//! The layers the diffusion models are built from, each with a fast CPU path and a generic one.
//!
//! On the CPU in f32 the work goes to `atelier-kernels` through candle's custom-op traits:
//! convolutions with bias, per-image bias and residual fused in, blockwise attention reading
//! heads in place, group norm with SiLU fused, GEGLU in one pass. On other devices or dtypes
//! the same layer runs candle's own ops, so CUDA/Metal and half precision keep working and the
//! fixtures compare both paths. Every call is recorded by [`crate::profile`] when it is on.
//!
//! On AVX-512 CPUs convolution and dense weights are packed once, when the layer is built,
//! into the blocked kernels' layout ([`atelier_kernels::blocked`]), in f32 or, with
//! [`CpuMath::Bf16`], in bfloat16; the packed copy replaces the tensor, so weights are held
//! once.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use atelier_kernels::attention::AttnShape;
use atelier_kernels::blocked::{self, PackedA, PackedB, Precision};
use atelier_kernels::conv::ConvShape;
use atelier_kernels::gemm::{MatRef, Par};
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Module, Result, Shape, Tensor, D,
};
use candle_nn::VarBuilder;

use crate::conv_algo::{self, Plan, WinogradSlot};
use crate::profile;

/// How f32 models compute their matrix products on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuMath {
    /// f32 operands and accumulation (bit-for-bit the parity-tested path).
    F32,
    /// bfloat16 operands, f32 accumulation, on CPUs with AVX512-BF16; everything else
    /// (activations, norms, softmax) stays f32. Elsewhere it falls back to f32.
    Bf16,
}

impl CpuMath {
    /// Parses `f32` or `bf16`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Some(Self::F32),
            "bf16" | "bfloat16" => Some(Self::Bf16),
            _ => None,
        }
    }

    /// Whether this CPU has what the mode needs (AVX512-BF16 for bf16).
    pub fn supported(self) -> bool {
        match self {
            Self::F32 => true,
            Self::Bf16 => blocked::available(Precision::Bf16),
        }
    }
}

static CPU_MATH: AtomicU8 = AtomicU8::new(0);

/// The CPU math layers built from now on use: [`set_cpu_math`], else `ATELIER_CPU_MATH`
/// (`f32` or `bf16`), else f32.
pub fn cpu_math() -> CpuMath {
    match CPU_MATH.load(Ordering::Relaxed) {
        1 => CpuMath::F32,
        2 => CpuMath::Bf16,
        _ => {
            let m = std::env::var("ATELIER_CPU_MATH")
                .ok()
                .and_then(|v| CpuMath::parse(&v))
                .unwrap_or(CpuMath::F32);
            set_cpu_math(m);
            m
        }
    }
}

/// Chooses the CPU math for layers built after this call (weights are packed at build time).
pub fn set_cpu_math(m: CpuMath) {
    CPU_MATH.store(if m == CpuMath::Bf16 { 2 } else { 1 }, Ordering::Relaxed);
}

/// The packed precision for weights loaded now on `t`'s device, if the blocked kernels apply.
fn packing(t: &Tensor) -> Option<Precision> {
    if !(t.device().is_cpu() && t.dtype() == DType::F32 && kernels_enabled()) {
        return None;
    }
    let p = match cpu_math() {
        CpuMath::Bf16 if blocked::available(Precision::Bf16) => Precision::Bf16,
        _ => Precision::F32,
    };
    blocked::available(p).then_some(p)
}

/// Whether `t` takes the kernels' path: CPU, f32, and not switched off by `ATELIER_KERNELS=off`
/// (kept so the two paths can be compared on the same weights).
fn fast(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && kernels_enabled()
}

fn kernels_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("ATELIER_KERNELS").map_or(true, |v| v != "off"))
}

/// The contiguous f32 elements behind a CPU storage.
fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what}: expected f32 storage");
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: expected a contiguous tensor"),
    }
}

/// Runs `f` on a CPU f32 tensor's elements in place when it is contiguous (a freshly loaded
/// weight is), else on a copy: packing then holds the tensor and its packed form, not a
/// third copy, which keeps the load's peak memory down for the largest layers.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    if let (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) =
        (&*storage, layout.contiguous_offsets())
    {
        return Ok(f(&v[a..b]));
    }
    drop(storage);
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&v))
}

fn f32_vec(t: &Tensor) -> Result<Option<Arc<[f32]>>> {
    if t.device().is_cpu() && t.dtype() == DType::F32 {
        Ok(Some(t.flatten_all()?.to_vec1::<f32>()?.into()))
    } else {
        Ok(None)
    }
}

/// Weights as loaded, or packed for the blocked kernels (then the tensor is not kept).
#[derive(Debug, Clone)]
enum Weights<P> {
    Tensor(Tensor),
    Packed(Arc<P>),
}

/// A 2D convolution (square kernel, symmetric padding) with bias.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Weights<PackedA>,
    /// Winograd weights of a stride-1 3x3 layer with f32 packed weights, made on first use.
    winograd: Option<Arc<WinogradSlot>>,
    bias: Tensor,
    bias_f32: Option<Arc<[f32]>>,
    cin: usize,
    cout: usize,
    k: usize,
    padding: usize,
    stride: usize,
}

impl Conv2d {
    /// Reads `weight` (`[cout, cin, k, k]`) and `bias` under `vb`, as diffusers names them.
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        padding: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let w = vb.get((cout, cin, k, k), "weight")?;
        let bias = vb.get(cout, "bias")?;
        let weight = match packing(&w) {
            Some(p) => {
                let kk = cin * k * k;
                let packed = with_f32(&w, |v| PackedA::pack(p, v, cout, kk, kk, 1))?;
                drop(w);
                Weights::Packed(Arc::new(packed))
            }
            None => Weights::Tensor(w),
        };
        // Packed stride-1 3x3 layers (f32 or bf16) may also run as Winograd, in f32.
        let winograd = match &weight {
            Weights::Packed(_) if k == 3 && stride == 1 && padding == 1 => {
                Some(Arc::new(WinogradSlot::default()))
            }
            _ => None,
        };
        Ok(Self {
            bias_f32: f32_vec(&bias)?,
            weight,
            winograd,
            bias,
            cin,
            cout,
            k,
            padding,
            stride,
        })
    }

    /// `conv(x) + bias`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, None, None)
    }

    /// `conv(x) + bias + residual`, the residual added in the same pass.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.run(x, None, Some(residual))
    }

    /// `conv(x) + bias + channel_bias[b, c]` (a per-image bias such as a UNet resnet's time
    /// embedding), added in the same pass.
    pub fn forward_channel_bias(&self, x: &Tensor, channel_bias: &Tensor) -> Result<Tensor> {
        self.run(x, Some(channel_bias), None)
    }

    fn run(&self, x: &Tensor, extra: Option<&Tensor>, residual: Option<&Tensor>) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.cin {
            candle_core::bail!("conv expects {} input channels, got {c}", self.cin);
        }
        let shape = ConvShape {
            batch: b,
            cin: c,
            h,
            w,
            cout: self.cout,
            k: self.k,
            stride: self.stride,
            pad: self.padding,
        };
        if !shape.is_valid() {
            candle_core::bail!("conv: kernel {} does not fit a {h}x{w} input", self.k);
        }
        let plan = match &self.winograd {
            Some(_) if fast(x) => conv_algo::plan(shape),
            _ => Plan::Direct,
        };
        let kind = match (self.k, self.stride) {
            (1, 1) => "conv1x1",
            (3, 1) => plan.kind(),
            (3, 2) => "conv3x3/2",
            _ => "conv",
        };
        let outs = b * self.cout * shape.out_h() * shape.out_w();
        let weights = self.cout * self.cin * self.k * self.k;
        let bytes =
            4.0 * (x.elem_count() + weights + outs * (1 + residual.is_some() as usize)) as f64;
        profile::record(
            kind,
            || format!("{c}->{} {h}x{w} b{b}", self.cout),
            shape.flops(),
            bytes,
            || {
                let packed = match &self.weight {
                    Weights::Packed(p) => Some(p.clone()),
                    Weights::Tensor(_) => None,
                };
                if packed.is_some() && !fast(x) {
                    candle_core::bail!(
                        "conv: packed f32 weights need an f32 CPU input, got {:?}",
                        x.dtype()
                    );
                }
                if fast(x) && self.bias_f32.is_some() {
                    let bias: Arc<[f32]> = match extra {
                        None => self.bias_f32.clone().unwrap_or_else(|| Arc::from([])),
                        Some(e) => {
                            let e = e.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                            if e.len() != b * self.cout && e.len() != self.cout {
                                candle_core::bail!(
                                    "conv channel bias must be [{b}, {}]",
                                    self.cout
                                );
                            }
                            let base = self.bias_f32.as_deref().unwrap_or(&[]);
                            e.iter()
                                .enumerate()
                                .map(|(i, v)| v + base[i % self.cout])
                                .collect()
                        }
                    };
                    let x = x.contiguous()?;
                    match (&self.weight, packed) {
                        (_, Some(packed)) => {
                            let op = PackedConvOp {
                                shape,
                                bias,
                                packed,
                                plan,
                                winograd: self.winograd.clone(),
                            };
                            match residual {
                                Some(r) => x.apply_op2_no_bwd(&r.contiguous()?, &op),
                                None => x.apply_op1_no_bwd(&op),
                            }
                        }
                        (Weights::Tensor(w), None) => {
                            let op = ConvOp { shape, bias };
                            match residual {
                                Some(r) => x.apply_op3_no_bwd(w, &r.contiguous()?, &op),
                                None => x.apply_op2_no_bwd(w, &op),
                            }
                        }
                        (Weights::Packed(_), None) => candle_core::bail!("conv: unreachable"),
                    }
                } else {
                    let Weights::Tensor(w) = &self.weight else {
                        candle_core::bail!("conv: packed weights need an f32 CPU input");
                    };
                    let mut y = x
                        .conv2d(w, self.padding, self.stride, 1, 1)?
                        .broadcast_add(&self.bias.reshape((1, self.cout, 1, 1))?)?;
                    if let Some(e) = extra {
                        let rows = e.elem_count() / self.cout.max(1);
                        y = y.broadcast_add(
                            &e.reshape((rows, self.cout, 1, 1))?.to_dtype(y.dtype())?,
                        )?;
                    }
                    match residual {
                        Some(r) => y + r,
                        None => Ok(y),
                    }
                }
            },
        )
    }
}

struct ConvOp {
    shape: ConvShape,
    bias: Arc<[f32]>,
}

impl ConvOp {
    fn out_shape(&self) -> Shape {
        let s = self.shape;
        (s.batch, s.cout, s.out_h(), s.out_w()).into()
    }
    fn bias(&self) -> Option<&[f32]> {
        (!self.bias.is_empty()).then_some(&self.bias[..])
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "atelier-conv2d"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(xs, xl, "conv input")?;
        let w = slice(ws, wl, "conv weight")?;
        let out = atelier_kernels::conv::conv2d(x, w, self.bias(), None, self.shape);
        Ok((CpuStorage::F32(out), self.out_shape()))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "atelier-conv2d-add"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(xs, xl, "conv input")?;
        let w = slice(ws, wl, "conv weight")?;
        let r = slice(rs, rl, "conv residual")?;
        if r.len() != self.out_shape().elem_count() {
            candle_core::bail!(
                "conv residual has {} elements, output {:?}",
                r.len(),
                self.out_shape()
            );
        }
        let out = atelier_kernels::conv::conv2d(x, w, self.bias(), Some(r), self.shape);
        Ok((CpuStorage::F32(out), self.out_shape()))
    }
}

/// A conv whose weights are packed for the blocked kernels: input (and residual) in, output out.
struct PackedConvOp {
    shape: ConvShape,
    bias: Arc<[f32]>,
    packed: Arc<PackedA>,
    plan: Plan,
    winograd: Option<Arc<WinogradSlot>>,
}

impl PackedConvOp {
    fn run(&self, x: &[f32], r: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let s = self.shape;
        let shape: Shape = (s.batch, s.cout, s.out_h(), s.out_w()).into();
        if x.len() != s.batch * s.cin * s.h * s.w {
            candle_core::bail!("conv input has {} elements, expected {:?}", x.len(), s);
        }
        if r.is_some_and(|r| r.len() != shape.elem_count()) {
            candle_core::bail!("conv residual does not match the output {shape:?}");
        }
        let bias = (!self.bias.is_empty()).then_some(&self.bias[..]);
        let out = match &self.winograd {
            Some(slot) => conv_algo::run(self.plan, slot, x, &self.packed, bias, r, s),
            None => blocked::conv2d(x, &self.packed, bias, r, s),
        };
        Ok((CpuStorage::F32(out), shape))
    }
}

impl CustomOp1 for PackedConvOp {
    fn name(&self) -> &'static str {
        "atelier-conv2d-packed"
    }
    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(slice(xs, xl, "conv input")?, None)
    }
}

impl CustomOp2 for PackedConvOp {
    fn name(&self) -> &'static str {
        "atelier-conv2d-packed-add"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run(
            slice(xs, xl, "conv input")?,
            Some(slice(rs, rl, "conv residual")?),
        )
    }
}

/// A dense layer `x·Wᵀ + b` over the last dimension.
#[derive(Debug, Clone)]
pub struct Linear {
    inner: Option<candle_nn::Linear>,
    weight: Weights<PackedB>,
    bias_f32: Option<Arc<[f32]>>,
    din: usize,
    dout: usize,
}

impl Linear {
    /// Reads `weight` (`[dout, din]`) and, when `bias`, `bias` under `vb`.
    pub fn new(din: usize, dout: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let w = vb.get((dout, din), "weight")?;
        let b = if bias {
            Some(vb.get(dout, "bias")?)
        } else {
            None
        };
        let bias_f32 = match &b {
            Some(b) => f32_vec(b)?,
            None => Some(Arc::from([])),
        };
        let (inner, weight) = match packing(&w) {
            Some(p) => {
                // B = Wᵀ: element (k, n) is W[n][k].
                let packed = with_f32(&w, |v| PackedB::pack(p, v, din, dout, 1, din))?;
                drop(w);
                (None, Weights::Packed(Arc::new(packed)))
            }
            None => (
                Some(candle_nn::Linear::new(w.clone(), b)),
                Weights::Tensor(w),
            ),
        };
        Ok(Self {
            inner,
            weight,
            bias_f32,
            din,
            dout,
        })
    }

    /// `x·Wᵀ + b`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, None)
    }

    /// `x·Wᵀ + b + residual`, the residual added in the same pass.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.run(x, Some(residual))
    }

    fn run(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        let rows = x.elem_count() / self.din.max(1);
        profile::record(
            "linear",
            || format!("{}->{} x{rows}", self.din, self.dout),
            2.0 * (rows * self.din * self.dout) as f64,
            4.0 * (rows * (self.din + self.dout) + self.din * self.dout) as f64,
            || {
                if x.dim(D::Minus1)? != self.din {
                    candle_core::bail!(
                        "linear expects {} input features, got {:?}",
                        self.din,
                        x.dims()
                    );
                }
                let bias = self.bias_f32.clone();
                match (&self.weight, bias) {
                    (Weights::Packed(p), Some(bias)) if fast(x) => {
                        let op = PackedLinearOp {
                            dout: self.dout,
                            bias,
                            packed: p.clone(),
                        };
                        let x = x.contiguous()?;
                        return match residual {
                            Some(r) => x.apply_op2_no_bwd(&r.contiguous()?, &op),
                            None => x.apply_op1_no_bwd(&op),
                        };
                    }
                    (Weights::Tensor(w), Some(bias)) if fast(x) => {
                        let op = LinearOp {
                            din: self.din,
                            dout: self.dout,
                            bias,
                        };
                        let x = x.contiguous()?;
                        return match residual {
                            Some(r) => x.apply_op3_no_bwd(w, &r.contiguous()?, &op),
                            None => x.apply_op2_no_bwd(w, &op),
                        };
                    }
                    _ => {}
                }
                {
                    let Some(inner) = &self.inner else {
                        candle_core::bail!(
                            "linear: packed weights need an f32 CPU input, got {:?}",
                            x.dtype()
                        );
                    };
                    let y = inner.forward(x)?;
                    match residual {
                        Some(r) => y + r,
                        None => Ok(y),
                    }
                }
            },
        )
    }
}

/// A dense layer's output buffer, holding `residual + bias` when either is given (the GEMM
/// then adds onto it; the flag says so).
fn linear_output(
    rows: usize,
    dout: usize,
    bias: &[f32],
    residual: Option<&[f32]>,
) -> Result<(Vec<f32>, bool)> {
    let mut out = vec![0f32; rows * dout];
    if let Some(r) = residual {
        if r.len() != out.len() {
            candle_core::bail!(
                "linear residual has {} elements, output {}",
                r.len(),
                out.len()
            );
        }
        out.copy_from_slice(r);
    }
    if !bias.is_empty() {
        for row in out.chunks_mut(dout) {
            for (o, b) in row.iter_mut().zip(bias) {
                *o += b;
            }
        }
    }
    Ok((out, !bias.is_empty() || residual.is_some()))
}

struct LinearOp {
    din: usize,
    dout: usize,
    bias: Arc<[f32]>,
}

impl LinearOp {
    fn run(
        &self,
        x: &[f32],
        xl: &Layout,
        w: &[f32],
        r: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let rows = x.len() / self.din;
        let (mut out, prefill) = linear_output(rows, self.dout, &self.bias, r)?;
        atelier_kernels::gemm::sgemm(
            rows,
            self.dout,
            self.din,
            MatRef {
                data: x,
                rs: self.din,
                cs: 1,
            },
            MatRef {
                data: w,
                rs: 1,
                cs: self.din,
            },
            &mut out,
            self.dout,
            prefill,
            1.0,
            Par::Pool,
        );
        let mut dims = xl.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.dout;
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// A dense layer whose weights are packed for the blocked kernels.
struct PackedLinearOp {
    dout: usize,
    bias: Arc<[f32]>,
    packed: Arc<PackedB>,
}

impl PackedLinearOp {
    fn run(&self, x: &[f32], xl: &Layout, r: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let din = xl.dims().last().copied().unwrap_or(0);
        let rows = x.len() / din.max(1);
        let (mut out, prefill) = linear_output(rows, self.dout, &self.bias, r)?;
        let a = PackedA::pack(self.packed.precision(), x, rows, din, din, 1);
        blocked::gemm(&a, &self.packed, &mut out, self.dout, prefill);
        let mut dims = xl.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.dout;
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

impl CustomOp1 for PackedLinearOp {
    fn name(&self) -> &'static str {
        "atelier-linear-packed"
    }
    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(slice(xs, xl, "linear input")?, xl, None)
    }
}

impl CustomOp2 for PackedLinearOp {
    fn name(&self) -> &'static str {
        "atelier-linear-packed-add"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run(
            slice(xs, xl, "linear input")?,
            xl,
            Some(slice(rs, rl, "linear residual")?),
        )
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "atelier-linear"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run(
            slice(xs, xl, "linear input")?,
            xl,
            slice(ws, wl, "linear weight")?,
            None,
        )
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "atelier-linear-add"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let r = slice(rs, rl, "linear residual")?;
        self.run(
            slice(xs, xl, "linear input")?,
            xl,
            slice(ws, wl, "linear weight")?,
            Some(r),
        )
    }
}

/// Group normalisation over `[B, C, …]`, optionally followed by SiLU in the same pass.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    inner: candle_nn::GroupNorm,
    gamma: Option<Arc<[f32]>>,
    beta: Option<Arc<[f32]>>,
    groups: usize,
    channels: usize,
    eps: f64,
}

impl GroupNorm {
    /// Reads `weight` and `bias` (`[channels]`) under `vb`.
    pub fn new(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let w = vb.get(channels, "weight")?;
        let b = vb.get(channels, "bias")?;
        Ok(Self {
            gamma: f32_vec(&w)?,
            beta: f32_vec(&b)?,
            inner: candle_nn::GroupNorm::new(w, b, channels, groups, eps)?,
            groups,
            channels,
            eps,
        })
    }

    /// Normalises `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, false)
    }

    /// `silu(norm(x))` in one pass.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, true)
    }

    fn run(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        profile::record(
            if silu {
                "group_norm+silu"
            } else {
                "group_norm"
            },
            || format!("{} {:?}", self.channels, &dims[2.min(dims.len())..]),
            (if silu { 12.0 } else { 7.0 }) * x.elem_count() as f64,
            8.0 * x.elem_count() as f64,
            || {
                if let (true, Some(gamma), Some(beta), true) = (
                    fast(x),
                    &self.gamma,
                    &self.beta,
                    dims.len() >= 2 && dims[1] == self.channels,
                ) {
                    let op = GroupNormOp {
                        gamma: gamma.clone(),
                        beta: beta.clone(),
                        groups: self.groups,
                        channels: self.channels,
                        eps: self.eps as f32,
                        silu,
                    };
                    x.contiguous()?.apply_op1_no_bwd(&op)
                } else {
                    let y = self.inner.forward(x)?;
                    if silu {
                        y.silu()
                    } else {
                        Ok(y)
                    }
                }
            },
        )
    }
}

struct GroupNormOp {
    gamma: Arc<[f32]>,
    beta: Arc<[f32]>,
    groups: usize,
    channels: usize,
    eps: f32,
    silu: bool,
}

impl CustomOp1 for GroupNormOp {
    fn name(&self) -> &'static str {
        "atelier-group-norm"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "group norm input")?;
        let spatial: usize = l.dims()[2..].iter().product();
        let out = atelier_kernels::norm::group_norm(
            x,
            self.channels,
            spatial,
            self.groups,
            &self.gamma,
            &self.beta,
            self.eps,
            self.silu,
        );
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// Layer normalisation over the last dimension, with weight and bias.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    inner: candle_nn::LayerNorm,
    gamma: Option<Arc<[f32]>>,
    beta: Option<Arc<[f32]>>,
    dim: usize,
    eps: f64,
}

impl LayerNorm {
    /// Reads `weight` and `bias` (`[dim]`) under `vb`.
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let w = vb.get(dim, "weight")?;
        let b = vb.get(dim, "bias")?;
        Ok(Self {
            gamma: f32_vec(&w)?,
            beta: f32_vec(&b)?,
            inner: candle_nn::LayerNorm::new(w, b, eps),
            dim,
            eps,
        })
    }

    /// Normalises each row of the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        profile::record(
            "layer_norm",
            || format!("{} x{}", self.dim, x.elem_count() / self.dim.max(1)),
            8.0 * x.elem_count() as f64,
            8.0 * x.elem_count() as f64,
            || match (&self.gamma, &self.beta) {
                (Some(g), Some(b)) if fast(x) && x.dim(D::Minus1)? == self.dim => {
                    let op = LayerNormOp {
                        gamma: g.clone(),
                        beta: b.clone(),
                        dim: self.dim,
                        eps: self.eps as f32,
                    };
                    x.contiguous()?.apply_op1_no_bwd(&op)
                }
                _ => self.inner.forward(x),
            },
        )
    }
}

struct LayerNormOp {
    gamma: Arc<[f32]>,
    beta: Arc<[f32]>,
    dim: usize,
    eps: f32,
}

impl CustomOp1 for LayerNormOp {
    fn name(&self) -> &'static str {
        "atelier-layer-norm"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "layer norm input")?;
        let out =
            atelier_kernels::norm::layer_norm(x, self.dim, &self.gamma, Some(&self.beta), self.eps);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// Multi-head scaled dot-product attention on `[B, L, H·D]` tensors; `causal` lets query `i`
/// see keys `0..=i` only (CLIP's text mask).
///
/// Scores are computed in f32 for half-precision inputs (as diffusers' `upcast_softmax`) so
/// long sequences do not overflow.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, causal: bool) -> Result<Tensor> {
    let (b, lq, c) = q.dims3()?;
    let lk = k.dim(1)?;
    let d = c / heads.max(1);
    let shape = AttnShape {
        batch: b,
        lq,
        lk,
        heads,
        head_dim: d,
    };
    profile::record(
        "attention",
        || format!("{lq}x{lk} {heads}x{d} b{b}"),
        shape.flops(),
        4.0 * (2 * q.elem_count() + 2 * k.elem_count()) as f64,
        || {
            if fast(q)
                && fast(k)
                && fast(v)
                && heads * d == c
                && k.dims3()? == (b, lk, c)
                && v.dims3()? == (b, lk, c)
            {
                let op = AttentionOp {
                    shape,
                    scale: 1.0 / (d as f32).sqrt(),
                    causal,
                };
                return q
                    .contiguous()?
                    .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op);
            }
            let split =
                |t: &Tensor, l: usize| t.reshape((b, l, heads, d))?.transpose(1, 2)?.contiguous();
            let (q, k, v) = (split(q, lq)?, split(k, lk)?, split(v, lk)?);
            let in_dtype = q.dtype();
            let scale = 1.0 / (d as f64).sqrt();
            let (q, k) = if in_dtype == DType::F32 {
                (q, k)
            } else {
                (q.to_dtype(DType::F32)?, k.to_dtype(DType::F32)?)
            };
            let mut scores = (q * scale)?.matmul(&k.t()?)?;
            if causal {
                let mask: Vec<f32> = (0..lq)
                    .flat_map(|i| (0..lk).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
                    .collect();
                let mask = Tensor::from_vec(mask, (1, 1, lq, lk), scores.device())?;
                scores = scores.broadcast_add(&mask)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(in_dtype)?;
            probs.matmul(&v)?.transpose(1, 2)?.reshape((b, lq, c))
        },
    )
}

struct AttentionOp {
    shape: AttnShape,
    scale: f32,
    causal: bool,
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "atelier-attention"
    }
    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = atelier_kernels::attention::attention(
            slice(qs, ql, "query")?,
            slice(ks, kl, "key")?,
            slice(vs, vl, "value")?,
            self.shape,
            self.scale,
            self.causal,
        );
        Ok((CpuStorage::F32(out), ql.shape().clone()))
    }
}

/// GEGLU: the first half of the last dimension times the exact-erf GELU of the second half.
pub fn geglu(h: &Tensor) -> Result<Tensor> {
    let last = h.dim(D::Minus1)?;
    let half = last / 2;
    profile::record(
        "geglu",
        || format!("{half} x{}", h.elem_count() / last.max(1)),
        20.0 * (h.elem_count() / 2) as f64,
        6.0 * h.elem_count() as f64,
        || {
            if fast(h) && last % 2 == 0 {
                return h.contiguous()?.apply_op1_no_bwd(&GegluOp { half });
            }
            let value = h.narrow(D::Minus1, 0, half)?;
            let gate = h.narrow(D::Minus1, half, half)?.gelu_erf()?;
            value * gate
        },
    )
}

struct GegluOp {
    half: usize,
}

impl CustomOp1 for GegluOp {
    fn name(&self) -> &'static str {
        "atelier-geglu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "geglu input")?;
        let out = atelier_kernels::simd::geglu(x, self.half);
        let mut dims = l.dims().to_vec();
        if let Some(d) = dims.last_mut() {
            *d = self.half;
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// Nearest-neighbour upsampling of `[B, C, H, W]` to `th` x `tw` (PyTorch's index rule).
pub fn upsample_nearest(x: &Tensor, th: usize, tw: usize) -> Result<Tensor> {
    let (b, c, _, _) = x.dims4()?;
    elementwise("upsample", b * c * th * tw, || {
        if fast(x) {
            x.contiguous()?.apply_op1_no_bwd(&UpsampleOp { th, tw })
        } else {
            x.upsample_nearest2d(th, tw)
        }
    })
}

struct UpsampleOp {
    th: usize,
    tw: usize,
}

impl CustomOp1 for UpsampleOp {
    fn name(&self) -> &'static str {
        "atelier-upsample-nearest"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "upsample input")?;
        let (b, c, h, w) = l.shape().dims4()?;
        let out = atelier_kernels::conv::upsample_nearest(x, b * c, h, w, self.th, self.tw);
        Ok((CpuStorage::F32(out), (b, c, self.th, self.tw).into()))
    }
}

/// Records an element-wise step (residual adds, activations, reshapes that copy) for the
/// profile; `elems` is the output size.
pub fn elementwise(
    name: &'static str,
    elems: usize,
    f: impl FnOnce() -> Result<Tensor>,
) -> Result<Tensor> {
    profile::record(
        "elementwise",
        || name.to_string(),
        elems as f64,
        8.0 * elems as f64,
        f,
    )
}

#[cfg(test)]
mod tests {
    //! The kernels' path (f32 on the CPU) against candle's own ops run in f64 on the same
    //! weights: `rel = max|fast - reference| / max|reference|` must stay under 1e-5, ten times
    //! below the fixtures' 1e-4 stage tolerance (f32 rounding alone gives ~1e-6 here).

    use std::collections::HashMap;

    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarBuilder;

    use super::*;

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n as u64)
            .map(|i| {
                let x = (i
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(seed.wrapping_mul(1_442_695_040_888_963_407)))
                    >> 40;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The same weights as two builders: f32 (kernels) and f64 (candle's ops).
    fn builders(ws: &[(&str, &[usize])]) -> (VarBuilder<'static>, VarBuilder<'static>) {
        let map: HashMap<String, Tensor> = ws
            .iter()
            .enumerate()
            .map(|(i, (n, s))| (n.to_string(), rand(s, 100 + i as u64)))
            .collect();
        (
            VarBuilder::from_tensors(map.clone(), DType::F32, &Device::Cpu),
            VarBuilder::from_tensors(map, DType::F64, &Device::Cpu),
        )
    }

    fn rel(fast: &Tensor, reference: &Tensor) -> f64 {
        let a = fast
            .to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>());
        let b = reference.flatten_all().and_then(|t| t.to_vec1::<f64>());
        let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
        assert_eq!(a.len(), b.len(), "shapes differ");
        assert!(!a.is_empty());
        let max_ref = b.iter().fold(0f64, |m, v| m.max(v.abs()));
        let max_diff = a
            .iter()
            .zip(&b)
            .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
        max_diff / max_ref.max(1e-30)
    }

    fn check(
        what: &str,
        fast: candle_core::Result<Tensor>,
        reference: candle_core::Result<Tensor>,
    ) {
        let (f, r) = match (fast, reference) {
            (Ok(f), Ok(r)) => (f, r),
            (f, r) => panic!("{what}: {:?} / {:?}", f.err(), r.err()),
        };
        assert_eq!(f.dims(), r.dims(), "{what}");
        let e = rel(&f, &r);
        assert!(e < 1e-5, "{what}: rel {e}");
    }

    #[test]
    fn convolutions_match_candle() {
        for (k, pad, stride, cin, cout) in [
            (3, 1, 1, 5, 7),
            (3, 1, 2, 4, 4),
            (1, 0, 1, 6, 3),
            (3, 0, 2, 3, 2),
        ] {
            let (v32, v64) = builders(&[("weight", &[cout, cin, k, k]), ("bias", &[cout])]);
            let (c32, c64) = match (
                Conv2d::new(cin, cout, k, pad, stride, v32),
                Conv2d::new(cin, cout, k, pad, stride, v64),
            ) {
                (Ok(a), Ok(b)) => (a, b),
                _ => panic!("build"),
            };
            let x = rand(&[2, cin, 9, 11], 1);
            let x64 = x.to_dtype(DType::F64).unwrap_or_else(|e| panic!("{e}"));
            check("conv", c32.forward(&x), c64.forward(&x64));
            let y = c64.forward(&x64).unwrap_or_else(|e| panic!("{e}"));
            let r = rand(y.dims(), 2);
            let r64 = r.to_dtype(DType::F64).unwrap_or_else(|e| panic!("{e}"));
            check(
                "conv+residual",
                c32.forward_add(&x, &r),
                c64.forward_add(&x64, &r64),
            );
            let e = rand(&[2, cout], 3);
            let e64 = e.to_dtype(DType::F64).unwrap_or_else(|e| panic!("{e}"));
            check(
                "conv+channel bias",
                c32.forward_channel_bias(&x, &e),
                c64.forward_channel_bias(&x64, &e64),
            );
        }
    }

    #[test]
    fn dense_and_norm_layers_match_candle() {
        let (v32, v64) = builders(&[("weight", &[6, 10]), ("bias", &[6])]);
        let (l32, l64) = match (Linear::new(10, 6, true, v32), Linear::new(10, 6, true, v64)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => panic!("build"),
        };
        let x = rand(&[2, 7, 10], 4);
        let x64 = x.to_dtype(DType::F64).unwrap_or_else(|e| panic!("{e}"));
        check("linear", l32.forward(&x), l64.forward(&x64));
        let r = rand(&[2, 7, 6], 5);
        let r64 = r.to_dtype(DType::F64).unwrap_or_else(|e| panic!("{e}"));
        check(
            "linear+residual",
            l32.forward_add(&x, &r),
            l64.forward_add(&x64, &r64),
        );

        let (v32, v64) = builders(&[("weight", &[8]), ("bias", &[8])]);
        let (g32, g64) = match (
            GroupNorm::new(4, 8, 1e-6, v32.clone()),
            GroupNorm::new(4, 8, 1e-6, v64.clone()),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            _ => panic!("build"),
        };
        let x = rand(&[2, 8, 5, 3], 6);
        let x64 = x.to_dtype(DType::F64).unwrap_or_else(|e| panic!("{e}"));
        check("group norm", g32.forward(&x), g64.forward(&x64));
        check(
            "group norm+silu",
            g32.forward_silu(&x),
            g64.forward_silu(&x64),
        );
        // candle's fused layer norm has no f64 kernel: the reference is spelled out.
        let n32 = LayerNorm::new(8, 1e-5, v32).unwrap_or_else(|e| panic!("{e}"));
        let to64 = |t: Tensor| t.to_dtype(DType::F64).unwrap_or_else(|e| panic!("{e}"));
        let (w, b) = (to64(rand(&[8], 100)), to64(rand(&[8], 101)));
        let x = rand(&[3, 4, 8], 7);
        let x64 = x.to_dtype(DType::F64).unwrap_or_else(|e| panic!("{e}"));
        let reference = (|| {
            let mean = x64.mean_keepdim(D::Minus1)?;
            let d = x64.broadcast_sub(&mean)?;
            let var = d.sqr()?.mean_keepdim(D::Minus1)?;
            d.broadcast_div(&(var + 1e-5)?.sqrt()?)?
                .broadcast_mul(&w)?
                .broadcast_add(&b)
        })();
        check("layer norm", n32.forward(&x), reference);
        let h = rand(&[2, 3, 12], 8);
        let h64 = h.to_dtype(DType::F64).unwrap_or_else(|e| panic!("{e}"));
        check("geglu", geglu(&h), geglu(&h64));
    }

    #[test]
    fn upsampling_matches_candle() {
        let x = rand(&[2, 3, 5, 7], 12);
        let x64 = x.to_dtype(DType::F64).unwrap_or_else(|e| panic!("{e}"));
        check(
            "upsample x2",
            upsample_nearest(&x, 10, 14),
            upsample_nearest(&x64, 10, 14),
        );
        check(
            "upsample odd",
            upsample_nearest(&x, 8, 9),
            upsample_nearest(&x64, 8, 9),
        );
    }

    #[test]
    fn attention_matches_candle() {
        for (lq, lk, heads, causal) in [(70, 70, 3, true), (90, 13, 2, false), (5, 5, 1, false)] {
            let (q, k, v) = (
                rand(&[2, lq, heads * 8], 9),
                rand(&[2, lk, heads * 8], 10),
                rand(&[2, lk, heads * 8], 11),
            );
            let to64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap_or_else(|e| panic!("{e}"));
            check(
                "attention",
                attention(&q, &k, &v, heads, causal),
                attention(&to64(&q), &to64(&k), &to64(&v), heads, causal),
            );
        }
    }
}
