//! Thumbnails: the longest side scaled to 256 px and 768 px (never upscaled, aspect kept),
//! encoded as JPEG. Pure Rust: `image` decodes (png/jpeg/gif/webp only), `fast_image_resize`
//! scales and `jpeg-encoder` encodes, both with SIMD chosen at run time (AVX2, SSE4.1).
//!
//! Speed (docs/BENCHMARKS.md): the 768 px image is made from the original with a box filter
//! (area averaging: every source pixel counts, no aliasing on large reductions), and the
//! 256 px one from the 768 px image.

use std::io::Cursor;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageReader, RgbImage};

/// Thumbnail sizes (longest side, px).
pub const SIZES: [u32; 2] = [256, 768];
/// JPEG quality.
pub const JPEG_QUALITY: u8 = 82;
/// Largest source accepted (pixels), so a decompression bomb cannot eat the worker's memory.
pub const MAX_SOURCE_PIXELS: u64 = 100_000_000;

/// MIME type of the thumbnails.
pub const MIME: &str = "image/jpeg";

/// One encoded thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// Longest side asked for.
    pub size: u32,
    /// Actual width.
    pub width: u32,
    /// Actual height.
    pub height: u32,
    /// JPEG bytes.
    pub jpeg: Vec<u8>,
}

/// Why thumbnails could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// Not a decodable image (or too large).
    #[error("cannot decode the image: {0}")]
    Decode(String),
    /// Encoding failed.
    #[error("cannot encode the thumbnail: {0}")]
    Encode(String),
}

/// Dimensions of `(w, h)` fitted into `size` × `size`, never larger than the original.
pub fn fit(w: u32, h: u32, size: u32) -> (u32, u32) {
    if w <= size && h <= size {
        return (w.max(1), h.max(1));
    }
    let scale = f64::from(size) / f64::from(w.max(h));
    let sw = (f64::from(w) * scale).round().clamp(1.0, f64::from(size)) as u32;
    let sh = (f64::from(h) * scale).round().clamp(1.0, f64::from(size)) as u32;
    (sw, sh)
}

/// Decodes `bytes` (png, jpeg, gif, webp) and makes both thumbnails, smallest first.
pub fn make(bytes: &[u8]) -> Result<Vec<Thumbnail>, ThumbnailError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ThumbnailError::Decode(e.to_string()))?;
    let (w, h) = reader.into_dimensions().map_err(|e| ThumbnailError::Decode(e.to_string()))?;
    if u64::from(w) * u64::from(h) > MAX_SOURCE_PIXELS {
        return Err(ThumbnailError::Decode(format!("{w}×{h} is larger than {MAX_SOURCE_PIXELS} pixels")));
    }
    let image = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ThumbnailError::Decode(e.to_string()))?
        .decode()
        .map_err(|e| ThumbnailError::Decode(e.to_string()))?;
    from_image(image)
}

/// Both thumbnails of a decoded image, smallest first.
pub fn from_image(image: DynamicImage) -> Result<Vec<Thumbnail>, ThumbnailError> {
    // JPEG has no alpha: flatten to RGB8 once (alpha dropped; free when it already is RGB8).
    let rgb = image.into_rgb8();
    let (w, h) = rgb.dimensions();
    let mut resizer = Resizer::new();
    let (lw, lh) = fit(w, h, SIZES[1]);
    let large = if (lw, lh) == (w, h) { rgb } else { scale(&mut resizer, &rgb, lw, lh)? };
    let (sw, sh) = fit(w, h, SIZES[0]);
    let small = if (sw, sh) == large.dimensions() { large.clone() } else { scale(&mut resizer, &large, sw, sh)? };
    Ok(vec![encode(SIZES[0], &small)?, encode(SIZES[1], &large)?])
}

/// Area-averaging downscale of an RGB8 image.
fn scale(resizer: &mut Resizer, src: &RgbImage, w: u32, h: u32) -> Result<RgbImage, ThumbnailError> {
    let failed = |e: &dyn std::fmt::Display| ThumbnailError::Encode(format!("cannot scale the image: {e}"));
    let source = fast_image_resize::images::ImageRef::new(src.width(), src.height(), src.as_raw(), PixelType::U8x3)
        .map_err(|e| failed(&e))?;
    let mut target = Image::new(w, h, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    resizer.resize(&source, &mut target, &options).map_err(|e| failed(&e))?;
    RgbImage::from_raw(w, h, target.into_vec()).ok_or_else(|| failed(&"the scaled buffer has the wrong size"))
}

fn encode(size: u32, image: &RgbImage) -> Result<Thumbnail, ThumbnailError> {
    let (w, h) = image.dimensions();
    let (w16, h16) = match (u16::try_from(w), u16::try_from(h)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => return Err(ThumbnailError::Encode(format!("{w}×{h} is too large for JPEG"))),
    };
    let mut jpeg = Vec::with_capacity(64 * 1024);
    jpeg_encoder::Encoder::new(&mut jpeg, JPEG_QUALITY)
        .encode(image.as_raw(), w16, h16, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| ThumbnailError::Encode(e.to_string()))?;
    Ok(Thumbnail { size, width: w, height: h, jpeg })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_without_upscaling() {
        assert_eq!(fit(2048, 2048, 256), (256, 256));
        assert_eq!(fit(2048, 1024, 768), (768, 384));
        assert_eq!(fit(1000, 3000, 256), (85, 256));
        assert_eq!(fit(100, 50, 768), (100, 50));
        assert_eq!(fit(5000, 1, 256), (256, 1));
    }

    #[test]
    fn makes_both_sizes() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(1200, 600, |x, y| {
            image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255])
        }));
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let thumbs = make(&png).unwrap();
        assert_eq!((thumbs[0].width, thumbs[0].height), (256, 128));
        assert_eq!((thumbs[1].width, thumbs[1].height), (768, 384));
        for t in &thumbs {
            let back = image::load_from_memory(&t.jpeg).unwrap();
            assert_eq!((back.width(), back.height()), (t.width, t.height));
        }
        assert!(make(b"not an image").is_err());
    }

    #[test]
    fn keeps_colours_and_averages_areas() {
        // Left half orange, right half teal: channel order and area averaging both show.
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(1536, 1536, |x, _| {
            if x < 768 { image::Rgb([230, 120, 20]) } else { image::Rgb([20, 150, 160]) }
        }));
        let thumbs = from_image(img).unwrap();
        for t in &thumbs {
            let back = image::load_from_memory(&t.jpeg).unwrap().into_rgb8();
            let near = |p: &image::Rgb<u8>, want: [u8; 3]| p.0.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 8);
            let (w, h) = back.dimensions();
            assert!(
                near(back.get_pixel(w / 8, h / 2), [230, 120, 20]),
                "{}: {:?}",
                t.size,
                back.get_pixel(w / 8, h / 2)
            );
            assert!(near(back.get_pixel(w - w / 8, h / 2), [20, 150, 160]), "{}", t.size);
        }
    }
}
