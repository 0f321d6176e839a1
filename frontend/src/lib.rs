//! The browser entry point. It only hydrates: all UI lives in `app`, so the server and
//! the browser render the same components.

// Leptos view types nest deeply; their layout exceeds the default query depth.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    app::base::init_browser();
    // The pages are lazily loaded chunks (app/src/lib.rs): hydration waits for the
    // current page's chunk instead of requiring every page in the main module.
    leptos::mount::hydrate_lazy(app::App);
}
