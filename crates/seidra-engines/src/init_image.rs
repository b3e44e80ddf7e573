//! The starting image of an image-to-image request, decoded once by the worker and resized to
//! the requested output size so that every engine receives the same pixels.

use image::imageops::FilterType;
use image::{ImageReader, RgbImage};

use crate::EngineError;

/// Largest decoded init image accepted, pixels per side (guards against decompression bombs).
const MAX_SIDE: u32 = 8192;

/// An init image: 8-bit RGB at the request's width×height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitImage {
    image: RgbImage,
}

impl InitImage {
    /// Decodes PNG, JPEG, WebP or GIF bytes (alpha dropped) and resizes to `width`×`height`
    /// (Lanczos, aspect ratio not kept: the output size is the request's).
    pub fn decode(bytes: &[u8], width: u32, height: u32) -> Result<Self, EngineError> {
        let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| invalid(format!("cannot read the init image: {e}")))?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        reader.limits(limits);
        let decoded = reader.decode().map_err(|e| invalid(format!("cannot decode the init image: {e}")))?;
        let rgb = decoded.to_rgb8();
        let image = if rgb.dimensions() == (width, height) {
            rgb
        } else {
            image::imageops::resize(&rgb, width, height, FilterType::Lanczos3)
        };
        Ok(Self { image })
    }

    /// An init image from raw RGB pixels (`width * height * 3` bytes).
    pub fn from_rgb(width: u32, height: u32, rgb: Vec<u8>) -> Option<Self> {
        RgbImage::from_raw(width, height, rgb).map(|image| Self { image })
    }

    /// Width, pixels.
    pub fn width(&self) -> u32 {
        self.image.width()
    }

    /// Height, pixels.
    pub fn height(&self) -> u32 {
        self.image.height()
    }

    /// RGB pixels, row by row.
    pub fn rgb(&self) -> &[u8] {
        self.image.as_raw()
    }

    /// RGB pixels resized to `width`×`height` (for previews).
    pub fn resized_rgb(&self, width: u32, height: u32) -> Vec<u8> {
        image::imageops::resize(&self.image, width, height, FilterType::Triangle).into_raw()
    }

    /// The image as PNG (what remote engines upload).
    pub fn png(&self) -> Result<Vec<u8>, EngineError> {
        crate::procedural::render::encode_png(self.rgb(), self.width(), self.height()).map_err(|e| {
            EngineError::Failed {
                code: "engine_error".into(),
                message: format!("cannot encode the init image as PNG: {e}"),
                retryable: false,
            }
        })
    }
}

/// An init image that cannot be used: the job fails without retry.
fn invalid(message: String) -> EngineError {
    EngineError::Failed { code: "invalid_init_image".into(), message, retryable: false }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn decodes_and_resizes() {
        let mut rgb = vec![0u8; 16 * 8 * 3];
        for (i, px) in rgb.chunks_mut(3).enumerate() {
            px[0] = if i % 16 < 8 { 255 } else { 0 };
        }
        let png = crate::procedural::render::encode_png(&rgb, 16, 8).unwrap();
        let init = InitImage::decode(&png, 32, 32).unwrap();
        assert_eq!((init.width(), init.height(), init.rgb().len()), (32, 32, 32 * 32 * 3));
        assert!(init.rgb()[0] > 200, "left half stays red");
        assert!(init.rgb()[31 * 3] < 50, "right half stays black");
        let back = image::load_from_memory(&init.png().unwrap()).unwrap();
        assert_eq!((back.width(), back.height()), (32, 32));
        assert!(
            matches!(InitImage::decode(b"not an image", 8, 8), Err(EngineError::Failed { code, .. }) if code == "invalid_init_image")
        );
    }
}
