//! Pictures people upload (avatars, product photos): checked by content, decoded under limits
//! so a decompression bomb is refused unread, and re-encoded so metadata (GPS positions) is
//! dropped.

use std::io::Cursor;

use atelier_platform::PlatformError;

/// Decodes an upload that must be a PNG, JPEG or WebP by its bytes (not its name), at most
/// `max_bytes` long and `max_side` pixels on each side; errors name `field`.
pub fn decode_image(
    bytes: &[u8],
    field: &str,
    max_bytes: usize,
    max_side: u32,
) -> Result<image::DynamicImage, PlatformError> {
    let bad = |m: String| PlatformError::invalid(field, m);
    if bytes.is_empty() {
        return Err(bad("the upload is empty".into()));
    }
    if bytes.len() > max_bytes {
        return Err(bad(format!("must be at most {} MiB", max_bytes >> 20)));
    }
    let format = image::guess_format(bytes)
        .ok()
        .filter(|f| {
            matches!(
                f,
                image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::WebP
            )
        })
        .ok_or_else(|| bad("must be a PNG, JPEG or WebP image".into()))?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| bad(format!("cannot be read as an image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(bad("has no pixels".into()));
    }
    Ok(img)
}

/// Encodes RGBA pixels as PNG.
pub fn encode_png(img: &image::RgbaImage) -> Result<Vec<u8>, PlatformError> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| PlatformError::Corrupt(format!("PNG encoding: {e}")))?;
    Ok(out.into_inner())
}

/// Largest product photo upload.
pub const REFERENCE_MAX_BYTES: usize = 16 << 20;
/// Largest product photo side.
pub const REFERENCE_MAX_SIDE: u32 = 4096;

/// A product photo as stored: the checked upload re-encoded as PNG at its own size.
pub fn reference_from_upload(bytes: &[u8]) -> Result<Vec<u8>, PlatformError> {
    let img = decode_image(bytes, "image", REFERENCE_MAX_BYTES, REFERENCE_MAX_SIDE)?;
    encode_png(&img.to_rgba8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_checked_by_content_and_size() {
        assert!(reference_from_upload(b"").is_err());
        assert!(reference_from_upload(b"GIF89a....").is_err());
        let png = encode_png(&image::RgbaImage::new(3, 2)).unwrap();
        let back = image::load_from_memory(&reference_from_upload(&png).unwrap()).unwrap();
        assert_eq!((back.width(), back.height()), (3, 2));
        // A header that claims a side over the limit is refused before any pixel is decoded.
        let mut big = png.clone();
        big[16..20].copy_from_slice(&5000u32.to_be_bytes());
        match reference_from_upload(&big) {
            Err(PlatformError::InvalidInput { field, .. }) => assert_eq!(field, "image"),
            other => panic!("{other:?}"),
        }
    }
}
