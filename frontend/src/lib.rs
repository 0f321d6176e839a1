//! The browser entry point. It only hydrates: all UI lives in `app`, so the server and
//! the browser render the same components.

// Leptos view types nest deeply; their layout exceeds the default query depth.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        show_stopped_banner(&info.to_string());
    }));
    app::base::init_browser();
    // The pages are lazily loaded chunks (app/src/lib.rs): hydration waits for the
    // current page's chunk instead of requiring every page in the main module.
    leptos::mount::hydrate_lazy(app::App);
}

/// The wasm is built with `panic = "abort"`: after a panic nothing on the page reacts any
/// more, while the last rendered values stay on screen and look live. This tells the user
/// so and offers a reload. The details are in the browser console.
fn show_stopped_banner(panic: &str) {
    let Some(document) = web_sys::window().and_then(|window| window.document()) else {
        return;
    };
    if document.get_element_by_id("stopped-banner").is_some() {
        return;
    }
    let (Some(body), Ok(banner), Ok(reload)) = (
        document.body(),
        document.create_element("div"),
        document.create_element("a"),
    ) else {
        return;
    };
    // A page's code is downloaded when it is first visited; that download failing is the
    // one panic with a cause the user can act on.
    let message = if panic.contains("load callback should succeed") {
        "Part of this page could not be downloaded (the network failed, or perfpilot was \
         upgraded), so the page stopped updating. "
    } else {
        "Something went wrong and this page stopped updating. "
    };
    banner.set_id("stopped-banner");
    // What stopped it, for whoever looks at the page's source (and the tests).
    let _ = banner.set_attribute("data-panic", panic);
    banner.set_class_name("banner banner-error");
    let _ = banner.set_attribute("role", "alert");
    banner.set_text_content(Some(message));
    // The address without its #fragment (a link to a fragment of the same page only
    // scrolls), and `rel="external"` so the router's click handler, still attached but
    // backed by stopped code, leaves the click to the browser.
    let here = document.location().and_then(|location| {
        let (origin, path, query) = (
            location.origin().ok()?,
            location.pathname().ok()?,
            location.search().ok()?,
        );
        Some(format!("{origin}{path}{query}"))
    });
    let _ = reload.set_attribute("href", here.as_deref().unwrap_or("."));
    let _ = reload.set_attribute("rel", "external");
    reload.set_text_content(Some("Reload"));
    // A navigation that was loading never finishes now.
    if let Ok(Some(progress)) = document.query_selector(".route-progress") {
        progress.remove();
    }
    let _ = banner.append_child(&reload);
    let _ = body.prepend_with_node_1(&banner);
}
