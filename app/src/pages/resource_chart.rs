//! The chart element of the resource page and its pointer handling. The server renders
//! an empty `<canvas>`; in the browser an effect draws it whenever the series or the
//! candidate target changes, and pointer events drag the target or read values.

use leptos::prelude::*;

use crate::resource_data::SeriesView;

#[component]
pub fn ChartCanvas(
    series: RwSignal<SeriesView>,
    candidate: RwSignal<Option<f64>>,
    hover: RwSignal<Option<String>>,
) -> impl IntoView {
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    let draw_ms = RwSignal::new(String::new());
    #[cfg(feature = "hydrate")]
    let mapping = StoredValue::new(None::<crate::chart::PlotMapping>);
    let dragging = StoredValue::new(false);

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let Some(canvas) = canvas_ref.get() else {
            return;
        };
        let view = series.read();
        let value = candidate.get();
        let performance = window().performance();
        let started = performance.as_ref().map(|p| p.now());
        mapping.set_value(crate::chart::draw(&canvas, &view, value));
        if let (Some(p), Some(t0)) = (performance, started) {
            // Exposed for the end-to-end run, which reports redraw time.
            draw_ms.set(format!("{:.2}", p.now() - t0));
        }
    });

    // Without the browser half these are only carried to the view.
    #[cfg(not(feature = "hydrate"))]
    let _ = (&series, &candidate, &dragging);

    #[cfg(feature = "hydrate")]
    let value_at_pointer = move |ev: &web_sys::PointerEvent| -> Option<f64> {
        let map = mapping.get_value()?;
        let raw = map.value_at(f64::from(ev.offset_y()));
        let (lo, hi) = series.read_untracked().bounds(map.y_max);
        // Half-unit steps for percentages, three significant figures otherwise.
        let step = if series.read_untracked().unit == "%" {
            0.5
        } else {
            significant_step(hi)
        };
        Some(((raw / step).round() * step).clamp(lo, hi))
    };

    let on_down = move |ev: web_sys::PointerEvent| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            if let Some(v) = value_at_pointer(&ev) {
                dragging.set_value(true);
                candidate.set(Some(v));
                if let Some(target) = ev
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                {
                    let _ = target.set_pointer_capture(ev.pointer_id());
                }
            }
        }
        let _ = ev;
    };
    let on_move = move |ev: web_sys::PointerEvent| {
        #[cfg(feature = "hydrate")]
        {
            if dragging.get_value() {
                if let Some(v) = value_at_pointer(&ev) {
                    candidate.set(Some(v));
                }
            } else if let Some(map) = mapping.get_value() {
                let view = series.read_untracked();
                hover.set(map.index_at(f64::from(ev.offset_x())).map(|i| {
                    let at = view.start_ms + i as i64 * view.step_ms;
                    let value = view.means[i]
                        .map(|v| crate::format::reading(f64::from(v), &view.unit))
                        .unwrap_or_else(|| "gap (no sample)".into());
                    let near = view
                        .events
                        .iter()
                        .filter(|e| (e.at_unix_ms - at).abs() <= view.step_ms)
                        .map(|e| format!(" · {}", e.label))
                        .collect::<String>();
                    format!("{} UTC — {value}{near}", crate::format::utc_time(at))
                }));
            }
        }
        let _ = ev;
    };
    let on_up = move |_: web_sys::PointerEvent| dragging.set_value(false);

    view! {
        <canvas
            node_ref=canvas_ref
            id="chart"
            class="chart"
            role="img"
            aria-label="Chart of the metric with its target line; drag vertically to move the target"
            data-draw-ms=move || draw_ms.get()
            on:pointerdown=on_down
            on:pointermove=on_move
            on:pointerup=on_up
            on:pointercancel=on_up
            on:pointerleave=move |_| hover.set(None)
        ></canvas>
    }
}

/// A round step a thousandth of the axis, so dragged values stay readable.
#[cfg(feature = "hydrate")]
fn significant_step(top: f64) -> f64 {
    let magnitude = 10f64.powf((top.max(1e-9)).log10().floor() - 2.0);
    magnitude.max(1e-6)
}
