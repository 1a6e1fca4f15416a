//! Cheap previews: a fixed linear map from the 4 latent channels to RGB, no extra model.
//!
//! The factors are the widely used least-squares fits of SD latents to their decoded colours;
//! they give a blurry but recognisable thumbnail at latent resolution for free.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::image::RgbImage;
use crate::model::Family;

const SD_FACTORS: [[f32; 3]; 4] = [
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
];
const SDXL_FACTORS: [[f32; 3]; 4] = [
    [0.3651, 0.4232, 0.4341],
    [-0.2533, -0.0042, 0.1068],
    [0.1076, 0.1111, -0.0362],
    [-0.3165, -0.2492, -0.2188],
];
const SDXL_BIAS: [f32; 3] = [0.1084, -0.0175, -0.0011];

/// Projects one latent `[4, h, w]` to an RGB image of the same size.
pub fn latent_preview(latent: &Tensor, family: Family) -> Result<RgbImage> {
    let (c, h, w) = latent.dims3()?;
    let (factors, bias) = match family {
        Family::Sdxl => (SDXL_FACTORS, SDXL_BIAS),
        _ => (SD_FACTORS, [0.0; 3]),
    };
    let flat: Vec<f32> = factors.iter().flatten().copied().collect();
    let m = Tensor::from_vec(flat, (4, 3), &Device::Cpu)?;
    let lat = latent.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    // Models with other latent widths get a preview of their first 4 channels.
    let lat = lat.narrow(0, 0, c.min(4))?;
    let m = m.narrow(0, 0, c.min(4))?;
    let rgb = lat
        .reshape((c.min(4), h * w))?
        .t()?
        .matmul(&m)?
        .broadcast_add(&Tensor::new(&bias, &Device::Cpu)?)?
        .t()?
        .reshape((3, h, w))?;
    RgbImage::from_tensor(&rgb)
}
