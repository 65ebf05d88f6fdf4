//! The demo's picture: the circuit's states as coloured bands over time, and one row per
//! environment with each call as a tick coloured by what happened to it.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::worker::{CallKind, LogLine, Plan, shared_transitions};

const LEFT: f64 = 80.0;
const WIDTH: f64 = 900.0;
const TOP: f64 = 50.0;
const BAND: f64 = 26.0;
const ROW: f64 = 14.0;

fn state_colour(state: &str) -> &'static str {
    match state {
        "CLOSED" => "#2e9e5b",
        "OPEN" => "#d9534f",
        "HALF_OPEN" => "#f0ad4e",
        "FORCED_OPEN" => "#6f42c1",
        _ => "#5bc0de",
    }
}

fn call_colour(kind: CallKind) -> &'static str {
    match kind {
        CallKind::Ok => "#2e9e5b",
        CallKind::Failed => "#d9534f",
        CallKind::Rejected => "#c8c8c8",
        CallKind::ProbeOk => "#1f6feb",
        CallKind::ProbeFailed => "#7a1010",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(plan: &Plan, lines: &[LogLine]) -> String {
    let x = |at_ms: u64| {
        LEFT + WIDTH * (at_ms.saturating_sub(plan.start_ms).min(plan.run_ms)) as f64
            / plan.run_ms as f64
    };
    let mut rows: BTreeMap<&str, Vec<(u64, CallKind)>> = BTreeMap::new();
    for line in lines {
        if let LogLine::Call {
            env, at_ms, kind, ..
        } = line
        {
            rows.entry(env.as_str()).or_default().push((*at_ms, *kind));
        }
    }
    let rows_top = TOP + BAND + 14.0;
    let height = rows_top + ROW * rows.len() as f64 + 70.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" viewBox="0 0 {w} {height}" font-family="sans-serif" font-size="11">"#,
        w = LEFT + WIDTH + 20.0
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(&format!(
            "fleetbreaker: {} environments sharing circuit '{}'; {}",
            rows.len(),
            plan.circuit,
            plan.policy_text()
        ))
    );
    // The outage, behind everything.
    let (ox0, ox1) = (
        x(plan.start_ms + plan.outage_from_ms),
        x(plan.start_ms + plan.outage_until_ms),
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{ox0:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#fbe3e3"/><text x="{ox0:.1}" y="{:.1}" fill="#b03030">{}</text>"##,
        ox1 - ox0,
        rows_top + ROW * rows.len() as f64 - TOP,
        TOP - 6.0,
        if plan.error_rate >= 1.0 {
            "downstream failing".to_string()
        } else {
            format!(
                "downstream failing {:.0}% of calls",
                plan.error_rate * 100.0
            )
        }
    );
    // The circuit's state, from its shared transitions.
    let mut state = "CLOSED".to_string();
    let mut since = plan.start_ms;
    let mut bands = Vec::new();
    for t in shared_transitions(lines) {
        if let LogLine::Transition { at_ms, to, .. } = t {
            bands.push((since, *at_ms, state.clone()));
            state = to.clone();
            since = *at_ms;
        }
    }
    bands.push((since, plan.start_ms + plan.run_ms, state));
    let _ = writeln!(
        svg,
        r#"<text x="6" y="{:.1}">circuit</text>"#,
        TOP + BAND / 2.0 + 4.0
    );
    for (from, to, state) in &bands {
        let (x0, x1) = (x(*from), x(*to));
        if x1 > x0 {
            let _ = writeln!(
                svg,
                r#"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{BAND}" fill="{}"><title>{state}</title></rect>"#,
                x1 - x0,
                state_colour(state)
            );
        }
    }
    // One row per environment.
    for (i, (env, calls)) in rows.iter().enumerate() {
        let y = rows_top + ROW * i as f64;
        let _ = writeln!(
            svg,
            r#"<text x="6" y="{:.1}">{}</text>"#,
            y + ROW - 3.0,
            escape(env)
        );
        for (at, kind) in calls {
            let _ = writeln!(
                svg,
                r#"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="{}" stroke-width="{}"/>"#,
                y + 2.0,
                y + ROW - 2.0,
                call_colour(*kind),
                if kind.is_probe() { 3 } else { 1 },
                cx = x(*at)
            );
        }
    }
    // The time axis.
    let axis_y = rows_top + ROW * rows.len() as f64 + 6.0;
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#444"/>"##,
        LEFT + WIDTH
    );
    for second in 0..=plan.run_ms / 1000 {
        let sx = x(plan.start_ms + second * 1000);
        let _ = writeln!(
            svg,
            r##"<line x1="{sx:.1}" y1="{axis_y:.1}" x2="{sx:.1}" y2="{:.1}" stroke="#444"/><text x="{sx:.1}" y="{:.1}" text-anchor="middle">{second} s</text>"##,
            axis_y + 4.0,
            axis_y + 16.0
        );
    }
    // The legend.
    let legend_y = axis_y + 40.0;
    let items = [
        ("closed", state_colour("CLOSED")),
        ("open", state_colour("OPEN")),
        ("half-open", state_colour("HALF_OPEN")),
        ("call ok", call_colour(CallKind::Ok)),
        ("call failed", call_colour(CallKind::Failed)),
        ("rejected", call_colour(CallKind::Rejected)),
        ("probe ok", call_colour(CallKind::ProbeOk)),
        ("probe failed", call_colour(CallKind::ProbeFailed)),
    ];
    for (i, (label, colour)) in items.iter().enumerate() {
        let lx = LEFT + 110.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{legend_y:.1}">{label}</text>"#,
            legend_y - 10.0,
            lx + 16.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
