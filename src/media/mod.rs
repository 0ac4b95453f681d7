//! What an uploaded file is, and how an image is made safe to keep: decoded under limits,
//! turned upright by its EXIF orientation, re-encoded without any metadata (no EXIF, GPS,
//! camera serials, maker notes, ICC or XMP), and given a small JPEG thumbnail.
//!
//! Pure and blocking: the caller runs it on a blocking thread. Nothing here panics on a
//! hostile file; every failure is a [`MediaError`].

use std::io::{BufRead, Cursor, Read, Seek};

use image::{
    ColorType, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, codecs::jpeg::JpegEncoder,
    metadata::Orientation,
};

/// The kinds of file accepted, decided by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Jpeg,
    Png,
    Webp,
    Pdf,
}

impl MediaType {
    pub const ALL: [MediaType; 4] = [MediaType::Jpeg, MediaType::Png, MediaType::Webp, MediaType::Pdf];

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Pdf => "application/pdf",
        }
    }

    pub fn from_mime(mime: &str) -> Option<Self> {
        let essence = mime.split(';').next().unwrap_or_default().trim();
        Self::ALL.into_iter().find(|t| t.mime().eq_ignore_ascii_case(essence))
    }

    /// The file name extension a download is offered under.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Pdf => "pdf",
        }
    }

    pub fn is_image(self) -> bool {
        self != Self::Pdf
    }

    /// The type the file's magic bytes say it is, whatever its sender claimed.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else if head.starts_with(b"%PDF-") {
            Some(Self::Pdf)
        } else {
            None
        }
    }

    fn image_format(self) -> Option<ImageFormat> {
        match self {
            Self::Jpeg => Some(ImageFormat::Jpeg),
            Self::Png => Some(ImageFormat::Png),
            Self::Webp => Some(ImageFormat::WebP),
            Self::Pdf => None,
        }
    }
}

/// How much an image may cost to decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Width × height.
    pub max_pixels: u64,
    /// Memory making the image safe may hold at once: the decoder's own, and the pixels with
    /// the copies made of them (see `peak_bytes`).
    pub max_alloc: u64,
}

/// Long side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;
const JPEG_QUALITY: u8 = 85;
const THUMBNAIL_QUALITY: u8 = 75;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Larger than the limits: too many pixels, or more memory than allowed (a decompression bomb).
    #[error("the image is {width}×{height} pixels or needs more memory to decode than allowed")]
    TooLarge { width: u32, height: u32 },
    /// Not a readable image of its type: truncated, corrupt, or not an image at all.
    #[error("the file is not a readable image: {0}")]
    Unreadable(String),
    /// Ours (encoding what we decoded failed).
    #[error("re-encoding the image failed")]
    Encode(#[source] ImageError),
}

/// An image made safe to keep, and its thumbnail.
#[derive(Debug)]
pub struct Processed {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub thumbnail: Vec<u8>,
}

/// Decodes `source` as `kind` under `limits`, turns it upright, re-encodes it in the same format
/// without metadata and makes its thumbnail.
pub fn process_image(
    source: impl BufRead + Seek,
    kind: MediaType,
    limits: DecodeLimits,
) -> Result<Processed, MediaError> {
    let format = kind.image_format().ok_or_else(|| MediaError::Unreadable("not an image type".into()))?;
    let mut source = source;
    // A PNG says its size in its first bytes. Read here, it is named even when it is past what
    // the decoder would read a header for (2147483647×1 needs a 6 GB row; 4000000000×4000000000
    // is not even a valid PNG), where the decoder could only say "too large" or "corrupt".
    if kind == MediaType::Png
        && let Some((width, height)) = declared_png_size(&mut source)?
        && u64::from(width) * u64::from(height) > limits.max_pixels
    {
        return Err(MediaError::TooLarge { width, height });
    }
    let mut decode_limits = Limits::default();
    decode_limits.max_alloc = Some(limits.max_alloc);
    // The size the header declares, read before any pixel: the refusal of an absurd one says
    // what was declared (the decoder's own side limits below would refuse it without saying).
    let (width, height) = {
        let mut header = ImageReader::with_format(&mut source, format);
        header.limits(decode_limits.clone());
        header.into_dimensions().map_err(|e| classify(e, 0, 0))?
    };
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(MediaError::TooLarge { width, height });
    }
    source.rewind().map_err(|e| MediaError::Unreadable(e.to_string()))?;
    let mut reader = ImageReader::with_format(source, format);
    // Neither side may exceed the pixel budget on its own (a 1×50M strip is a bomb too).
    let side = u32::try_from(limits.max_pixels).unwrap_or(u32::MAX);
    decode_limits.max_image_width = Some(side);
    decode_limits.max_image_height = Some(side);
    reader.limits(decode_limits);
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, width, height))?;
    // A missing or unreadable orientation means upright: the pixels are still a picture.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    // The decoder's limits bound its own working memory; the pixels it hands back, and the
    // copies made of them, are ours to bound.
    let peak = peak_bytes(decoder.total_bytes(), decoder.color_type(), kind, orientation);
    if peak > limits.max_alloc {
        return Err(MediaError::TooLarge { width, height });
    }
    if width == 0 || height == 0 {
        return Err(MediaError::Unreadable("the image has no pixels".into()));
    }
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, width, height))?;
    image.apply_orientation(orientation);
    let bytes = encode(&image, kind)?;
    // `thumbnail` would also enlarge a small picture; one that fits already is kept as it is.
    let thumbnail = if image.width().max(image.height()) > THUMBNAIL_SIDE {
        encode_jpeg(&image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE), THUMBNAIL_QUALITY)?
    } else {
        encode_jpeg(&image, THUMBNAIL_QUALITY)?
    };
    Ok(Processed { bytes, width: image.width(), height: image.height(), thumbnail })
}

/// The width and height in a PNG's IHDR (bytes 16..24), when the file is long enough to have
/// one; `source` is left at its start.
fn declared_png_size(source: &mut (impl Read + Seek)) -> Result<Option<(u32, u32)>, MediaError> {
    let mut head = [0u8; 24];
    let read = source.read_exact(&mut head);
    source.rewind().map_err(|e| MediaError::Unreadable(e.to_string()))?;
    if read.is_err() || &head[12..16] != b"IHDR" {
        return Ok(None);
    }
    let side = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    Ok(Some((side(16), side(20))))
}

/// The most memory making the image safe holds at once: its decoded pixels (`decoded`, which
/// counts every byte of a sample: 16-bit samples take two), plus the largest full-size copy made
/// of them while they are held: a quarter-turned image is a new buffer, the JPEG and WebP
/// encoders are handed an 8-bit RGB(A) copy, and the PNG encoder copies 16-bit samples to
/// reorder their bytes. The re-encoded file is of the order of the file received (bounded by
/// `uploads.max_bytes`) and the thumbnail is small; neither is counted.
fn peak_bytes(decoded: u64, color: ColorType, kind: MediaType, orientation: Orientation) -> u64 {
    let pixels = decoded / u64::from(color.bytes_per_pixel().max(1));
    let turned = match orientation {
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH => {
            decoded
        }
        _ => 0,
    };
    let for_encoder = match kind {
        MediaType::Jpeg => pixels.saturating_mul(3),
        MediaType::Webp => pixels.saturating_mul(if color.has_alpha() { 4 } else { 3 }),
        MediaType::Png if color.bytes_per_pixel() > color.channel_count() => decoded,
        MediaType::Png | MediaType::Pdf => 0,
    };
    decoded.saturating_add(turned.max(for_encoder))
}

fn classify(err: ImageError, width: u32, height: u32) -> MediaError {
    match err {
        ImageError::Limits(_) => MediaError::TooLarge { width, height },
        other => MediaError::Unreadable(other.to_string()),
    }
}

/// The image in `kind`'s format. The encoders write pixels only: no EXIF, ICC or XMP is carried
/// over, because none is ever handed to them.
fn encode(image: &DynamicImage, kind: MediaType) -> Result<Vec<u8>, MediaError> {
    match kind {
        MediaType::Jpeg => encode_jpeg(image, JPEG_QUALITY),
        MediaType::Png => {
            let mut out = Cursor::new(Vec::new());
            image.write_to(&mut out, ImageFormat::Png).map_err(MediaError::Encode)?;
            Ok(out.into_inner())
        }
        MediaType::Webp => {
            // The WebP encoder takes 8-bit RGB(A) only (and writes lossless).
            let eight_bit =
                if image.color().has_alpha() { image.to_rgba8().into() } else { DynamicImage::from(image.to_rgb8()) };
            let mut out = Cursor::new(Vec::new());
            eight_bit.write_to(&mut out, ImageFormat::WebP).map_err(MediaError::Encode)?;
            Ok(out.into_inner())
        }
        MediaType::Pdf => Err(MediaError::Unreadable("not an image type".into())),
    }
}

fn encode_jpeg(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, MediaError> {
    // JPEG has no alpha and no 16-bit samples.
    let rgb = DynamicImage::from(image.to_rgb8());
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality).encode_image(&rgb).map_err(MediaError::Encode)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide() {
        assert_eq!(MediaType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(MediaType::Jpeg));
        assert_eq!(MediaType::sniff(b"\x89PNG\r\n\x1a\nrest"), Some(MediaType::Png));
        assert_eq!(MediaType::sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Some(MediaType::Webp));
        assert_eq!(MediaType::sniff(b"%PDF-1.7\n"), Some(MediaType::Pdf));
        assert_eq!(MediaType::sniff(b"GIF89a"), None);
        assert_eq!(MediaType::sniff(b"RIFF\x10\0\0\0WAVE"), None);
        assert_eq!(MediaType::sniff(b""), None);
        assert_eq!(MediaType::from_mime("image/JPEG; charset=x"), Some(MediaType::Jpeg));
        assert_eq!(MediaType::from_mime("image/gif"), None);
    }

    #[test]
    fn a_rotated_image_comes_out_upright_and_small_thumbnails_keep_the_aspect() {
        let image = DynamicImage::new_rgb8(800, 400);
        let bytes = encode(&image, MediaType::Png).expect("encodes");
        let limits = DecodeLimits { max_pixels: 50_000_000, max_alloc: 512 << 20 };
        let processed = process_image(Cursor::new(bytes), MediaType::Png, limits).expect("processes");
        assert_eq!((processed.width, processed.height), (800, 400));
        let thumb = image::load_from_memory(&processed.thumbnail).expect("thumbnail decodes");
        assert_eq!((thumb.width(), thumb.height()), (320, 160));
    }

    #[test]
    fn an_absurd_declared_size_is_refused_as_declared() {
        let mut bytes = encode(&DynamicImage::new_rgb8(4, 4), MediaType::Png).expect("encodes");
        // IHDR: width at 16..20; its CRC (over type and data, 12..29) at 29..33.
        // Past the decoder's side limit (50 M), within what its header reading may allocate.
        bytes[16..20].copy_from_slice(&60_000_000u32.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let limits = DecodeLimits { max_pixels: 50_000_000, max_alloc: 512 << 20 };
        let err = process_image(Cursor::new(bytes), MediaType::Png, limits).expect_err("refused");
        assert!(matches!(err, MediaError::TooLarge { width: 60_000_000, height: 4 }), "{err}");
    }

    #[test]
    fn a_size_no_decoder_would_read_is_named_as_declared() {
        let limits = DecodeLimits { max_pixels: 50_000_000, max_alloc: 512 << 20 };
        for (width, height) in [(2_147_483_647, 1), (1, 2_147_483_647), (4_000_000_000, 4_000_000_000)] {
            let mut bytes = encode(&DynamicImage::new_rgb8(4, 4), MediaType::Png).expect("encodes");
            bytes[16..20].copy_from_slice(&u32::to_be_bytes(width));
            bytes[20..24].copy_from_slice(&u32::to_be_bytes(height));
            let crc = crc32fast::hash(&bytes[12..29]);
            bytes[29..33].copy_from_slice(&crc.to_be_bytes());
            let err = process_image(Cursor::new(bytes), MediaType::Png, limits).expect_err("refused");
            assert!(
                matches!(err, MediaError::TooLarge { width: w, height: h } if (w, h) == (width, height)),
                "{width}×{height}: {err}"
            );
        }
    }

    #[test]
    fn sixteen_bit_samples_count_twice_and_so_does_the_copy_their_encoder_makes() {
        // 512×512 RGB: 768 KiB of 8-bit pixels, 1.5 MiB of 16-bit ones, and 3 MiB at the peak
        // of re-encoding those (the PNG encoder reorders 16-bit samples into a copy).
        let limits = DecodeLimits { max_pixels: 50_000_000, max_alloc: 2 << 20 };
        let eight = encode(&DynamicImage::new_rgb8(512, 512), MediaType::Png).expect("encodes");
        process_image(Cursor::new(eight), MediaType::Png, limits).expect("8-bit fits");
        let sixteen = encode(&DynamicImage::new_rgb16(512, 512), MediaType::Png).expect("encodes");
        let err = process_image(Cursor::new(sixteen.clone()), MediaType::Png, limits).expect_err("refused");
        assert!(matches!(err, MediaError::TooLarge { width: 512, height: 512 }), "{err}");
        let enough = DecodeLimits { max_alloc: 3 << 20, ..limits };
        let processed = process_image(Cursor::new(sixteen), MediaType::Png, enough).expect("fits in 3 MiB");
        assert_eq!((processed.width, processed.height), (512, 512));
    }

    #[test]
    fn the_peak_counts_the_largest_copy_made_of_the_pixels() {
        use Orientation::{NoTransforms, Rotate90, Rotate180};
        let mp = 1_000_000;
        assert_eq!(peak_bytes(3 * mp, ColorType::Rgb8, MediaType::Png, NoTransforms), 3 * mp);
        assert_eq!(peak_bytes(3 * mp, ColorType::Rgb8, MediaType::Png, Rotate90), 6 * mp);
        assert_eq!(peak_bytes(3 * mp, ColorType::Rgb8, MediaType::Png, Rotate180), 3 * mp, "turned in place");
        assert_eq!(peak_bytes(6 * mp, ColorType::Rgb16, MediaType::Png, NoTransforms), 12 * mp);
        assert_eq!(peak_bytes(3 * mp, ColorType::Rgb8, MediaType::Jpeg, NoTransforms), 6 * mp);
        assert_eq!(peak_bytes(mp, ColorType::L8, MediaType::Jpeg, Rotate90), 4 * mp, "the RGB copy is larger");
        assert_eq!(peak_bytes(4 * mp, ColorType::Rgba8, MediaType::Webp, NoTransforms), 8 * mp);
    }

    #[test]
    fn too_many_pixels_is_too_large() {
        let bytes = encode(&DynamicImage::new_rgb8(400, 400), MediaType::Png).expect("encodes");
        let limits = DecodeLimits { max_pixels: 100_000, max_alloc: 512 << 20 };
        let err = process_image(Cursor::new(bytes), MediaType::Png, limits).expect_err("refused");
        assert!(matches!(err, MediaError::TooLarge { width: 400, height: 400 }), "{err}");
    }
}
