//! The summary chart itself: a broadcast's figures (chat lines per minute, viewers, title and
//! game changes, ad breaks and gaps, parts) drawn with plotters' bitmap backend into memory
//! and encoded as PNG. Pure: data in, bytes out. Text uses the font embedded in the binary
//! (`assets/fonts`, Open Sans, Apache 2.0), registered with plotters' `ab_glyph` feature, so
//! no system font is needed.

use std::fmt::Debug;
use std::sync::Once;

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// The chart's size in pixels.
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 640;
/// Labels longer than this are cut (a title can be 140 characters).
const LABEL_CHARS: usize = 40;

static FONT: &[u8] = include_bytes!("../../assets/fonts/OpenSans-Regular.ttf");
static REGISTER: Once = Once::new();
const FAMILY: &str = "sans-serif";

/// What a span of the broadcast was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shade {
    AdBreak,
    Gap,
}

/// Everything the chart shows, on one time axis from `start` to `end`.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub heading: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Chat lines in each minute from `start`.
    pub chat_per_minute: Vec<u32>,
    pub viewers: Vec<(DateTime<Utc>, u64)>,
    /// Title/game changes (the first is the state at the start), labelled.
    pub changes: Vec<(DateTime<Utc>, String)>,
    /// Spans missing from the recording: (start, seconds, what).
    pub shaded: Vec<(DateTime<Utc>, f64, Shade)>,
    /// Where each part began, with its number.
    pub parts: Vec<(DateTime<Utc>, u32)>,
}

impl Figures {
    fn minutes(&self, t: DateTime<Utc>) -> f64 {
        (t - self.start).num_milliseconds() as f64 / 60_000.0
    }
}

fn drawn<T, E: Debug>(result: Result<T, E>) -> Result<T> {
    result.map_err(|e| anyhow!("drawing the chart failed: {e:?}"))
}

/// Text fit for a label: no control characters, at most [`LABEL_CHARS`].
fn label(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    match clean.chars().count() > LABEL_CHARS {
        true => clean.chars().take(LABEL_CHARS - 1).chain(['…']).collect(),
        false => clean,
    }
}

/// `95.0` minutes → `1:35`.
fn clock(minutes: f64) -> String {
    let m = minutes.max(0.0).round() as u64;
    format!("{}:{:02}", m / 60, m % 60)
}

/// The chart as PNG bytes.
pub fn render(figures: &Figures) -> Result<Vec<u8>> {
    REGISTER.call_once(|| {
        // The font is ours and known good; a failure would show as missing text, not a crash.
        let _ = register_font(FAMILY, FontStyle::Normal, FONT);
    });
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(figures, &mut pixels)?;
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(png)
}

fn draw(f: &Figures, pixels: &mut [u8]) -> Result<()> {
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    drawn(root.fill(&WHITE))?;
    let span = f.minutes(f.end).max(1.0);
    let chat_max = f.chat_per_minute.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.15;
    let viewers_max = f.viewers.iter().map(|v| v.1).max().unwrap_or(0).max(1) as f64 * 1.15;
    let mut chart = drawn(
        ChartBuilder::on(&root)
            .caption(label_long(&f.heading), (FAMILY, 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0f64..span, 0f64..chat_max),
    )?
    .set_secondary_coord(0f64..span, 0f64..viewers_max);
    drawn(
        chart
            .configure_mesh()
            .x_desc("time into the broadcast (h:mm)")
            .y_desc("chat lines per minute")
            .x_label_formatter(&|m| clock(*m))
            .y_label_formatter(&|n| format!("{n:.0}"))
            .label_style((FAMILY, 14))
            .draw(),
    )?;
    drawn(
        chart
            .configure_secondary_axes()
            .y_desc("viewers")
            .y_label_formatter(&|n| format!("{n:.0}"))
            .label_style((FAMILY, 14))
            .draw(),
    )?;
    // Shaded spans first, so the curves stay visible over them.
    shades(&mut chart, f, span, chat_max)?;
    let chat = f
        .chat_per_minute
        .iter()
        .enumerate()
        .map(|(i, n)| (i as f64 + 0.5, *n as f64));
    drawn(chart.draw_series(LineSeries::new(chat, BLUE.stroke_width(2))))?
        .label("chat lines per minute")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let viewers = f.viewers.iter().map(|(at, n)| (f.minutes(*at), *n as f64));
    drawn(chart.draw_secondary_series(LineSeries::new(viewers, RED.stroke_width(2))))?
        .label("viewers")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    markers(&mut chart, f, chat_max)?;
    drawn(
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw(),
    )?;
    drawn(root.present())
}

/// Ad breaks (amber) and gaps (red) as shaded spans, each kind in the legend when there is
/// one.
fn shades<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    f: &Figures,
    span: f64,
    chat_max: f64,
) -> Result<()> {
    for kind in [Shade::AdBreak, Shade::Gap] {
        let color = shade_color(kind);
        let spans: Vec<_> = f
            .shaded
            .iter()
            .filter(|s| s.2 == kind)
            .map(|(at, secs, _)| {
                let x0 = f.minutes(*at);
                let x1 = (x0 + secs / 60.0).max(x0 + span / 400.0);
                Rectangle::new([(x0, 0.0), (x1, chat_max)], color.filled())
            })
            .collect();
        if spans.is_empty() {
            continue;
        }
        let name = match kind {
            Shade::AdBreak => "ad break (cut)",
            Shade::Gap => "gap (missing)",
        };
        drawn(chart.draw_series(spans))?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], color.filled()));
    }
    Ok(())
}

fn shade_color(kind: Shade) -> RGBAColor {
    match kind {
        Shade::AdBreak => RGBColor(255, 196, 0).mix(0.25),
        Shade::Gap => RGBColor(200, 0, 0).mix(0.2),
    }
}

/// Title/game changes (green, labelled) and part starts (grey, numbered) as vertical lines.
fn markers<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    f: &Figures,
    top: f64,
) -> Result<()> {
    let green = RGBColor(0, 128, 60);
    for (i, (at, text)) in f.changes.iter().enumerate() {
        let x = f.minutes(*at);
        drawn(chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, 0.0), (x, top)],
            green.stroke_width(1),
        ))))?;
        // Staggered down the chart so neighbouring labels do not overlap.
        let y = top * (0.95 - 0.07 * (i % 6) as f64);
        drawn(chart.draw_series(std::iter::once(Text::new(
            label(text),
            (x, y),
            (FAMILY, 13).into_font().color(&green),
        ))))?;
    }
    let grey = RGBColor(90, 90, 90);
    for (at, part) in &f.parts {
        let x = f.minutes(*at);
        drawn(chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, 0.0), (x, top)],
            grey.stroke_width(2),
        ))))?;
        drawn(chart.draw_series(std::iter::once(Text::new(
            format!("part {part}"),
            (x, top * 0.02),
            (FAMILY, 13).into_font().color(&grey),
        ))))?;
    }
    Ok(())
}

/// A heading fit for the caption (longer than a label).
fn label_long(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    clean.chars().take(100).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Decodes a PNG: (width, height, RGB pixels).
    pub(crate) fn decode(bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let pixels = buf[..info.buffer_size()]
            .chunks(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        (info.width, info.height, pixels)
    }

    pub(crate) fn figures() -> Figures {
        let start = Utc::now() - chrono::Duration::hours(2);
        let at = |m: i64| start + chrono::Duration::minutes(m);
        Figures {
            heading: "foo — a \u{7}long broadcast".into(),
            start,
            end: at(120),
            chat_per_minute: (0..120).map(|m| (m * 7 % 50) as u32).collect(),
            viewers: (0..24).map(|i| (at(i * 5), 100 + i as u64 * 10)).collect(),
            changes: vec![(at(0), "Chess".into()), (at(60), "x".repeat(200))],
            shaded: vec![(at(30), 90.0, Shade::AdBreak), (at(80), 30.0, Shade::Gap)],
            parts: vec![(at(0), 1), (at(70), 2)],
        }
    }

    #[test]
    fn the_chart_is_a_png_of_its_size_with_a_drawing_in_it() {
        let png = render(&figures()).unwrap();
        let (w, h, pixels) = decode(&png);
        assert_eq!((w, h), (WIDTH, HEIGHT));
        let distinct: HashSet<[u8; 3]> = pixels.iter().copied().collect();
        assert!(distinct.len() > 50, "only {} colours", distinct.len());
        // Both curves are drawn: pure blue and pure red pixels exist.
        assert!(pixels.contains(&[0, 0, 255]) && pixels.contains(&[255, 0, 0]));
        // Text is drawn with the embedded font: dark grey anti-aliased pixels in the caption.
        let caption = &pixels[..(WIDTH * 40) as usize];
        assert!(caption
            .iter()
            .any(|p| p[0] < 128 && p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn an_empty_broadcast_still_draws() {
        let now = Utc::now();
        let figures = Figures {
            heading: "bar".into(),
            start: now,
            end: now,
            ..Figures::default()
        };
        let (w, _, pixels) = decode(&render(&figures).unwrap());
        assert_eq!(w, WIDTH);
        assert!(pixels.iter().collect::<HashSet<_>>().len() > 2);
    }

    #[test]
    fn labels_lose_control_characters_and_length() {
        assert_eq!(label("a\u{1b}[31mb"), "a[31mb");
        assert_eq!(label(&"é".repeat(100)).chars().count(), LABEL_CHARS);
        assert_eq!(clock(95.4), "1:35");
    }
}
