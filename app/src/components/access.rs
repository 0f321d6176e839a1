//! Who you are, shown in the top bar, and [`Allowed`]: controls your role may not use are
//! replaced by a sentence saying which role they need. The server enforces roles anyway;
//! this only keeps people from pressing buttons that would be refused.

use leptos::prelude::*;

use crate::identity::{AuthSource, Identity, Role};

/// The caller as the server sees them (identity headers, token or anonymous).
#[server(endpoint = "whoami", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn whoami() -> Result<Identity, crate::error::AppError> {
    Ok(crate::backend::caller())
}

/// Loaded once per page load, shared by every page.
#[derive(Clone, Copy)]
pub struct Me(pub Resource<Result<Identity, crate::error::AppError>>);

pub fn provide_me() -> Me {
    let me = Me(Resource::new(|| (), |_| whoami()));
    provide_context(me);
    me
}

impl Me {
    /// Whether the caller may do what `role` may; `false` while unknown.
    pub fn may(&self, role: Role) -> bool {
        self.0
            .get()
            .and_then(Result::ok)
            .is_some_and(|who| who.may(role))
    }
}

#[component]
pub fn WhoAmI() -> impl IntoView {
    let me = expect_context::<Me>();
    view! {
        <Transition fallback=|| ()>
            {move || me.0.get().and_then(Result::ok).map(|who| {
                let how = match who.source {
                    AuthSource::Anonymous => "not signed in",
                    AuthSource::Proxy => "signed in through the proxy",
                    AuthSource::Token => "API token",
                    AuthSource::System => "perfpilot itself",
                };
                view! {
                    <span class="whoami" id="whoami" title=format!("{how}; role {}", who.role)>
                        <span class="whoami-user">{who.user.clone()}</span>
                        <span class=format!("role role-{}", who.role)>{who.role.as_str()}</span>
                    </span>
                }
            })}
        </Transition>
    }
}

/// Renders `children` when the caller's role allows `role`, otherwise a note naming the
/// role needed.
#[component]
pub fn Allowed(role: Role, what: &'static str, children: ChildrenFn) -> impl IntoView {
    let me = expect_context::<Me>();
    let children = StoredValue::new(children);
    view! {
        <Transition fallback=|| ()>
            {move || me.0.get().map(|_| {
                if me.may(role) {
                    children.with_value(|children| children()).into_any()
                } else {
                    view! {
                        <p class="muted needs-role" data-needs-role=role.as_str()>
                            {format!("{what} needs the {role} role.")}
                        </p>
                    }
                    .into_any()
                }
            })}
        </Transition>
    }
}
