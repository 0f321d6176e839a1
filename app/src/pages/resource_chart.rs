//! The chart element of the resource page and the target's handle. The server renders an
//! empty `<canvas>` and a hidden handle; in the browser an effect draws the chart
//! whenever the series, the candidate target, the window's size or the theme changes,
//! and puts the handle on the target line.
//!
//! The chart itself never moves the target: a tap or a click does nothing, and a vertical
//! swipe scrolls the page (`touch-action: pan-y`). The target moves by dragging its
//! handle (`touch-action: none`), by pressing and holding on its line for half a second
//! and then dragging, or from the keyboard on the focused handle (a slider: arrows, with
//! Shift or Page Up/Down for ten steps, Home/End); the number field is the exact path.
//! Pointing at the chart reads the sample under the pointer.

use leptos::prelude::*;

use crate::resource_data::SeriesView;

/// How long a press on the target line must be held before it drags the line.
#[cfg(feature = "hydrate")]
const LONG_PRESS_MS: u64 = 500;
/// How near the line (px) such a press must start.
#[cfg(feature = "hydrate")]
const LINE_REACH_PX: f64 = 16.0;
/// How far (px) a held press may wander and still become a drag: more is a swipe.
#[cfg(feature = "hydrate")]
const PRESS_SLOP_PX: f64 = 8.0;

/// A press on the target line waiting to become a drag.
#[cfg(feature = "hydrate")]
#[derive(Debug, Clone, Copy)]
struct Press {
    seq: u32,
    pointer: i32,
    x: f64,
    y: f64,
}

#[component]
#[allow(clippy::too_many_lines)] // 269 lines today; split before it grows
pub fn ChartCanvas(
    series: RwSignal<SeriesView>,
    candidate: RwSignal<Option<f64>>,
    hover: RwSignal<Option<String>>,
) -> impl IntoView {
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    let handle_ref = NodeRef::<leptos::html::Div>::new();
    let draw_ms = RwSignal::new(String::new());
    // Whether the last draw carried a forecast line (for the end-to-end run and for
    // assistive technology, which cannot see the canvas).
    let forecast_drawn = RwSignal::new(false);
    let drawn_theme = RwSignal::new(String::new());
    // Where the target line was drawn (px from the canvas top); none before the first
    // draw or without a target, which keeps the handle hidden.
    let line_y = RwSignal::new(None::<f64>);
    let dragging = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    let mapping = StoredValue::new(None::<crate::chart::PlotMapping>);
    // The axis top while a drag lasts: held, so the line stays under the pointer instead
    // of the axis growing away from it.
    #[cfg(feature = "hydrate")]
    let held_top = StoredValue::new(None::<f64>);
    #[cfg(feature = "hydrate")]
    let press = StoredValue::new(None::<Press>);
    #[cfg(feature = "hydrate")]
    let press_seq = StoredValue::new(0u32);
    #[cfg(feature = "hydrate")]
    let redraw = Trigger::new();

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        redraw.track();
        let Some(canvas) = canvas_ref.get() else {
            return;
        };
        let view = series.read();
        let value = candidate.get();
        let top = held_top
            .get_value()
            .unwrap_or_else(|| view.chart_top(value));
        let performance = window().performance();
        let started = performance.as_ref().map(|p| p.now());
        let drawn = crate::chart::draw(&canvas, &view, value, top);
        mapping.set_value(drawn);
        forecast_drawn.set(drawn.is_some_and(|m| m.forecast));
        if let (Some(p), Some(t0)) = (performance, started) {
            // Exposed for the end-to-end run, which reports redraw time.
            draw_ms.set(format!("{:.2}", p.now() - t0));
        }
        let y = drawn.zip(value).map(|(map, v)| map.y_of(v));
        if let (Some(y), Some(handle)) = (y, handle_ref.get_untracked()) {
            // A style property set from script, not a `style` attribute: the page's
            // Content-Security-Policy allows no inline styles.
            let _ = web_sys::HtmlElement::style(&handle).set_property("top", &format!("{y:.1}px"));
        }
        line_y.set(y);
        // Exposed so the end-to-end run can see the chart follow a theme change.
        drawn_theme.set(
            document()
                .document_element()
                .and_then(|root| root.get_attribute("data-theme"))
                .unwrap_or_else(|| "light".into()),
        );
    });

    // A new width (a phone turned, a window resized) or theme redraws the canvas, whose
    // pixels and colours were fixed when it was drawn.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let resize = window_event_listener(leptos::ev::resize, move |_| redraw.notify());
        on_cleanup(move || resize.remove());
        theme_watch::follow(redraw);
    });

    // The target value at a pointer's height, snapped to the drag grid and kept within
    // the metric's limits.
    #[cfg(feature = "hydrate")]
    let value_at = move |client_y: i32| -> Option<f64> {
        let canvas = canvas_ref.get_untracked()?;
        let map = mapping.get_value()?;
        let rect = canvas.get_bounding_client_rect();
        let raw = map.value_at(f64::from(client_y) - rect.top());
        let view = series.read_untracked();
        let (lo, hi) = view.bounds(map.y_max);
        let step = crate::resource_data::drag_step(&view.unit, hi);
        Some(crate::resource_data::snap(raw, step).clamp(lo, hi))
    };
    #[cfg(feature = "hydrate")]
    let begin_drag = move |target: &web_sys::Element, pointer: i32| {
        held_top.set_value(mapping.get_value().map(|m| m.y_max));
        press.set_value(None);
        dragging.set(true);
        let _ = target.set_pointer_capture(pointer);
    };
    #[cfg(feature = "hydrate")]
    let end_drag = move || {
        press.set_value(None);
        if dragging.get_untracked() {
            dragging.set(false);
            held_top.set_value(None);
            // The axis may now grow to fit where the line was left.
            redraw.notify();
        }
    };

    let on_canvas_down = move |ev: web_sys::PointerEvent| {
        #[cfg(feature = "hydrate")]
        {
            // Only a press held still on the target line becomes a drag; anything else
            // is a tap, a swipe or pointing.
            let (x, y) = (f64::from(ev.offset_x()), f64::from(ev.offset_y()));
            let on_line = line_y
                .get_untracked()
                .is_some_and(|line| (line - y).abs() <= LINE_REACH_PX);
            if on_line && ev.is_primary() {
                let seq = press_seq.get_value().wrapping_add(1);
                press_seq.set_value(seq);
                let pointer = ev.pointer_id();
                press.set_value(Some(Press { seq, pointer, x, y }));
                set_timeout(
                    move || {
                        let held = press
                            .try_get_value()
                            .flatten()
                            .is_some_and(|p| p.seq == seq);
                        if held {
                            if let Some(canvas) = canvas_ref.get_untracked() {
                                begin_drag(&canvas, pointer);
                            }
                        }
                    },
                    std::time::Duration::from_millis(LONG_PRESS_MS),
                );
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let on_canvas_move = move |ev: web_sys::PointerEvent| {
        #[cfg(feature = "hydrate")]
        {
            if dragging.get_untracked() {
                if let Some(v) = value_at(ev.client_y()) {
                    candidate.set(Some(v));
                }
                return;
            }
            let (x, y) = (f64::from(ev.offset_x()), f64::from(ev.offset_y()));
            if let Some(p) = press.get_value() {
                let moved = (p.x - x).hypot(p.y - y);
                if p.pointer == ev.pointer_id() && moved > PRESS_SLOP_PX {
                    press.set_value(None);
                }
            }
            if let Some(map) = mapping.get_value() {
                let view = series.read_untracked();
                hover.set(
                    map.index_at(x)
                        .map(|i| crate::resource_data::sample_readout(&view, i)),
                );
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let on_canvas_leave = move |_: web_sys::PointerEvent| {
        #[cfg(feature = "hydrate")]
        if !dragging.get_untracked() {
            press.set_value(None);
        }
        hover.set(None);
    };
    let on_release = move |_: web_sys::PointerEvent| {
        #[cfg(feature = "hydrate")]
        end_drag();
    };
    // A long press must not open a context menu, nor a drag scroll the page.
    let on_context = move |ev: web_sys::MouseEvent| {
        #[cfg(feature = "hydrate")]
        if dragging.get_untracked() || press.get_value().is_some() {
            ev.prevent_default();
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let on_touch_move = move |ev: web_sys::TouchEvent| {
        if dragging.get_untracked() {
            ev.prevent_default();
        }
    };

    let on_handle_down = move |ev: web_sys::PointerEvent| {
        #[cfg(feature = "hydrate")]
        if ev.is_primary() && ev.button() == 0 {
            if let Some(handle) = handle_ref.get_untracked() {
                // No text selection while dragging; the handle takes the focus a press
                // would have given it, so the arrow keys continue from here.
                ev.prevent_default();
                let _ = handle.focus();
                begin_drag(&handle, ev.pointer_id());
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let on_handle_move = move |ev: web_sys::PointerEvent| {
        #[cfg(feature = "hydrate")]
        if dragging.get_untracked() {
            if let Some(v) = value_at(ev.client_y()) {
                candidate.set(Some(v));
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let on_handle_key = move |ev: web_sys::KeyboardEvent| {
        #[cfg(feature = "hydrate")]
        {
            let (lo, hi, step) = {
                let view = series.read_untracked();
                let top = mapping
                    .get_value()
                    .map_or_else(|| view.chart_top(candidate.get_untracked()), |m| m.y_max);
                let (lo, hi) = view.bounds(top);
                (lo, hi, crate::resource_data::key_step(&view.unit, lo, hi))
            };
            let current = candidate.get_untracked().unwrap_or(lo);
            let times = if ev.shift_key() { 10.0 } else { 1.0 };
            let next = match ev.key().as_str() {
                "ArrowUp" | "ArrowRight" => current + step * times,
                "ArrowDown" | "ArrowLeft" => current - step * times,
                "PageUp" => current + step * 10.0,
                "PageDown" => current - step * 10.0,
                "Home" => lo,
                "End" => hi,
                _ => return,
            };
            ev.prevent_default();
            candidate.set(Some(crate::resource_data::snap(next, step).clamp(lo, hi)));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };

    let bounds = move || {
        let view = series.read();
        view.bounds(view.chart_top(candidate.get()))
    };
    let value_text = move || {
        let view = series.read();
        candidate.get().map(|v| {
            format!(
                "{} {}",
                view.comparator().symbol(),
                crate::resource_data::exact_reading(v, &view.unit)
            )
        })
    };

    view! {
        <div class="chart-wrap" class:chart-dragging=move || dragging.get()>
            <canvas
                node_ref=canvas_ref
                id="chart"
                class="chart"
                role="img"
                aria-label="Chart of the metric over the range with its target line and breaches shaded; the target moves with its handle or the target fields"
                data-draw-ms=move || draw_ms.get()
                data-forecast=move || forecast_drawn.get().then_some("drawn")
                data-theme-drawn=move || drawn_theme.get()
                on:pointerdown=on_canvas_down
                on:pointermove=on_canvas_move
                on:pointerup=on_release
                on:pointercancel=on_release
                on:lostpointercapture=on_release
                on:pointerleave=on_canvas_leave
                on:contextmenu=on_context
                on:touchmove=on_touch_move
            ></canvas>
            <div
                node_ref=handle_ref
                id="target-handle"
                class="target-handle"
                role="slider"
                tabindex="0"
                aria-label="Target"
                aria-orientation="vertical"
                aria-valuemin=move || bounds().0.to_string()
                aria-valuemax=move || bounds().1.to_string()
                aria-valuenow=move || candidate.get().map(|v| v.to_string())
                aria-valuetext=value_text
                title="Drag to move the target; arrow keys step it, with Shift ten steps"
                hidden=move || line_y.get().is_none()
                on:pointerdown=on_handle_down
                on:pointermove=on_handle_move
                on:pointerup=on_release
                on:pointercancel=on_release
                on:lostpointercapture=on_release
                on:keydown=on_handle_key
            >
                <span aria-hidden="true">"⇕"</span>
            </div>
        </div>
    }
}

/// `<html data-theme>` watched with a `MutationObserver`, bound directly: two calls do not
/// justify another `web-sys` feature (which would rebuild the UI stack).
#[cfg(feature = "hydrate")]
mod theme_watch {
    use leptos::prelude::*;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::prelude::wasm_bindgen;
    use wasm_bindgen::JsValue;

    #[wasm_bindgen]
    extern "C" {
        type MutationObserver;

        #[wasm_bindgen(catch, constructor)]
        fn new(callback: &JsValue) -> Result<MutationObserver, JsValue>;

        #[wasm_bindgen(catch, method)]
        fn observe(
            this: &MutationObserver,
            target: &web_sys::Element,
            options: &JsValue,
        ) -> Result<(), JsValue>;

        #[wasm_bindgen(method)]
        fn disconnect(this: &MutationObserver);

        #[wasm_bindgen(catch, js_namespace = JSON, js_name = parse)]
        fn json_parse(text: &str) -> Result<JsValue, JsValue>;
    }

    /// Notifies `redraw` whenever the theme attribute changes (the theme toggle, or the
    /// system's preference under Auto), until the current owner is cleaned up.
    pub fn follow(redraw: Trigger) {
        let Some(root) = document().document_element() else {
            return;
        };
        let on_change = Closure::<dyn FnMut()>::new(move || redraw.notify());
        let Ok(observer) = MutationObserver::new(on_change.as_ref()) else {
            return;
        };
        let Ok(options) = json_parse(r#"{"attributes":true,"attributeFilter":["data-theme"]}"#)
        else {
            return;
        };
        if observer.observe(&root, &options).is_err() {
            return;
        }
        let kept = StoredValue::new_local(Some((observer, on_change)));
        on_cleanup(move || {
            kept.try_update_value(|kept| {
                if let Some((observer, _on_change)) = kept.take() {
                    observer.disconnect();
                }
            });
        });
    }
}
