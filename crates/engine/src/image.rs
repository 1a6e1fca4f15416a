//! Decoded images and their PNG encoding with the generation parameters embedded.

use candle_core::{DType, Tensor};

use crate::error::{EngineError, Result};

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Converts a `[3, H, W]` tensor in [-1, 1] the way diffusers' `VaeImageProcessor` does:
    /// `round(clamp(x / 2 + 0.5, 0, 1) * 255)` in f32.
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let (c, h, w) = t.dims3()?;
        if c != 3 {
            return Err(EngineError::Encode(format!("expected 3 channels, got {c}")));
        }
        let v = ((t.to_dtype(DType::F32)? / 2.0)? + 0.5)?
            .clamp(0f32, 1f32)?
            .affine(255.0, 0.0)?
            .permute((1, 2, 0))?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let data = v.into_iter().map(|x| x.round_ties_even() as u8).collect();
        Ok(Self {
            width: w,
            height: h,
            data,
        })
    }

    /// Encodes as PNG with tEXt chunks (e.g. `parameters` for the generation settings).
    pub fn to_png(&self, text: &[(&str, String)]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            for (k, v) in text {
                // tEXt is Latin-1 only; anything else (a Korean prompt) goes to iTXt.
                if v.chars().all(|c| (c as u32) < 256) {
                    enc.add_text_chunk((*k).to_owned(), v.clone())
                } else {
                    enc.add_itxt_chunk((*k).to_owned(), v.clone())
                }
                .map_err(|e| EngineError::Encode(e.to_string()))?;
            }
            let mut w = enc
                .write_header()
                .map_err(|e| EngineError::Encode(e.to_string()))?;
            w.write_image_data(&self.data)
                .map_err(|e| EngineError::Encode(e.to_string()))?;
        }
        Ok(out)
    }
}

/// Reads an 8-bit RGB PNG (used by parity to compare against reference PNGs).
pub fn read_png(bytes: &[u8]) -> Result<RgbImage> {
    let dec = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = dec
        .read_info()
        .map_err(|e| EngineError::Encode(e.to_string()))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| EngineError::Encode("PNG too large".into()))?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| EngineError::Encode(e.to_string()))?;
    if info.color_type != png::ColorType::Rgb || info.bit_depth != png::BitDepth::Eight {
        return Err(EngineError::Encode(format!(
            "expected 8-bit RGB PNG, got {:?} {:?}",
            info.color_type, info.bit_depth
        )));
    }
    buf.truncate(info.buffer_size());
    Ok(RgbImage {
        width: info.width as usize,
        height: info.height as usize,
        data: buf,
    })
}
