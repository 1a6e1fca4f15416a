//! Animatics: shots with durations, captions, cut or crossfade transitions and a slow pan/zoom,
//! streamed frame by frame into GIF, WebP or MP4 encoders.
//!
//! Nothing holds more than the current shot's pictures and two frames, so memory stays flat however
//! long the animatic runs; encoders write to their output as frames arrive.

use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use image::buffer::ConvertBuffer;
use image::{RgbImage, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::error::ComposeError;
use crate::fonts::{Face, Fonts};
use crate::geom::{Rect, Rgba};
use crate::scene::{label_pill, Op, RasterOptions, Scene, Shape};
use crate::text::{nonblank, Align, TextStyle, VAlign};

/// How a shot begins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Transition {
    /// A hard cut.
    #[default]
    Cut,
    /// A crossfade from the previous shot over `seconds`.
    Crossfade {
        /// Fade length (clamped to half of either shot).
        seconds: f32,
    },
}

/// Where the camera looks: centre (fractions of the picture) and zoom (1 = the whole cover crop).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Framing {
    /// Horizontal centre, 0..1.
    pub x: f32,
    /// Vertical centre, 0..1.
    pub y: f32,
    /// Zoom, 1..4.
    pub zoom: f32,
}

/// A slow pan/zoom from one framing to another over the shot (eased in and out).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Motion {
    /// Framing at the shot's start.
    pub from: Framing,
    /// Framing at its end.
    pub to: Framing,
}

impl Motion {
    /// No movement.
    pub const STILL: Motion = Motion {
        from: Framing {
            x: 0.5,
            y: 0.5,
            zoom: 1.0,
        },
        to: Framing {
            x: 0.5,
            y: 0.5,
            zoom: 1.0,
        },
    };

    /// The default move for shot `i`: alternately a slow push-in, a pan right, a pull-out and a pan
    /// left, so consecutive shots do not all move the same way.
    pub fn default_for(i: usize) -> Motion {
        let f = |x, y, zoom| Framing { x, y, zoom };
        match i % 4 {
            0 => Motion {
                from: f(0.5, 0.5, 1.0),
                to: f(0.5, 0.45, 1.15),
            },
            1 => Motion {
                from: f(0.4, 0.5, 1.12),
                to: f(0.6, 0.5, 1.12),
            },
            2 => Motion {
                from: f(0.5, 0.5, 1.18),
                to: f(0.5, 0.5, 1.02),
            },
            _ => Motion {
                from: f(0.6, 0.5, 1.12),
                to: f(0.4, 0.5, 1.12),
            },
        }
    }
}

/// One shot.
#[derive(Clone, Debug)]
pub struct Shot {
    /// The picture.
    pub image: Arc<RgbaImage>,
    /// Seconds on screen (a crossfade into the next shot overlaps its start).
    pub duration_s: f32,
    /// Lower-third caption.
    pub caption: Option<String>,
    /// How this shot begins.
    pub transition: Transition,
    /// Camera move; `None` uses [`Motion::default_for`].
    pub motion: Option<Motion>,
}

/// A whole animatic.
#[derive(Clone, Debug)]
pub struct Animatic {
    /// Shots in order.
    pub shots: Vec<Shot>,
    /// Output width in pixels (even).
    pub width: u32,
    /// Output height in pixels (even).
    pub height: u32,
    /// Frames per second (24 or 30 are usual; 1 to 60 accepted).
    pub fps: u32,
    /// Visible AI label in the top-right corner (`None` omits it).
    pub label: Option<String>,
}

/// Receives frames in order. Implemented by the GIF, WebP and MP4 writers.
pub trait FrameSink {
    /// Encodes the next frame.
    fn push(&mut self, frame: &RgbImage) -> Result<(), ComposeError>;
    /// Flushes and closes the container.
    fn finish(&mut self) -> Result<(), ComposeError>;
}

/// Output container, chosen by file extension in the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Animated GIF (256 colours per frame, NeuQuant palettes).
    Gif,
    /// Animated WebP (lossy VP8 frames).
    Webp,
    /// MP4 with H.264 (needs the `mp4` feature).
    Mp4,
}

impl Format {
    /// The format for a file name's extension.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "gif" => Some(Format::Gif),
            "webp" => Some(Format::Webp),
            "mp4" => Some(Format::Mp4),
            _ => None,
        }
    }
}

impl Animatic {
    /// Checks sizes, rates and durations; errors name the field.
    pub fn validate(&self) -> Result<(), ComposeError> {
        if self.shots.is_empty() {
            return Err(ComposeError::invalid("shots", "at least one shot"));
        }
        if !(64..=3840).contains(&self.width) || !self.width.is_multiple_of(2) {
            return Err(ComposeError::invalid(
                "width",
                "an even number from 64 to 3840",
            ));
        }
        if !(64..=2160).contains(&self.height) || !self.height.is_multiple_of(2) {
            return Err(ComposeError::invalid(
                "height",
                "an even number from 64 to 2160",
            ));
        }
        if !(1..=60).contains(&self.fps) {
            return Err(ComposeError::invalid("fps", "1 to 60 (24 or 30 are usual)"));
        }
        for (i, s) in self.shots.iter().enumerate() {
            if !(s.duration_s.is_finite() && (0.1..=600.0).contains(&s.duration_s)) {
                return Err(ComposeError::invalid(
                    format!("shots[{i}].duration_s"),
                    "0.1 to 600 seconds",
                ));
            }
            if s.image.width() < 2 || s.image.height() < 2 {
                return Err(ComposeError::invalid(
                    format!("shots[{i}].image"),
                    "at least 2×2 pixels",
                ));
            }
            if let Transition::Crossfade { seconds } = s.transition {
                if !(seconds.is_finite() && seconds >= 0.0) {
                    return Err(ComposeError::invalid(
                        format!("shots[{i}].transition.seconds"),
                        "a non-negative number",
                    ));
                }
            }
            if let Some(m) = s.motion {
                for (name, f) in [("from", m.from), ("to", m.to)] {
                    if !((0.0..=1.0).contains(&f.x)
                        && (0.0..=1.0).contains(&f.y)
                        && (1.0..=4.0).contains(&f.zoom))
                    {
                        return Err(ComposeError::invalid(
                            format!("shots[{i}].motion.{name}"),
                            "x and y within 0..1, zoom within 1..4",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Total frames: the sum of durations at `fps`, rounded.
    pub fn frame_count(&self) -> u64 {
        let total: f64 = self.shots.iter().map(|s| s.duration_s as f64).sum();
        (total * self.fps as f64).round().max(1.0) as u64
    }
}

/// A shot made ready for sampling: picture scaled once, caption drawn once.
struct Prepared {
    source: RgbImage,
    /// Largest window of the output's aspect that fits the (scaled) source, at zoom 1.
    base: (f32, f32),
    motion: Motion,
    caption: Option<Overlay>,
}

/// A transparent layer with the bounding box of its visible pixels.
struct Overlay {
    image: RgbaImage,
    bbox: (u32, u32, u32, u32),
}

fn overlay(image: RgbaImage) -> Option<Overlay> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in image.enumerate_pixels() {
        if p.0[3] > 0 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x + 1);
            y1 = y1.max(y + 1);
        }
    }
    (x0 < x1).then_some(Overlay {
        image,
        bbox: (x0, y0, x1, y1),
    })
}

fn blend_overlay(frame: &mut RgbImage, ov: &Overlay, opacity: f32) {
    let (x0, y0, x1, y1) = ov.bbox;
    for y in y0..y1 {
        for x in x0..x1 {
            let s = ov.image.get_pixel(x, y).0;
            let a = s[3] as f32 / 255.0 * opacity;
            if a <= 0.0 {
                continue;
            }
            let d = frame.get_pixel_mut(x, y);
            for (dc, sc) in d.0.iter_mut().zip(s) {
                *dc = (sc as f32 * a + *dc as f32 * (1.0 - a)).round() as u8;
            }
        }
    }
}

/// Draws a caption as a lower third: white text on a translucent box hugging the lines.
fn caption_layer(
    fonts: &mut Fonts,
    text: &str,
    w: u32,
    h: u32,
) -> Result<Option<Overlay>, ComposeError> {
    let (wf, hf) = (w as f32, h as f32);
    let style = TextStyle {
        face: Face::Sans,
        bold: true,
        max_size: (hf * 0.055).max(10.0),
        min_size: (hf * 0.03).max(8.0),
        line_height: 1.3,
        color: Rgba::WHITE,
        align: Align::Center,
        valign: VAlign::Bottom,
        max_lines: 2,
    };
    let area = Rect::new(wf * 0.1, hf * 0.70, wf * 0.8, hf * 0.22);
    let layout = fonts.layout(text, area, &style);
    if layout.lines.is_empty() {
        return Ok(None);
    }
    let text_w = layout.lines.iter().map(|l| l.width).fold(0.0, f32::max);
    let block = layout.lines.len() as f32 * layout.line_pitch;
    let pad = layout.size * 0.5;
    let bx = Rect::new(
        wf / 2.0 - text_w / 2.0 - pad,
        area.bottom() - block - pad * 0.6,
        text_w + 2.0 * pad,
        block + pad * 1.2,
    );
    let mut scene = Scene::new(wf, hf, Rgba([0, 0, 0, 0]));
    scene.ops.push(Op::Shape(Shape::filled(
        Shape::round_rect(bx, pad * 0.6),
        Rgba([0, 0, 0, 150]),
    )));
    scene.ops.push(Op::Text(layout));
    Ok(overlay(scene.render(fonts, RasterOptions::default())?))
}

/// The AI label as a small pill in the top-right corner.
fn label_layer(
    fonts: &mut Fonts,
    text: &str,
    w: u32,
    h: u32,
) -> Result<Option<Overlay>, ComposeError> {
    let (wf, hf) = (w as f32, h as f32);
    let pill_h = (hf * 0.05).max(16.0);
    let margin = hf * 0.03;
    let mut scene = Scene::new(wf, hf, Rgba([0, 0, 0, 0]));
    scene.ops.extend(label_pill(
        fonts,
        text,
        Rect::new(wf * 0.4, margin, wf * 0.6 - margin, pill_h),
    ));
    Ok(overlay(scene.render(fonts, RasterOptions::default())?))
}

fn prepare(
    fonts: &mut Fonts,
    shot: &Shot,
    index: usize,
    w: u32,
    h: u32,
) -> Result<Prepared, ComposeError> {
    let motion = shot.motion.unwrap_or_else(|| Motion::default_for(index));
    let max_zoom = motion.from.zoom.max(motion.to.zoom);
    let (iw, ih) = (shot.image.width() as f32, shot.image.height() as f32);
    let out_aspect = w as f32 / h as f32;
    // Cover window at zoom 1 in source pixels.
    let (bw, bh) = if iw / ih > out_aspect {
        (ih * out_aspect, ih)
    } else {
        (iw, iw / out_aspect)
    };
    // Scale the source so the tightest window still has about one source pixel per output pixel.
    let scale = ((w as f32 * max_zoom) / bw).min(1.0);
    let source = if scale < 0.95 {
        let tw = ((iw * scale).round() as u32).max(2);
        let th = ((ih * scale).round() as u32).max(2);
        image::imageops::resize(
            shot.image.as_ref(),
            tw,
            th,
            image::imageops::FilterType::CatmullRom,
        )
        .convert()
    } else {
        shot.image.convert()
    };
    let s = source.width() as f32 / iw;
    let caption = match nonblank(shot.caption.as_deref()) {
        Some(text) => caption_layer(fonts, text, w, h)?,
        None => None,
    };
    Ok(Prepared {
        source,
        base: (bw * s, bh * s),
        motion,
        caption,
    })
}

fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Samples the shot at motion progress `t` into `out` (bilinear).
fn sample(p: &Prepared, t: f32, out: &mut RgbImage) {
    let e = smoothstep(t);
    let lerp = |a: f32, b: f32| a + (b - a) * e;
    let zoom = lerp(p.motion.from.zoom, p.motion.to.zoom).max(1.0);
    let (sw, sh) = (p.source.width() as f32, p.source.height() as f32);
    let (ww, wh) = (p.base.0 / zoom, p.base.1 / zoom);
    // Keep the window inside the picture (max/min, not clamp: rounding can make the window a hair
    // wider than the scaled source, and clamp panics when its bounds cross).
    let cx = (lerp(p.motion.from.x, p.motion.to.x) * sw)
        .min(sw - ww / 2.0)
        .max(ww / 2.0);
    let cy = (lerp(p.motion.from.y, p.motion.to.y) * sh)
        .min(sh - wh / 2.0)
        .max(wh / 2.0);
    let (x0, y0) = (cx - ww / 2.0, cy - wh / 2.0);
    let (ow, oh) = out.dimensions();
    let (kx, ky) = (ww / ow as f32, wh / oh as f32);
    let (maxx, maxy) = (p.source.width() - 1, p.source.height() - 1);
    let cols: Vec<(u32, u32, f32)> = (0..ow)
        .map(|x| {
            let sx = (x0 + (x as f32 + 0.5) * kx - 0.5).clamp(0.0, maxx as f32);
            let i = sx.floor() as u32;
            (i, (i + 1).min(maxx), sx - i as f32)
        })
        .collect();
    let src = p.source.as_raw();
    let stride = p.source.width() as usize * 3;
    let dst = out.as_mut();
    for y in 0..oh {
        let sy = (y0 + (y as f32 + 0.5) * ky - 0.5).clamp(0.0, maxy as f32);
        let j = sy.floor() as u32;
        let (j1, fy) = ((j + 1).min(maxy), sy - j as f32);
        let (r0, r1) = (j as usize * stride, j1 as usize * stride);
        let row = &mut dst[y as usize * ow as usize * 3..(y as usize + 1) * ow as usize * 3];
        for (x, &(i, i1, fx)) in cols.iter().enumerate() {
            let (a, b) = (i as usize * 3, i1 as usize * 3);
            for c in 0..3 {
                let top = src[r0 + a + c] as f32 * (1.0 - fx) + src[r0 + b + c] as f32 * fx;
                let bot = src[r1 + a + c] as f32 * (1.0 - fx) + src[r1 + b + c] as f32 * fx;
                row[x * 3 + c] = (top * (1.0 - fy) + bot * fy + 0.5) as u8;
            }
        }
    }
}

/// Renders every frame of `anim` into `sink`, calling `progress(done, total)` as it goes.
pub fn render(
    fonts: &mut Fonts,
    anim: &Animatic,
    sink: &mut dyn FrameSink,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, ComposeError> {
    anim.validate()?;
    let (w, h, fps) = (anim.width, anim.height, anim.fps as f64);
    let total = anim.frame_count();
    // Shot start times in seconds.
    let mut starts = Vec::with_capacity(anim.shots.len());
    let mut t = 0.0f64;
    for s in &anim.shots {
        starts.push(t);
        t += s.duration_s as f64;
    }
    let fade = |i: usize| -> f64 {
        match anim.shots[i].transition {
            Transition::Crossfade { seconds } if i > 0 => {
                let limit = anim.shots[i].duration_s.min(anim.shots[i - 1].duration_s) as f64 / 2.0;
                (seconds as f64).min(limit)
            }
            _ => 0.0,
        }
    };
    let label = match nonblank(anim.label.as_deref()) {
        Some(text) => label_layer(fonts, text, w, h)?,
        None => None,
    };
    let mut current: Option<(usize, Prepared)> = None;
    let mut previous: Option<(usize, Prepared)> = None;
    let mut frame = RgbImage::new(w, h);
    let mut other = RgbImage::new(w, h);
    for n in 0..total {
        let time = (n as f64 + 0.5) / fps;
        let idx = starts.iter().rposition(|&s| s <= time).unwrap_or(0);
        if current.as_ref().map(|(i, _)| *i) != Some(idx) {
            // Keep the outgoing shot only while a crossfade needs it.
            previous = current
                .take()
                .filter(|(i, _)| *i + 1 == idx && fade(idx) > 0.0);
            current = Some((idx, prepare(fonts, &anim.shots[idx], idx, w, h)?));
        }
        let Some((_, cur)) = current.as_ref() else {
            continue;
        };
        let shot = &anim.shots[idx];
        let local = time - starts[idx];
        sample(cur, (local / shot.duration_s as f64) as f32, &mut frame);
        let f = fade(idx);
        let mut mix = 1.0f32;
        if f > 0.0 && local < f {
            if let Some((pi, prev)) = previous.as_ref() {
                // The outgoing shot keeps moving through the fade.
                let pd = anim.shots[*pi].duration_s as f64;
                sample(prev, ((time - starts[*pi]) / (pd + f)) as f32, &mut other);
                mix = (local / f) as f32;
                for (d, s) in frame.as_mut().iter_mut().zip(other.as_raw()) {
                    *d = (*d as f32 * mix + *s as f32 * (1.0 - mix) + 0.5) as u8;
                }
                if let Some(c) = &prev.caption {
                    blend_overlay(&mut frame, c, 1.0 - mix);
                }
            }
        } else {
            previous = None;
        }
        if let Some(c) = &cur.caption {
            blend_overlay(&mut frame, c, mix);
        }
        if let Some(l) = &label {
            blend_overlay(&mut frame, l, 1.0);
        }
        sink.push(&frame)?;
        progress(n + 1, total);
    }
    sink.finish()?;
    Ok(total)
}

/// Per-frame delays in `unit`ths of a second that add up exactly to the frame times.
fn delay(index: u64, fps: u32, unit: u64) -> u64 {
    let at = |i: u64| (i * unit * 2 + fps as u64) / (2 * fps as u64);
    at(index + 1) - at(index)
}

/// Animated GIF writer: one NeuQuant palette per frame (speed 10), looping forever.
pub struct GifSink<W: Write> {
    encoder: Option<gif::Encoder<W>>,
    out: Option<W>,
    fps: u32,
    index: u64,
    size: (u16, u16),
}

impl<W: Write> GifSink<W> {
    /// A GIF of `width`×`height` at `fps`.
    pub fn new(out: W, width: u32, height: u32, fps: u32) -> Result<Self, ComposeError> {
        let size = (
            u16::try_from(width)
                .map_err(|_| ComposeError::invalid("width", "GIF is limited to 65535 pixels"))?,
            u16::try_from(height)
                .map_err(|_| ComposeError::invalid("height", "GIF is limited to 65535 pixels"))?,
        );
        Ok(Self {
            encoder: None,
            out: Some(out),
            fps,
            index: 0,
            size,
        })
    }
}

fn gif_err(e: impl std::fmt::Display) -> ComposeError {
    ComposeError::Encode {
        format: "gif",
        message: e.to_string(),
    }
}

impl<W: Write> FrameSink for GifSink<W> {
    fn push(&mut self, frame: &RgbImage) -> Result<(), ComposeError> {
        if self.encoder.is_none() {
            let out = self.out.take().ok_or_else(|| gif_err("already finished"))?;
            let mut enc = gif::Encoder::new(out, self.size.0, self.size.1, &[]).map_err(gif_err)?;
            enc.set_repeat(gif::Repeat::Infinite).map_err(gif_err)?;
            self.encoder = Some(enc);
        }
        let Some(enc) = self.encoder.as_mut() else {
            return Err(gif_err("not started"));
        };
        let mut f = gif::Frame::from_rgb_speed(self.size.0, self.size.1, frame.as_raw(), 10);
        f.delay = delay(self.index, self.fps, 100) as u16;
        enc.write_frame(&f).map_err(gif_err)?;
        self.index += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ComposeError> {
        // Dropping the encoder writes the trailer.
        if let Some(enc) = self.encoder.take() {
            let mut out = enc.into_inner().map_err(gif_err)?;
            out.flush()?;
        }
        Ok(())
    }
}

/// Animated WebP writer: each frame lossy-encoded by libwebp, muxed into the RIFF container by
/// hand (VP8X + ANIM + one ANMF per frame) and written as it comes.
pub struct WebpSink<W: Write + Seek> {
    out: W,
    fps: u32,
    quality: f32,
    index: u64,
    size: (u32, u32),
    started: bool,
}

fn webp_err(e: impl std::fmt::Display) -> ComposeError {
    ComposeError::Encode {
        format: "webp",
        message: e.to_string(),
    }
}

fn u24(v: u32) -> [u8; 3] {
    [v as u8, (v >> 8) as u8, (v >> 16) as u8]
}

impl<W: Write + Seek> WebpSink<W> {
    /// A WebP animation of `width`×`height` at `fps`, lossy quality 0–100.
    pub fn new(
        out: W,
        width: u32,
        height: u32,
        fps: u32,
        quality: f32,
    ) -> Result<Self, ComposeError> {
        if width > 16383 || height > 16383 {
            return Err(ComposeError::invalid(
                "width",
                "WebP is limited to 16383 pixels",
            ));
        }
        Ok(Self {
            out,
            fps,
            quality: quality.clamp(0.0, 100.0),
            index: 0,
            size: (width, height),
            started: false,
        })
    }

    fn chunk(&mut self, tag: &[u8; 4], payload: &[&[u8]]) -> Result<(), ComposeError> {
        let len: usize = payload.iter().map(|p| p.len()).sum();
        self.out.write_all(tag)?;
        self.out.write_all(&(len as u32).to_le_bytes())?;
        for p in payload {
            self.out.write_all(p)?;
        }
        if len % 2 == 1 {
            self.out.write_all(&[0])?;
        }
        Ok(())
    }

    /// Encodes one frame with libwebp and returns its `VP8 ` chunk (header included).
    fn encode(&self, frame: &RgbImage) -> Result<Vec<u8>, ComposeError> {
        let (w, h) = frame.dimensions();
        let mut ptr: *mut u8 = std::ptr::null_mut();
        // SAFETY: the pointer and stride describe `frame`'s packed RGB buffer, which outlives the
        // call; libwebp allocates the output and we free it with WebPFree after copying.
        let len = unsafe {
            libwebp_sys::WebPEncodeRGB(
                frame.as_raw().as_ptr(),
                w as i32,
                h as i32,
                (w * 3) as i32,
                self.quality,
                &mut ptr,
            )
        };
        if len == 0 || ptr.is_null() {
            return Err(webp_err("libwebp could not encode a frame"));
        }
        // SAFETY: libwebp returned `len` valid bytes at `ptr`.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec();
        // SAFETY: `ptr` was allocated by libwebp and is not used after this.
        unsafe { libwebp_sys::WebPFree(ptr.cast()) };
        // A simple-format file: RIFF header (12 bytes) then the VP8 chunk.
        match bytes.get(12..16) {
            Some(b"VP8 ") | Some(b"VP8L") => Ok(bytes[12..].to_vec()),
            _ => Err(webp_err("unexpected libwebp output")),
        }
    }
}

impl<W: Write + Seek> FrameSink for WebpSink<W> {
    fn push(&mut self, frame: &RgbImage) -> Result<(), ComposeError> {
        let (w, h) = self.size;
        if !self.started {
            self.out.write_all(b"RIFF\0\0\0\0WEBP")?;
            let mut vp8x = [0u8; 10];
            vp8x[0] = 0x02; // animation
            vp8x[4..7].copy_from_slice(&u24(w - 1));
            vp8x[7..10].copy_from_slice(&u24(h - 1));
            self.chunk(b"VP8X", &[&vp8x])?;
            // Background white, loop forever.
            self.chunk(b"ANIM", &[&[255, 255, 255, 255, 0, 0]])?;
            self.started = true;
        }
        let data = self.encode(frame)?;
        let mut head = Vec::with_capacity(16);
        head.extend_from_slice(&u24(0)); // x / 2
        head.extend_from_slice(&u24(0)); // y / 2
        head.extend_from_slice(&u24(w - 1));
        head.extend_from_slice(&u24(h - 1));
        head.extend_from_slice(&u24(delay(self.index, self.fps, 1000) as u32));
        head.push(0x02); // no blending, no disposal: every frame is full
        self.chunk(b"ANMF", &[&head, &data])?;
        self.index += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ComposeError> {
        if !self.started {
            return Err(webp_err("no frames"));
        }
        let end = self.out.stream_position()?;
        self.out.seek(SeekFrom::Start(4))?;
        self.out.write_all(&((end - 8) as u32).to_le_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(feature = "mp4")]
pub use mp4_sink::Mp4Sink;

#[cfg(feature = "mp4")]
mod mp4_sink {
    use super::*;
    use openh264::encoder::{
        Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, QpRange, RateControlMode,
    };
    use openh264::formats::{RgbSliceU8, YUVBuffer};

    fn err(e: impl std::fmt::Display) -> ComposeError {
        ComposeError::Encode {
            format: "mp4",
            message: e.to_string(),
        }
    }

    /// MP4 (H.264 Constrained Baseline from openh264) writer. The track is added when the first
    /// frame's SPS/PPS are known; samples go to the file as they are encoded.
    pub struct Mp4Sink<W: Write + Seek> {
        encoder: Encoder,
        out: Option<W>,
        writer: Option<mp4::Mp4Writer<W>>,
        fps: u32,
        index: u64,
        size: (u32, u32),
    }

    impl<W: Write + Seek> Mp4Sink<W> {
        /// An MP4 of `width`×`height` at `fps`.
        pub fn new(out: W, width: u32, height: u32, fps: u32) -> Result<Self, ComposeError> {
            let config = EncoderConfig::new()
                .max_frame_rate(FrameRate::from_hz(fps as f32))
                // openh264 only honours a bitrate by dropping frames; an animatic must keep every
                // frame, so rate control is off and quality is held by the QP range instead.
                .rate_control_mode(RateControlMode::Off)
                .qp(QpRange::new(18, 30))
                .skip_frames(false)
                .intra_frame_period(IntraFramePeriod::from_num_frames(fps * 2));
            let encoder = Encoder::with_api_config(openh264::OpenH264API::from_source(), config)
                .map_err(err)?;
            Ok(Self {
                encoder,
                out: Some(out),
                writer: None,
                fps,
                index: 0,
                size: (width, height),
            })
        }
    }

    /// NAL units of an Annex B stream without their start codes.
    fn nals(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
        openh264::nal_units(stream).map(|n| {
            let skip = if n.starts_with(&[0, 0, 0, 1]) {
                4
            } else if n.starts_with(&[0, 0, 1]) {
                3
            } else {
                0
            };
            &n[skip..]
        })
    }

    impl<W: Write + Seek> FrameSink for Mp4Sink<W> {
        fn push(&mut self, frame: &RgbImage) -> Result<(), ComposeError> {
            let (w, h) = self.size;
            let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(
                frame.as_raw(),
                (w as usize, h as usize),
            ));
            let bits = self.encoder.encode(&yuv).map_err(err)?;
            let sync = matches!(bits.frame_type(), FrameType::IDR | FrameType::I);
            let stream = bits.to_vec();
            let (mut sps, mut pps, mut sample) = (None, None, Vec::new());
            for nal in nals(&stream) {
                match nal.first().map(|b| b & 0x1f) {
                    Some(7) => sps = Some(nal.to_vec()),
                    Some(8) => pps = Some(nal.to_vec()),
                    Some(_) => {
                        sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        sample.extend_from_slice(nal);
                    }
                    None => {}
                }
            }
            if self.writer.is_none() {
                let (Some(sps), Some(pps)) = (sps, pps) else {
                    return Err(err("the first frame carried no SPS/PPS"));
                };
                let out = self.out.take().ok_or_else(|| err("already finished"))?;
                let config = mp4::Mp4Config {
                    major_brand: str::parse("isom").map_err(err)?,
                    minor_version: 512,
                    compatible_brands: ["isom", "iso2", "avc1", "mp41"]
                        .iter()
                        .map(|b| str::parse(b))
                        .collect::<Result<_, _>>()
                        .map_err(err)?,
                    // The movie clock ticks once per frame, so durations add up exactly.
                    timescale: self.fps,
                };
                let mut writer = mp4::Mp4Writer::write_start(out, &config).map_err(err)?;
                writer
                    .add_track(&mp4::TrackConfig {
                        track_type: mp4::TrackType::Video,
                        timescale: self.fps,
                        language: "und".into(),
                        media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
                            width: w as u16,
                            height: h as u16,
                            seq_param_set: sps,
                            pic_param_set: pps,
                        }),
                    })
                    .map_err(err)?;
                self.writer = Some(writer);
            }
            let Some(writer) = self.writer.as_mut() else {
                return Err(err("not started"));
            };
            if sample.is_empty() {
                return Err(err(format!(
                    "frame {} produced no picture data",
                    self.index
                )));
            }
            writer
                .write_sample(
                    1,
                    &mp4::Mp4Sample {
                        start_time: self.index,
                        duration: 1,
                        rendering_offset: 0,
                        is_sync: sync,
                        bytes: mp4::Bytes::from(sample),
                    },
                )
                .map_err(err)?;
            self.index += 1;
            Ok(())
        }

        fn finish(&mut self) -> Result<(), ComposeError> {
            let Some(mut writer) = self.writer.take() else {
                return Err(err("no frames"));
            };
            writer.write_end().map_err(err)?;
            writer.into_writer().flush()?;
            Ok(())
        }
    }
}

/// Encodes `anim` to `path` in `format`, streaming; returns the number of frames.
pub fn encode_file(
    fonts: &mut Fonts,
    anim: &Animatic,
    format: Format,
    path: &std::path::Path,
    progress: impl FnMut(u64, u64),
) -> Result<u64, ComposeError> {
    anim.validate()?;
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (w, h, fps) = (anim.width, anim.height, anim.fps);
    match format {
        Format::Gif => render(fonts, anim, &mut GifSink::new(file, w, h, fps)?, progress),
        Format::Webp => render(
            fonts,
            anim,
            &mut WebpSink::new(file, w, h, fps, 80.0)?,
            progress,
        ),
        #[cfg(feature = "mp4")]
        Format::Mp4 => render(fonts, anim, &mut Mp4Sink::new(file, w, h, fps)?, progress),
        #[cfg(not(feature = "mp4"))]
        Format::Mp4 => Err(ComposeError::invalid(
            "format",
            "this build has no MP4 encoder (cargo feature `mp4`)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_add_up_to_the_exact_duration() {
        for fps in [24, 30] {
            let cs: u64 = (0..fps as u64 * 7).map(|i| delay(i, fps, 100)).sum();
            assert_eq!(cs, 700);
            let ms: u64 = (0..fps as u64 * 7).map(|i| delay(i, fps, 1000)).sum();
            assert_eq!(ms, 7000);
        }
    }

    #[test]
    fn validation_names_fields() {
        let shot = Shot {
            image: Arc::new(RgbaImage::new(4, 4)),
            duration_s: 1.0,
            caption: None,
            transition: Transition::Cut,
            motion: None,
        };
        let mut a = Animatic {
            shots: vec![shot],
            width: 321,
            height: 240,
            fps: 24,
            label: None,
        };
        assert!(a
            .validate()
            .expect_err("odd")
            .to_string()
            .starts_with("width"));
        a.width = 320;
        a.shots[0].duration_s = 0.0;
        assert!(a
            .validate()
            .expect_err("zero")
            .to_string()
            .starts_with("shots[0].duration_s"));
    }

    struct Count(u64, Vec<u8>);
    impl FrameSink for Count {
        fn push(&mut self, f: &RgbImage) -> Result<(), ComposeError> {
            self.0 += 1;
            self.1.push(f.get_pixel(f.width() / 2, f.height() / 2).0[0]);
            Ok(())
        }
        fn finish(&mut self) -> Result<(), ComposeError> {
            Ok(())
        }
    }

    #[test]
    fn crossfade_moves_from_one_shot_to_the_next() {
        let black = Arc::new(RgbaImage::from_pixel(64, 64, image::Rgba([0, 0, 0, 255])));
        let white = Arc::new(RgbaImage::from_pixel(
            64,
            64,
            image::Rgba([255, 255, 255, 255]),
        ));
        let a = Animatic {
            shots: vec![
                Shot {
                    image: black,
                    duration_s: 1.0,
                    caption: None,
                    transition: Transition::Cut,
                    motion: None,
                },
                Shot {
                    image: white,
                    duration_s: 1.0,
                    caption: None,
                    transition: Transition::Crossfade { seconds: 0.5 },
                    motion: None,
                },
            ],
            width: 64,
            height: 64,
            fps: 10,
            label: None,
        };
        let mut fonts = Fonts::new();
        let mut sink = Count(0, Vec::new());
        assert_eq!(
            render(&mut fonts, &a, &mut sink, |_, _| {}).expect("render"),
            20
        );
        assert_eq!(sink.0, 20);
        let v = &sink.1;
        assert_eq!(v[9], 0);
        assert!(
            v[10] > 0 && v[10] < 255 && v[12] > v[10] && v[14] < 255,
            "{v:?}"
        );
        assert_eq!(v[15], 255);
    }
}
