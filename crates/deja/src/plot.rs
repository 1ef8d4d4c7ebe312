//! A precision/recall chart as a self-contained SVG, written by hand: axes, grid, one
//! polyline per series, a legend, a dashed target line and each series' chosen point.
//! No scripts, no external fonts or stylesheets, so the file opens anywhere.
//!
//! Not a general plotting library: it draws exactly what `deja tune` needs.

use std::fmt::Write;

use crate::eval::threshold_str;

/// One point of a curve: a threshold and what serving at it gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub threshold: f32,
    pub recall: f64,
    pub precision: f64,
}

/// One curve: a group's points, lowest threshold first, and the one chosen, if any.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
    /// Index into `points` of the recommended threshold.
    pub chosen: Option<usize>,
}

/// Distinct colours (Tableau 10), reused in turn past ten series.
const COLOURS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

const WIDTH: f64 = 880.0;
/// The least height; more legend entries than fit make the image taller.
const MIN_HEIGHT: f64 = 560.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 50.0;
const PLOT_W: f64 = 540.0;
const PLOT_H: f64 = 440.0;

/// Escapes text for use in SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A tick step giving at most about ten ticks over `span`.
fn tick_step(span: f64) -> f64 {
    [0.01, 0.02, 0.05, 0.1, 0.2]
        .into_iter()
        .find(|s| span / s <= 10.0 + 1e-9)
        .unwrap_or(0.2)
}

/// The chart. `target` draws a dashed horizontal line at that precision.
pub fn precision_recall_svg(
    title: &str,
    knob: &str,
    series: &[Series],
    target: Option<f64>,
) -> String {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let max_recall = points().map(|p| p.recall).fold(0.0_f64, f64::max);
    let x_max = ((max_recall * 10.0).ceil() / 10.0).clamp(0.1, 1.0);
    let min_precision = points()
        .map(|p| p.precision)
        .chain(target)
        .fold(1.0_f64, f64::min);
    let y_min = ((min_precision * 10.0).floor() / 10.0).clamp(0.0, 0.9);
    let x = |recall: f64| LEFT + recall / x_max * PLOT_W;
    let y = |precision: f64| TOP + (1.0 - precision) / (1.0 - y_min) * PLOT_H;
    let height = MIN_HEIGHT.max(TOP + 40.0 + series.len() as f64 * 20.0 + 20.0);

    let mut s = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<title>{}</title>
<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>
<text x="{}" y="28" font-size="15" text-anchor="middle">{}</text>"#,
        escape(title),
        LEFT + PLOT_W / 2.0,
        escape(title),
    );

    // Grid and tick labels.
    let _ = writeln!(s, r##"<g stroke="#e0e0e0" stroke-width="1">"##);
    let xs = tick_step(x_max);
    let x_ticks: Vec<f64> = (0..)
        .map(|i| i as f64 * xs)
        .take_while(|v| *v <= x_max + 1e-9)
        .collect();
    let ys = tick_step(1.0 - y_min);
    let y_ticks: Vec<f64> = (0..)
        .map(|i| y_min + i as f64 * ys)
        .take_while(|v| *v <= 1.0 + 1e-9)
        .collect();
    for &t in &x_ticks {
        let _ = writeln!(
            s,
            r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}"/>"#,
            x(t),
            TOP,
            TOP + PLOT_H
        );
    }
    for &t in &y_ticks {
        let _ = writeln!(
            s,
            r#"<line x1="{0:.1}" y1="{1:.1}" x2="{2:.1}" y2="{1:.1}"/>"#,
            LEFT,
            y(t),
            LEFT + PLOT_W
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r##"<g fill="#333">"##);
    for &t in &x_ticks {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{:.0}%</text>"#,
            x(t),
            TOP + PLOT_H + 18.0,
            t * 100.0
        );
    }
    for &t in &y_ticks {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}%</text>"#,
            LEFT - 6.0,
            y(t) + 4.0,
            t * 100.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">recall (label-1 pairs served their own entry)</text>
<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">precision</text>
</g>"#,
        LEFT + PLOT_W / 2.0,
        TOP + PLOT_H + 42.0,
        TOP + PLOT_H / 2.0,
        TOP + PLOT_H / 2.0,
    );
    // Axes.
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="#333" stroke-width="1"/>"##
    );
    if let Some(t) = target {
        let (x1, x2, ty) = (LEFT, LEFT + PLOT_W, y(t));
        let _ = writeln!(
            s,
            r##"<line x1="{x1:.1}" y1="{ty:.1}" x2="{x2:.1}" y2="{ty:.1}" stroke="#333" stroke-dasharray="6 4"/>
<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">target {:.1}%</text>"##,
            x2 - 6.0,
            ty + 14.0,
            t * 100.0
        );
    }

    // Curves, their points and the chosen points.
    for (i, ser) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let _ = writeln!(s, r#"<g stroke="{colour}" fill="{colour}">"#);
        if !ser.points.is_empty() {
            let coords: Vec<String> = ser
                .points
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.recall), y(p.precision)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke-width="2" points="{}"/>"#,
                coords.join(" ")
            );
        }
        for p in &ser.points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5"><title>{}: {knob} {} recall {:.1}% precision {:.1}%</title></circle>"#,
                x(p.recall),
                y(p.precision),
                escape(&ser.name),
                threshold_str(p.threshold),
                p.recall * 100.0,
                p.precision * 100.0
            );
        }
        if let Some(p) = ser.chosen.and_then(|c| ser.points.get(c)) {
            let _ = writeln!(
                s,
                r##"<circle class="chosen" cx="{:.1}" cy="{:.1}" r="7" fill="none" stroke="#000" stroke-width="2"><title>{}: recommended {knob} {}</title></circle>"##,
                x(p.recall),
                y(p.precision),
                escape(&ser.name),
                threshold_str(p.threshold),
            );
        }
        let _ = writeln!(s, "</g>");
    }

    // Legend, right of the plot.
    let lx = LEFT + PLOT_W + 20.0;
    let _ = writeln!(s, r#"<g class="legend">"#);
    for (i, ser) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let pick = match ser.chosen.and_then(|c| ser.points.get(c)) {
            Some(p) => format!(" ({})", threshold_str(p.threshold)),
            None => " (none)".to_string(),
        };
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/>
<text x="{:.1}" y="{:.1}">{}{}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            escape(&ser.name),
            escape(&pick)
        );
    }
    let ny = TOP + 10.0 + series.len() as f64 * 20.0 + 10.0;
    let _ = writeln!(
        s,
        r##"<circle cx="{:.1}" cy="{ny:.1}" r="7" fill="none" stroke="#000" stroke-width="2"/>
<text x="{:.1}" y="{:.1}" fill="#555">recommended (in brackets)</text>
</g>
</svg>"##,
        lx + 11.0,
        lx + 28.0,
        ny + 4.0,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, chosen: Option<usize>) -> Series {
        Series {
            name: name.into(),
            points: vec![
                Point {
                    threshold: 0.9,
                    recall: 0.6,
                    precision: 0.91,
                },
                Point {
                    threshold: 0.95,
                    recall: 0.3,
                    precision: 0.99,
                },
            ],
            chosen,
        }
    }

    #[test]
    fn svg_is_well_formed_and_has_every_part() {
        let svg = precision_recall_svg(
            "tune <test> & \"quotes\"",
            "min_similarity",
            &[
                series("faq", Some(1)),
                series("a<b>&c", None),
                Series {
                    name: "empty".into(),
                    points: Vec::new(),
                    chosen: None,
                },
            ],
            Some(0.99),
        );
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        let count = |tag: &str| {
            root.descendants()
                .filter(|n| n.tag_name().name() == tag)
                .count()
        };
        // One curve per series that has points.
        assert_eq!(count("polyline"), 2);
        let chosen: Vec<_> = root
            .descendants()
            .filter(|n| n.attribute("class") == Some("chosen"))
            .collect();
        assert_eq!(chosen.len(), 1, "one chosen point");
        let texts: Vec<&str> = root.descendants().filter_map(|n| n.text()).collect();
        assert!(texts.contains(&"tune <test> & \"quotes\""), "{texts:?}");
        assert!(texts.contains(&"a<b>&c (none)"), "{texts:?}");
        assert!(texts.contains(&"faq (0.95)"), "{texts:?}");
        assert!(
            texts.contains(&"faq: recommended min_similarity 0.95"),
            "{texts:?}"
        );
        assert!(texts.contains(&"target 99.0%"), "{texts:?}");
        assert!(!svg.contains("<script"), "no scripts");
        assert!(
            !svg.contains("@import") && !svg.contains("url("),
            "nothing external"
        );
    }

    #[test]
    fn svg_without_series_is_still_well_formed() {
        let svg = precision_recall_svg("empty", "min_similarity", &[], None);
        roxmltree::Document::parse(&svg).unwrap();
    }

    #[test]
    fn points_stay_inside_the_plot() {
        let svg = precision_recall_svg("t", "min_similarity", &[series("s", Some(0))], Some(0.5));
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let in_legend = |n: &roxmltree::Node| {
            n.ancestors()
                .any(|a| a.attribute("class") == Some("legend"))
        };
        for c in doc
            .descendants()
            .filter(|n| n.tag_name().name() == "circle" && !in_legend(n))
        {
            let cx: f64 = c.attribute("cx").unwrap().parse().unwrap();
            let cy: f64 = c.attribute("cy").unwrap().parse().unwrap();
            assert!((LEFT..=LEFT + PLOT_W).contains(&cx), "{cx}");
            assert!((TOP..=TOP + PLOT_H).contains(&cy), "{cy}");
        }
    }

    #[test]
    fn escape_control_characters() {
        assert_eq!(escape("a\u{1}b&"), "a b&amp;");
    }
}
